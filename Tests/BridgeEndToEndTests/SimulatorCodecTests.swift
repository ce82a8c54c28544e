import Foundation
import MQTTModbusBridgeConfiguration
import Testing

@testable import MQTTModbusBridgeSimulator

/// How the simulator reads commands back through their templates and writes JSON state, without
/// a broker: the commands are the bridge's own `CommandEncoder` output.
@Suite("Simulator: commands and state payloads")
struct SimulatorCodecTests {
    static let configuration: BridgeConfiguration = {
        let yaml = """
            units:
              - id: 1
                points:
                  - { name: relay, area: coil, address: 0, state_topic: stat/relay/RESULT,
                      payload: { format: json, path: POWER, true_words: [ON], false_words: [OFF] },
                      command_topic: cmnd/relay/POWER, command_template: "{{value}}", ack: { mode: state_echo } }
                  - { name: run, area: coil, address: 1, state_topic: pump/state, payload: { format: json, path: running },
                      command_topic: pump/set/run,
                      command_template: '{"cmd": "run", "on": {{value}}, "request_id": "{{correlation_id}}", "at": "{{timestamp}}"}',
                      ack: { mode: correlation_id, response_topic: pump/ack, id_field: request_id } }
                  - { name: speed, area: holding_register, address: 0, type: uint16, state_topic: pump/state,
                      payload: { format: json, path: speed }, command_topic: pump/set/speed,
                      command_template: '{"speed": {{value}}, "by": "{{point}}", "id": "{{correlation_id}}"}',
                      ack: { mode: correlation_id, response_topic: pump/ack } }
                  - { name: valve, area: coil, address: 2, state_topic: valve/state,
                      payload: { format: boolean, true_words: [OPEN], false_words: [CLOSED] },
                      command_topic: valve/cmd, command_template: "VALVE {{value}} {{unit}}", ack: { mode: state_echo } }
                  - { name: setpoint, area: holding_register, address: 1, type: int16, scale: 10,
                      state_topic: sp/state, command_topic: sp/set, ack: { mode: state_echo } }
            """
        return try! BridgeConfiguration.parse(yaml: yaml, file: "simulator.yaml")
    }()

    static func point(_ name: String) throws -> PointConfiguration {
        try #require(configuration.point(named: name))
    }

    @Test(
        "a command the bridge encoded is read back with its value and id, whatever the template",
        arguments: [
            ("relay", PointValue.bool(true)), ("relay", .bool(false)), ("run", .bool(true)), ("speed", .integer(1450)),
            ("valve", .bool(false)), ("setpoint", .number(21.5)),
        ]
    )
    func roundTrip(name: String, value: PointValue) throws {
        let point = try Self.point(name)
        let payload = try CommandEncoder(point: point).encode(value, correlationID: "id-4f1c")
        let command = try DeviceSimulator.command(in: payload, for: point)
        #expect(command.value.doubleValue == value.doubleValue, "\(String(decoding: payload, as: UTF8.self))")
        let carriesID = point.command?.template?.placeholders.contains(.correlationID) == true
        #expect(command.correlationID == (carriesID ? "id-4f1c" : nil))
    }

    @Test("a bare {{value}} on a JSON-state point: the JSON literal, not the state's path")
    func bareValue() throws {
        let point = try Self.point("relay")
        #expect(try DeviceSimulator.command(in: Array("true".utf8), for: point).value == .bool(true))
        // A payload that does not match the template is read like a state message.
        #expect(try DeviceSimulator.command(in: Array(#"{"POWER":"OFF"}"#.utf8), for: point).value == .bool(false))
        #expect(throws: PayloadDecodingError.self) { try DeviceSimulator.command(in: Array("maybe".utf8), for: point) }
    }

    @Test("a template's literal text must match: a command for another shape is not taken for this one")
    func literalsMustMatch() throws {
        let valve = try Self.point("valve")
        let template = try #require(valve.command?.template)
        let pattern = try #require(TemplatePattern(template, point: valve))
        #expect(pattern.match("VALVE OPEN 1") == TemplatePattern.Fields(value: "OPEN"))
        #expect(pattern.match("VALVE OPEN 2") == nil, "{{unit}} renders as the literal unit id")
        #expect(pattern.match("DOOR OPEN 1") == nil)
    }

    @Test(
        "JSON state: words for boolean points that list their own, JSON literals otherwise; shared topics as one document"
    )
    func statePayloads() throws {
        let relay = try Self.point("relay")
        let onePoint = try DeviceSimulator.statePayload(of: relay, sharing: [relay], values: ["relay": .bool(true)])
        #expect(onePoint.map { String(decoding: $0, as: UTF8.self) } == #"{"POWER":"ON"}"#)

        let run = try Self.point("run")
        let speed = try Self.point("speed")
        let shared = try DeviceSimulator.statePayload(
            of: run,
            sharing: [run, speed],
            values: ["run": .bool(false), "speed": .integer(1450)]
        )
        #expect(shared.map { String(decoding: $0, as: UTF8.self) } == #"{"running":false,"speed":1450}"#)

        let valve = try Self.point("valve")
        let plain = try DeviceSimulator.statePayload(of: valve, sharing: [valve], values: ["valve": .bool(true)])
        #expect(plain.map { String(decoding: $0, as: UTF8.self) } == "OPEN")
        #expect(try DeviceSimulator.statePayload(of: valve, sharing: [valve], values: [:]) == nil)
    }
}
