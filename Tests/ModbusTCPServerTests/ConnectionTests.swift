import Logging
import MQTTTestSupport
import ModbusTCPServer
import NIOPosix
import ServiceLifecycle
import Synchronization
import Testing

/// Framing across segments, pipelining, connection hygiene, lifecycle and logging.
@Suite("Connections and lifecycle")
struct ConnectionTests {
    @Test("A frame split into single-byte segments is answered")
    func splitFrame() async throws {
        let store = TestStore()
        try await withServer(read: .sync { try store.read($0) }, write: nil) { _, port in
            let client = try RawModbusClient(port: port)
            for byte in ModbusFrames.frame(ModbusFrames.read(0x03, address: 7, count: 1), transaction: 9) {
                try await client.send([byte])
            }
            #expect(try await client.receiveFrame() == [0, 9, 0, 0, 0, 5, 1, 0x03, 2, 0, 7])
        }
    }

    @Test(
        "Pipelined requests in one segment are all answered, in order, each with its own transaction id",
        arguments: HandlerForm.allCases
    )
    func pipelining(form: HandlerForm) async throws {
        let store = TestStore()
        let read: ModbusReadHandler =
            form == .async
            ? .async { request in
                // Later requests finish sooner, so answering out of order would show.
                try await Task.sleep(for: .milliseconds(Int(10 - request.address % 10)))
                return try store.read(request)
            } : form.read(store)
        try await withServer(read: read, write: form.write(store)) { _, port in
            let client = try RawModbusClient(port: port)
            var batch: [UInt8] = []
            for index in 0..<50 {
                let pdu =
                    index % 10 == 9
                    ? ModbusFrames.read(0x03, address: 0, count: 0)  // an exception among them
                    : ModbusFrames.read(0x03, address: index, count: 1)
                batch += ModbusFrames.frame(pdu, transaction: UInt16(1000 + index))
            }
            try await client.send(batch)
            for index in 0..<50 {
                let reply = try await client.receiveFrame()
                #expect(Int(reply[0]) << 8 | Int(reply[1]) == 1000 + index, "reply \(index) in request order")
                let expected: [UInt8] = index % 10 == 9 ? [0x83, 0x03] : [0x03, 2, 0, UInt8(index)]
                #expect(Array(reply[7...]) == expected)
            }
        }
    }

    @Test("IPv6 loopback is served")
    func ipv6() async throws {
        let store = TestStore()
        try await withServer(.loopback { $0.host = "::1" }, read: .sync { try store.read($0) }, write: nil) { _, port in
            let client = try RawModbusClient(port: port, ipv6: true)
            #expect(try await client.request(ModbusFrames.read(0x04, address: 3, count: 1)) == [0x04, 2, 0, 3])
        }
    }

    // MARK: Connection limit

    @Test("Connection limit, close-oldest-idle: the connection idle longest makes room")
    func closeOldestIdle() async throws {
        let store = TestStore()
        try await withServer(.loopback { $0.maxConnections = 2 }, read: .sync { try store.read($0) }, write: nil) {
            server,
            port in
            let first = try RawModbusClient(port: port)
            _ = try await first.request(ModbusFrames.read(0x03, address: 0, count: 1))
            let second = try RawModbusClient(port: port)
            _ = try await second.request(ModbusFrames.read(0x03, address: 0, count: 1))
            #expect(server.activeConnections == 2)
            let third = try RawModbusClient(port: port)
            #expect(
                try await third.request(ModbusFrames.read(0x03, address: 1, count: 1)) == [0x03, 2, 0, 1],
                "the newcomer is served"
            )
            #expect(await first.waitForClose(), "the oldest idle connection was closed")
            #expect(try await second.request(ModbusFrames.read(0x03, address: 2, count: 1)) == [0x03, 2, 0, 2])
        }
    }

    @Test("Connection limit, close-oldest-idle: when every connection is busy, the newcomer is refused")
    func allBusyRefusesNewcomer() async throws {
        let gate = AsyncGate()
        try await withServer(
            .loopback { $0.maxConnections = 1 },
            read: .async { request in
                await gate.enterAndWait()
                return [UInt16](repeating: 5, count: request.count)
            },
            write: nil
        ) { _, port in
            let busy = try RawModbusClient(port: port)
            try await busy.send(ModbusFrames.frame(ModbusFrames.read(0x03, address: 0, count: 1)))
            await gate.waitUntilEntered()
            let newcomer = try RawModbusClient(port: port)
            #expect(await newcomer.waitForClose(), "no idle connection to close: the newcomer is refused")
            gate.open()
            #expect(Array(try await busy.receiveFrame()[7...]) == [0x03, 2, 0, 5], "the busy connection was kept")
        }
    }

    @Test("Connection limit, reject-new: the newcomer is closed, the others stay")
    func rejectNew() async throws {
        let store = TestStore()
        try await withServer(
            .loopback {
                $0.maxConnections = 1
                $0.connectionLimitPolicy = .rejectNew
            },
            read: .sync { try store.read($0) },
            write: nil
        ) { _, port in
            let first = try RawModbusClient(port: port)
            _ = try await first.request(ModbusFrames.read(0x03, address: 0, count: 1))
            let second = try RawModbusClient(port: port)
            #expect(await second.waitForClose())
            #expect(try await first.request(ModbusFrames.read(0x03, address: 4, count: 1)) == [0x03, 2, 0, 4])
        }
    }

    @Test("Idle timeout closes a silent connection, and says so in the log")
    func idleTimeout() async throws {
        let store = TestStore()
        let logs = LogCapture()
        try await withServer(
            .loopback { $0.idleTimeout = .milliseconds(200) },
            read: .sync { try store.read($0) },
            write: nil,
            logger: logs.logger("test.server")
        ) { server, port in
            // No request at all: on a loaded machine a first request can reach the server after
            // the 200 ms have run out, and the close then lands as a reset on the reply read.
            let client = try RawModbusClient(port: port)
            #expect(await client.waitForClose(), "closed after 200 ms without a request")
            #expect(logs.messages(at: .info).contains { $0.message.contains("idle") })
        }
    }

    @Test("Idle timeout also closes a client that stopped reading with requests still queued")
    func idleTimeoutWithQueuedRequests() async throws {
        let store = TestStore()
        try await withServer(
            .loopback { $0.idleTimeout = .milliseconds(500) },
            read: .sync { try store.read($0) },
            write: nil
        ) {
            server,
            port in
            let stalled = try RawModbusClient(port: port, receiveBuffer: 4096)
            // About 5 MB of replies for a client that reads none: the server's output blocks with
            // requests queued, and the client makes no progress from then on.
            let request = ModbusFrames.frame(ModbusFrames.read(0x03, address: 0, count: 125))
            let flood = Task { try? await stalled.send(Array([[UInt8]](repeating: request, count: 20_000).joined())) }
            // No event says the server closed it (reading would be progress): poll, bounded.
            try await withTimeout(.seconds(20), "the stalled connection to be closed") {
                while server.activeConnections > 0 { try await Task.sleep(for: .milliseconds(50)) }
            }
            _ = await flood.value
        }
    }

    @Test("A client that never reads its replies does not hold up another client")
    func stalledClient() async throws {
        let store = TestStore()
        try await withServer(
            .loopback { $0.maxQueuedRequestsPerConnection = 8 },
            read: .sync { try store.read($0) },
            write: nil
        ) { _, port in
            let stalled = try RawModbusClient(port: port)
            // 20,000 requests for 125 registers: about 5 MB of replies that nobody reads.
            let request = ModbusFrames.frame(ModbusFrames.read(0x03, address: 0, count: 125))
            let flood = Task { try await stalled.send(Array([[UInt8]](repeating: request, count: 20_000).joined())) }
            let other = try RawModbusClient(port: port)
            for index in 0..<100 {
                #expect(
                    try await other.request(ModbusFrames.read(0x03, address: index, count: 1)) == [
                        0x03, 2, 0, UInt8(index),
                    ]
                )
            }
            // The stalled client then reads everything: nothing was lost on its connection either.
            var received = 0
            while received < 20_000 {
                let reply = try await stalled.receiveFrame()
                guard reply.count == 7 + 252 else { break }
                received += 1
            }
            #expect(received == 20_000)
            _ = try? await flood.value
        }
    }

    // MARK: Robustness

    @Test("Hundreds of garbage frames, each on a fresh connection, then a valid request is still answered")
    func garbage() async throws {
        let store = TestStore()
        var generator = SplitMix64(seed: 0x5EED)
        try await withServer(read: .sync { try store.read($0) }, write: .sync { try store.write($0) }) { server, port in
            for round in 0..<400 {
                let client = try RawModbusClient(port: port)
                if round % 2 == 0 {
                    // Pure noise: any bytes, any length.
                    let length = Int(generator.next() % 300) + 1
                    try await client.send((0..<length).map { _ in UInt8(truncatingIfNeeded: generator.next()) })
                } else {
                    // A valid header around a random PDU: the reply must be a well-formed frame.
                    let pduLength = Int(generator.next() % 253) + 1
                    var pdu = (0..<pduLength).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
                    pdu[0] =
                        [0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x08, 0x0F, 0x10, 0x16, 0x17, 0x2B][
                            Int(generator.next() % 12)
                        ]
                    try await client.send(ModbusFrames.frame(pdu, transaction: UInt16(round)))
                    let reply = try await client.receiveFrame()
                    #expect(Int(reply[0]) << 8 | Int(reply[1]) == round)
                    #expect(reply[7] == pdu[0] || reply[7] == pdu[0] | 0x80, "the reply answers the same function")
                    if reply[7] & 0x80 != 0 { #expect(reply.count == 9, "an exception reply has MBAP length 3") }
                }
            }
            let client = try RawModbusClient(port: port)
            #expect(try await client.request(ModbusFrames.read(0x03, address: 42, count: 1)) == [0x03, 2, 0, 42])
            #expect(server.isRunning)
        }
    }

    @Test("64 simultaneous connections are all served")
    func sixtyFourConnections() async throws {
        let store = TestStore()
        try await withServer(.loopback { $0.maxConnections = 64 }, read: .sync { try store.read($0) }, write: nil) {
            server,
            port in
            let clients = try (0..<64).map { _ in try RawModbusClient(port: port) }
            try await withThrowingTaskGroup(of: Int.self) { group in
                for (index, client) in clients.enumerated() {
                    group.addTask {
                        var correct = 0
                        for round in 0..<20 {
                            let address = (index * 7 + round) % 500
                            let reply = try await client.request(
                                ModbusFrames.read(0x04, address: address, count: 1),
                                transaction: UInt16(round)
                            )
                            if reply == [0x04, 2, UInt8(address >> 8), UInt8(address & 0xFF)] { correct += 1 }
                        }
                        return correct
                    }
                }
                var total = 0
                for try await correct in group { total += correct }
                #expect(total == 64 * 20)
            }
            #expect(server.activeConnections == 64)
        }
    }

    // MARK: Lifecycle

    @Test("Port 0 gives an ephemeral port; is-running and active connections are reported")
    func status() async throws {
        let store = TestStore()
        let server = ModbusServer(
            configuration: .init(host: "127.0.0.1", port: 0),
            readHandler: .sync { try store.read($0) }
        )
        #expect(server.port == nil && !server.isRunning)
        try await server.start()
        let port = try #require(server.port)
        #expect(port > 0 && server.isRunning)
        let client = try RawModbusClient(port: port)
        _ = try await client.request(ModbusFrames.read(0x03, address: 0, count: 1))
        #expect(server.activeConnections == 1)
        await server.stop()
        #expect(!server.isRunning && server.port == nil && server.activeConnections == 0)
        #expect(await client.waitForClose())
        #expect(throws: RawModbusClient.Failure.self) { try RawModbusClient(port: port) }
    }

    @Test("Graceful stop: the listener closes, an in-flight request is still answered, then the connection closes")
    func gracefulStop() async throws {
        let gate = AsyncGate()
        let server = ModbusServer(
            configuration: .init(host: "127.0.0.1", port: 0),
            readHandler: .async { request in
                await gate.enterAndWait()
                return [UInt16](repeating: 9, count: request.count)
            }
        )
        try await server.start()
        let port = try #require(server.port)
        let client = try RawModbusClient(port: port)
        try await client.send(ModbusFrames.frame(ModbusFrames.read(0x03, address: 0, count: 2)))
        await gate.waitUntilEntered()
        let stopping = Task { await server.stop() }
        #expect(!(await Self.stopsWhileGateClosed(server)))
        gate.open()
        #expect(
            Array(try await client.receiveFrame()[7...]) == [0x03, 4, 0, 9, 0, 9],
            "the in-flight request is answered"
        )
        #expect(await client.waitForClose(), "then the connection is closed")
        await stopping.value
        #expect(!server.isRunning)
    }

    @Test(
        "Graceful stop: replies waiting for a slow reader's socket are all delivered, whole, before the connection closes"
    )
    func gracefulStopDeliversQueuedReplies() async throws {
        let store = TestStore()
        let answered = TestLock(0)
        var configuration = ModbusServerConfiguration(host: "127.0.0.1", port: 0)
        configuration.shutdownGracePeriod = .seconds(60)
        let server = ModbusServer(
            configuration: configuration,
            readHandler: .sync { request in
                answered.withLock { $0 += 1 }
                return try store.read(request)
            }
        )
        try await server.start()
        // A small receive buffer: the client falls behind at once, and replies pile up in the
        // server's socket and in the server itself.
        let client = try RawModbusClient(port: try #require(server.port), receiveBuffer: 4096)
        var requests: [UInt8] = []
        requests.reserveCapacity(20_000 * 12)
        for index in 0..<20_000 {
            requests += ModbusFrames.frame(
                ModbusFrames.read(0x03, address: 0, count: 125),
                transaction: UInt16(truncatingIfNeeded: index)
            )
        }
        let sending = Task { try? await client.send(requests) }
        // Until the server has stopped answering (its output is blocked): nothing announces
        // that, so this polls, bounded.
        try await withTimeout(.seconds(20), "the server's output to block") {
            var last = -1
            while true {
                let now = answered.withLock { $0 }
                if now == last && now > 100 { return }
                last = now
                try await Task.sleep(for: .milliseconds(100))
            }
        }
        let stopping = Task { await server.stop() }
        // Requests not yet read when the server stopped are not answered; every one it read is
        // (what it had queued, and what was waiting to be written), in order, and whole.
        let frames = try await client.receiveFramesUntilClose()
        await stopping.value
        _ = await sending.value
        #expect(frames.count == answered.withLock { $0 }, "every answered request's reply arrived")
        for (index, frame) in frames.enumerated() {
            guard frame.count == 7 + 252, frame[0] == UInt8(truncatingIfNeeded: index >> 8),
                frame[1] == UInt8(truncatingIfNeeded: index)
            else {
                Issue.record("reply \(index) of \(frames.count): \(frame.prefix(9)) (\(frame.count) bytes)")
                break
            }
        }
        #expect(!server.isRunning)
    }

    /// While the handler is held, stop() must not complete.
    private static func stopsWhileGateClosed(_ server: ModbusServer) async -> Bool {
        await Task.yield()
        return !server.isRunning && server.activeConnections == 0
    }

    @Test("run() serves until swift-service-lifecycle's graceful shutdown")
    func serviceGroup() async throws {
        let store = TestStore()
        let server = ModbusServer(
            configuration: .init(host: "127.0.0.1", port: 0),
            readHandler: .sync { try store.read($0) }
        )
        try await server.start()
        let port = try #require(server.port)
        let group = ServiceGroup(services: [server], logger: Logger(label: "test.group"))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            let client = try RawModbusClient(port: port)
            #expect(try await client.request(ModbusFrames.read(0x03, address: 3, count: 1)) == [0x03, 2, 0, 3])
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
        #expect(!server.isRunning)
    }

    @Test("run() stops when its task is cancelled")
    func cancellation() async throws {
        let store = TestStore()
        let server = ModbusServer(
            configuration: .init(host: "127.0.0.1", port: 0),
            readHandler: .sync { try store.read($0) }
        )
        try await server.start()
        let running = Task { try await server.run() }
        let client = try RawModbusClient(port: try #require(server.port))
        #expect(try await client.request(ModbusFrames.read(0x03, address: 1, count: 1)) == [0x03, 2, 0, 1])
        running.cancel()
        try await running.value
        #expect(!server.isRunning)
    }

    @Test("A program that is not async starts and stops the server from an ordinary thread")
    func blockingAPI() async throws {
        let store = TestStore()
        let server = ModbusServer(
            configuration: .init(host: "127.0.0.1", port: 0),
            readHandler: .sync { try store.read($0) }
        )
        let port = try await onOwnThread {
            try server.startBlocking()
            return server.port
        }
        let client = try RawModbusClient(port: try #require(port))
        #expect(try await client.request(ModbusFrames.read(0x03, address: 8, count: 1)) == [0x03, 2, 0, 8])
        try await onOwnThread { server.stopBlocking() }
        #expect(!server.isRunning)
    }

    @Test("Invalid configuration and a port in use fail start() with a clear error")
    func startErrors() async throws {
        let store = TestStore()
        var configuration = ModbusServerConfiguration(host: "127.0.0.1", port: 0)
        configuration.maxConnections = 0
        let invalid = ModbusServer(configuration: configuration, readHandler: .sync { try store.read($0) })
        await #expect(throws: ModbusServerError.self) { try await invalid.start() }
        try await withServer(read: .sync { try store.read($0) }, write: nil) { _, port in
            let clash = ModbusServer(
                configuration: .init(host: "127.0.0.1", port: port),
                readHandler: .sync { try store.read($0) }
            )
            do {
                try await clash.start()
                Issue.record("binding a port in use must fail")
            } catch let error as ModbusServerError {
                #expect(error.code == .bindFailed && error.message.contains("\(port)"))
            }
        }
    }

    @Test("The wire log shows the hex of every frame in and out at debug level, on its own label")
    func wireLog() async throws {
        let store = TestStore()
        let logs = LogCapture()
        try await withServer(read: .sync { try store.read($0) }, write: nil, wireLogger: logs.logger("test.wire")) {
            _,
            port in
            let client = try RawModbusClient(port: port)
            _ = try await client.request(ModbusFrames.read(0x03, address: 1, count: 1), transaction: 0x0102)
        }
        let wire = logs.messages(at: .debug).filter { $0.label == "test.wire" }.map(\.message)
        #expect(wire.contains("rx 01 02 00 00 00 06 01 03 00 01 00 01"))
        #expect(wire.contains("tx 01 02 00 00 00 05 01 03 02 00 01"))
    }
}

/// Holds an async handler until the test opens it, and tells the test when a handler is waiting.
final class AsyncGate: Sendable {
    private struct State {
        var isOpen = false
        var entered = false
        var handlers: [CheckedContinuation<Void, Never>] = []
        var enteredWaiters: [CheckedContinuation<Void, Never>] = []
    }
    private let state = Mutex(State())

    func enterAndWait() async {
        await withCheckedContinuation { continuation in
            let resume = state.withLock { state -> [CheckedContinuation<Void, Never>] in
                state.entered = true
                let waiters = state.enteredWaiters
                state.enteredWaiters = []
                if state.isOpen { return waiters + [continuation] }
                state.handlers.append(continuation)
                return waiters
            }
            for waiter in resume { waiter.resume() }
        }
    }

    func waitUntilEntered() async {
        await withCheckedContinuation { continuation in
            let ready = state.withLock { state in
                if state.entered { return true }
                state.enteredWaiters.append(continuation)
                return false
            }
            if ready { continuation.resume() }
        }
    }

    func open() {
        let handlers = state.withLock { state in
            state.isOpen = true
            defer { state.handlers = [] }
            return state.handlers
        }
        for handler in handlers { handler.resume() }
    }
}
