import Foundation
import MQTTModbusBridgeSimulator
import MQTTTestSupport
import ModbusCore
import Mosquitto
import Testing

@testable import MQTTModbusBridge
@testable import MQTTModbusBridgeConfiguration

/// The write function codes beyond FC5/6/15/16 (FC22 mask write, FC23 read/write), writes to
/// bits of a register, command templates and the state-echo tolerance, through the bridge.
@Suite("Mask writes, read/write, bit registers, templates and tolerance, end to end")
struct WriteFunctionCodeTests {
    static func yaml(port: Int) -> String {
        baseYAML(brokerPort: port) + """

            defaults:
              ack: { mode: mqtt5, timeout: 2s }
            units:
              - id: 1
                points:
                  - { name: run, area: holding_register, address: 5, type: bit, bit: 0,
                      state_topic: e2e/fc/run, command_topic: e2e/fc/run/set }
                  - { name: alarm_ack, area: holding_register, address: 5, type: bit, bit: 3,
                      state_topic: e2e/fc/alarm_ack, command_topic: e2e/fc/alarm_ack/set }
                  - { name: sp, area: holding_register, address: 10, type: int16, scale: 10,
                      state_topic: e2e/fc/sp, command_topic: e2e/fc/sp/set }
                  - { name: limit, area: holding_register, address: 11, type: uint16,
                      state_topic: e2e/fc/limit, command_topic: e2e/fc/limit/set }

            """
    }

    /// The device's states, as the test publishes them (retained) to start from known values.
    static func publishStates(
        _ harness: BridgeHarness,
        run: Bool,
        alarmAck: Bool,
        sp: String,
        limit: String
    ) async throws {
        try await harness.publish("e2e/fc/run", run ? "true" : "false")
        try await harness.publish("e2e/fc/alarm_ack", alarmAck ? "true" : "false")
        try await harness.publish("e2e/fc/sp", sp)
        try await harness.publish("e2e/fc/limit", limit)
    }

    /// The commands published after `mark`, by topic.
    static func commands(_ harness: BridgeHarness, after mark: Int) -> [String: String] {
        Dictionary(
            harness.messages.messages.dropFirst(mark).filter { $0.topic.hasSuffix("/set") }.map {
                ($0.topic, $0.payloadString)
            },
            uniquingKeysWith: { _, last in last }
        )
    }

    @Test("FC22 and FC6 on a register of bit points command only the bits that change; FC23 writes, then reads back")
    func maskWriteBitsAndReadWrite() async throws {
        var options = DeviceSimulator.Options()
        options.telemetryInterval = nil
        try await withBridge(Self.yaml, simulator: options) { harness in
            let modbus = harness.modbus
            try await Self.publishStates(harness, run: false, alarmAck: false, sp: "20.0", limit: "500")
            try await harness.awaitRead(.holdingRegister, 5) { $0 == [0] }
            try await harness.awaitRead(.holdingRegister, 10, count: 2) { $0 == [200, 500] }

            // FC22 setting bit 3 only: one command, to the bit-3 point; the simulator acknowledges.
            var mark = harness.messages.count
            #expect(try await modbus.maskWrite(5, and: 0xFFF7, or: 0x0008) == .ok(true))
            #expect(Self.commands(harness, after: mark) == ["e2e/fc/alarm_ack/set": "true"])
            #expect(try await modbus.read(.holdingRegister, 5) == .ok([0x0008]))

            // FC6 of the whole register: bit 0 changes, bit 3 does not, so only bit 0 is commanded.
            mark = harness.messages.count
            #expect(try await modbus.write(.holdingRegister, 5, [0x0009], single: true) == .ok(true))
            #expect(Self.commands(harness, after: mark) == ["e2e/fc/run/set": "true"])
            #expect(try await modbus.read(.holdingRegister, 5) == .ok([0x0009]))

            // FC22 clearing bit 0 and leaving the rest: the current value comes from the cache.
            mark = harness.messages.count
            #expect(try await modbus.maskWrite(5, and: 0xFFFE, or: 0x0000) == .ok(true))
            #expect(Self.commands(harness, after: mark) == ["e2e/fc/run/set": "false"])
            #expect(try await modbus.read(.holdingRegister, 5) == .ok([0x0008]))

            // A bit of a register that no point maps cannot be set: 02, nothing published.
            mark = harness.messages.count
            #expect(try await modbus.maskWrite(5, and: 0xFFFF ^ 0x0002, or: 0x0002) == .exception(.illegalDataAddress))
            #expect(Self.commands(harness, after: mark).isEmpty)

            // FC23: both points written (and acknowledged) before the read, which returns them.
            mark = harness.messages.count
            #expect(try await modbus.readWrite(write: 10, [215, 750], read: 10, count: 2) == .ok([215, 750]))
            #expect(Self.commands(harness, after: mark) == ["e2e/fc/sp/set": "21.5", "e2e/fc/limit/set": "750"])
            // The read may cover other points: here the bits written above.
            #expect(try await modbus.readWrite(write: 11, [751], read: 5, count: 1) == .ok([0x0008]))
            #expect(try await modbus.read(.holdingRegister, 10, count: 2) == .ok([215, 751]))
        }
    }

    @Test("a command template is filled (value, correlation id, point, unit) and its id matches the ack")
    func commandTemplate() async throws {
        let yaml = { (port: Int) in
            baseYAML(brokerPort: port) + """

                units:
                  - id: 7
                    points:
                      - { name: valve, area: holding_register, address: 0, type: uint16, command_topic: e2e/tpl/valve/cmd,
                          payload: { format: json, path: position },
                          command_template: '{"set": {{value}}, "ref": "{{correlation_id}}", "src": "{{point}}", "unit": {{unit}}}',
                          ack: { mode: correlation_id, response_topic: e2e/tpl/valve/ack, id_field: ref, timeout: 2s } }

                """
        }
        try await withBridge(yaml) { harness in
            let mark = harness.messages.count
            let write = Task { try await harness.modbus.write(.holdingRegister, 0, [42], single: true, unit: 7) }
            let command = try await harness.messages.waitForMessage(on: "e2e/tpl/valve/cmd", after: mark)
            let document = try #require(
                try JSONSerialization.jsonObject(with: Data(command.payload)) as? [String: Any],
                "\(command.payloadString)"
            )
            #expect(document["set"] as? Int == 42)
            #expect(document["src"] as? String == "valve")
            #expect(document["unit"] as? Int == 7)
            let id = try #require(document["ref"] as? String)
            #expect(!id.isEmpty)

            // An ack with another id is not this write's.
            try await harness.publish("e2e/tpl/valve/ack", #"{"ref":"not-\#(id)","ok":true}"#, retain: false)
            try await harness.publish("e2e/tpl/valve/ack", #"{"ref":"\#(id)","ok":true}"#, retain: false)
            #expect(try await write.valueCancellingOnExit() == .ok(true))
        }
    }

    @Test("a template's points: each instance reads its own topic at its own address, and writes command its own topic")
    func templatedPoints() async throws {
        let yaml = { (port: Int) in
            baseYAML(brokerPort: port) + """

                units:
                  - id: 4
                    templates:
                      - for: { pump: "1...3" }
                        name: "pump_{{pump}}_speed"
                        area: holding_register
                        address: "{{ 10 * pump }}"
                        type: uint16
                        state_topic: "e2e/tpl/pump/{{pump}}/speed"
                        command_topic: "e2e/tpl/pump/{{pump}}/speed/set"
                        ack: { mode: mqtt5, timeout: 2s }

                """
        }
        var options = DeviceSimulator.Options()
        options.telemetryInterval = nil
        try await withBridge(yaml, simulator: options) { harness in
            for pump in 1...3 { try await harness.publish("e2e/tpl/pump/\(pump)/speed", "\(1000 + pump)") }
            for pump in 1...3 {
                try await harness.awaitRead(.holdingRegister, 10 * pump, unit: 4) { $0 == [UInt16(1000 + pump)] }
            }
            #expect(
                try await harness.modbus.read(.holdingRegister, 11, unit: 4) == .exception(.illegalDataAddress),
                "between instances: 02"
            )

            let mark = harness.messages.count
            #expect(try await harness.modbus.write(.holdingRegister, 20, [1450], single: true, unit: 4) == .ok(true))
            #expect(Self.commands(harness, after: mark) == ["e2e/tpl/pump/2/speed/set": "1450"])
            #expect(try await harness.modbus.read(.holdingRegister, 20, unit: 4) == .ok([1450]))
        }
    }

    @Test("state_echo with a tolerance: a report within it acknowledges, one outside it does not (0B)")
    func stateEchoTolerance() async throws {
        let yaml = { (port: Int) in
            baseYAML(brokerPort: port) + """

                units:
                  - id: 1
                    points:
                      - { name: level, area: holding_register, address: 0, type: float32, state_topic: e2e/echo/level,
                          command_topic: e2e/echo/level/set, ack: { mode: state_echo, tolerance: 0.5, timeout: 1s } }

                """
        }
        try await withBridge(yaml) { harness in
            let modbus = harness.modbus
            let forty = Float(40).bitPattern
            let registers = [UInt16(forty >> 16), UInt16(forty & 0xFFFF)]

            // The device settles at 40.3: within 0.5 of 40, an acknowledgement.
            var mark = harness.messages.count
            var write = Task { try await modbus.write(.holdingRegister, 0, registers) }
            try await harness.messages.waitForMessage(on: "e2e/echo/level/set", after: mark)
            try await harness.publish("e2e/echo/level", "40.3")
            #expect(try await write.valueCancellingOnExit() == .ok(true))

            // It reports 41.0 this time: not the written value, so the write times out with 0B.
            mark = harness.messages.count
            write = Task { try await modbus.write(.holdingRegister, 0, registers) }
            try await harness.messages.waitForMessage(on: "e2e/echo/level/set", after: mark)
            try await harness.publish("e2e/echo/level", "41.0")
            #expect(try await write.valueCancellingOnExit() == .exception(.gatewayTargetDeviceFailedToRespond))
            // What the device reported is what reads return.
            let reported = Float(41).bitPattern
            try await harness.awaitRead(.holdingRegister, 0, count: 2) {
                $0 == [UInt16(reported >> 16), UInt16(reported & 0xFFFF)]
            }
        }
    }
}
