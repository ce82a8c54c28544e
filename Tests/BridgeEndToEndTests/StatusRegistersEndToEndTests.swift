import Foundation
import MQTTTestSupport
import ModbusCore
import Mosquitto
import Testing

@testable import MQTTModbusBridge
@testable import MQTTModbusBridgeConfiguration

/// Quality and last-command registers, and unit aliases, through a real mosquitto: the test
/// client plays the device (its retained availability, its acknowledgements) and pymodbus is the
/// master that reads the status registers.
@Suite("Status registers and unit aliases, end to end")
struct StatusRegistersEndToEndTests {
    static func yaml(_ port: Int) -> String {
        baseYAML(brokerPort: port) + """

            devices:
              - name: plug
                availability: { topic: e2e/q/LWT, online: [Online], offline: [Offline] }
            units:
              - id: 1
                aliases: [0, 255]
                device: plug
                points:
                  - { name: power, area: input_register, address: 0, type: uint16, state_topic: e2e/q/power,
                      max_age: 1500ms, quality: { area: input_register, address: 100 } }
                  - { name: energy, area: input_register, address: 1, type: uint16, state_topic: e2e/q/energy,
                      quality: { area: discrete_input, address: 0 } }
                  - { name: setpoint, area: holding_register, address: 0, type: int16, command_topic: e2e/q/sp/set,
                      ack: { mode: mqtt5, timeout: 1s },
                      quality: { area: holding_register, address: 101 },
                      last_command: { area: holding_register, address: 100 } }
            """
    }

    static let fresh = PointQuality.fresh.rawValue
    static let stale = PointQuality.stale.rawValue
    static let missing = PointQuality.missing.rawValue
    static let deviceOffline = PointQuality.deviceOffline.rawValue
    static let connectionLost = PointQuality.connectionLost.rawValue

    /// Kills the broker and waits until the bridge has noticed (and invalidated its cache).
    func killBroker(_ harness: BridgeHarness) async throws {
        let bridgeStates = StateRecorder(harness.bridge.client)
        await harness.broker.kill()
        try await bridgeStates.waitUntil("the bridge notices the broker is gone") { $0.last?.isConnected == false }
    }

    /// Answers the next command on the setpoint's topic after `mark`, as the device, with an MQTT 5
    /// response carrying `payload`.
    func answerNextCommand(after mark: Int, _ payload: String, _ harness: BridgeHarness) async throws {
        let command = try await harness.messages.waitForMessage(on: "e2e/q/sp/set", after: mark)
        let topic = try #require(command.properties.responseTopic)
        try await harness.publish(
            topic,
            payload,
            retain: false,
            properties: MQTTProperties(correlationData: command.properties.correlationData)
        )
    }

    @Test(
        "The quality register follows fresh → stale → device offline → back online → broker lost, and always answers"
    )
    func qualityTransitions() async throws {
        try await withBridge(Self.yaml) { harness in
            let modbus = harness.modbus
            // Nothing received yet: the value answers 0B, its quality register says why.
            #expect(try await modbus.read(.inputRegister, 0) == .exception(.gatewayTargetDeviceFailedToRespond))
            #expect(try await modbus.read(.inputRegister, 100) == .ok([Self.missing]))
            #expect(try await modbus.read(.discreteInput, 0) == .ok([0]))

            try await harness.publish("e2e/q/LWT", "Online")
            try await harness.publish("e2e/q/power", "42", retain: false)
            try await harness.publish("e2e/q/energy", "7")
            try await harness.awaitRead(.inputRegister, 0) { $0 == [42] }
            try await harness.awaitRead(.inputRegister, 100) { $0 == [Self.fresh] }
            try await harness.awaitRead(.discreteInput, 0) { $0 == [1] }

            // No new power value for longer than max_age: stale, and the value answers 0B.
            try await harness.awaitRead(.inputRegister, 100) { $0 == [Self.stale] }
            #expect(try await modbus.read(.inputRegister, 0) == .exception(.gatewayTargetDeviceFailedToRespond))
            #expect(try await modbus.read(.discreteInput, 0) == .ok([1]), "energy has no max_age: still fresh")

            try await harness.publish("e2e/q/power", "43", retain: false)
            try await harness.awaitRead(.inputRegister, 100) { $0 == [Self.fresh] }

            // The device's last will: every point of the device says so.
            try await harness.publish("e2e/q/LWT", "Offline")
            try await harness.awaitRead(.inputRegister, 100) { $0 == [Self.deviceOffline] }
            #expect(try await modbus.read(.inputRegister, 0) == .exception(.gatewayTargetDeviceFailedToRespond))
            #expect(try await modbus.read(.inputRegister, 1) == .exception(.gatewayTargetDeviceFailedToRespond))
            #expect(try await modbus.read(.discreteInput, 0) == .ok([0]))
            #expect(try await modbus.read(.holdingRegister, 101) == .ok([Self.deviceOffline]))

            // Back online: energy's value is current again without a new message.
            try await harness.publish("e2e/q/LWT", "Online")
            try await harness.awaitRead(.discreteInput, 0) { $0 == [1] }
            #expect(try await modbus.read(.inputRegister, 1) == .ok([7]))

            try await harness.publish("e2e/q/power", "44", retain: false)
            try await harness.awaitRead(.inputRegister, 100) { $0 == [Self.fresh] }
            try await killBroker(harness)
            #expect(try await modbus.read(.inputRegister, 100) == .ok([Self.connectionLost]))
            #expect(try await modbus.read(.inputRegister, 0) == .exception(.gatewayTargetDeviceFailedToRespond))
            #expect(try await modbus.read(.discreteInput, 0) == .ok([0]))
            #expect(try await modbus.read(.holdingRegister, 101) == .ok([Self.missing]), "never had a value")

            let restartMark = harness.messages.count
            try await harness.broker.restart()
            try await harness.messages.waitForMessage(on: statusTopic, after: restartMark, timeout: .seconds(10)) {
                $0.payloadString == "online"
            }
            #expect(try await modbus.read(.inputRegister, 100) == .ok([Self.connectionLost]), "nothing since the loss")
            try await harness.publish("e2e/q/power", "45", retain: false)
            try await harness.awaitRead(.inputRegister, 100) { $0 == [Self.fresh] }
            #expect(try await modbus.read(.inputRegister, 0) == .ok([45]))
        }
    }

    @Test("The last-command register follows write ok → refused → timeout → device offline → broker down")
    func lastCommandTransitions() async throws {
        try await withBridge(Self.yaml) { harness in
            let modbus = harness.modbus
            try await harness.publish("e2e/q/LWT", "Online")
            #expect(try await modbus.read(.holdingRegister, 100) == .ok([0]), "no write yet")
            #expect(try await modbus.read(.holdingRegister, 101) == .ok([Self.missing]))

            var mark = harness.messages.count
            async let acknowledged = modbus.write(.holdingRegister, 0, [5], single: true)
            try await answerNextCommand(after: mark, "", harness)
            #expect(try await acknowledged == .ok(true))
            #expect(try await modbus.read(.holdingRegister, 100) == .ok([0x0100]))
            #expect(try await modbus.read(.holdingRegister, 101) == .ok([Self.fresh]), "the written value is current")

            mark = harness.messages.count
            async let refused = modbus.write(.holdingRegister, 0, [6], single: true)
            try await answerNextCommand(after: mark, #"{"ok": false, "error": "busy", "code": 6}"#, harness)
            #expect(try await refused == .exception(.serverDeviceBusy))
            #expect(try await modbus.read(.holdingRegister, 100) == .ok([0x0206]))

            // Nobody answers: the ack timeout (1 s).
            #expect(
                try await modbus.write(.holdingRegister, 0, [7], single: true)
                    == .exception(.gatewayTargetDeviceFailedToRespond)
            )
            #expect(try await modbus.read(.holdingRegister, 100) == .ok([0x030B]))

            // The status registers only report: writing them is refused like any read-only point.
            #expect(try await modbus.write(.holdingRegister, 100, [0], single: true) == .exception(.illegalDataAddress))
            #expect(try await modbus.write(.holdingRegister, 101, [0], single: true) == .exception(.illegalDataAddress))

            try await harness.publish("e2e/q/LWT", "Offline")
            try await harness.awaitRead(.holdingRegister, 101) { $0 == [Self.deviceOffline] }
            #expect(
                try await modbus.write(.holdingRegister, 0, [8], single: true)
                    == .exception(.gatewayTargetDeviceFailedToRespond)
            )
            #expect(try await modbus.read(.holdingRegister, 100) == .ok([0x050B]))
            try await harness.publish("e2e/q/LWT", "Online")

            try await killBroker(harness)
            #expect(
                try await modbus.write(.holdingRegister, 0, [9], single: true) == .exception(.gatewayPathUnavailable)
            )
            #expect(try await modbus.read(.holdingRegister, 100) == .ok([0x040A]))
        }
    }

    @Test("A unit's aliases (0 and 255) answer its points; an unknown unit answers 0B")
    func aliases() async throws {
        try await withBridge(Self.yaml) { harness in
            try await harness.publish("e2e/q/LWT", "Online")
            try await harness.publish("e2e/q/energy", "7")
            try await harness.awaitRead(.inputRegister, 1) { $0 == [7] }
            for unit in [0, 255] {
                #expect(try await harness.modbus.read(.inputRegister, 1, unit: unit) == .ok([7]), "unit \(unit)")
                #expect(try await harness.modbus.read(.discreteInput, 0, unit: unit) == .ok([1]), "unit \(unit)")
            }
            #expect(
                try await harness.modbus.read(.inputRegister, 1, unit: 2)
                    == .exception(.gatewayTargetDeviceFailedToRespond)
            )
        }
    }
}
