import Foundation
import MQTTModbusBridge
import MQTTTestSupport
import ModbusCore
import Mosquitto
import Testing

/// Device availability through a real mosquitto: the test client plays the device by the
/// convention its availability topic follows (a retained `Online`, a last will `Offline`), and
/// pymodbus is the master.
@Suite("Device availability, end to end")
struct AvailabilityEndToEndTests {
    static func yaml(_ port: Int) -> String {
        baseYAML(brokerPort: port) + """

            devices:
              - name: plug
                availability: { topic: e2e/plug/LWT, online: [Online], offline: [Offline] }
              - name: meter
                silence: 1s
              - name: siren
                availability: { topic: e2e/siren/online }
                offline_writes: publish
            units:
              - id: 1
                device: plug
                points:
                  - { name: power, area: input_register, address: 0, type: uint16, state_topic: e2e/plug/power }
                  - { name: relay, area: coil, address: 0, state_topic: e2e/plug/relay,
                      payload: { format: boolean, true_words: [ON], false_words: [OFF] },
                      command_topic: e2e/plug/relay/set, ack: { mode: state_echo, timeout: 2s } }
                  - { name: energy, area: input_register, address: 1, type: uint16, state_topic: e2e/meter/energy,
                      device: meter }
                  - { name: alarm, area: coil, address: 1, device: siren, command_topic: e2e/siren/set,
                      ack: { mode: broker } }
            """
    }

    /// Publishes a marker and waits for it: every message published before it has been delivered
    /// to the test client, so "nothing was published" can be checked.
    func barrier(_ harness: BridgeHarness) async throws {
        let marker = UUID().uuidString
        let mark = harness.messages.count
        try await harness.publish("e2e/barrier", marker, retain: false)
        try await harness.messages.waitForMessage(on: "e2e/barrier", after: mark) { $0.payloadString == marker }
    }

    @Test(
        "Offline (the device's last will): reads answer 0B at once and writes 0B with nothing published; online again: values"
    )
    func offlineAndBack() async throws {
        try await withBridge(Self.yaml) { harness in
            try await harness.publish("e2e/plug/LWT", "Online")
            try await harness.publish("e2e/plug/power", "42")
            try await harness.publish("e2e/plug/relay", "ON")
            try await harness.awaitRead(.inputRegister, 0) { $0 == [42] }
            try await harness.awaitRead(.coil, 0) { $0 == [1] }

            // What the broker publishes when the device dies: its retained will.
            try await harness.publish("e2e/plug/LWT", "Offline")
            #expect(try await harness.awaitReadException(.inputRegister, 0) == .gatewayTargetDeviceFailedToRespond)
            #expect(try await harness.modbus.read(.coil, 0) == .exception(.gatewayTargetDeviceFailedToRespond))

            let mark = harness.messages.count
            #expect(
                try await harness.modbus.write(.coil, 0, [0], single: true)
                    == .exception(.gatewayTargetDeviceFailedToRespond)
            )
            try await barrier(harness)
            #expect(
                !harness.messages.messages.dropFirst(mark).contains { $0.topic == "e2e/plug/relay/set" },
                "no command reaches a device that is offline"
            )

            try await harness.publish("e2e/plug/LWT", "Online")
            try await harness.awaitRead(.inputRegister, 0) { $0 == [42] }
            try await harness.awaitRead(.coil, 0) { $0 == [1] }
        }
    }

    @Test("A device silent for longer than its limit reads 0B until it is heard from again")
    func silence() async throws {
        try await withBridge(Self.yaml) { harness in
            try await harness.publish("e2e/meter/energy", "7", retain: false)
            try await harness.awaitRead(.inputRegister, 1) { $0 == [7] }
            // Nothing more from the meter: after 1 s of silence it counts as offline.
            #expect(
                try await harness.awaitReadException(.inputRegister, 1, timeout: .seconds(5))
                    == .gatewayTargetDeviceFailedToRespond
            )
            try await harness.publish("e2e/meter/energy", "8", retain: false)
            try await harness.awaitRead(.inputRegister, 1) { $0 == [8] }
        }
    }

    @Test("offline_writes: publish sends the command to an offline device and waits for its ack as usual")
    func offlineWritesPublish() async throws {
        try await withBridge(Self.yaml) { harness in
            try await harness.publish("e2e/siren/online", "false")
            try await barrier(harness)
            let mark = harness.messages.count
            #expect(try await harness.modbus.write(.coil, 1, [1], single: true) == .ok(true))
            let command = try await harness.messages.waitForMessage(on: "e2e/siren/set", after: mark)
            #expect(command.retain == false)
        }
    }
}
