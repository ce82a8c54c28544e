import Foundation
import MQTTModbusBridge
import MQTTTestSupport
import ModbusCore
import Mosquitto
import Testing

/// MQTT state → register image → Modbus read, checked by pymodbus decoding the registers itself.
@Suite("Values through the bridge, read by pymodbus")
struct ValueMappingTests {
    /// One point of the type matrix.
    struct MatrixPoint: Sendable {
        enum Expected: Sendable {
            /// Exact decimal text (unscaled integers, 64-bit included).
            case exact(String)
            /// A number, within a relative tolerance (floats, scaled values).
            case approximately(Double, relative: Double)
            /// These registers (the byte-order table pinned to literal words).
            case registers([UInt16])
        }

        var name: String
        var area: ModbusArea
        var address: Int
        var type: String
        var order: String
        var scale: Double = 1
        var offset: Double = 0
        var length: Int?
        var payload: String
        var expected: Expected

        var registerCount: Int {
            switch type {
            case "int16", "uint16": 1
            case "int32", "uint32", "float32": 2
            case "string": length!
            default: 4
            }
        }

        var yaml: String {
            var lines = [
                "      - name: \(name)",
                "        area: \(area == .holdingRegister ? "holding_register" : "input_register")",
                "        address: \(address)",
                "        type: \(type)",
                "        byte_order: \(order)",
                "        state_topic: e2e/matrix/\(name)",
            ]
            if let length { lines.append("        length: \(length)") }
            if type != "string" { lines += ["        scale: \(scale)", "        offset: \(offset)"] }
            return lines.joined(separator: "\n")
        }
    }

    static let orders = ["ABCD", "CDAB", "BADC", "DCBA"]

    /// Every numeric type × every byte order × three scalings (none; ×10; ×0.1 with offset 5),
    /// strings in every order, and literal register images pinning the byte-order table.
    static func matrix() -> [MatrixPoint] {
        // Published values per type: unscaled, scale 10, scale 0.1 + offset 5.
        let values: [(type: String, payloads: [String])] = [
            ("int16", ["-12345", "-1234.5", "12340"]),
            ("uint16", ["54321", "5432.1", "6000"]),
            ("int32", ["-123456789", "-12345678.9", "1234567890"]),
            ("uint32", ["3123456789", "312345678.9", "4000000000"]),
            ("int64", ["-1234567890123456789", "-123456789012.3", "1234567890"]),
            ("uint64", ["18000000000000000000", "123456789012.3", "1234567890"]),
            ("float32", ["-1234.5677", "21.53", "1234.5"]),
            ("float64", ["-98765.4321012345", "12345.678901", "0.001953125"]),
        ]
        let scalings: [(scale: Double, offset: Double, area: ModbusArea)] = [
            (1, 0, .holdingRegister), (10, 0, .inputRegister), (0.1, 5, .holdingRegister),
        ]
        var points: [MatrixPoint] = []
        var next: [ModbusArea: Int] = [.holdingRegister: 0, .inputRegister: 0]
        func add(_ point: MatrixPoint) {
            var point = point
            point.address = next[point.area]!
            next[point.area]! += point.registerCount
            points.append(point)
        }
        for (type, payloads) in values {
            for order in orders {
                for (index, scaling) in scalings.enumerated() {
                    let payload = payloads[index]
                    let expected: MatrixPoint.Expected
                    if type.hasPrefix("float") {
                        expected = .approximately(Double(payload)!, relative: type == "float32" ? 1e-6 : 1e-9)
                    } else if index == 0 {
                        expected = .exact(payload)
                    } else {
                        expected = .approximately(Double(payload)!, relative: 1e-9)
                    }
                    add(
                        MatrixPoint(
                            name: "\(type)_\(order)_s\(index)",
                            area: scaling.area,
                            address: 0,
                            type: type,
                            order: order,
                            scale: scaling.scale,
                            offset: scaling.offset,
                            payload: payload,
                            expected: expected
                        )
                    )
                }
            }
        }
        for order in orders {
            // UTF-8 with a two-byte character; 10 bytes fill 5 registers exactly.
            add(
                MatrixPoint(
                    name: "string_\(order)",
                    area: .inputRegister,
                    address: 0,
                    type: "string",
                    order: order,
                    length: 5,
                    payload: "Kessel-7Ä",
                    expected: .exact("Kessel-7Ä")
                )
            )
            add(
                MatrixPoint(
                    name: "short_string_\(order)",
                    area: .inputRegister,
                    address: 0,
                    type: "string",
                    order: order,
                    length: 3,
                    payload: "abc",
                    expected: .exact("abc")
                )
            )
        }
        // The byte-order table of CONFIGURATION.md, as literal words.
        let pins: [(type: String, payload: String, words: [String: [UInt16]])] = [
            ("uint16", "4660", ["ABCD": [0x1234], "CDAB": [0x1234], "BADC": [0x3412], "DCBA": [0x3412]]),
            (
                "uint32", "287454020",
                [  // 0x11223344
                    "ABCD": [0x1122, 0x3344], "CDAB": [0x3344, 0x1122], "BADC": [0x2211, 0x4433],
                    "DCBA": [0x4433, 0x2211],
                ]
            ),
            (
                "uint64", "72623859790382856",
                [  // 0x0102030405060708
                    "ABCD": [0x0102, 0x0304, 0x0506, 0x0708], "CDAB": [0x0708, 0x0506, 0x0304, 0x0102],
                    "BADC": [0x0201, 0x0403, 0x0605, 0x0807], "DCBA": [0x0807, 0x0605, 0x0403, 0x0201],
                ]
            ),
            (
                "float32", "21.5",
                ["ABCD": [0x41AC, 0], "CDAB": [0, 0x41AC], "BADC": [0xAC41, 0], "DCBA": [0, 0xAC41]]
            ),
            ("string", "AB", ["ABCD": [0x4142], "CDAB": [0x4142], "BADC": [0x4241], "DCBA": [0x4241]]),
        ]
        for pin in pins {
            for order in orders {
                add(
                    MatrixPoint(
                        name: "pin_\(pin.type)_\(order)",
                        area: .inputRegister,
                        address: 0,
                        type: pin.type,
                        order: order,
                        length: pin.type == "string" ? 1 : nil,
                        payload: pin.payload,
                        expected: .registers(pin.words[order]!)
                    )
                )
            }
        }
        return points
    }

    @Test("every type × byte order × scale read through Modbus matches the published value")
    func typeMatrix() async throws {
        let points = Self.matrix()
        let yaml = { (port: Int) in
            baseYAML(brokerPort: port) + "\nunits:\n  - id: 1\n    points:\n"
                + points.map(\.yaml).joined(separator: "\n") + "\n"
        }
        try await withBridge(yaml) { harness in
            for point in points { try await harness.publish("e2e/matrix/\(point.name)", point.payload) }
            // Never-received values answer 0B, so a block read succeeds once every point in it arrived.
            for area in [ModbusArea.holdingRegister, .inputRegister] {
                let total = points.filter { $0.area == area }.map { $0.address + $0.registerCount }.max()!
                for start in stride(from: 0, to: total, by: 125) {
                    try await harness.awaitRead(area, start, count: min(125, total - start))
                }
            }
            for point in points {
                let reply = try await harness.modbus.decode(
                    point.area,
                    point.address,
                    type: point.type,
                    order: point.order,
                    scale: point.scale,
                    offset: point.offset,
                    length: point.length
                )
                let decoded = try #require(reply.value, "\(point.name): \(reply)")
                switch point.expected {
                case .exact(let text):
                    #expect(
                        decoded.text == text,
                        "\(point.name) (\(point.type) \(point.order)): registers \(hex(decoded.registers))"
                    )
                case .approximately(let expected, let relative):
                    let actual = try #require(Double(decoded.text), "\(point.name): \(decoded.text)")
                    #expect(
                        abs(actual - expected) <= abs(expected) * relative,
                        "\(point.name) (\(point.type) \(point.order) scale \(point.scale) offset \(point.offset)): read \(decoded.text), published \(expected); registers \(hex(decoded.registers))"
                    )
                case .registers(let words):
                    #expect(
                        decoded.registers == words,
                        "\(point.name): \(hex(decoded.registers)), expected \(hex(words))"
                    )
                }
            }
        }
    }

    @Test("JSON paths, shared JSON documents, boolean words and bit points")
    func jsonPathsAndBooleanWords() async throws {
        let yaml = { (port: Int) in
            baseYAML(brokerPort: port) + """

                units:
                  - id: 3
                    points:
                      - { name: temperature, area: input_register, address: 0, type: float32, state_topic: e2e/plant/telemetry,
                          payload: { format: json, path: "readings[0].temperature" } }
                      - { name: energy, area: input_register, address: 2, type: uint64, state_topic: e2e/plant/telemetry,
                          payload: { format: json, path: "$.energy.wh" } }
                      - { name: burner, area: discrete_input, address: 0, state_topic: e2e/plant/telemetry,
                          payload: { format: json, path: burner, true_words: [ON], false_words: [OFF] } }
                      - { name: room, area: input_register, address: 6, type: int16, scale: 10, state_topic: e2e/plant/rooms,
                          payload: { format: json, path: '["room.1"].t' } }
                      - { name: bare, area: input_register, address: 7, type: int16, state_topic: e2e/plant/bare,
                          payload: { format: json, path: "$" } }
                      - { name: model, area: input_register, address: 8, type: string, length: 4, state_topic: e2e/plant/model,
                          payload: { format: json, path: info.model } }
                      - { name: quoted_number, area: input_register, address: 12, type: int32, state_topic: e2e/plant/quoted,
                          payload: { format: json, path: v } }
                      - { name: json_flag, area: input_register, address: 14, type: uint16, state_topic: e2e/plant/flag,
                          payload: { format: json, path: flag } }
                      - { name: pump_running, area: discrete_input, address: 1, state_topic: e2e/plant/pump,
                          payload: { format: boolean, true_words: [RUNNING, "ON"], false_words: [STOPPED, "OFF"] } }
                      - { name: valve_open, area: input_register, address: 15, type: uint16, state_topic: e2e/plant/valve,
                          payload: { format: boolean } }
                      - { name: alarm_overheat, area: input_register, address: 20, type: bit, bit: 0, state_topic: e2e/plant/alarm/0 }
                      - { name: alarm_pressure, area: input_register, address: 20, type: bit, bit: 3, state_topic: e2e/plant/alarm/3 }
                      - { name: alarm_flow, area: input_register, address: 20, type: bit, bit: 15, state_topic: e2e/plant/alarm/15 }

                """
        }
        try await withBridge(yaml) { harness in
            try await harness.publish(
                "e2e/plant/telemetry",
                #"{"readings":[{"temperature":71.5}],"energy":{"wh":18446744073709551615},"burner":"ON"}"#
            )
            try await harness.publish("e2e/plant/rooms", #"{"room.1":{"t":21.7},"room.2":{"t":19}}"#)
            try await harness.publish("e2e/plant/bare", "-42")
            try await harness.publish("e2e/plant/model", #"{"info":{"model":"X-200"}}"#)
            try await harness.publish("e2e/plant/quoted", #"{"v":"4711"}"#)
            try await harness.publish("e2e/plant/flag", #"{"flag":true}"#)
            try await harness.publish("e2e/plant/pump", " running ")
            try await harness.publish("e2e/plant/valve", "on")
            try await harness.publish("e2e/plant/alarm/0", "true")
            try await harness.publish("e2e/plant/alarm/3", "1")
            try await harness.publish("e2e/plant/alarm/15", "ON")

            try await harness.awaitRead(.inputRegister, 0, count: 16, unit: 3)
            try await harness.awaitRead(.inputRegister, 20, unit: 3)
            let modbus = harness.modbus
            #expect(try await modbus.decode(.inputRegister, 0, type: "float32", unit: 3).value?.text == "71.5")
            #expect(
                try await modbus.decode(.inputRegister, 2, type: "uint64", unit: 3).value?.text
                    == "18446744073709551615"
            )
            #expect(try await modbus.decode(.inputRegister, 6, type: "int16", scale: 10, unit: 3).value?.text == "21.7")
            #expect(try await modbus.decode(.inputRegister, 7, type: "int16", unit: 3).value?.text == "-42")
            #expect(
                try await modbus.decode(.inputRegister, 8, type: "string", length: 4, unit: 3).value?.text == "X-200"
            )
            #expect(try await modbus.decode(.inputRegister, 12, type: "int32", unit: 3).value?.text == "4711")
            #expect(
                try await modbus.read(.inputRegister, 14, count: 2, unit: 3) == .ok([1, 1]),
                "JSON true and the word 'on' are 1"
            )
            #expect(
                try await modbus.read(.discreteInput, 0, count: 2, unit: 3) == .ok([1, 1]),
                "burner ON, pump ' running '"
            )
            #expect(
                try await modbus.read(.inputRegister, 20, unit: 3) == .ok([0b1000_0000_0000_1001]),
                "bits 0, 3 and 15 of one register"
            )

            // The false words, and one bit cleared while the others keep theirs.
            try await harness.publish("e2e/plant/pump", "STOPPED")
            try await harness.publish("e2e/plant/alarm/3", "off")
            try await harness.awaitRead(.inputRegister, 20, unit: 3) { $0 == [0b1000_0000_0000_0001] }
            try await harness.awaitRead(.discreteInput, 0, count: 2, unit: 3) { $0 == [1, 0] }
        }
    }

    @Test(
        "missing values: exception 0B by default, a named exception, a substitute value; fill_gaps; unknown unit 0B; unmapped 02"
    )
    func missingValuesGapsAndUnits() async throws {
        let yaml = { (port: Int) in
            baseYAML(brokerPort: port) + """

                units:
                  - id: 1
                    points:
                      - { name: never_default, area: holding_register, address: 0, type: int16, state_topic: e2e/missing/default }
                      - { name: never_substitute, area: holding_register, address: 1, type: int16, state_topic: e2e/missing/sub,
                          on_missing: { value: -1 } }
                      - { name: never_named, area: holding_register, address: 2, type: int16, state_topic: e2e/missing/named,
                          on_missing: { exception: server_device_failure } }
                      - { name: never_float, area: input_register, address: 0, type: float32, state_topic: e2e/missing/float,
                          on_missing: { value: -999.5 } }
                      - { name: never_coil, area: coil, address: 0, state_topic: e2e/missing/coil, on_missing: { value: true } }
                      - { name: after_gap, area: holding_register, address: 10, type: uint16, state_topic: e2e/missing/after_gap }
                  - id: 2
                    fill_gaps: true
                    points:
                      - { name: gap_a, area: holding_register, address: 0, type: uint16, state_topic: e2e/gaps/a }
                      - { name: gap_b, area: holding_register, address: 5, type: uint16, state_topic: e2e/gaps/b,
                          command_topic: e2e/gaps/b/set, ack: { mode: broker } }
                      - { name: gap_coil, area: coil, address: 3, state_topic: e2e/gaps/coil }

                """
        }
        try await withBridge(yaml) { harness in
            let modbus = harness.modbus
            #expect(try await modbus.read(.holdingRegister, 0) == .exception(.gatewayTargetDeviceFailedToRespond))
            #expect(try await modbus.read(.holdingRegister, 1) == .ok([0xFFFF]), "substitute -1")
            #expect(try await modbus.read(.holdingRegister, 2) == .exception(.serverDeviceFailure))
            #expect(try await modbus.decode(.inputRegister, 0, type: "float32").value?.text == "-999.5")
            #expect(try await modbus.read(.coil, 0) == .ok([1]))

            // A received value replaces the substitute.
            try await harness.publish("e2e/missing/sub", "42")
            try await harness.awaitRead(.holdingRegister, 1) { $0 == [42] }

            // Unmapped addresses: 02, alone or inside a larger read; writes too.
            try await harness.publish("e2e/missing/after_gap", "7")
            try await harness.awaitRead(.holdingRegister, 10) { $0 == [7] }
            #expect(try await modbus.read(.holdingRegister, 5) == .exception(.illegalDataAddress))
            #expect(try await modbus.read(.holdingRegister, 9, count: 2) == .exception(.illegalDataAddress))
            #expect(try await modbus.read(.holdingRegister, 10, count: 2) == .exception(.illegalDataAddress))
            #expect(
                try await modbus.read(.discreteInput, 0) == .exception(.illegalDataAddress),
                "no discrete inputs mapped"
            )
            #expect(try await modbus.write(.holdingRegister, 5, [1], single: true) == .exception(.illegalDataAddress))

            // Unknown unit: 0B for reads and writes.
            #expect(
                try await modbus.read(.holdingRegister, 0, unit: 9) == .exception(.gatewayTargetDeviceFailedToRespond)
            )
            #expect(
                try await modbus.write(.holdingRegister, 0, [1], single: true, unit: 9)
                    == .exception(.gatewayTargetDeviceFailedToRespond)
            )

            // fill_gaps: one block across the gaps reads zeros there; a write to a gap is still 02.
            try await harness.publish("e2e/gaps/a", "11")
            try await harness.publish("e2e/gaps/b", "55")
            try await harness.publish("e2e/gaps/coil", "true")
            try await harness.awaitRead(.holdingRegister, 0, count: 8, unit: 2) { $0 == [11, 0, 0, 0, 0, 55, 0, 0] }
            try await harness.awaitRead(.coil, 0, count: 5, unit: 2) { $0 == [0, 0, 0, 1, 0] }
            #expect(
                try await modbus.write(.holdingRegister, 2, [9], single: true, unit: 2)
                    == .exception(.illegalDataAddress)
            )
            #expect(
                try await modbus.write(.holdingRegister, 4, [9, 56], unit: 2) == .exception(.illegalDataAddress),
                "gap + point"
            )
            #expect(
                try await modbus.read(.holdingRegister, 0, count: 8, unit: 2) == .ok([11, 0, 0, 0, 0, 55, 0, 0]),
                "nothing applied"
            )
        }
    }

    @Test("max_age: a value older than its maximum age answers the point's policy until a fresh one arrives")
    func maxAgeStaleness() async throws {
        // 1 s rather than less: every value must still be read fresh once on a loaded machine.
        let yaml = { (port: Int) in
            baseYAML(brokerPort: port) + """

                units:
                  - id: 1
                    points:
                      - { name: expiring, area: holding_register, address: 0, type: int16, state_topic: e2e/stale/a, max_age: 1s }
                      - { name: expiring_substitute, area: holding_register, address: 1, type: int16, state_topic: e2e/stale/b,
                          max_age: 1s, on_missing: { value: -7 } }
                      - { name: never_expiring, area: holding_register, address: 2, type: int16, state_topic: e2e/stale/c }

                """
        }
        try await withBridge(yaml) { harness in
            let modbus = harness.modbus
            /// Publishes `value` and reads it back fresh. A machine stalled for longer than max_age
            /// (other tests share its cores) can miss the window; then the value is published again.
            @Sendable func publishAndReadFresh(
                _ topic: String,
                _ value: Int16,
                at address: Int
            ) async throws -> ContinuousClock.Instant {
                for _ in 0..<5 {
                    let published = ContinuousClock.now
                    try await harness.publish(topic, "\(value)", retain: false)
                    let fresh = try await poll("\(topic) read fresh or expired", timeout: .seconds(10)) { () -> Bool? in
                        if try await modbus.read(.holdingRegister, address) == .ok([UInt16(bitPattern: value)]) {
                            return true
                        }
                        return ContinuousClock.now - published > .seconds(1) ? false : nil
                    }
                    if fresh { return published }
                }
                throw TimeoutError(what: "a fresh read of \(topic) within its max_age", limit: .seconds(5))
            }
            let published = try await publishAndReadFresh("e2e/stale/a", 5, at: 0)
            _ = try await publishAndReadFresh("e2e/stale/b", 6, at: 1)
            _ = try await publishAndReadFresh("e2e/stale/c", 7, at: 2)

            let code = try await harness.awaitReadException(.holdingRegister, 0, timeout: .seconds(5))
            let staleAfter = ContinuousClock.now - published
            #expect(code == .gatewayTargetDeviceFailedToRespond)
            #expect(staleAfter >= .seconds(1), "stale only once max_age passed (after \(staleAfter))")
            try await harness.awaitRead(.holdingRegister, 1) { $0 == [UInt16(bitPattern: -7)] }
            #expect(try await modbus.read(.holdingRegister, 2) == .ok([7]), "no max_age: the value stays")

            _ = try await publishAndReadFresh("e2e/stale/a", 8, at: 0)
        }
    }

    @Test("garbage payloads are counted, the last good value is kept, the bridge keeps serving")
    func garbagePayloads() async throws {
        let yaml = { (port: Int) in
            baseYAML(brokerPort: port) + """

                units:
                  - id: 1
                    points:
                      - { name: level, area: holding_register, address: 0, type: int16, state_topic: e2e/garbage/level }
                      - { name: status, area: holding_register, address: 1, type: uint16, state_topic: e2e/garbage/status,
                          payload: { format: json, path: data.value } }
                      - { name: other, area: holding_register, address: 2, type: uint16, state_topic: e2e/garbage/other }

                """
        }
        try await withBridge(yaml) { harness in
            try await harness.publish("e2e/garbage/level", "42")
            try await harness.publish("e2e/garbage/status", #"{"data":{"value":3}}"#)
            try await harness.awaitRead(.holdingRegister, 0, count: 2) { $0 == [42, 3] }
            #expect(harness.bridge.payloadDecodeFailures == 0)

            let garbage: [(topic: String, payload: [UInt8])] = [
                ("e2e/garbage/level", Array("not a number".utf8)),
                ("e2e/garbage/level", Array("99999".utf8)),  // beyond int16
                ("e2e/garbage/level", []),
                ("e2e/garbage/level", [0xFF, 0xFE, 0x00]),  // not UTF-8
                ("e2e/garbage/status", Array(#"{"data":"#.utf8)),  // truncated JSON
                ("e2e/garbage/status", Array(#"{"data":{"other":1}}"#.utf8)),  // path missing
                ("e2e/garbage/status", Array(#"{"data":{"value":-1}}"#.utf8)),  // beyond uint16
            ]
            for message in garbage {
                try await withTimeout(.seconds(5), "publish garbage") {
                    try await harness.mqtt.publish(topic: message.topic, payload: message.payload, qos: .atLeastOnce)
                }
            }
            let bridge = harness.bridge
            let failures = try await poll("every garbage payload counted") {
                bridge.payloadDecodeFailures >= garbage.count ? bridge.payloadDecodeFailures : nil
            }
            #expect(failures == garbage.count)
            #expect(
                try await harness.modbus.read(.holdingRegister, 0, count: 2) == .ok([42, 3]),
                "last good values kept"
            )

            // Still alive and serving: a new good value is taken.
            try await harness.publish("e2e/garbage/other", "9")
            try await harness.publish("e2e/garbage/level", "43")
            try await harness.awaitRead(.holdingRegister, 0, count: 3) { $0 == [43, 3, 9] }
        }
    }
}

func hex(_ words: [UInt16]) -> String {
    "[" + words.map { "0x" + String($0, radix: 16, uppercase: true) }.joined(separator: ", ") + "]"
}
