import Foundation
import MQTTModbusBridge
import MQTTModbusBridgeSimulator
import MQTTTestSupport
import ModbusCore
import Mosquitto
import Testing

/// The simulator's fault switches on profile devices, through a real mosquitto, the bridge and
/// pymodbus: ignore is silence (0B), refuse is the device's negative answer where its protocol
/// has one (a Shelly error frame: 04) and otherwise the unchanged state (0B), and the ack delay
/// holds the answer back. Three profile devices in one configuration, each online on its own.
@Suite("Simulator: fault switches on profile devices", .serialized)
struct SimulatorProfileFaultsTests {
    static func yaml(_ port: Int) -> String {
        baseYAML(brokerPort: port) + """

            devices:
              - { name: relay_board, profile: tasmota }
              - { name: plug, profile: zigbee2mqtt }
              - { name: shelly1, profile: shelly_gen2 }
            units:
              - id: 1
                points:
                  - { name: relay, device: relay_board, area: coil, address: 0, relay: 1, ack: { timeout: 1s } }
                  - { name: plug_state, device: plug, area: coil, address: 1, field: state, ack: { timeout: 1s } }
                  - { name: output, device: shelly1, area: coil, address: 2, field: output, ack: { timeout: 1s } }
            """
    }

    @Test("ignore: no answer (0B); refuse: the unchanged state (0B), a Shelly error frame (04)")
    func ignoreAndRefuse() async throws {
        var options = DeviceSimulator.Options()
        options.telemetryInterval = nil
        options.perPoint = [
            "relay": .ignore, "plug_state": .refuse(reason: "interlocked", code: nil),
            "output": .refuse(reason: "interlocked", code: nil),
        ]
        try await withBridge(Self.yaml, simulator: options) { harness in
            let source = harness.configuration.broker.clientID
            for (topic, word) in [
                ("tele/relay_board/LWT", "Online"), ("zigbee2mqtt/plug/availability", #"{"state":"online"}"#),
                ("shelly1/online", "true"),
            ] {
                let online = try await retainedMessage(on: topic, in: harness.broker)
                #expect(online.payloadString == word, "\(topic): \(online.payloadString)")
            }
            try await harness.awaitRead(.coil, 0, count: 3) { $0 == [1, 1, 1] }
            let modbus = harness.modbus

            var mark = harness.messages.count
            #expect(
                try await modbus.write(.coil, 0, [0], single: true) == .exception(.gatewayTargetDeviceFailedToRespond)
            )
            #expect(harness.messages.messages.dropFirst(mark).contains { $0.topic == "cmnd/relay_board/POWER" })
            #expect(!harness.messages.messages.dropFirst(mark).contains { $0.topic.hasPrefix("stat/relay_board/") })

            mark = harness.messages.count
            #expect(
                try await modbus.write(.coil, 1, [0], single: true) == .exception(.gatewayTargetDeviceFailedToRespond)
            )
            let unchanged = try await harness.messages.waitForMessage(on: "zigbee2mqtt/plug", after: mark)
            #expect(unchanged.payloadString.hasPrefix(#"{"state":"ON""#), "\(unchanged.payloadString)")

            mark = harness.messages.count
            #expect(try await modbus.write(.coil, 2, [0], single: true) == .exception(.serverDeviceFailure))
            let error = try await harness.messages.waitForMessage(on: "\(source)/rpc", after: mark)
            #expect(error.payloadString.contains(#""error":{"code":-103,"message":"interlocked"}"#))
            try await harness.awaitRead(.coil, 0, count: 3) { $0 == [1, 1, 1] }
        }
    }

    @Test("ack delay: a profile device answers after the delay, and the write succeeds then")
    func ackDelay() async throws {
        var options = DeviceSimulator.Options()
        options.telemetryInterval = nil
        options.ackDelay = .milliseconds(300)
        try await withBridge(Self.yaml, simulator: options) { harness in
            try await harness.awaitRead(.coil, 0, count: 3) { $0 == [1, 1, 1] }
            let modbus = harness.modbus
            for address in 0..<3 {
                let started = ContinuousClock.now
                #expect(try await modbus.write(.coil, address, [0], single: true) == .ok(true), "coil \(address)")
                #expect(ContinuousClock.now - started >= .milliseconds(300), "coil \(address) waited for the answer")
            }
            try await harness.awaitRead(.coil, 0, count: 3) { $0 == [0, 0, 0] }
        }
    }
}

/// The message the broker retains on `topic`, as a client that subscribes now receives it.
func retainedMessage(on topic: String, in broker: TestBroker) async throws -> MQTTMessage {
    let client = try await connectedClient(broker)
    let messages = MessageCollector(client)
    do {
        try await client.subscribeForTest(topic)
        let message = try await messages.waitForMessage(on: topic, timeout: .seconds(5)) { $0.retain }
        await client.disconnect()
        return message
    } catch {
        await client.disconnect()
        throw error
    }
}
