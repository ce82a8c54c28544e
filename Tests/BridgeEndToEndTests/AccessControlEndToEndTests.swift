import Foundation
import MQTTTestSupport
import ModbusCore
import Testing

@testable import MQTTModbusBridge

/// `modbus.read_only` and `modbus.allowed_clients` through the bridge, with pymodbus as the
/// master and a real broker.
@Suite("Modbus access control through the bridge")
struct AccessControlEndToEndTests {
    static func yaml(extraModbus: String) -> (Int) -> String {
        { port in
            baseYAML(brokerPort: port, extraModbus: extraModbus) + """

                units:
                  - id: 1
                    points:
                      - { name: level, area: holding_register, address: 0, type: int16, state_topic: e2e/access/level,
                          max_age: 1h, command_topic: e2e/access/level/set, ack: { mode: broker, timeout: 2s } }
                """
        }
    }

    @Test("read_only: every write answers 01 and publishes nothing; reads are served")
    func readOnly() async throws {
        try await withBridge(Self.yaml(extraModbus: "  read_only: true")) { harness in
            try await harness.publish("e2e/access/level", "12")
            try await harness.awaitRead(.holdingRegister, 0) { $0 == [12] }
            let mark = harness.messages.count
            #expect(
                try await harness.modbus.write(.holdingRegister, 0, [5], single: true) == .exception(.illegalFunction)
            )
            #expect(try await harness.modbus.write(.holdingRegister, 0, [5, 6]) == .exception(.illegalFunction))
            // A barrier: a message published after the writes arrives after anything they sent.
            try await harness.publish("e2e/access/barrier", "1")
            _ = try await harness.messages.waitForMessage(on: "e2e/access/barrier", after: mark)
            #expect(
                harness.messages.elements.dropFirst(mark).allSatisfy { $0.topic != "e2e/access/level/set" },
                "nothing was commanded"
            )
            #expect(try await harness.modbus.read(.holdingRegister, 0) == .ok([12]))
        }
    }

    @Test("allowed_clients: a master outside the list cannot get a request answered; inside, it is served")
    func allowList() async throws {
        try await withBridge(Self.yaml(extraModbus: "  allowed_clients: [127.0.0.2/32, \"::1\"]")) { harness in
            try await harness.publish("e2e/access/level", "12")
            do {
                let reply = try await harness.modbus.read(.holdingRegister, 0)
                Issue.record("a master at 127.0.0.1 was answered: \(reply)")
            } catch {
                #expect("\(error)".contains("connect") || "\(error)".contains("Connection"), "\(error)")
            }
        }
        try await withBridge(Self.yaml(extraModbus: "  allowed_clients: [127.0.0.0/8]")) { harness in
            try await harness.publish("e2e/access/level", "13")
            try await harness.awaitRead(.holdingRegister, 0) { $0 == [13] }
        }
    }
}
