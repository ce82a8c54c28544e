import Foundation
import MQTTModbusBridgeSimulator
import MQTTTestSupport
import ModbusCore
import Mosquitto
import Testing

@testable import MQTTModbusBridge
@testable import MQTTModbusBridgeConfiguration

/// Modbus writes → MQTT commands → device acknowledgements → Modbus replies (docs/design.md §4).
@Suite("Writes and acknowledgements, end to end")
struct WriteAckTests {
    enum Mode: String, CaseIterable, Sendable, CustomTestStringConvertible {
        case mqtt5
        case correlationID = "correlation_id"
        case stateEcho = "state_echo"
        case broker

        var testDescription: String { rawValue }

        /// correlation_id and state_echo run over MQTT 3.1.1, as the devices they exist for do.
        var protocolVersion: String { self == .correlationID || self == .stateEcho ? "mqtt311" : "mqtt5" }

        /// The outcome of a write the device refuses (`code`: the exception its ack names).
        func refusal(code: ModbusExceptionCode?) -> ModbusReply<Bool> {
            switch self {
            case .mqtt5, .correlationID: .exception(code ?? .serverDeviceFailure)
            // A refused state echo never arrives: the write times out.
            case .stateEcho: .exception(.gatewayTargetDeviceFailedToRespond)
            // Broker mode only knows the broker took the command: the weakest mode, by design.
            case .broker: .ok(true)
            }
        }
    }

    static func modeYAML(_ mode: Mode, port: Int) -> String {
        let ack: String
        let payload: String
        switch mode {
        case .correlationID:
            ack = "{ mode: correlation_id, timeout: 500ms, response_topic: e2e/dev/ack }"
            payload = "payload: { format: json, path: value }"
        default:
            ack = "{ mode: \(mode.rawValue), timeout: 500ms }"
            payload = "payload: { format: plain }"
        }
        return baseYAML(brokerPort: port, protocolVersion: mode.protocolVersion) + """

            defaults:
              ack: \(ack)
              \(payload)
            units:
              - id: 1
                points:
                  - { name: sp, area: holding_register, address: 0, type: int16, scale: 10,
                      state_topic: e2e/dev/sp, command_topic: e2e/dev/sp/set }
                  - { name: sp_refused, area: holding_register, address: 1, type: int16,
                      state_topic: e2e/dev/sp_refused, command_topic: e2e/dev/sp_refused/set }
                  - { name: sp_busy, area: holding_register, address: 2, type: int16,
                      state_topic: e2e/dev/sp_busy, command_topic: e2e/dev/sp_busy/set }
                  - { name: pair_a, area: holding_register, address: 10, type: int16,
                      state_topic: e2e/dev/pair_a, command_topic: e2e/dev/pair_a/set }
                  - { name: pair_b, area: holding_register, address: 11, type: int16,
                      state_topic: e2e/dev/pair_b, command_topic: e2e/dev/pair_b/set }
                  - { name: enable, area: coil, address: 0, state_topic: e2e/dev/enable, command_topic: e2e/dev/enable/set }

            """
    }

    static func simulatorOptions() -> DeviceSimulator.Options {
        var options = DeviceSimulator.Options()
        options.telemetryInterval = nil
        options.perPoint = [
            "sp_refused": .refuse(reason: "out of range", code: nil),
            "sp_busy": .refuse(reason: "busy", code: 6),
            "pair_b": .refuse(reason: "locked", code: nil),
        ]
        return options
    }

    @Test("write → command published → ack → Modbus success, and the value reads back", arguments: Mode.allCases)
    func acknowledgedWrite(mode: Mode) async throws {
        let yaml: (Int) -> String = { Self.modeYAML(mode, port: $0) }
        try await withBridge(yaml, simulator: Self.simulatorOptions()) { harness in
            // The simulator's initial states: 10.0 → 100 at scale 10, true for the coil.
            try await harness.awaitRead(.holdingRegister, 0) { $0 == [100] }
            try await harness.awaitRead(.coil, 0) { $0 == [1] }

            let mark = harness.messages.count
            #expect(try await harness.modbus.write(.holdingRegister, 0, [215], single: true) == .ok(true))
            let command = try await harness.messages.waitForMessage(on: "e2e/dev/sp/set", after: mark)
            switch mode {
            case .mqtt5:
                #expect(command.payloadString == "21.5")
                #expect(command.properties.responseTopic == "e2e/dev/sp/set/response")
                let correlation = try #require(command.properties.correlationData)
                let ack = try await harness.messages.waitForMessage(on: "e2e/dev/sp/set/response", after: mark)
                #expect(ack.properties.correlationData == correlation, "the device's ack echoes the correlation data")
            case .correlationID:
                let document = try #require(
                    try JSONSerialization.jsonObject(with: Data(command.payload)) as? [String: Any]
                )
                #expect(document["value"] as? Double == 21.5)
                let id = try #require(
                    document["id"] as? String,
                    "the command carries a correlation id: \(command.payloadString)"
                )
                let ack = try await harness.messages.waitForMessage(on: "e2e/dev/ack", after: mark)
                #expect(ack.payloadString.contains(id) == true, "the ack echoes the id")
            case .stateEcho:
                #expect(command.payloadString == "21.5")
                try await harness.messages.waitForMessage(on: "e2e/dev/sp", after: mark) { $0.payloadString == "21.5" }
            case .broker:
                #expect(command.payloadString == "21.5")
                // The broker's PUBACK says nothing about the device: the value reads back once the
                // device's state report reaches the bridge, which races this test's read.
                try await harness.awaitRead(.holdingRegister, 0) { $0 == [215] }
            }
            #expect(try await harness.modbus.read(.holdingRegister, 0) == .ok([215]), "the written value reads back")

            // FC5 on a coil.
            let coilMark = harness.messages.count
            #expect(try await harness.modbus.write(.coil, 0, [0], single: true) == .ok(true))
            let coilCommand = try await harness.messages.waitForMessage(on: "e2e/dev/enable/set", after: coilMark)
            #expect(coilCommand.payloadString.contains("false") == true, "\(coilCommand.payloadString)")
            #expect(try await harness.modbus.read(.coil, 0) == .ok([0]))
        }
    }

    @Test(
        "negative ack → 04 or the code it names; a multi-point FC16 with one refusal is never a success",
        arguments: Mode.allCases
    )
    func refusedWrites(mode: Mode) async throws {
        let yaml: (Int) -> String = { Self.modeYAML(mode, port: $0) }
        try await withBridge(yaml, simulator: Self.simulatorOptions()) { harness in
            try await harness.awaitRead(.holdingRegister, 0, count: 3) { $0 == [100, 100, 100] }
            try await harness.awaitRead(.holdingRegister, 10, count: 2) { $0 == [100, 100] }
            let modbus = harness.modbus

            let mark = harness.messages.count
            #expect(try await modbus.write(.holdingRegister, 1, [5], single: true) == mode.refusal(code: nil))
            #expect(
                try await modbus.write(.holdingRegister, 2, [5], single: true) == mode.refusal(code: .serverDeviceBusy)
            )
            if mode != .broker {
                #expect(
                    try await modbus.read(.holdingRegister, 1, count: 2) == .ok([100, 100]),
                    "a refused value is not applied"
                )
            }

            // FC16 over two points, the second refused: both commands go out, the reply is the refusal.
            #expect(try await modbus.write(.holdingRegister, 10, [1, 2]) == mode.refusal(code: nil))
            try await harness.messages.waitForMessage(on: "e2e/dev/pair_a/set", after: mark)
            try await harness.messages.waitForMessage(on: "e2e/dev/pair_b/set", after: mark)
            if mode != .broker {
                #expect(try await modbus.read(.holdingRegister, 11) == .ok([100]), "the refused point keeps its value")
            }
        }
    }

    @Test(
        "an ack naming exception 99 (undefined) reaches the master as 04, logged at warning with the device's code",
        arguments: [Mode.mqtt5, .correlationID]
    )
    func undefinedAckCode(mode: Mode) async throws {
        let yaml: (Int) -> String = { Self.modeYAML(mode, port: $0) }
        var options = Self.simulatorOptions()
        options.perPoint["sp"] = .refuse(reason: "jammed", code: 99)
        options.perPoint["sp_refused"] = .refuse(reason: "acknowledge is no refusal", code: 5)
        let logs = CapturedLogs(level: .warning)
        try await withBridge(yaml, simulator: options, logger: logs.logger) { harness in
            try await harness.awaitRead(.holdingRegister, 0) { $0 == [100] }
            let mark = harness.messages.count
            #expect(
                try await harness.modbus.write(.holdingRegister, 0, [215], single: true)
                    == .exception(.serverDeviceFailure),
                "pymodbus sees 04, not 0x63"
            )
            let ackTopic = mode == .mqtt5 ? "e2e/dev/sp/set/response" : "e2e/dev/ack"
            let ack = try await harness.messages.waitForMessage(on: ackTopic, after: mark)
            #expect(ack.payloadString.contains("99"), "the device did name 99: \(ack.payloadString)")
            try await logs.waitForLine(containing: "device_code=99 (exception (0x63))")
            let warnings = logs.messages.filter { $0.hasPrefix("warning:") && $0.contains("device_code=") }
            #expect(warnings.count == 1, "one warning for the one ack: \(warnings)")

            // 05 (acknowledge) is not a failure code the bridge answers with either.
            #expect(
                try await harness.modbus.write(.holdingRegister, 1, [5], single: true)
                    == .exception(.serverDeviceFailure)
            )
            try await logs.waitForLine(containing: "device_code=5 (acknowledge (0x05))")
            #expect(try await harness.modbus.read(.holdingRegister, 0, count: 2) == .ok([100, 100]), "nothing applied")
        }
    }

    @Test("an ack after the timeout: 0B, and the late ack changes nothing", arguments: [Mode.mqtt5, .correlationID])
    func lateAck(mode: Mode) async throws {
        let yaml = { (port: Int) in
            let ack =
                mode == .mqtt5
                ? "{ mode: mqtt5, timeout: 400ms }"
                : "{ mode: correlation_id, timeout: 400ms, response_topic: e2e/late/ack }"
            return baseYAML(brokerPort: port) + """

                units:
                  - id: 1
                    points:
                      - { name: sp, area: holding_register, address: 0, type: int16, state_topic: e2e/late/sp,
                          command_topic: e2e/late/sp/set, payload: { format: json, path: value }, ack: \(ack) }

                """
        }
        // The test plays the device: it receives the commands and answers when it chooses.
        try await withBridge(yaml) { harness in
            try await harness.publish("e2e/late/sp", #"{"value":7}"#)
            try await harness.awaitRead(.holdingRegister, 0) { $0 == [7] }
            let modbus = harness.modbus

            let mark = harness.messages.count
            let started = ContinuousClock.now
            let first = try await modbus.write(.holdingRegister, 0, [11], single: true, connection: "a")
            let elapsed = ContinuousClock.now - started
            #expect(first == .exception(.gatewayTargetDeviceFailedToRespond))
            // 0B comes from the bridge (pymodbus itself would report a missing reply after 5 s), and
            // not before the ack timeout.
            #expect(elapsed >= .milliseconds(400), "answered at the ack timeout, not before (\(elapsed))")
            let firstCommand = try await harness.messages.waitForMessage(on: "e2e/late/sp/set", after: mark)

            // A second write is waiting when the late ack of the first arrives: the late (positive)
            // ack must not complete it; the device then refuses the second one.
            let secondMark = harness.messages.count
            let second = Task { try await modbus.write(.holdingRegister, 0, [22], single: true, connection: "b") }
            let secondCommand = try await harness.messages.waitForMessage(on: "e2e/late/sp/set", after: secondMark)
            try await Self.answer(firstCommand, mode: mode, success: true, harness: harness)
            try await Self.answer(secondCommand, mode: mode, success: false, harness: harness)
            #expect(try await second.valueCancellingOnExit() == .exception(.serverDeviceFailure))

            #expect(try await modbus.read(.holdingRegister, 0) == .ok([7]), "neither write changed the value")
            #expect(harness.bridge.tracker.pendingCount == 0, "nothing left waiting")
        }
    }

    /// Answers a command as a device would, in the point's ack mode.
    static func answer(_ command: MQTTMessage, mode: Mode, success: Bool, harness: BridgeHarness) async throws {
        let verdict = success ? #""ok":true"# : #""ok":false,"error":"refused by the test device""#
        switch mode {
        case .mqtt5:
            let topic = try #require(command.properties.responseTopic)
            try await harness.publish(
                topic,
                "{\(verdict)}",
                retain: false,
                properties: MQTTProperties(correlationData: command.properties.correlationData)
            )
        case .correlationID:
            let document = try #require(try JSONSerialization.jsonObject(with: Data(command.payload)) as? [String: Any])
            let id = try #require(document["id"] as? String)
            try await harness.publish("e2e/late/ack", #"{"id":"\#(id)",\#(verdict)}"#, retain: false)
        case .stateEcho, .broker:
            Issue.record("no ack message in \(mode)")
        }
    }

    @Test("too many writes in flight → 06; the slot frees when the held write ends")
    func tooManyWritesInFlight() async throws {
        let yaml = { (port: Int) in
            baseYAML(brokerPort: port, extraModbus: "  max_writes_in_flight: 1") + """

                units:
                  - id: 1
                    points:
                      - { name: sp, area: holding_register, address: 0, type: int16, command_topic: e2e/busy/sp/set,
                          ack: { mode: mqtt5, timeout: 3s } }
                      - { name: other, area: holding_register, address: 1, type: int16, command_topic: e2e/busy/other/set,
                          ack: { mode: mqtt5, timeout: 500ms } }

                """
        }
        try await withBridge(yaml) { harness in
            let modbus = harness.modbus
            let mark = harness.messages.count
            // The test device ignores this command: the write is held until its timeout, long
            // enough for the second write to arrive while it is held even on a loaded machine.
            let held = Task { try await modbus.write(.holdingRegister, 0, [1], single: true, connection: "a") }
            try await harness.messages.waitForMessage(on: "e2e/busy/sp/set", after: mark)

            // Refused at once: a write that waited would end 0B (no ack), not 06.
            #expect(
                try await modbus.write(.holdingRegister, 1, [2], single: true, connection: "b")
                    == .exception(.serverDeviceBusy)
            )
            #expect(try await held.valueCancellingOnExit() == .exception(.gatewayTargetDeviceFailedToRespond))
            #expect(
                harness.messages.messages.dropFirst(mark).filter { $0.topic == "e2e/busy/other/set" }.isEmpty,
                "the refused write published nothing"
            )

            // The slot is free again: a write the device acknowledges succeeds.
            let again = harness.messages.count
            let write = Task { try await modbus.write(.holdingRegister, 1, [3], single: true, connection: "b") }
            let command = try await harness.messages.waitForMessage(on: "e2e/busy/other/set", after: again)
            try await Self.answer(command, mode: .mqtt5, success: true, harness: harness)
            #expect(try await write.valueCancellingOnExit() == .ok(true))
            #expect(
                try await modbus.read(.holdingRegister, 1) == .ok([3]),
                "an acknowledged command-only point reads what was written"
            )
        }
    }

    @Test(
        "a write covering part of a multi-register value, a read-only point or a gap is refused with 02 and publishes nothing"
    )
    func partialAndReadOnlyWrites() async throws {
        let yaml = { (port: Int) in
            baseYAML(brokerPort: port) + """

                defaults:
                  ack: { mode: mqtt5, timeout: 500ms }
                units:
                  - id: 1
                    points:
                      - { name: fsp, area: holding_register, address: 0, type: float32, state_topic: e2e/part/fsp,
                          command_topic: e2e/part/fsp/set }
                      - { name: ro, area: holding_register, address: 2, type: int16, state_topic: e2e/part/ro }
                      - { name: isp, area: holding_register, address: 3, type: int32, byte_order: CDAB, state_topic: e2e/part/isp,
                          command_topic: e2e/part/isp/set }

                """
        }
        var options = DeviceSimulator.Options()
        options.telemetryInterval = nil
        try await withBridge(yaml, simulator: options) { harness in
            try await harness.awaitRead(.holdingRegister, 0, count: 5)
            let modbus = harness.modbus
            let mark = harness.messages.count
            #expect(
                try await modbus.write(.holdingRegister, 1, [0], single: true) == .exception(.illegalDataAddress),
                "FC6 to half a float32"
            )
            #expect(
                try await modbus.write(.holdingRegister, 0, [0x41AC]) == .exception(.illegalDataAddress),
                "FC16 of the first half only"
            )
            #expect(
                try await modbus.write(.holdingRegister, 1, [0, 5]) == .exception(.illegalDataAddress),
                "half a float32 and a read-only point"
            )
            #expect(
                try await modbus.write(.holdingRegister, 2, [5], single: true) == .exception(.illegalDataAddress),
                "read-only point"
            )
            #expect(
                try await modbus.write(.holdingRegister, 0, [0x41AC, 0, 5]) == .exception(.illegalDataAddress),
                "whole float32 and a read-only point"
            )
            #expect(
                try await modbus.write(.holdingRegister, 4, [1, 2]) == .exception(.illegalDataAddress),
                "half an int32 and a gap"
            )

            // The whole value is accepted; it was the only command published.
            #expect(try await modbus.write(.holdingRegister, 0, [0x41AC, 0x0000]) == .ok(true))
            #expect(try await modbus.read(.holdingRegister, 0, count: 2) == .ok([0x41AC, 0x0000]))
            // CDAB: the low word first.
            #expect(try await modbus.write(.holdingRegister, 3, [0x5678, 0x1234]) == .ok(true))
            let commands = harness.messages.messages.dropFirst(mark).filter { $0.topic.hasSuffix("/set") }
            #expect(commands.map(\.topic) == ["e2e/part/fsp/set", "e2e/part/isp/set"])
            #expect(commands.map { $0.payloadString } == ["21.5", "\(0x1234_5678)"])
        }
    }

    @Test("FC15 and FC5 on coils: one command per coil, read back by FC1; a read-only coil refuses the whole write")
    func coils() async throws {
        let yaml = { (port: Int) in
            baseYAML(brokerPort: port) + """

                defaults:
                  ack: { mode: mqtt5, timeout: 500ms }
                units:
                  - id: 1
                    points:
                      - { name: c0, area: coil, address: 0, state_topic: e2e/coil/0, command_topic: e2e/coil/0/set }
                      - { name: c1, area: coil, address: 1, state_topic: e2e/coil/1, command_topic: e2e/coil/1/set,
                          payload: { format: boolean, true_words: [START], false_words: [STOP] } }
                      - { name: c2, area: coil, address: 2, state_topic: e2e/coil/2, command_topic: e2e/coil/2/set,
                          payload: { format: json, path: "on" } }
                      - { name: c3_read_only, area: coil, address: 3, state_topic: e2e/coil/3 }

                """
        }
        var options = DeviceSimulator.Options()
        options.telemetryInterval = nil
        try await withBridge(yaml, simulator: options) { harness in
            try await harness.awaitRead(.coil, 0, count: 4) { $0 == [1, 1, 1, 1] }
            let modbus = harness.modbus

            let mark = harness.messages.count
            #expect(try await modbus.write(.coil, 0, [0, 1, 0]) == .ok(true))
            let commands = try await harness.messages.waitUntil("three coil commands") {
                $0.dropFirst(mark).filter { $0.topic.hasSuffix("/set") }.count >= 3
            }.dropFirst(mark).filter { $0.topic.hasSuffix("/set") }
            let payloads = Dictionary(uniqueKeysWithValues: commands.map { ($0.topic, $0.payloadString) })
            #expect(payloads["e2e/coil/0/set"] == "false")
            #expect(payloads["e2e/coil/1/set"] == "START")
            #expect(payloads["e2e/coil/2/set"] == #"{"on":false}"#)
            #expect(try await modbus.read(.coil, 0, count: 4) == .ok([0, 1, 0, 1]))

            #expect(try await modbus.write(.coil, 2, [1], single: true) == .ok(true))
            #expect(try await modbus.read(.coil, 0, count: 4) == .ok([0, 1, 1, 1]))

            let refusedMark = harness.messages.count
            #expect(try await modbus.write(.coil, 1, [0, 0, 0]) == .exception(.illegalDataAddress))
            #expect(try await modbus.write(.coil, 3, [0], single: true) == .exception(.illegalDataAddress))
            #expect(harness.messages.messages.dropFirst(refusedMark).filter { $0.topic.hasSuffix("/set") }.isEmpty)
            #expect(try await modbus.read(.coil, 0, count: 4) == .ok([0, 1, 1, 1]))
        }
    }
}
