import Logging
import ModbusCore
import NIOCore

/// Sent down a connection's pipeline when the server shuts down gracefully: answer what has been
/// received, then close.
struct ModbusServerShutdownEvent: Sendable {}

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
/// replies stay in request order) while other connections carry on. Answering stops while the
/// socket cannot take more output, and reading stops while the queue is full or output is
/// blocked, so a slow or stalled client costs the server a bounded amount of memory and CPU and
/// never holds up anyone else.
final class ModbusConnectionHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let dispatcher: ModbusRequestDispatcher
    private let record: ModbusConnectionRecord
    private let registry: ModbusConnectionRegistry
    private let idleTimeout: TimeAmount?
    private let maxQueued: Int
    private let wireLogger: Logger
    private var logger: Logger

    private var queue = CircularBuffer<ModbusTCPFrame>(initialCapacity: 4)
    /// Cuts frames out of the reads; keeps the bytes of a frame split across reads.
    private var assembler = ModbusTCPFrameAssembler()
    private var output = ByteBuffer()
    private var awaitingHandler = false
    /// A later turn will go on answering the queue (see `answerQueued`).
    private var continuationScheduled = false
    /// Shutting down, every reply written or queued for writing: output half-closed.
    private var outputClosing = false
    private var readHeld = false
    private var draining = false
    private var closed = false
    private var readSinceLastComplete = false
    private var lastActivity = NIODeadline.now()
    private var idleCheck: Scheduled<Void>?

    init(
        dispatcher: ModbusRequestDispatcher,
        record: ModbusConnectionRecord,
        registry: ModbusConnectionRegistry,
        idleTimeout: Duration?,
        maxQueued: Int,
        logger: Logger,
        wireLogger: Logger
    ) {
        self.dispatcher = dispatcher
        self.record = record
        self.registry = registry
        self.idleTimeout = idleTimeout.map { TimeAmount($0) }
        self.maxQueued = max(1, maxQueued)
        self.logger = logger
        self.wireLogger = wireLogger
    }

    // MARK: Lifecycle

    func handlerAdded(context: ChannelHandlerContext) {
        output = context.channel.allocator.buffer(capacity: 512)
        let peer = context.channel.remoteAddress.map { "\($0)" } ?? "unknown"
        logger[metadataKey: "peer"] = "\(peer)"
        scheduleIdleCheck(context: context)
    }

    func channelInactive(context: ChannelHandlerContext) {
        closed = true
        idleCheck?.cancel()
        logger.debug("connection closed", metadata: ["active": "\(registry.count)"])
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let framing = error as? ModbusFramingError {
            logger.warning("closing connection: \(framing)")
        } else if error is NIOCore.IOError || error is ChannelError {
            logger.debug("connection error: \(error)")
        } else {
            logger.warning("closing connection after error: \(error)")
        }
        close(context: context)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .outputClosed, outputClosing {
            // Every reply is written and the client has been sent FIN. It normally closes its side
            // once it has read them, and NIO then closes the channel; one that does not is closed
            // after a short linger (see closeIfDrained for why not at once).
            let linger = context.eventLoop.assumeIsolated().scheduleTask(in: Self.lingerAfterLastReply) {
                self.close(context: context)
            }
            idleCheck?.cancel()
            idleCheck = linger
            return
        }
        guard event is ModbusServerShutdownEvent else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        draining = true
        resumeReadingIfPossible(context: context)
        closeIfDrained(context: context)
    }

    // MARK: Requests

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        // Shutting down: what arrives now is not answered (see closeIfDrained).
        guard !draining else { return }
        do {
            while !closed, let frame = try assembler.nextFrame(from: &bytes) {
                readSinceLastComplete = true
                if wireLogger.logLevel <= .debug { logReceived(frame) }
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
        answerQueued(context: context)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if readSinceLastComplete {
            readSinceLastComplete = false
            lastActivity = .now()
            record.touch(lastActivity)
        }
        writeOutput(context: context)
        context.fireChannelReadComplete()
    }

    /// Answers queued requests in order, within a budget per event-loop turn.
    ///
    /// It stops when a request needs an asynchronous handler (the rest wait for its reply), when
    /// the socket cannot take more output (a client that does not read its replies gets no more
    /// work done for it), and after `requestsPerTurn` requests: one read can hold thousands of
    /// pipelined requests, and answering them all at once would keep every other connection on
    /// this event loop waiting. What is left is picked up in a later turn.
    private func answerQueued(context: ChannelHandlerContext) {
        var budget = Self.requestsPerTurn
        while !closed, !awaitingHandler, budget > 0, context.channel.isWritable, let frame = queue.popFirst() {
            process(frame, context: context)
            budget -= 1
            if output.readableBytes >= Self.flushThreshold { writeOutput(context: context) }
        }
        writeOutput(context: context)
        if budget == 0, !queue.isEmpty, !awaitingHandler, !continuationScheduled {
            continuationScheduled = true
            context.eventLoop.assumeIsolated().execute {
                self.continuationScheduled = false
                self.answerQueued(context: context)
            }
        }
        resumeReadingIfPossible(context: context)
        closeIfDrained(context: context)
    }

    /// How long a stopping connection waits, after its last reply and FIN, for the client to
    /// close before closing it anyway.
    static let lingerAfterLastReply = TimeAmount.seconds(2)

    /// Requests answered synchronously per event-loop turn before other connections get theirs.
    static let requestsPerTurn = 256
    /// Replies are written out once this many bytes are waiting, so writability reflects them.
    static let flushThreshold = 16 * 1024

    private func process(_ frame: ModbusTCPFrame, context: ChannelHandlerContext) {
        let start = output.writerIndex
        switch dispatcher.answerSynchronously(frame, into: &output) {
        case .answered:
            if wireLogger.logLevel <= .debug { logSent(output.getSlice(at: start, length: output.writerIndex - start)!) }
        case .suspend(let plan):
            awaitingHandler = true
            record.setBusy(true)
            let dispatcher = self.dispatcher
            let allocator = context.channel.allocator
            let bound = NIOLoopBound((handler: self, context: context), eventLoop: context.eventLoop)
            context.eventLoop.makeFutureWithTask {
                await dispatcher.answerAsynchronously(frame, plan: plan, allocator: allocator)
            }.whenSuccess { reply in
                let (handler, context) = bound.value
                handler.handlerFinished(reply: reply, context: context)
            }
        }
    }

    private func handlerFinished(reply: ByteBuffer, context: ChannelHandlerContext) {
        awaitingHandler = false
        record.setBusy(false)
        guard !closed else { return }
        if wireLogger.logLevel <= .debug { logSent(reply) }
        output.writeImmutableBuffer(reply)
        lastActivity = .now()
        record.touch(lastActivity)
        answerQueued(context: context)
    }

    private func writeOutput(context: ChannelHandlerContext) {
        guard output.readableBytes > 0, !closed else { return }
        context.writeAndFlush(wrapOutboundOut(output), promise: nil)
        // Once the socket has taken the bytes, the storage is ours alone again and is reused.
        output.clear()
    }

    // MARK: Flow control

    func read(context: ChannelHandlerContext) {
        if mustHoldReads(context: context) {
            readHeld = true
        } else {
            context.read()
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            // The client read replies: progress, as far as the idle timeout is concerned.
            lastActivity = .now()
            answerQueued(context: context)
        }
        context.fireChannelWritabilityChanged()
    }

    private func mustHoldReads(context: ChannelHandlerContext) -> Bool {
        // While draining, reading goes on (to discard) so that the client's close is seen.
        !draining && (queue.count >= maxQueued || !context.channel.isWritable)
    }

    private func resumeReadingIfPossible(context: ChannelHandlerContext) {
        guard readHeld, !mustHoldReads(context: context) else { return }
        readHeld = false
        context.read()
    }

    // MARK: Closing

    private var isIdle: Bool { !awaitingHandler && queue.isEmpty }

    /// Whether the connection made no progress for a whole idle timeout can close it: true unless
    /// a handler is at work. Requests queued behind a socket the client does not read do not count
    /// as work: such a client is making no progress, and must not hold a connection for ever.
    private var mayTimeOut: Bool { !awaitingHandler }

    private func closeIfDrained(context: ChannelHandlerContext) {
        guard draining, isIdle, !outputClosing, !closed else { return }
        writeOutput(context: context)
        // Half-close first: NIO shuts the output down once the replies already handed to the
        // channel are written (a full close now would discard those still waiting for the
        // socket), and meanwhile reading goes on, discarding, so that no request is left unread
        // in the socket when it closes: closing with unread input makes the kernel send a reset,
        // and a reset makes the client's system throw away replies it has not read yet. The
        // channel closes when the client closes its side, or a short linger after the output is
        // shut (`ChannelEvent.outputClosed`). The server's shutdown grace period bounds how long
        // a client that does not read can delay this.
        outputClosing = true
        context.close(mode: .output, promise: nil)
    }

    private func close(context: ChannelHandlerContext) {
        guard !closed else { return }
        closed = true
        context.close(promise: nil)
    }

    /// Checks for idleness at the moment the connection would become idle, rather than on every
    /// request, so a busy connection pays nothing for the timeout.
    private func scheduleIdleCheck(context: ChannelHandlerContext) {
        guard let idleTimeout else { return }
        // While a handler runs the connection is not idle; look again a full timeout later.
        let deadline = mayTimeOut ? lastActivity + idleTimeout : NIODeadline.now() + idleTimeout
        idleCheck = context.eventLoop.assumeIsolated().scheduleTask(deadline: deadline) {
            if self.closed { return }
            if self.mayTimeOut && NIODeadline.now() - self.lastActivity >= idleTimeout {
                self.logger.info("closing idle connection", metadata: ["idleTimeout": "\(idleTimeout)"])
                self.close(context: context)
            } else {
                self.scheduleIdleCheck(context: context)
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
