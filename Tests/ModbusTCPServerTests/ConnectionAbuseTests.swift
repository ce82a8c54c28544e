import Logging
import MQTTTestSupport
import MetricsTestKit
import NIOCore
import Synchronization
import Testing

@testable import ModbusTCPServer

#if canImport(Glibc)
import Glibc
#endif

/// What clients that misbehave on purpose can and cannot do to the server: hold slots, evict
/// masters, flood the log, make it answer without end (docs/operations.md, "Connection abuse").
/// The latency side, a well-behaved master measured beside each abuse, is `Tests/abuse/run.sh`.
@Suite("Connection abuse")
struct ConnectionAbuseTests {
    @Test("At the limit, a connection that never sent a request makes room before a master that polls")
    func silentConnectionsAreEvictedFirst() async throws {
        let store = TestStore()
        try await withServer(.loopback { $0.maxConnections = 2 }, read: .sync { try store.read($0) }, write: nil) {
            server,
            port in
            let master = try RawModbusClient(port: port)
            #expect(try await master.request(ModbusFrames.read(0x03, address: 1, count: 1)) == [0x03, 2, 0, 1])
            // Connected after the master's last request: by activity alone, the master would be
            // the oldest idle connection.
            let silent = try RawModbusClient(port: port)
            // Connections are admitted on their own event loops: the silent one must be in
            // before the newcomer arrives. No event says so; poll, bounded.
            try await withTimeout(.seconds(10), "the silent connection to be admitted") {
                while server.activeConnections < 2 { try await Task.sleep(for: .milliseconds(10)) }
            }
            let newcomer = try RawModbusClient(port: port)
            #expect(await silent.waitForClose(), "the connection that sent nothing made room")
            #expect(try await newcomer.request(ModbusFrames.read(0x03, address: 2, count: 1)) == [0x03, 2, 0, 2])
            #expect(
                try await master.request(ModbusFrames.read(0x03, address: 3, count: 1)) == [0x03, 2, 0, 3],
                "the master kept its connection"
            )
        }
    }

    @Test("A flood of connections over the limit is counted in full and logged at a bounded rate")
    func refusalsAreLoggedAtABoundedRate() async throws {
        let store = TestStore()
        let logs = LogCapture()
        let metrics = TestMetrics()
        var configuration = ModbusServerConfiguration.loopback {
            $0.maxConnections = 1
            $0.connectionLimitPolicy = .rejectNew
        }
        configuration.deniedLogInterval = .seconds(60)
        try await withServer(
            configuration,
            read: .sync { try store.read($0) },
            write: nil,
            logger: logs.logger("test.server"),
            metrics: metrics
        ) { _, port in
            let holder = try RawModbusClient(port: port)
            _ = try await holder.request(ModbusFrames.read(0x03, address: 0, count: 1))
            for _ in 0..<50 {
                let refused = try RawModbusClient(port: port)
                #expect(await refused.waitForClose())
            }
            #expect(try metrics.expectCounter("modbus_server_connections_refused_total").totalValue == 50)
            let lines = logs.messages(at: .warning).filter { $0.message.contains("connection limit") }
            #expect(lines.count == 1, "one line for the first refusal, none for the rest within the interval")
            #expect(try await holder.request(ModbusFrames.read(0x03, address: 4, count: 1)) == [0x03, 2, 0, 4])
        }
    }

    @Test("Connections closed for a header that cannot be trusted are counted in full and logged at a bounded rate")
    func framingErrorsAreLoggedAtABoundedRate() async throws {
        let store = TestStore()
        let logs = LogCapture()
        let metrics = TestMetrics()
        var configuration = ModbusServerConfiguration.loopback()
        configuration.deniedLogInterval = .seconds(60)
        try await withServer(
            configuration,
            read: .sync { try store.read($0) },
            write: nil,
            logger: logs.logger("test.server"),
            metrics: metrics
        ) { _, port in
            // A peer that sends garbage and reconnects in a loop: each is closed, the first
            // logged with its reason, the rest only counted within the interval.
            for transaction in 0..<20 {
                let bad = try RawModbusClient(port: port)
                let request = ModbusFrames.read(0x03, address: 0, count: 1)
                try await bad.send(ModbusFrames.frame(request, transaction: UInt16(transaction), protocolID: 1))
                #expect(await bad.waitForClose())
            }
            #expect(try metrics.expectCounter("modbus_server_framing_errors_total").totalValue == 20)
            let lines = logs.messages(at: .warning).filter { $0.message.contains("cannot be trusted") }
            #expect(lines.count == 1, "\(lines.map(\.message))")
            #expect(lines.first?.metadata["reason"]?.contains("protocol identifier 1") == true)
            let good = try RawModbusClient(port: port)
            #expect(try await good.request(ModbusFrames.read(0x03, address: 4, count: 1)) == [0x03, 2, 0, 4])
        }
    }

    @Test("A request trickled in a byte at a time is closed after the partial-request timeout")
    func slowlorisIsClosed() async throws {
        let store = TestStore()
        let logs = LogCapture()
        try await withServer(
            .loopback { $0.partialRequestTimeout = .milliseconds(300) },
            read: .sync { try store.read($0) },
            write: nil,
            logger: logs.logger("test.server")
        ) { server, port in
            let slow = try RawModbusClient(port: port)
            let frame = ModbusFrames.frame(ModbusFrames.read(0x03, address: 0, count: 1))
            // One byte every 100 ms: the 12 bytes would take 1.1 s, and with the idle timeout
            // alone (a request every 1.2 s is progress) the connection would be held for ever.
            let trickle = Task {
                for byte in frame {
                    try await slow.send([byte])
                    try await Task.sleep(for: .milliseconds(100))
                }
            }
            #expect(await slow.waitForClose(), "closed before the request was complete")
            trickle.cancel()
            _ = await trickle.result
            #expect(logs.messages(at: .info).contains { $0.message.contains("partial-request timeout") })
        }
    }

    @Test("A partial request is not timed out while the server itself holds reading back")
    func partialRequestBehindASlowHandler() async throws {
        let gate = AsyncGate()
        try await withServer(
            .loopback { $0.partialRequestTimeout = .milliseconds(400) },
            read: .async { request in
                await gate.enterAndWait()
                return [UInt16](repeating: 7, count: request.count)
            },
            write: nil
        ) { _, port in
            let client = try RawModbusClient(port: port)
            let first = ModbusFrames.frame(ModbusFrames.read(0x03, address: 0, count: 1), transaction: 1)
            let second = ModbusFrames.frame(ModbusFrames.read(0x03, address: 1, count: 1), transaction: 2)
            try await client.send(first + second[..<5])
            await gate.waitUntilEntered()
            // The handler holds the connection three timeouts long, with half a request read.
            // The client then has a whole timeout from when reading resumes, not what is left
            // of the last one.
            try await Task.sleep(for: .milliseconds(1200))
            gate.open()
            try await client.send(Array(second[5...]))
            #expect(Array(try await client.receiveFrame()[7...]) == [0x03, 2, 0, 7])
            #expect(Array(try await client.receiveFrame()[7...]) == [0x03, 2, 0, 7])
        }
    }

    @Test("A partial request still times out once a slow handler has finished, if its rest never comes")
    func partialRequestAfterASlowHandler() async throws {
        let gate = AsyncGate()
        let logs = LogCapture()
        try await withServer(
            .loopback { $0.partialRequestTimeout = .milliseconds(200) },
            read: .async { request in
                await gate.enterAndWait()
                return [UInt16](repeating: 7, count: request.count)
            },
            write: nil,
            logger: logs.logger("test.server")
        ) { _, port in
            let client = try RawModbusClient(port: port)
            let first = ModbusFrames.frame(ModbusFrames.read(0x03, address: 0, count: 1), transaction: 1)
            let second = ModbusFrames.frame(ModbusFrames.read(0x03, address: 1, count: 1), transaction: 2)
            try await client.send(first + second[..<5])
            await gate.waitUntilEntered()
            try await Task.sleep(for: .milliseconds(600))
            gate.open()
            #expect(Array(try await client.receiveFrame()[7...]) == [0x03, 2, 0, 7], "the first is answered")
            #expect(await client.waitForClose(), "closed: the second request never completed")
            #expect(logs.messages(at: .info).contains { $0.message.contains("partial-request timeout") })
        }
    }

    @Test("A client that never reads gets a bounded number of requests answered, then nothing more")
    func nonReaderIsBounded() async throws {
        let answered = Atomic<Int>(0)
        try await withServer(
            .loopback {
                $0.idleTimeout = nil
                // Stopping waits for replies this client will never read: keep that short.
                $0.shutdownGracePeriod = .milliseconds(500)
            },
            read: .sync { request in
                answered.add(1, ordering: .relaxed)
                return [UInt16](repeating: 1, count: request.count)
            },
            write: nil
        ) { _, port in
            let stalled = try RawModbusClient(port: port, receiveBuffer: 4096)
            // 20,000 requests for 125 registers, about 5 MB of replies, none of them read.
            let request = ModbusFrames.frame(ModbusFrames.read(0x03, address: 0, count: 125))
            let flood = Task { try? await stalled.send(Array([[UInt8]](repeating: request, count: 20_000).joined())) }
            // No event says the output blocked: wait until the count stops moving, bounded.
            try await withTimeout(.seconds(20), "the server to stop answering the non-reader") {
                var last = -1
                while true {
                    try await Task.sleep(for: .milliseconds(300))
                    let now = answered.load(ordering: .relaxed)
                    if now == last { return }
                    last = now
                }
            }
            // The send buffer (fixed, not autotuned to megabytes), NIO's high watermark and the
            // client's small receive buffer hold about 600 replies of 259 bytes; the bound leaves
            // room for the kernel's rounding.
            let count = answered.load(ordering: .relaxed)
            #expect(count < 3_000, "answered \(count) requests nobody reads")
            flood.cancel()
        }
    }
}
