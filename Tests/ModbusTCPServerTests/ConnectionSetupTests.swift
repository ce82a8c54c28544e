import Logging
import MetricsTestKit
import NIOCore
import Testing

@testable import ModbusTCPServer

#if canImport(Glibc)
import Glibc
#endif

/// The options of accepted sockets, and what happens when a connection cannot be set up.
@Suite("Connection setup: socket options and setup failures")
struct ConnectionSetupTests {
    @Test(
        "An accepted connection has TCP_NODELAY on, SO_KEEPALIVE on, SO_DEBUG off, a fixed send buffer and small reads"
    )
    func socketOptions() async throws {
        let store = TestStore()
        try await withServer(read: .sync { try store.read($0) }, write: nil) { server, port in
            let client = try RawModbusClient(port: port)
            // A reply proves the connection was set up and is in the registry.
            #expect(try await client.request(ModbusFrames.read(0x03, address: 5, count: 1)) == [0x03, 2, 0, 5])
            let channels = server.registry.all.map(\.channel)
            try #require(channels.count == 1)
            let channel = try #require(channels.first)
            // getsockopt on the accepted socket itself.
            let noDelay = try await channel.getOption(.tcpOption(.tcp_nodelay)).get()
            let keepAlive = try await channel.getOption(.socketOption(.so_keepalive)).get()
            let debug = try await channel.getOption(.socketOption(NIOBSDSocket.Option(rawValue: SO_DEBUG))).get()
            #expect(noDelay != 0, "Nagle is off: IPPROTO_TCP/TCP_NODELAY")
            #expect(keepAlive != 0)
            #expect(debug == 0, "SOL_SOCKET option 1 (SO_DEBUG) is not set")
            // Bounds on what one connection gets per read and can leave unread (docs/design.md
            // §5.2): Linux reports twice the SO_SNDBUF that was set.
            let sendBuffer = try await channel.getOption(.socketOption(.so_sndbuf)).get()
            #expect(sendBuffer == 2 * ModbusServer.socketSendBufferBytes, "a fixed send buffer, not autotuned")
            let allocator = try await channel.getOption(.recvAllocator).get()
            #expect((allocator as? AdaptiveRecvByteBufferAllocator)?.maximum == ModbusServer.maximumReadBytes)
        }
    }

    @Test("A connection that cannot be set up is logged at error level with its peer and reason, and counted")
    func setupFailureIsLoggedAndCounted() async throws {
        struct InjectedFailure: Error, CustomStringConvertible {
            var description: String { "injected setsockopt failure" }
        }
        let store = TestStore()
        let logs = LogCapture()
        let metrics = TestMetrics()
        try await withServer(
            ModbusServerConfiguration(host: "127.0.0.1", port: 0),
            read: .sync { try store.read($0) },
            write: nil,
            logger: logs.logger("test.server"),
            metrics: metrics
        ) { server, port in
            server.testHooks.connectionSetup = { _ in throw InjectedFailure() }
            let refused = try RawModbusClient(port: port)
            #expect(await refused.waitForClose(), "the connection that failed setup is closed")
            let errors = logs.messages(at: .error)
            try #require(errors.count == 1, "one error line: \(errors.map(\.message))")
            #expect(errors[0].message.contains("cannot set up an accepted connection"))
            #expect(errors[0].metadata["peer"]?.contains("127.0.0.1") == true)
            #expect(
                errors[0].metadata["peer"]?.contains(":\(refused.localPort)") == true,
                "the peer names the client's port"
            )
            #expect(errors[0].metadata["error"] == "injected setsockopt failure")
            #expect(try metrics.expectCounter("modbus_server_connection_setup_failures_total").totalValue == 1)
            #expect(server.activeConnections == 0, "a failed connection does not occupy a slot")

            // The server keeps serving once connections can be set up again.
            server.testHooks.connectionSetup = nil
            let served = try RawModbusClient(port: port)
            #expect(try await served.request(ModbusFrames.read(0x04, address: 9, count: 1)) == [0x04, 2, 0, 9])
            #expect(try metrics.expectCounter("modbus_server_connection_setup_failures_total").totalValue == 1)
        }
    }

    @Test("Connections refused at the limit and idle ones closed to make room are counted")
    func limitIsCounted() async throws {
        let store = TestStore()
        for policy in [ModbusConnectionLimitPolicy.rejectNew, .closeOldestIdle] {
            let metrics = TestMetrics()
            var configuration = ModbusServerConfiguration(host: "127.0.0.1", port: 0)
            configuration.maxConnections = 1
            configuration.connectionLimitPolicy = policy
            try await withServer(configuration, read: .sync { try store.read($0) }, write: nil, metrics: metrics) {
                _,
                port in
                let first = try RawModbusClient(port: port)
                _ = try await first.request(ModbusFrames.read(0x04, address: 1, count: 1))
                let second = try RawModbusClient(port: port)
                if policy == .rejectNew {
                    #expect(await second.waitForClose(), "the newcomer is closed")
                    #expect(try metrics.expectCounter("modbus_server_connections_refused_total").totalValue == 1)
                    #expect(try metrics.expectCounter("modbus_server_connections_evicted_total").totalValue == 0)
                } else {
                    #expect(await first.waitForClose(), "the idle connection makes room")
                    #expect(try await second.request(ModbusFrames.read(0x04, address: 2, count: 1)) == [0x04, 2, 0, 2])
                    #expect(try metrics.expectCounter("modbus_server_connections_evicted_total").totalValue == 1)
                    #expect(try metrics.expectCounter("modbus_server_connections_refused_total").totalValue == 0)
                }
            }
        }
    }
}
