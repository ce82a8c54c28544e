import Foundation
import ModbusCore
import Testing

@testable import MQTTModbusBridge
@testable import MQTTModbusBridgeConfiguration

@Suite("Command encoder")
struct CommandEncoderTests {
    func point(
        _ type: PointType,
        _ format: PayloadFormat = .plain,
        template: String? = nil,
        mode: AckSettings.Mode = .mqtt5,
        idField: String = "id",
        scale: Double = 1
    ) -> PointConfiguration {
        var ack = AckSettings(mode: mode)
        ack.idField = try! JSONPath(parsing: idField)
        return PointConfiguration(
            name: "boiler_sp",
            unitID: 3,
            area: type == .bool ? ModbusArea.coil : .holdingRegister,
            address: 0,
            type: type,
            scale: scale,
            payload: format,
            command: CommandSettings(
                topic: "x/set",
                template: template.map { try! CommandTemplate(parsing: $0) },
                ack: ack
            )
        )
    }

    func json(_ path: String) -> PayloadFormat { PayloadFormat(encoding: .json(path: try! JSONPath(parsing: path))) }

    func encode(
        _ value: PointValue,
        _ point: PointConfiguration,
        id: String? = "c0ffee",
        at time: Double = 1_700_000_000.123
    ) throws -> String {
        String(
            decoding: try CommandEncoder(point: point).encode(
                value,
                correlationID: id,
                timestamp: Date(timeIntervalSince1970: time)
            ),
            as: UTF8.self
        )
    }

    // MARK: Without a template

    @Test func plainNumbers() throws {
        #expect(try encode(.number(21.5), point(.int16, scale: 10)) == "21.5")
        #expect(try encode(.number(21), point(.int16, scale: 10)) == "21")  // no trailing .0
        #expect(try encode(.integer(21), point(.int16)) == "21")
        #expect(try encode(.integer(Int64.min), point(.int64)) == "-9223372036854775808")
        #expect(try encode(.unsigned(UInt64.max), point(.uint64)) == "18446744073709551615")
        // float32 precision, not 21.299999237060547
        #expect(try encode(.number(Double(Float(21.3))), point(.float32)) == "21.3")
        #expect(try encode(.number(0.1), point(.float64)) == "0.1")
        #expect(try encode(.number(1e-7), point(.float64)) == "1e-07")
        #expect(try encode(.number(-0.0), point(.float64)) == "0")
        #expect(try encode(.bool(true), point(.uint16)) == "1")
    }

    @Test func plainBooleansAndText() throws {
        #expect(try encode(.bool(true), point(.bool)) == "true")
        let words = PayloadFormat(encoding: .plain, trueWords: ["ON"], falseWords: ["OFF"])
        #expect(try encode(.bool(false), point(.bool, words)) == "OFF")
        #expect(try encode(.text("hello \"world\""), point(.string(length: 8))) == "hello \"world\"")
    }

    @Test func booleanFormatUsesTheFirstWords() throws {
        let words = PayloadFormat(encoding: .boolean, trueWords: ["ON", "1"], falseWords: ["OFF", "0"])
        #expect(try encode(.bool(true), point(.bool, words)) == "ON")
        #expect(try encode(.bool(false), point(.bit(position: 1), words)) == "OFF")
        #expect(try encode(.integer(5), point(.uint16, words)) == "ON")
        #expect(try encode(.integer(0), point(.uint16, words)) == "OFF")
    }

    @Test func jsonWithAPathBuildsTheDocument() throws {
        #expect(try encode(.number(21.5), point(.float32, json("a.b"))) == "{\"a\":{\"b\":21.5}}")
        #expect(try encode(.integer(7), point(.int16, json("value"))) == "{\"value\":7}")
        #expect(try encode(.bool(true), point(.bool, json("on"))) == "{\"on\":true}")
        #expect(try encode(.text("a\"b\\c\n"), point(.string(length: 8), json("t"))) == "{\"t\":\"a\\\"b\\\\c\\n\"}")
        #expect(try encode(.integer(5), point(.int16, json("data[1]"))) == "{\"data\":[null,5]}")
        #expect(try encode(.number(21.5), point(.float32, json("$"))) == "21.5")
        #expect(try encode(.text("x"), point(.string(length: 2), json("$"))) == "\"x\"")
    }

    @Test func correlationIDIsAddedToDefaultJSONCommands() throws {
        #expect(
            try encode(.bool(true), point(.bool, json("enable"), mode: .correlationID))
                == "{\"enable\":true,\"id\":\"c0ffee\"}"
        )
        #expect(
            try encode(.integer(3), point(.int16, json("cmd.value"), mode: .correlationID, idField: "cmd.request_id"))
                == "{\"cmd\":{\"value\":3,\"request_id\":\"c0ffee\"}}"
        )
        #expect(throws: CommandEncodingError.self) {
            try encode(.bool(true), point(.bool, json("enable"), mode: .correlationID), id: nil)
        }
        // Other modes leave the document alone.
        #expect(try encode(.bool(true), point(.bool, json("enable"), mode: .mqtt5)) == "{\"enable\":true}")
    }

    // MARK: The point's own words in JSON

    func jsonWords(_ path: String, _ on: String = "ON", _ off: String = "OFF") -> PayloadFormat {
        PayloadFormat(encoding: .json(path: try! JSONPath(parsing: path)), trueWords: [on], falseWords: [off])
    }

    /// zigbee2mqtt wants `{"state":"ON"}`: a boolean point that names its states sends them.
    @Test func jsonCommandsOfBooleanPointsSendTheirOwnWords() throws {
        #expect(try encode(.bool(true), point(.bool, jsonWords("state"))) == "{\"state\":\"ON\"}")
        #expect(try encode(.bool(false), point(.bool, jsonWords("state"))) == "{\"state\":\"OFF\"}")
        #expect(
            try encode(.bool(true), point(.bit(position: 3), jsonWords("lock", "LOCK", "UNLOCK")))
                == "{\"lock\":\"LOCK\"}"
        )
        // A word written as the value is read with the same lists.
        #expect(try encode(.text("off"), point(.bool, jsonWords("state"))) == "{\"state\":\"OFF\"}")
        // The first word of each list is the one sent.
        let several = PayloadFormat(
            encoding: .json(path: try JSONPath(parsing: "state")),
            trueWords: ["ON", "true"],
            falseWords: ["OFF", "false"]
        )
        #expect(try encode(.bool(true), point(.bool, several)) == "{\"state\":\"ON\"}")
        // {{value}} in a JSON template is the word as a JSON string; the id goes beside it.
        #expect(
            try encode(.bool(true), point(.bool, jsonWords("state"), template: "{\"state\": {{value}}}"))
                == "{\"state\": \"ON\"}"
        )
        #expect(
            try encode(.bool(false), point(.bool, jsonWords("state"), mode: .correlationID))
                == "{\"state\":\"OFF\",\"id\":\"c0ffee\"}"
        )
        // The default words keep the JSON literal, and numeric points their numbers.
        #expect(try encode(.bool(true), point(.bool, json("state"))) == "{\"state\":true}")
        #expect(try encode(.integer(1), point(.uint16, jsonWords("level"))) == "{\"level\":1}")
    }

    /// `command_payload`: commands in a format of their own (Tasmota reports JSON, takes `ON`).
    @Test func commandsUseTheCommandsOwnFormat() throws {
        var relay = point(.bool, jsonWords("POWER"))
        relay.command?.payload = PayloadFormat(encoding: .plain, trueWords: ["ON"], falseWords: ["OFF"])
        #expect(try encode(.bool(true), relay) == "ON")
        #expect(try encode(.bool(false), relay) == "OFF")
        var level = point(.int16, json("state.level"), scale: 10)
        level.command?.payload = json("brightness")
        #expect(try encode(.number(12.5), level) == "{\"brightness\":12.5}")
        level.command?.template = try CommandTemplate(parsing: "{\"b\": {{value}}}")
        #expect(try encode(.number(12.5), level) == "{\"b\": 12.5}")
        level.command?.payload = .plain
        // A plain command format renders {{value}} as text: the same number here.
        #expect(try encode(.number(12.5), level) == "{\"b\": 12.5}")
    }

    // MARK: Templates

    @Test func templateWithJSONFormat() throws {
        let template =
            "{\"value\": {{value}}, \"id\": \"{{correlation_id}}\", \"point\": \"{{ point }}\", \"unit\": {{unit}}, \"at\": \"{{timestamp}}\"}"
        let text = try encode(.number(21.5), point(.int16, json("value"), template: template, scale: 10), id: "a\"b")
        #expect(
            text
                == "{\"value\": 21.5, \"id\": \"a\\\"b\", \"point\": \"boiler_sp\", \"unit\": 3, \"at\": \"2023-11-14T22:13:20.123Z\"}"
        )
        #expect(
            try encode(.text("hi"), point(.string(length: 4), json("v"), template: "{\"v\": {{value}}}"))
                == "{\"v\": \"hi\"}"
        )
        #expect(try encode(.bool(false), point(.bool, json("v"), template: "[{{value}}]")) == "[false]")
    }

    @Test func templateWithPlainFormat() throws {
        #expect(
            try encode(.integer(42), point(.uint16, template: "SET {{value}} #{{correlation_id}}")) == "SET 42 #c0ffee"
        )
        let words = PayloadFormat(encoding: .boolean, trueWords: ["START"], falseWords: ["STOP"])
        #expect(try encode(.bool(true), point(.bool, words, template: "cmd={{value}}")) == "cmd=START")
    }

    @Test func templateNeedsTheCorrelationIDItUses() {
        #expect(
            throws: CommandEncodingError("the template uses {{correlation_id}} but the command has no correlation id")
        ) {
            try encode(.integer(1), point(.uint16, template: "{{correlation_id}}"), id: nil)
        }
    }

    @Test func unencodableValues() {
        #expect(throws: CommandEncodingError.self) { try encode(.text("abc"), point(.int16)) }
        #expect(throws: CommandEncodingError.self) { try encode(.number(.nan), point(.float64)) }
        #expect(throws: CommandEncodingError.self) { try encode(.number(.infinity), point(.float64, json("v"))) }
        #expect(throws: CommandEncodingError.self) { try encode(.text("maybe"), point(.bool)) }
    }

    @Test func timestamps() {
        func iso(_ seconds: Double) -> String { CommandEncoder.iso8601(Date(timeIntervalSince1970: seconds)) }
        #expect(iso(0) == "1970-01-01T00:00:00.000Z")
        #expect(iso(-1) == "1969-12-31T23:59:59.000Z")
        #expect(iso(-0.5) == "1969-12-31T23:59:59.500Z")
        #expect(iso(951_782_400) == "2000-02-29T00:00:00.000Z")
        #expect(iso(1_709_208_000.999) == "2024-02-29T12:00:00.999Z")
        #expect(iso(4_102_444_799) == "2099-12-31T23:59:59.000Z")
    }

    /// Found by Fuzz/FuzzCommandTemplate: a date a little inside Int64's range of milliseconds
    /// overflowed the day arithmetic instead of being clamped.
    @Test func timestampsFarOutAreClampedNotTrapped() {
        func iso(_ seconds: Double) -> String { CommandEncoder.iso8601(Date(timeIntervalSince1970: seconds)) }
        let farPast = iso(Double(Int64.min) / 1000 + 1)
        let farFuture = iso(Double(Int64.max) / 1000 - 1)
        #expect(farPast == iso(-.greatestFiniteMagnitude))
        #expect(farFuture == iso(.greatestFiniteMagnitude))
        #expect(farPast.hasSuffix("Z") && farFuture.hasSuffix("Z"))
        #expect(iso(.nan) == "1970-01-01T00:00:00.000Z")
    }

    /// What the decoders produce, the command encoder renders: register → value → command text.
    @Test func registerValuesRenderCleanly() throws {
        let setpoint = point(.int16, scale: 10)
        for raw in Int16(-400)...Int16(400) {
            let value = try RegisterDecoder(point: setpoint).decode([UInt16(bitPattern: raw)])
            let text = try encode(value, setpoint)
            #expect(text.count <= 6, "\(raw) → \(text)")
            #expect(Double(text).map { ($0 * 10).rounded() } == Double(raw))
        }
    }
}
