import MQTTTestSupport
import Testing

@testable import MQTTModbusBridge
@testable import MQTTModbusBridgeConfiguration

@Suite("Payload decoder")
struct PayloadDecoderTests {
    func decode(
        _ payload: String,
        _ type: PointType,
        _ format: PayloadFormat = .plain
    ) throws(PayloadDecodingError) -> PointValue {
        try PayloadDecoder(format: format, type: type).decode(Array(payload.utf8))
    }

    func json(_ path: String) -> PayloadFormat {
        PayloadFormat(encoding: .json(path: try! JSONPath(parsing: path)))
    }

    func expectError(
        _ kind: PayloadDecodingError.Kind,
        _ payload: [UInt8],
        _ type: PointType,
        _ format: PayloadFormat = .plain,
        sourceLocation: SourceLocation = #_sourceLocation
    ) {
        do {
            let value = try PayloadDecoder(format: format, type: type).decode(payload)
            Issue.record("expected \(kind), got \(value)", sourceLocation: sourceLocation)
        } catch {
            #expect(error.kind == kind, "\(error)", sourceLocation: sourceLocation)
        }
    }

    func expectError(
        _ kind: PayloadDecodingError.Kind,
        _ payload: String,
        _ type: PointType,
        _ format: PayloadFormat = .plain,
        sourceLocation: SourceLocation = #_sourceLocation
    ) {
        expectError(kind, Array(payload.utf8), type, format, sourceLocation: sourceLocation)
    }

    // MARK: Plain

    @Test func plainNumbers() throws {
        #expect(try decode("21.5", .float32) == .number(21.5))
        #expect(try decode(" 42\n", .int16) == .integer(42))
        #expect(try decode("-7", .int16) == .integer(-7))
        #expect(try decode("+3", .int16) == .integer(3))
        #expect(try decode("0x1F", .uint16) == .integer(31))
        #expect(try decode("-0x10", .int16) == .integer(-16))
        #expect(try decode("1e3", .int32) == .number(1000))
        #expect(try decode(".5", .float32) == .number(0.5))
        #expect(try decode("-0", .int16) == .integer(0))
    }

    @Test func sixtyFourBitIntegersStayExact() throws {
        #expect(try decode("9223372036854775807", .int64) == .integer(Int64.max))
        #expect(try decode("-9223372036854775808", .int64) == .integer(Int64.min))
        #expect(try decode("18446744073709551615", .uint64) == .unsigned(UInt64.max))
        // 2^53 + 1: not representable as Double
        #expect(try decode("9007199254740993", .int64) == .integer(9_007_199_254_740_993))
        #expect(try decode("{\"v\": 18446744073709551615}", .uint64, json("v")) == .unsigned(UInt64.max))
        #expect(try decode("{\"v\": -9223372036854775807}", .int64, json("v")) == .integer(-Int64.max))
    }

    @Test func hugeNumbers() throws {
        // beyond 64 bits: the encoder refuses it for integer types
        #expect(try decode("99999999999999999999", .uint64) == .number(1e20))
        #expect(try decode("1e308", .float64) == .number(1e308))
        expectError(.outOfRange, "1e400", .float64)
        expectError(.outOfRange, "-1e400", .float64)
        expectError(.outOfRange, "0x1FFFFFFFFFFFFFFFF", .uint64)
        expectError(.outOfRange, "{\"v\": 1e999}", .float64, json("v"))
    }

    @Test func notNumbers() {
        for text in [
            "", " ", "abc", "1.2.3", "--1", "0x", "0xZZ", "1e", "1e+", "nan", "NaN", "inf", "-inf", "Infinity", "1,5",
            "12abc", "+", ".",
        ] {
            expectError(.notANumber, text, .float64)
        }
    }

    @Test func plainText() throws {
        #expect(try decode("  EcoHeat 24 ", .string(length: 8)) == .text("  EcoHeat 24 "))
        #expect(try decode("", .string(length: 8)) == .text(""))
        #expect(try decode("42", .string(length: 8)) == .text("42"))
    }

    @Test func plainWordsForBooleanPoints() throws {
        #expect(try decode("ON", .bool) == .bool(true))
        #expect(try decode(" off\n", .bool) == .bool(false))
        #expect(try decode("1", .bit(position: 2)) == .bool(true))
        #expect(try decode("TRUE", .bool) == .bool(true))
        let custom = PayloadFormat(encoding: .plain, trueWords: ["running"], falseWords: ["stopped"])
        #expect(try decode("Running", .bool, custom) == .bool(true))
        expectError(.unknownWord, "on", .bool, custom)
        expectError(.unknownWord, "2", .bool)
        do {
            _ = try decode("maybe", .bool)
        } catch {
            #expect(error.message == "'maybe' is neither a true word (true, on, 1) nor a false word (false, off, 0)")
        }
    }

    @Test func booleanFormat() throws {
        let words = PayloadFormat(encoding: .boolean, trueWords: ["ON", "yes"], falseWords: ["OFF"])
        #expect(try decode("on", .bool, words) == .bool(true))
        #expect(try decode("YES", .bool, words) == .bool(true))
        #expect(try decode("Off", .uint16, words) == .bool(false))  // numeric point: the encoder makes it 0
        expectError(.unknownWord, "1", .bool, words)
        expectError(.wrongType, "ON", .string(length: 2), words)
    }

    // MARK: JSON

    @Test func jsonPaths() throws {
        let document = """
            {"data": {"value": 21.5, "list": [1, {"x": -3}], "text": "hi", "flag": true, "numeric": " 12.5 ", "deep": [[7]]},
             "room.1": {"t": 19}, "top": 5}
            """
        #expect(try decode(document, .float32, json("data.value")) == .number(21.5))
        #expect(try decode(document, .int16, json("data.list[0]")) == .integer(1))
        #expect(try decode(document, .int16, json("data.list[1].x")) == .integer(-3))
        #expect(try decode(document, .int16, json("data.deep[0][0]")) == .integer(7))
        #expect(try decode(document, .string(length: 4), json("data.text")) == .text("hi"))
        #expect(try decode(document, .bool, json("data.flag")) == .bool(true))
        #expect(try decode(document, .float32, json("data.numeric")) == .number(12.5))  // a string holding a number
        #expect(try decode(document, .uint16, json("data.flag")) == .bool(true))  // true counts as 1
        #expect(try decode(document, .int16, json("[\"room.1\"].t")) == .integer(19))
        #expect(try decode(document, .int16, json("$.top")) == .integer(5))
        #expect(try decode("21.5", .float32, json("$")) == .number(21.5))
        #expect(try decode("[3, 4]", .int16, json("[1]")) == .integer(4))
    }

    @Test func jsonValuesForEachKindOfPoint() throws {
        #expect(try decode("{\"v\": 1.50}", .string(length: 4), json("v")) == .text("1.50"))  // the literal, not 1.5
        #expect(try decode("{\"v\": false}", .string(length: 4), json("v")) == .text("false"))
        #expect(try decode("{\"v\": 0}", .bool, json("v")) == .bool(false))
        #expect(try decode("{\"v\": 1}", .bit(position: 0), json("v")) == .bool(true))
        #expect(try decode("{\"v\": \"ON\"}", .bool, json("v")) == .bool(true))
        #expect(
            try decode("{\"v\": \"caf\\u00e9 \\ud83d\\ude00\\n\"}", .string(length: 8), json("v")) == .text("café 😀\n")
        )
        expectError(.wrongType, "{\"v\": 2}", .bool, json("v"))
        expectError(.wrongType, "{\"v\": 0.5}", .bool, json("v"))
        expectError(.wrongType, "{\"v\": null}", .int16, json("v"))
        expectError(.wrongType, "{\"v\": {\"a\": 1}}", .int16, json("v"))
        expectError(.wrongType, "{\"v\": [1]}", .int16, json("v"))
        expectError(.notANumber, "{\"v\": \"abc\"}", .int16, json("v"))
        expectError(.unknownWord, "{\"v\": \"maybe\"}", .bool, json("v"))
    }

    @Test func jsonPathsThatDoNotMatch() {
        expectError(.pathNotFound, "{\"a\": 1}", .int16, json("b"))
        expectError(.pathNotFound, "{\"a\": 1}", .int16, json("a.b"))
        expectError(.pathNotFound, "{\"a\": [1]}", .int16, json("a[1]"))
        expectError(.pathNotFound, "{\"a\": {\"0\": 1}}", .int16, json("a[0]"))
        expectError(.pathNotFound, "[1]", .int16, json("a"))
        do {
            _ = try decode("{\"data\": {\"other\": 1}}", .int16, json("data.value"))
        } catch {
            #expect(error.message == "JSON path 'data.value': no key 'value' at 'data'")
        }
        do {
            _ = try decode("{\"data\": 5}", .int16, json("data.value"))
        } catch {
            #expect(
                error.message == "JSON path 'data.value': expected an object with key 'value' at 'data', found a number"
            )
        }
    }

    @Test func invalidJSON() {
        for text in [
            "", "{", "{\"a\": }", "{\"a\" 1}", "{'a': 1}", "[1,]", "{\"a\": 01}", "{\"a\": 1} x", "tru",
            "{\"a\": \"\u{01}\"}", "\"\\x\"", "\"\\ud800\"", "{\"a\": -}", "NaN", "{\"a\": .5}",
        ] {
            expectError(.invalidJSON, text, .int16, json("a"))
        }
    }

    @Test func deeplyNestedJSONIsRefusedNotACrash() {
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        expectError(.invalidJSON, deep, .int16, json("$"))
        let objects = String(repeating: "{\"a\":", count: 65) + "1" + String(repeating: "}", count: 65)
        expectError(.invalidJSON, objects, .int16, json("a"))
        let fine = String(repeating: "{\"a\":", count: 64) + "1" + String(repeating: "}", count: 64)
        #expect(throws: Never.self) {
            try decode(fine, .int16, json(Array(repeating: "a", count: 64).joined(separator: ".")))
        }
    }

    @Test func invalidUTF8() {
        for bytes: [UInt8] in [[0xFF], [0x31, 0xC3], [0xED, 0xA0, 0x80], [0xC0, 0xAF]] {
            expectError(.invalidUTF8, bytes, .int16)
            expectError(.invalidUTF8, bytes, .string(length: 4))
            expectError(.invalidUTF8, bytes, .bool, json("a"))
        }
    }

    // MARK: Garbage

    /// Random bytes, and random corruptions of valid documents, never crash the decoder: every
    /// input gives a value or an error.
    @Test func garbageNeverCrashes() {
        var generator = SplitMix64(seed: 0xFEED)
        let types: [PointType] = [
            .int16, .uint64, .int64, .float32, .float64, .bool, .bit(position: 4), .string(length: 4),
        ]
        let formats: [PayloadFormat] = [
            .plain, PayloadFormat(encoding: .boolean), json("a.b[1]"), json("$"), json("x"),
        ]
        let seeds = [
            "{\"a\": {\"b\": [1, 2.5e10, \"3\"]}}", "[true, false, null]", "\"text\"", "-12.5e-3",
            "{\"x\": \"\\u00e9\"}",
        ].map { Array($0.utf8) }
        var values = 0
        var errors = 0
        for iteration in 0..<4000 {
            var bytes: [UInt8]
            if iteration % 2 == 0 {
                bytes = (0..<Int.random(in: 0...48, using: &generator)).map { _ in
                    UInt8.random(in: 0...255, using: &generator)
                }
            } else {
                bytes = seeds[iteration / 2 % seeds.count]
                for _ in 0..<Int.random(in: 1...4, using: &generator) where !bytes.isEmpty {
                    let index = Int.random(in: 0..<bytes.count, using: &generator)
                    switch Int.random(in: 0...2, using: &generator) {
                    case 0: bytes[index] = UInt8.random(in: 0...255, using: &generator)
                    case 1: bytes.remove(at: index)
                    default: bytes.insert(Array("{}[]\",:-.e0\\".utf8).randomElement(using: &generator)!, at: index)
                    }
                }
            }
            for type in types {
                for format in formats where !(type.name == "string" && format.encoding == .boolean) {
                    do {
                        _ = try PayloadDecoder(format: format, type: type).decode(bytes)
                        values += 1
                    } catch {
                        errors += 1
                        #expect(!error.message.isEmpty)
                    }
                }
            }
        }
        #expect(values > 0 && errors > 0)
    }

    @Test func decoderForAConfiguredPoint() throws {
        let point = PointConfiguration(
            name: "p",
            unitID: 1,
            area: .inputRegister,
            address: 0,
            type: .int16,
            scale: 10,
            payload: json("pressure")
        )
        #expect(try PayloadDecoder(point: point).decode(Array("{\"pressure\": 1.25}".utf8)) == .number(1.25))
    }
}
