import Logging
import ModbusCore
import NIOCore
import NIOSSL

/// Serves one TCP connection: splits the byte stream into frames, answers them in order, one at
/// a time, and batches the replies of pipelined requests into a single write.
///
/// Frames are cut out of the received bytes here rather than by a `ByteToMessageHandler` in
/// front: a decoded frame (31 bytes) does not fit in `NIOAny`'s inline storage, so passing it
/// down the pipeline would cost a heap allocation per request.
///
/// Requests whose handlers are synchronous are answered inline on the event loop, a bounded number
/// per turn so that a client pipelining thousands of requests shares the loop fairly. A request
/// that needs an asynchronous handler pauses the connection's queue (later requests wait, so
/// replies stay in request order) while other connections carry on; a read takes the reads
/// pipelined right behind it along, and their handlers run concurrently
/// (``ModbusPipelinedReads``). Answering stops while the
/// socket cannot take more output, and reading stops while the queue is full or output is
/// blocked, so a slow or stalled client costs the server a bounded amount of memory and CPU and
/// never holds up anyone else. On `ChannelShouldQuiesceEvent` the connection answers what it has
/// received, shuts its output after the last reply, and closes when the client does (or after
/// a linger).
///
/// The rules are ``ModbusConnectionStateMachine``'s: this handler reports events to it and does
/// the I/O its actions call for.
final class ModbusConnectionHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let dispatcher: ModbusRequestDispatcher
    /// The client's role on a TLS connection; `nil` on a plain one.
    private let access: ModbusConnectionAccess?
    private let record: ModbusConnectionRecord
    private let registry: ModbusConnectionRegistry
    /// Framing errors of all connections, logged at a bounded rate: a peer that connects, sends
    /// a bad header and reconnects in a loop must not be able to flood the log.
    private let framingErrors: RateLimitedEventLog
    private let wireLogger: Logger
    private var logger: Logger

    private var machine: ModbusConnectionStateMachine
    /// The requests received and not answered yet; the machine counts them.
    private var queue = CircularBuffer<ModbusTCPFrame>(initialCapacity: 4)
    /// Cuts frames out of the reads; keeps the bytes of a frame split across reads.
    private var assembler = ModbusTCPFrameAssembler()
    private var output = ByteBuffer()
    private var idleCheck: Scheduled<Void>?
    private var linger: Scheduled<Void>?
    private let partialRequestTimeout: TimeAmount?
    /// Closes the connection unless the request whose first bytes the assembler holds is
    /// complete by then; `nil` while the last read ended on a frame boundary.
    private var partialRequestCheck: Scheduled<Void>?
    /// Set when the partial-request deadline passed while the server held reads back: once
    /// reading resumes the client gets a whole timeout again, not what was left of this one.
    private var partialRequestDeferred = false
    /// Which scheduled check is the current one. NIO may still run a task cancelled in the same
    /// turn of the loop; a check from an earlier generation then does nothing.
    private var partialRequestGeneration: UInt64 = 0

    init(
        dispatcher: ModbusRequestDispatcher,
        record: ModbusConnectionRecord,
        registry: ModbusConnectionRegistry,
        framingErrors: RateLimitedEventLog,
        idleTimeout: Duration?,
        partialRequestTimeout: Duration? = nil,
        maxQueued: Int,
        logger: Logger,
        wireLogger: Logger,
        access: ModbusConnectionAccess? = nil
    ) {
        self.dispatcher = dispatcher
        self.access = access
        self.record = record
        self.registry = registry
        self.framingErrors = framingErrors
        self.machine = ModbusConnectionStateMachine(
            idleTimeout: idleTimeout.map { TimeAmount($0) },
            maxQueuedRequests: maxQueued,
            now: .now()
        )
        self.partialRequestTimeout = partialRequestTimeout.map { TimeAmount($0) }
        self.logger = logger
        self.wireLogger = wireLogger
    }

    /// How long a stopping connection waits, after its last reply and FIN, for the client to
    /// close before closing it anyway.
    static let lingerAfterLastReply = TimeAmount.seconds(2)

    /// Replies are written out once this many bytes are waiting, so writability reflects them.
    static let flushThreshold = 16 * 1024

    // MARK: Lifecycle

    func handlerAdded(context: ChannelHandlerContext) {
        output = context.channel.allocator.buffer(capacity: 512)
        let peer = context.channel.remoteAddress.map { "\($0)" } ?? "unknown"
        logger[metadataKey: "peer"] = "\(peer)"
        if let access { logger[metadataKey: "role"] = "\(access.certificateRole ?? "none")" }
        run(machine.handlerAdded(now: context.eventLoop.now), context: context)
    }

    func channelInactive(context: ChannelHandlerContext) {
        machine.channelInactive()
        idleCheck?.cancel()
        linger?.cancel()
        partialRequestCheck?.cancel()
        logger.debug("connection closed", metadata: ["active": "\(registry.count)"])
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let framing = error as? ModbusFramingError {
            framingErrors.record(
                peer: logger[metadataKey: "peer"].map { "\($0)" } ?? "unknown",
                logger: logger,
                metadata: ["reason": "\(framing)"]
            )
        } else if error is NIOCore.IOError || error is ChannelError || (error as? NIOSSLError) == .uncleanShutdown {
            // A TLS client that closes its socket without close_notify is as ordinary as a
            // plain one that resets it.
            logger.debug("connection error: \(error)")
        } else {
            logger.warning("closing connection after error: \(error)")
        }
        run(machine.errorCaught(), context: context)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        switch event {
        case is ChannelShouldQuiesceEvent:
            run(machine.quiesceRequested(), context: context)
        case let event as ChannelEvent where event == .outputClosed:
            run(machine.outputClosed(), context: context)
            context.fireUserInboundEventTriggered(event)
        default:
            context.fireUserInboundEventTriggered(event)
        }
    }

    // MARK: Requests

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        // Stopping or closed: what arrives now is not answered.
        guard machine.acceptsRequests else { return }
        var frames = 0
        do {
            while let frame = try assembler.nextFrame(from: &bytes) {
                if wireLogger.logLevel <= .debug { logReceived(frame) }
                machine.requestReceived()
                frames += 1
                queue.append(frame)
            }
        } catch {
            // The header cannot be trusted, so neither can anything after it. The frames before
            // it are answered as far as this turn allows, then the connection closes.
            answerQueued(context: context)
            errorCaught(context: context, error: error)
            return
        }
        assembler.keepRemainder(of: &bytes)
        // Counted before any reply goes out: once a master has its reply it may open another
        // connection, and the limit policy (on another thread) must already see this one as
        // used. One relaxed atomic add per read.
        if frames > 0 { record.requestsReceived(frames, at: context.eventLoop.now) }
        watchPartialRequest(completedFrames: frames, context: context)
        answerQueued(context: context)
    }

    /// Starts the partial-request deadline when a read leaves the first bytes of a new request,
    /// and ends it when the request it watched is complete. A read that completes a frame and
    /// ends inside the next (as reads of a pipelining client do) starts a fresh deadline for that
    /// next one: the timeout bounds one request's arrival, not a stream's.
    private func watchPartialRequest(completedFrames: Int, context: ChannelHandlerContext) {
        guard let timeout = partialRequestTimeout else { return }
        if completedFrames > 0 || assembler.bufferedByteCount == 0 {
            partialRequestCheck?.cancel()
            partialRequestCheck = nil
            partialRequestDeferred = false
        }
        guard assembler.bufferedByteCount > 0, partialRequestCheck == nil else { return }
        schedulePartialRequestCheck(in: timeout, context: context)
    }

    private func schedulePartialRequestCheck(in timeout: TimeAmount, context: ChannelHandlerContext) {
        partialRequestGeneration &+= 1
        let generation = partialRequestGeneration
        partialRequestCheck = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) {
            guard generation == self.partialRequestGeneration else { return }
            self.partialRequestCheck = nil
            guard self.machine.acceptsRequests, self.assembler.bufferedByteCount > 0 else { return }
            // While the server holds reads back, the rest of the request may be waiting in the
            // socket, not late: the deadline starts again, whole, when reading resumes.
            if self.machine.isWaitingOnServer {
                self.partialRequestDeferred = true
                return
            }
            self.logger.info(
                "closing connection: a request still incomplete after the partial-request timeout",
                metadata: ["partialRequestTimeout": "\(timeout)", "bytes": "\(self.assembler.bufferedByteCount)"]
            )
            self.run(self.machine.errorCaught(), context: context)
        }
    }

    /// A check scheduled by a read during the wait would leave the client less than a whole
    /// timeout, so it is replaced.
    private func restartDeferredPartialRequestCheck(context: ChannelHandlerContext) {
        partialRequestDeferred = false
        partialRequestCheck?.cancel()
        partialRequestCheck = nil
        guard let timeout = partialRequestTimeout, machine.acceptsRequests, assembler.bufferedByteCount > 0
        else { return }
        schedulePartialRequestCheck(in: timeout, context: context)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        _ = machine.readCompleted(now: context.eventLoop.now)
        writeOutput(context: context)
        context.fireChannelReadComplete()
    }

    /// Answers queued requests in order, as long as the machine lets this turn go on, and writes
    /// out the replies. What is left is picked up in a later turn.
    private func answerQueued(context: ChannelHandlerContext) {
        var turn = ModbusConnectionStateMachine.AnsweringTurn()
        while machine.dequeueRequest(in: &turn) {
            let frame = queue.removeFirst()
            let start = output.writerIndex
            let outcome = dispatcher.answerSynchronously(frame, into: &output, access: access)
            if case .suspend(let plan) = outcome {
                startAsynchronousAnswer(frame, plan: plan, turn: &turn, context: context)
            } else {
                logAnswered(frame, outcome, replyStart: start)
            }
            if output.readableBytes >= Self.flushThreshold { writeOutput(context: context) }
        }
        assert(queue.count == machine.queuedRequests || machine.isClosed, "the machine counts the queue")
        writeOutput(context: context)
        run(machine.answeringTurnEnded(turn), context: context)
    }

    /// Runs the handlers of a request that may suspend in a task, while the requests behind it
    /// wait. A read takes the reads pipelined right behind it along (``ModbusPipelinedReads``):
    /// their handlers run concurrently in the one task, and the replies go out in order.
    private func startAsynchronousAnswer(
        _ frame: ModbusTCPFrame,
        plan: ModbusRequestPlan,
        turn: inout ModbusConnectionStateMachine.AnsweringTurn,
        context: ChannelHandlerContext
    ) {
        var group = ModbusPipelinedReads(first: frame, plan: plan)
        if ModbusPipelinedReads.mayStart(plan) {
            // One buffer for the group's synchronous answers (rare with async handlers), not
            // one per read: each answer leaves it as a slice.
            var answered = context.channel.allocator.buffer(capacity: 0)
            while let next = queue.first, group.mayJoin(next), machine.dequeueRequest(in: &turn) {
                queue.removeFirst()
                let outcome = dispatcher.answerSynchronously(next, into: &answered, access: access)
                switch outcome {
                case .answered:
                    group.append(answered: answered.readSlice(length: answered.readableBytes)!)
                case .unanswered:
                    logAnswered(next, outcome, replyStart: 0)
                case .suspend(let plan):
                    group.append(next, plan: plan)
                }
            }
        }
        machine.asyncHandlerStarted()
        record.setBusy(true)
        let dispatcher = self.dispatcher
        let allocator = context.channel.allocator
        let formed = group
        let bound = NIOLoopBound((handler: self, context: context), eventLoop: context.eventLoop)
        context.eventLoop.makeFutureWithTask {
            await Self.answer(formed.pending, dispatcher: dispatcher, allocator: allocator)
        }.whenSuccess { pendingReplies in
            let (handler, context) = bound.value
            handler.asyncHandlerFinished(replies: formed.replies(pendingReplies: pendingReplies), context: context)
        }
    }

    /// The replies to `pending`, in its order; a group's handlers run concurrently. The first
    /// read runs in this task, beside the others' child tasks: one task fewer per group.
    private static func answer(
        _ pending: [ModbusPipelinedReads.PendingRead],
        dispatcher: ModbusRequestDispatcher,
        allocator: ByteBufferAllocator
    ) async -> [ByteBuffer] {
        @Sendable func answer(_ read: ModbusPipelinedReads.PendingRead) async -> ByteBuffer {
            await dispatcher.answerAsynchronously(read.frame, plan: read.plan, allocator: allocator)
        }
        guard pending.count > 1 else { return [await answer(pending[0])] }
        return await withTaskGroup(of: (Int, ByteBuffer).self) { tasks in
            for index in pending.indices.dropFirst() {
                let read = pending[index]
                tasks.addTask { (index, await answer(read)) }
            }
            var replies = [ByteBuffer](repeating: ByteBuffer(), count: pending.count)
            replies[0] = await answer(pending[0])
            for await (index, reply) in tasks { replies[index] = reply }
            return replies
        }
    }

    private func logAnswered(_ frame: ModbusTCPFrame, _ outcome: ModbusRequestDispatcher.Outcome, replyStart: Int) {
        guard wireLogger.logLevel <= .debug else { return }
        switch outcome {
        case .answered:
            logSent(output.getSlice(at: replyStart, length: output.writerIndex - replyStart)!)
        case .unanswered:
            wireLogger.debug(
                "no reply: unit not served",
                metadata: ["transaction": "\(frame.transactionID)", "unit": "\(frame.unitID)"]
            )
        case .suspend:
            break
        }
    }

    private func asyncHandlerFinished(replies: [ByteBuffer], context: ChannelHandlerContext) {
        record.setBusy(false)
        let now = context.eventLoop.now
        let action = machine.asyncHandlerFinished(now: now)
        if action == .answerQueued {
            // The replies answer the head of the queue: they go out before those behind it.
            for reply in replies {
                if wireLogger.logLevel <= .debug { logSent(reply) }
                output.writeImmutableBuffer(reply)
            }
            record.touch(now)
        }
        run(action, context: context)
    }

    private func writeOutput(context: ChannelHandlerContext) {
        guard output.readableBytes > 0, !machine.isClosed else { return }
        context.writeAndFlush(wrapOutboundOut(output), promise: nil)
        // Once the socket has taken the bytes, the storage is ours alone again and is reused.
        output.clear()
    }

    // MARK: Flow control

    func read(context: ChannelHandlerContext) {
        run(machine.readRequested(), context: context)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        let action = machine.writabilityChanged(isWritable: context.channel.isWritable, now: context.eventLoop.now)
        run(action, context: context)
        context.fireChannelWritabilityChanged()
    }

    // MARK: Actions

    private func run(_ actions: ModbusConnectionStateMachine.Actions, context: ChannelHandlerContext) {
        run(actions.first, context: context)
        run(actions.second, context: context)
    }

    private func run(_ action: ModbusConnectionStateMachine.Action, context: ChannelHandlerContext) {
        defer {
            if partialRequestDeferred && !machine.isWaitingOnServer {
                restartDeferredPartialRequestCheck(context: context)
            }
        }
        switch action {
        case .none:
            break
        case .read:
            context.read()
        case .answerQueued:
            answerQueued(context: context)
        case .scheduleContinuation:
            context.eventLoop.assumeIsolated().execute {
                self.run(self.machine.continuationStarted(), context: context)
            }
        case .closeOutput:
            writeOutput(context: context)
            // Half-close: NIO shuts the output down once the replies already handed to the
            // channel are written (a full close now would discard those still waiting for the
            // socket), and meanwhile reading goes on, dropping what arrives, so that no request
            // is left unread in the socket when it closes. The server's shutdown grace period
            // bounds how long a client that does not read can delay this.
            context.close(mode: .output, promise: nil)
        case .startLinger:
            idleCheck?.cancel()
            idleCheck = nil
            linger = context.eventLoop.assumeIsolated().scheduleTask(in: Self.lingerAfterLastReply) {
                self.run(self.machine.lingerEnded(), context: context)
            }
        case .close:
            context.close(promise: nil)
        case .closeIdleConnection:
            let timeout = machine.idleTimeout.map { "\($0)" } ?? "none"
            logger.info("closing idle connection", metadata: ["idleTimeout": "\(timeout)"])
            context.close(promise: nil)
        case .scheduleIdleCheck(let deadline):
            idleCheck = context.eventLoop.assumeIsolated().scheduleTask(deadline: deadline) {
                self.run(self.machine.idleCheckFired(now: context.eventLoop.now), context: context)
            }
        }
    }

    // MARK: Wire log

    private func logReceived(_ frame: ModbusTCPFrame) {
        var bytes = ByteBuffer()
        bytes.writeModbusTCPFrame(frame)
        wireLogger.debug("rx \(bytes.hexDump(format: .plain))", metadata: peerMetadata)
    }

    private func logSent(_ bytes: ByteBuffer) {
        wireLogger.debug("tx \(bytes.hexDump(format: .plain))", metadata: peerMetadata)
    }

    private var peerMetadata: Logger.Metadata {
        ["peer": logger[metadataKey: "peer"] ?? "unknown"]
    }
}
