import CoreMetrics
import Logging
import NIOCore
import NIOEmbedded
import Synchronization
import Testing

@testable import ModbusTCPServer

/// The connection handler in a test channel: bytes in, bytes out, with no socket.
@Suite("Connection handler on a test channel")
struct ConnectionHandlerTests {
    // MARK: Synchronous handlers (EmbeddedChannel)

    @Test("A request in: its reply out, in one write")
    func requestAndReply() throws {
        let (channel, _) = try Self.embeddedChannel()
        let request = ModbusFrames.frame(ModbusFrames.read(0x03, address: 7, count: 1), transaction: 9)
        try channel.writeInbound(Self.bytes(request))
        #expect(try Self.nextWrite(channel) == [0, 9, 0, 0, 0, 5, 1, 0x03, 2, 0, 7])
        #expect(try channel.readOutbound(as: ByteBuffer.self) == nil)
    }

    @Test("Pipelined requests in one read: their replies in order, in one write")
    func pipelinedRepliesInOneWrite() throws {
        let (channel, _) = try Self.embeddedChannel()
        var batch: [UInt8] = []
        for index in 0..<3 {
            batch += ModbusFrames.frame(ModbusFrames.read(0x04, address: index, count: 1), transaction: UInt16(index))
        }
        try channel.writeInbound(Self.bytes(batch))
        #expect(
            try Self.nextWrite(channel) == (0..<3).flatMap { [0, UInt8($0), 0, 0, 0, 5, 1, 0x04, 2, 0, UInt8($0)] }
        )
        #expect(try channel.readOutbound(as: ByteBuffer.self) == nil)
    }

    @Test("More requests in one read than a turn answers: the rest goes out in a later turn of the event loop")
    func budgetPerTurn() throws {
        let (channel, _) = try Self.embeddedChannel(maxQueued: 1000)
        let request = ModbusFrames.frame(ModbusFrames.read(0x03, address: 1, count: 1))
        try channel.writeInbound(Self.bytes(Array([[UInt8]](repeating: request, count: 300).joined())))
        let replyLength = 11
        #expect(try Self.nextWrite(channel).count == ModbusConnectionStateMachine.requestsPerTurn * replyLength)
        #expect(try channel.readOutbound(as: ByteBuffer.self) == nil, "the rest waits for the next turn")
        channel.embeddedEventLoop.run()
        #expect(try Self.nextWrite(channel).count == 44 * replyLength)
    }

    @Test("Output blocked: nothing is answered and reads are held until the channel is writable again")
    func outputBlocked() throws {
        let (channel, log) = try Self.embeddedChannel()
        Self.setWritable(false, channel)
        try channel.writeInbound(Self.bytes(ModbusFrames.frame(ModbusFrames.read(0x03, address: 2, count: 1))))
        let reads = log.reads
        channel.read()
        #expect(try channel.readOutbound(as: ByteBuffer.self) == nil)
        #expect(log.reads == reads, "the read is held")
        Self.setWritable(true, channel)
        #expect(Array(try Self.nextWrite(channel)[7...]) == [0x03, 2, 0, 2])
        #expect(log.reads == reads + 1, "and passed on")
    }

    @Test("A full queue holds reads until a later turn answers it")
    func fullQueueHoldsReads() throws {
        let (channel, log) = try Self.embeddedChannel(maxQueued: 8)
        let request = ModbusFrames.frame(ModbusFrames.read(0x03, address: 2, count: 1))
        try channel.writeInbound(Self.bytes(Array([[UInt8]](repeating: request, count: 300).joined())))
        let reads = log.reads
        channel.read()
        #expect(log.reads == reads, "44 requests wait for the next turn, more than 8: the read is held")
        channel.embeddedEventLoop.run()
        #expect(log.reads == reads + 1)
    }

    @Test("Quiesce: the output is shut after the last reply; then input is dropped, and the linger closes")
    func quiesce() throws {
        let (channel, log) = try Self.embeddedChannel()
        Self.setWritable(false, channel)
        try channel.writeInbound(Self.bytes(ModbusFrames.frame(ModbusFrames.read(0x03, address: 5, count: 1))))
        channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        #expect(log.outputCloses == 0, "a request is still waiting for its reply")
        Self.setWritable(true, channel)
        #expect(Array(try Self.nextWrite(channel)[7...]) == [0x03, 2, 0, 5])
        #expect(log.outputCloses == 1, "shut after the last reply")
        // What the client sends now is read and dropped.
        try channel.writeInbound(Self.bytes(ModbusFrames.frame(ModbusFrames.read(0x03, address: 6, count: 1))))
        let reads = log.reads
        channel.read()
        #expect(log.reads == reads + 1, "reading goes on, so the client's close is seen")
        #expect(try channel.readOutbound(as: ByteBuffer.self) == nil)
        // The socket reports its output shut; a client that does not close is closed 2 s later.
        channel.pipeline.fireUserInboundEventTriggered(ChannelEvent.outputClosed)
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(1999))
        #expect(channel.isActive)
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(1))
        #expect(!channel.isActive)
    }

    @Test("Quiesce with nothing waiting shuts the output at once")
    func quiesceIdle() throws {
        let (channel, log) = try Self.embeddedChannel()
        channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        #expect(log.outputCloses == 1)
        #expect(channel.isActive, "the client's close, or the linger, ends the connection")
    }

    @Test("A framing error closes the connection after answering the frames before it")
    func framingErrorCloses() throws {
        let (channel, _) = try Self.embeddedChannel()
        let good = ModbusFrames.frame(ModbusFrames.read(0x03, address: 3, count: 1), transaction: 1)
        let bad = ModbusFrames.frame(ModbusFrames.read(0x03, address: 3, count: 1), transaction: 2, protocolID: 1)
        try channel.writeInbound(Self.bytes(good + bad))
        #expect(try Self.nextWrite(channel) == [0, 1, 0, 0, 0, 5, 1, 0x03, 2, 0, 3])
        #expect(!channel.isActive)
    }

    @Test("The idle timeout runs on the event loop's clock")
    func idleTimeout() throws {
        let (channel, _) = try Self.embeddedChannel(idleTimeout: .seconds(1))
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(600))
        try channel.writeInbound(Self.bytes(ModbusFrames.frame(ModbusFrames.read(0x03, address: 3, count: 1))))
        _ = try Self.nextWrite(channel)
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(999))
        #expect(channel.isActive, "the request was progress")
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(1))
        #expect(!channel.isActive)
    }

    @Test("The partial-request timeout closes a request trickled in, on the event loop's clock")
    func partialRequestTimeout() throws {
        let (channel, _) = try Self.embeddedChannel(partialRequestTimeout: .seconds(1))
        let frame = ModbusFrames.frame(ModbusFrames.read(0x03, address: 3, count: 1))
        for byte in frame.prefix(10) {
            try channel.writeInbound(Self.bytes([byte]))
            channel.embeddedEventLoop.advanceTime(by: .milliseconds(99))
        }
        #expect(channel.isActive, "990 ms after the first byte")
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(10))
        #expect(!channel.isActive, "1 s after the first byte, two bytes still missing")
    }

    @Test("A stream whose reads always end inside a frame is not a partial request: each frame completes in time")
    func pipelinedStreamIsNotPartial() throws {
        let (channel, _) = try Self.embeddedChannel(partialRequestTimeout: .seconds(1))
        var stream: [UInt8] = []
        for index in 0..<31 {
            stream += ModbusFrames.frame(ModbusFrames.read(0x03, address: index, count: 1), transaction: UInt16(index))
        }
        // 30 reads 500 ms apart (15 s in all), each completing one frame and ending in the next.
        var start = 0
        for chunk in 0..<30 {
            let end = chunk * 12 + 18
            try channel.writeInbound(Self.bytes(Array(stream[start..<end])))
            start = end
            channel.embeddedEventLoop.advanceTime(by: .milliseconds(500))
            #expect(channel.isActive, "read \(chunk)")
            _ = try Self.nextWrite(channel)
        }
        try channel.writeInbound(Self.bytes(Array(stream[start...])))
        #expect(try Self.nextWrite(channel) == [0, 30, 0, 0, 0, 5, 1, 0x03, 2, 0, 30])
        channel.embeddedEventLoop.advanceTime(by: .seconds(5))
        #expect(channel.isActive, "nothing partial is left to time out")
    }

    // MARK: Asynchronous handlers (NIOAsyncTestingChannel)

    @Test("Quiesce while an async handler runs: its reply, then the one queued behind it, then the output is shut")
    func quiesceWhileAsyncHandlerRuns() async throws {
        let gate = AsyncGate()
        let log = ChannelOperationLog()
        let read = ModbusReadHandler.async { request in
            await gate.enterAndWait()
            return [UInt16(request.address)]
        }
        let channel = try await NIOAsyncTestingChannel { channel in
            try channel.pipeline.syncOperations.addHandlers(
                ChannelOperationRecorder(log: log),
                Self.handler(for: channel, read: read)
            )
        }
        let first = ModbusFrames.frame(ModbusFrames.read(0x03, address: 1, count: 1), transaction: 1)
        let second = ModbusFrames.frame(ModbusFrames.read(0x03, address: 2, count: 1), transaction: 2)
        try await channel.writeInbound(Self.bytes(first + second))
        await gate.waitUntilEntered()
        channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        #expect(try await channel.testingEventLoop.executeInContext { log.outputCloses } == 0)
        gate.open()
        // The two reads are answered as one group, so both replies may go out in one write.
        #expect(
            try await Self.outbound(channel, byteCount: 22)
                == [0, 1, 0, 0, 0, 5, 1, 0x03, 2, 0, 1] + [0, 2, 0, 0, 0, 5, 1, 0x03, 2, 0, 2]
        )
        #expect(try await channel.testingEventLoop.executeInContext { log.outputCloses } == 1)
        _ = try await channel.finish(acceptAlreadyClosed: true)
    }

    @Test("Reads pipelined behind a suspended read: their handlers run at once, the replies go out in order")
    func pipelinedAsyncReadsRunConcurrently() async throws {
        let count = 6
        let barrier = TestBarrier(parties: count)
        let read = ModbusReadHandler.async { request in
            // Every handler waits here for all the others: handled one at a time, none would
            // get past it before the barrier's deadline.
            let allArrived = await barrier.arrive(timeout: .seconds(10))
            return [UInt16(request.address), allArrived ? 1 : 0]
        }
        let channel = try await NIOAsyncTestingChannel { channel in
            try channel.pipeline.syncOperations.addHandler(Self.handler(for: channel, read: read))
        }
        let requests = (0..<count).flatMap {
            ModbusFrames.frame(ModbusFrames.read(0x03, address: $0, count: 2), transaction: UInt16($0))
        }
        try await channel.writeInbound(Self.bytes(requests))
        let expected = (0..<count).flatMap { [0, UInt8($0), 0, 0, 0, 7, 1, 0x03, 4, 0, UInt8($0), 0, 1] as [UInt8] }
        #expect(try await Self.outbound(channel, byteCount: expected.count) == expected)
        _ = try await channel.finish(acceptAlreadyClosed: true)
    }

    @Test("A write pipelined between reads waits for the reads before it; the reads after it see it")
    func pipelinedWriteKeepsItsPlace() async throws {
        let gate = AsyncGate()
        let events = Mutex<[String]>([])
        let register = Mutex<UInt16>(5)
        let read = ModbusReadHandler.async { request in
            events.withLock { $0.append("read \(request.address)") }
            if request.address < 2 { await gate.enterAndWait() }
            return [register.withLock { $0 }]
        }
        let write = ModbusWriteHandler.async { request in
            events.withLock { $0.append("write") }
            register.withLock { $0 = request.values[0] }
        }
        let channel = try await NIOAsyncTestingChannel { channel in
            try channel.pipeline.syncOperations.addHandler(Self.handler(for: channel, read: read, write: write))
        }
        let requests =
            ModbusFrames.frame(ModbusFrames.read(0x03, address: 0, count: 1), transaction: 1)
            + ModbusFrames.frame(ModbusFrames.read(0x03, address: 1, count: 1), transaction: 2)
            + ModbusFrames.frame([0x06, 0, 0, 0, 99], transaction: 3)
            + ModbusFrames.frame(ModbusFrames.read(0x03, address: 2, count: 1), transaction: 4)
        try await channel.writeInbound(Self.bytes(requests))
        await gate.waitUntilEntered()
        #expect(!events.withLock { $0.contains("write") }, "the write waits while a read before it runs")
        gate.open()
        let expected: [UInt8] =
            [0, 1, 0, 0, 0, 5, 1, 0x03, 2, 0, 5] + [0, 2, 0, 0, 0, 5, 1, 0x03, 2, 0, 5]
            + [0, 3, 0, 0, 0, 6, 1, 0x06, 0, 0, 0, 99] + [0, 4, 0, 0, 0, 5, 1, 0x03, 2, 0, 99]
        #expect(try await Self.outbound(channel, byteCount: expected.count) == expected)
        let order = events.withLock { $0 }
        #expect(order.count == 4 && Array(order.suffix(2)) == ["write", "read 2"], "\(order)")
        _ = try await channel.finish(acceptAlreadyClosed: true)
    }

    // MARK: Harness

    static func handler(
        for channel: any Channel,
        read: ModbusReadHandler,
        write: ModbusWriteHandler? = nil,
        idleTimeout: Duration? = nil,
        partialRequestTimeout: Duration? = nil,
        maxQueued: Int = 64
    ) -> ModbusConnectionHandler {
        let logger = Logger(label: "test.modbus.server")
        return ModbusConnectionHandler(
            dispatcher: ModbusRequestDispatcher(
                configuration: ModbusServerConfiguration(),
                read: read,
                write: write,
                logger: logger
            ),
            record: ModbusConnectionRecord(channel: channel, peer: "test"),
            registry: ModbusConnectionRegistry(),
            framingErrors: RateLimitedEventLog(
                counter: Counter(label: "test_framing_errors_total", factory: NOOPMetricsHandler.instance),
                logInterval: .seconds(10),
                message: "closing connection: a request header that cannot be trusted"
            ),
            idleTimeout: idleTimeout,
            partialRequestTimeout: partialRequestTimeout,
            maxQueued: maxQueued,
            logger: logger,
            wireLogger: Logger(label: "test.modbus.wire")
        )
    }

    /// A connected channel with the handler behind a recorder, serving a `TestStore` synchronously.
    static func embeddedChannel(
        idleTimeout: Duration? = nil,
        partialRequestTimeout: Duration? = nil,
        maxQueued: Int = 64
    ) throws -> (EmbeddedChannel, ChannelOperationLog) {
        let store = TestStore()
        let channel = EmbeddedChannel()
        let log = ChannelOperationLog()
        try channel.pipeline.syncOperations.addHandlers(
            ChannelOperationRecorder(log: log),
            handler(
                for: channel,
                read: .sync { try store.read($0) },
                idleTimeout: idleTimeout,
                partialRequestTimeout: partialRequestTimeout,
                maxQueued: maxQueued
            )
        )
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 502)).wait()
        return (channel, log)
    }

    static func bytes(_ bytes: [UInt8]) -> ByteBuffer { ByteBuffer(bytes: bytes) }

    /// The next `byteCount` bytes the handler writes, in however many writes they come.
    static func outbound(_ channel: NIOAsyncTestingChannel, byteCount: Int) async throws -> [UInt8] {
        var bytes: [UInt8] = []
        while bytes.count < byteCount {
            bytes += try await channel.waitForOutboundWrite(as: ByteBuffer.self).readableBytesView
        }
        return bytes
    }

    static func nextWrite(_ channel: EmbeddedChannel) throws -> [UInt8] {
        Array(try #require(try channel.readOutbound(as: ByteBuffer.self)).readableBytesView)
    }

    /// What a socket does when its send buffer fills or drains.
    static func setWritable(_ isWritable: Bool, _ channel: EmbeddedChannel) {
        channel.isWritable = isWritable
        channel.pipeline.fireChannelWritabilityChanged()
    }
}

/// What ``ChannelOperationRecorder`` saw.
final class ChannelOperationLog: Sendable {
    private let counts = Mutex((reads: 0, outputCloses: 0))

    /// Reads the connection handler passed on.
    var reads: Int { counts.withLock { $0.reads } }
    /// Half-closes the connection handler asked for.
    var outputCloses: Int { counts.withLock { $0.outputCloses } }

    func recordRead() { counts.withLock { $0.reads += 1 } }
    func recordOutputClose() { counts.withLock { $0.outputCloses += 1 } }
}

/// Sits between the test channel and the connection handler. Counts the reads the handler passes
/// on, and stands in for a socket's half-close, which the test channels do not have (they close
/// whatever the mode): `close(mode: .output)` is recorded and succeeds, and the channel stays open.
final class ChannelOperationRecorder: ChannelOutboundHandler {
    typealias OutboundIn = ByteBuffer

    private let log: ChannelOperationLog

    init(log: ChannelOperationLog) {
        self.log = log
    }

    func read(context: ChannelHandlerContext) {
        log.recordRead()
        context.read()
    }

    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        guard mode == .output else {
            context.close(mode: mode, promise: promise)
            return
        }
        log.recordOutputClose()
        promise?.succeed()
    }
}

/// Lets `parties` tasks through once all of them have arrived, or each at its deadline.
final class TestBarrier: Sendable {
    private struct State {
        var arrived = 0
        var timedOut = false
        var waiting: [CheckedContinuation<Bool, Never>] = []
    }
    private let parties: Int
    private let state = Mutex(State())

    init(parties: Int) { self.parties = parties }

    /// Whether every party arrived before `timeout` ran out.
    func arrive(timeout: Duration) async -> Bool {
        let deadline = Task {
            try? await Task.sleep(for: timeout)
            self.releaseAll(allArrived: false)
        }
        defer { deadline.cancel() }
        return await withCheckedContinuation { continuation in
            let release = state.withLock { state -> Bool? in
                state.arrived += 1
                if state.timedOut { return nil }
                state.waiting.append(continuation)
                return state.arrived == parties
            }
            switch release {
            case nil: continuation.resume(returning: false)
            case true?: releaseAll(allArrived: true)
            case false?: break
            }
        }
    }

    private func releaseAll(allArrived: Bool) {
        let waiting = state.withLock { state in
            if !allArrived { state.timedOut = true }
            defer { state.waiting = [] }
            return state.waiting
        }
        for continuation in waiting { continuation.resume(returning: allArrived) }
    }
}
