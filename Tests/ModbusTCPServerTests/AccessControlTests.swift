import CoreMetrics
import Logging
import MetricsTestKit
import ModbusCore
import NIOCore
import Testing

@testable import ModbusTCPServer

/// Who may connect (an address allow-list) and what a listener may do (read only).
@Suite("Access control")
struct AccessControlTests {
    @Test(
        "CIDR ranges: IPv4, IPv6, single hosts, host bits cleared; malformed ones refused",
        arguments: [
            ("10.0.0.0/8", "10.0.0.0/8"), ("192.168.1.20", "192.168.1.20/32"), ("10.1.2.3/8", "10.0.0.0/8"),
            ("0.0.0.0/0", "0.0.0.0/0"), ("::1", "0:0:0:0:0:0:0:1/128"), ("fd00::/8", "fd00:0:0:0:0:0:0:0/8"),
            ("2001:db8::ff/120", "2001:db8:0:0:0:0:0:0/120"),
        ]
    )
    func parses(text: String, normalised: String) throws {
        let range = try #require(ModbusClientAddressRange(text))
        #expect(range.description == normalised)
    }

    @Test(
        "malformed ranges are refused",
        arguments: [
            "", "10.0.0.0/33", "::/129", "10.0.0/8", "10.0.0.0/", "10.0.0.0/-1", "10.0.0.0/8/1", "host.example",
            "fe80::1%eth0", "10.0.0.0/+8",
        ]
    )
    func refusesMalformed(text: String) {
        #expect(ModbusClientAddressRange(text) == nil)
    }

    @Test("membership: prefix bits, address families, IPv4-mapped IPv6 peers match IPv4 ranges")
    func membership() throws {
        func address(_ text: String) throws -> SocketAddress { try SocketAddress(ipAddress: text, port: 502) }
        let lan = try #require(ModbusClientAddressRange("192.168.1.0/24"))
        #expect(lan.contains(try address("192.168.1.200")))
        #expect(!lan.contains(try address("192.168.2.1")))
        #expect(lan.contains(try address("::ffff:192.168.1.7")), "an IPv4 client of a listener on ::")
        #expect(!lan.contains(try address("::1")))
        let odd = try #require(ModbusClientAddressRange("10.0.0.128/25"))
        #expect(odd.contains(try address("10.0.0.200")))
        #expect(!odd.contains(try address("10.0.0.127")))
        let v6 = try #require(ModbusClientAddressRange("fd12:3456::/32"))
        #expect(v6.contains(try address("fd12:3456:1::9")))
        #expect(!v6.contains(try address("fd12:3457::9")))
        #expect(!v6.contains(try address("10.0.0.1")))
        #expect(try #require(ModbusClientAddressRange("0.0.0.0/0")).contains(try address("203.0.113.9")))
    }

    @Test("a client outside allowed_clients is closed before any request, and counted; one inside is served")
    func allowList() async throws {
        let store = TestStore()
        let metrics = TestMetrics()
        var configuration = ModbusServerConfiguration(host: "127.0.0.1", port: 0)
        configuration.allowedClients = [
            try #require(ModbusClientAddressRange("127.0.0.2")), try #require(ModbusClientAddressRange("::1")),
        ]
        try await withServer(configuration, read: .sync { try store.read($0) }, write: nil, metrics: metrics) {
            server,
            port in
            let denied = try RawModbusClient(port: port)
            #expect(await denied.waitForClose(), "127.0.0.1 is not in the list")
            #expect(try metrics.expectCounter("modbus_server_connections_denied_total").totalValue == 1)
            #expect(server.activeConnections == 0)
        }

        configuration.allowedClients = [try #require(ModbusClientAddressRange("127.0.0.0/8"))]
        try await withServer(configuration, read: .sync { try store.read($0) }, write: nil) { _, port in
            let client = try RawModbusClient(port: port)
            #expect(try await client.request(ModbusFrames.read(0x04, address: 3, count: 1)) == [0x04, 2, 0, 3])
        }
    }

    @Test("IPv6: a loopback client of a listener on ::1 matches ::1, not 127.0.0.1")
    func allowListIPv6() async throws {
        let store = TestStore()
        for (allowed, served) in [("::1/128", true), ("127.0.0.1", false)] {
            var configuration = ModbusServerConfiguration(host: "::1", port: 0)
            configuration.allowedClients = [try #require(ModbusClientAddressRange(allowed))]
            try await withServer(configuration, read: .sync { try store.read($0) }, write: nil) { _, port in
                let client = try RawModbusClient(port: port, ipv6: true)
                if served {
                    #expect(try await client.request(ModbusFrames.read(0x04, address: 1, count: 1)) == [0x04, 2, 0, 1])
                } else {
                    #expect(await client.waitForClose(), "\(allowed) does not admit ::1")
                }
            }
        }
    }

    @Test("denied connections are logged once, then at most once per interval with the count of the others")
    func deniedLogIsBounded() throws {
        let logs = LogCapture()
        let logger = logs.logger("test.denied")
        let metrics = TestMetrics()
        let denied = RateLimitedEventLog(
            counter: Counter(label: "denied", factory: metrics),
            logInterval: .seconds(10),
            message: "connection from an address outside allowed_clients; closing it",
            suppressedKey: "also_denied_since_last_line"
        )
        let start = ContinuousClock.now
        for second in 0..<25 {
            denied.record(peer: "peer-\(second)", logger: logger, now: start + .seconds(second) / 2)
        }
        // 0 s: logged; 0.5…9.5 s: 19 counted; 10 s: logged with 19; 10.5…12 s: 4 counted.
        let lines = logs.messages(at: .warning)
        #expect(lines.count == 2, "\(lines)")
        #expect(lines.last?.metadata["also_denied_since_last_line"] == "19", "\(lines)")
        #expect(try metrics.expectCounter("denied").totalValue == 25)
    }

    @Test(
        "a read-only listener answers every write function code 01 and still serves reads",
        arguments: HandlerForm.allCases
    )
    func readOnly(form: HandlerForm) async throws {
        let store = TestStore()
        try await withServer(.loopback { $0.readOnly = true }, read: form.read(store), write: form.write(store)) {
            _,
            port in
            let client = try RawModbusClient(port: port)
            #expect(try await client.request([0x06, 0, 1, 0, 9]) == [0x86, 0x01])
            #expect(try await client.request([0x05, 0, 1, 0xFF, 0]) == [0x85, 0x01])
            #expect(try await client.request([0x10, 0, 1, 0, 1, 2, 0, 9]) == [0x90, 0x01])
            #expect(try await client.request([0x0F, 0, 1, 0, 1, 1, 1]) == [0x8F, 0x01])
            #expect(try await client.request([0x16, 0, 1, 0xFF, 0xFF, 0, 0]) == [0x96, 0x01])
            #expect(try await client.request([0x17, 0, 0, 0, 1, 0, 1, 0, 1, 2, 0, 9]) == [0x97, 0x01])
            #expect(try await client.request(ModbusFrames.read(0x03, address: 1, count: 1)) == [0x03, 2, 0, 1])
        }
        #expect(store.writes.withLock { $0.isEmpty }, "nothing was written")
    }
}
