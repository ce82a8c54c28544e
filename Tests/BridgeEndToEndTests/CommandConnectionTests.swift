import Foundation
import MQTTTestSupport
import ModbusCore
import Mosquitto
import Testing

@testable import MQTTModbusBridge

/// The command connection (`broker.command_connection`, docs/design.md §4.9): commands and
/// their acknowledgements on a second MQTT connection of the bridge by default, or on the one
/// connection with `shared`.
@Suite("The command connection, end to end")
struct CommandConnectionTests {
    static func yaml(_ mode: String?) -> (Int) -> String {
        { port in
            baseYAML(brokerPort: port).replacingOccurrences(
                of: "\nmodbus:",
                with: (mode.map { "\n  command_connection: \($0)" } ?? "") + "\nmodbus:"
            )
                + """

                units:
                  - id: 1
                    points:
                      - { name: sp, area: holding_register, address: 0, type: int16, command_topic: e2e/dev/sp/set,
                          ack: { mode: mqtt5, timeout: 10s } }
                      - { name: level, area: holding_register, address: 1, type: int16, state_topic: e2e/dev/level,
                          command_topic: e2e/dev/level/set, ack: { mode: state_echo, timeout: 10s } }

                """
        }
    }

    /// Plays the device: answers each MQTT 5 command with an empty (successful) response, and
    /// echoes each level command on the level's state topic.
    static func answer(_ device: MQTTClient) -> Task<Void, Never> {
        Task {
            for await command in device.messages {
                if command.topic == "e2e/dev/level/set" {
                    try? await device.publish(topic: "e2e/dev/level", payload: command.payload, qos: .atLeastOnce)
                } else if let topic = command.properties.responseTopic {
                    try? await device.publish(
                        topic: topic,
                        payload: [],
                        qos: .atLeastOnce,
                        properties: MQTTProperties(correlationData: command.properties.correlationData)
                    )
                }
            }
        }
    }

    @Test(
        "by default the response topic is subscribed on the command connection only; MQTT 5 and state_echo writes succeed",
        arguments: [nil, "separate"]
    )
    func separateByDefault(mode: String?) async throws {
        try await withBridge(Self.yaml(mode)) { harness in
            let bridge = harness.bridge
            let commands = try #require(bridge.commandClient, "a command connection")
            #expect(commands.state == .connected)
            #expect(bridge.routes.commandFilters == ["e2e/dev/sp/set/response"])
            // The main connection has the state topic, the command connection the response topic.
            #expect(commands.subscriptionCounts.acknowledged == 1)
            #expect(bridge.client.subscriptionCounts.acknowledged == bridge.routes.subscriptions.count - 1)
            #expect(bridge.readiness.isReady)
            let snapshot = bridge.statusSnapshot()
            #expect(snapshot.broker.commandClientID == "\(harness.configuration.broker.clientID)-cmd")

            let device = try await connectedClient(harness.broker)
            try await device.subscribeForTest("e2e/dev/+/set")
            let answering = Self.answer(device)
            defer { answering.cancel() }
            #expect(try await harness.modbus.write(.holdingRegister, 0, [42], single: true) == .ok(true))
            #expect(try await harness.modbus.write(.holdingRegister, 1, [7], single: true) == .ok(true))
            #expect(try await harness.modbus.read(.holdingRegister, 1).value == [7])
            // The command went out under the command connection's client id: the response came
            // back to it, not to the main connection, which never subscribed to it.
            await device.disconnect()
        }
    }

    @Test("with command_connection: shared there is one connection, and writes succeed on it")
    func shared() async throws {
        try await withBridge(Self.yaml("shared")) { harness in
            let bridge = harness.bridge
            #expect(bridge.commandClient == nil)
            #expect(bridge.client.subscriptionCounts.acknowledged == bridge.routes.subscriptions.count)
            #expect(bridge.statusSnapshot().broker.commandClientID == nil)
            let device = try await connectedClient(harness.broker)
            try await device.subscribeForTest("e2e/dev/+/set")
            let answering = Self.answer(device)
            defer { answering.cancel() }
            #expect(try await harness.modbus.write(.holdingRegister, 0, [42], single: true) == .ok(true))
            #expect(try await harness.modbus.write(.holdingRegister, 1, [9], single: true) == .ok(true))
            await device.disconnect()
        }
    }

    @Test("a write waiting for its acknowledgement answers 0A at once when the command connection is lost")
    func lostCommandConnectionFailsWaitingWrite() async throws {
        try await withBridge(Self.yaml(nil)) { harness in
            let bridge = harness.bridge
            let commands = try #require(bridge.commandClient)
            // The device receives the command and never answers it.
            let device = try await connectedClient(harness.broker)
            try await device.subscribeForTest("e2e/dev/sp/set")
            let modbus = harness.modbus
            let write = Task { try await modbus.write(.holdingRegister, 0, [5], single: true) }
            let command = try await withTimeout(.seconds(10), "the command") {
                for await message in device.messages where message.topic == "e2e/dev/sp/set" { return message }
                throw CancellationError()
            }
            #expect(command.properties.responseTopic == "e2e/dev/sp/set/response")
            // Another client taking the command connection's client id: the broker closes the
            // bridge's command connection (session takeover), and only that one.
            let intruder = try await connectedClient(harness.broker) {
                $0.clientID = harness.configuration.broker.commandClientID
                // Not again within the test: the bridge takes its id back and keeps it.
                $0.reconnect = MQTTReconnectPolicy(initialDelay: .seconds(60), maximumDelay: .seconds(60))
            }
            let started = ContinuousClock.now
            let reply = try await withTimeout(.seconds(8), "the write's reply") { try await write.value }
            #expect(reply.exceptionCode == .gatewayPathUnavailable, "\(reply)")
            #expect(ContinuousClock.now - started < .seconds(8), "before the 10 s ack timeout")
            #expect(bridge.client.state == .connected, "the main connection is untouched")
            await intruder.disconnect()
            // The bridge opens its command connection again, and writes work again.
            _ = try await poll("the command connection to be back") { commands.state == .connected ? true : nil }
            await device.disconnect()
        }
    }
}
