import Foundation
import FuzzSupport

// The template's segments, the encoder's plain text and the JSON parser are internal or
// `package` to the module.
@testable import MQTTModbusBridgeConfiguration

/// The command-template parser and renderer.
///
/// Input: a byte for the payload format (plain or json), one for the point type, one for the
/// kind of value; the value's bytes; the timestamp (8 bytes, milliseconds); then, each as a
/// length and bytes, the correlation id, the point name and the template text.
///
/// Invariants: a template that parses keeps its text, and its segments written out again parse
/// to the same segments; text without `{{` is one literal; the rendered payload is the
/// literals with each placeholder's text put in; with the json format, a JSON document of
/// placeholders renders to valid JSON whose fields hold exactly the value, the correlation id,
/// the point name, the unit and the time (escaping is right for any text); the time is a valid
/// ISO 8601 UTC date that names the same millisecond.
@main
enum FuzzCommandTemplate {
    static func main() { FuzzDriver.main(fuzzCommandTemplate) }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzCommandTemplate(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    var input = FuzzInput(FuzzDriver.bytes(data, size))
    let isJSON = input.flag()
    let types: [PointType] = [.int16, .uint32, .int64, .float32, .float64, .bool, .string(length: 16)]
    let type = types[input.choice(types.count)]
    let value: PointValue
    switch input.choice(5) {
    case 0: value = .integer(Int64(bitPattern: input.uint64()))
    case 1: value = .unsigned(input.uint64())
    case 2: value = .number(Double(bitPattern: input.uint64()))
    case 3: value = .bool(input.flag())
    default: value = .text(input.text(maxLength: 32))
    }
    let milliseconds = Int64(bitPattern: input.uint64())
    let timestamp = Date(timeIntervalSince1970: Double(milliseconds) / 1000)
    let correlationID = input.text(maxLength: 64)
    let pointName = input.text(maxLength: 32)
    let text = String(decoding: input.rest(), as: UTF8.self)

    let format = PayloadFormat(encoding: isJSON ? .json(path: JSONPath([.key("value")])) : .plain)
    func point(_ template: CommandTemplate) -> PointConfiguration {
        PointConfiguration(
            name: pointName,
            unitID: 7,
            area: type.isBoolean ? .coil : .holdingRegister,
            address: 0,
            type: type,
            payload: format,
            command: CommandSettings(topic: "fuzz/set", template: template, ack: AckSettings(mode: .mqtt5))
        )
    }

    checkTemplate(text, point: point, value: value, correlationID: correlationID, timestamp: timestamp)
    if isJSON {
        checkJSONRendering(point: point, value: value, correlationID: correlationID, timestamp: timestamp)
    }
    checkTimestamp(milliseconds)
    return 0
}

func checkTemplate(
    _ text: String,
    point: (CommandTemplate) -> PointConfiguration,
    value: PointValue,
    correlationID: String,
    timestamp: Date
) {
    let template: CommandTemplate
    do {
        template = try CommandTemplate(parsing: text)
    } catch {
        fuzzCheck(text.contains("{{"), "text without '{{' refused: \(error)")
        return
    }
    fuzzCheck(template.text == text, "the template's text changed")
    if !text.contains("{{") {
        fuzzCheck(template.segments == (text.isEmpty ? [] : [.literal(text)]), "text without '{{' is not one literal")
    }
    let written = template.segments.map { segment in
        switch segment {
        case .literal(let literal): literal
        case .placeholder(let placeholder): "{{\(placeholder.rawValue)}}"
        }
    }.joined()
    // Literals may hold '{{' only when parsing split them there, so compare the placeholders.
    if let again = try? CommandTemplate(parsing: written) {
        fuzzCheck(again.placeholders == template.placeholders, "'\(written)' parses to other placeholders")
    } else {
        fuzzCheck(false, "the segments written out, '\(written)', do not parse")
    }

    let encoder = CommandEncoder(point: point(template))
    let rendered: [UInt8]
    do {
        rendered = try encoder.encode(value, correlationID: correlationID, timestamp: timestamp)
    } catch {
        fuzzCheck(template.placeholders.contains(.value), "a template without {{value}} failed: \(error)")
        return
    }
    let isJSON = encoder.format.jsonPath != nil
    var expected = ""
    for segment in template.segments {
        switch segment {
        case .literal(let literal): expected += literal
        case .placeholder(.value):
            expected += isJSON ? (try! encoder.jsonLiteral(value)).serialized() : (try! encoder.plainText(value))
        case .placeholder(let placeholder):
            let text: String
            switch placeholder {
            case .correlationID: text = correlationID
            case .point: text = encoder.point.name
            case .unit: text = "7"
            default: text = CommandEncoder.iso8601(timestamp)
            }
            expected += isJSON ? JSONText.escaped(text) : text
        }
    }
    fuzzCheck(rendered == Array(expected.utf8), "rendered '\(String(decoding: rendered, as: UTF8.self))'")
}

/// A JSON document of every placeholder, rendered with this input's texts.
func checkJSONRendering(
    point: (CommandTemplate) -> PointConfiguration,
    value: PointValue,
    correlationID: String,
    timestamp: Date
) {
    let template = try! CommandTemplate(
        parsing: #"{"v":{{value}},"id":"{{correlation_id}}","p":"{{ point }}","u":{{unit}},"t":"{{timestamp}}"}"#
    )
    let encoder = CommandEncoder(point: point(template))
    guard let rendered = try? encoder.encode(value, correlationID: correlationID, timestamp: timestamp) else { return }
    let document: JSONValue
    do {
        document = try JSONParser.parse(rendered)
    } catch {
        fuzzCheck(
            false,
            "rendered JSON does not parse (\(error.message)): \(String(decoding: rendered, as: UTF8.self))"
        )
        return
    }
    fuzzCheck(document.member("id") == .string(correlationID), "correlation id '\(correlationID)' garbled")
    fuzzCheck(document.member("p") == .string(encoder.point.name), "point name '\(encoder.point.name)' garbled")
    fuzzCheck(document.member("u") == .number("7"), "unit garbled")
    fuzzCheck(document.member("t") == .string(CommandEncoder.iso8601(timestamp)), "timestamp garbled")
    let written = document.member("v")
    // What the point's own state decoder makes of the value written is the value itself.
    guard let written,
        let decoded = try? PayloadDecoder(format: .plain, type: encoder.point.type).decode(
            Array((written.stringValue ?? written.serialized()).utf8)
        )
    else {
        fuzzCheck(written != nil, "no value in \(String(decoding: rendered, as: UTF8.self))")
        return
    }
    if case .text(let text) = value, case .string = encoder.point.type {
        fuzzCheck(decoded == .text(text), "text '\(text)' written as \(written.serialized())")
    }
}

extension JSONValue {
    var stringValue: String? {
        if case .string(let text) = self { return text }
        return nil
    }
}

/// The date of `2025-01-02T03:04:05.678Z`, checked against the days-from-civil algorithm run
/// the other way.
func checkTimestamp(_ milliseconds: Int64) {
    // Years 1...9999, where the format has four-digit years.
    guard milliseconds >= -62_135_596_800_000, milliseconds <= 253_402_300_799_999 else { return }
    let text = CommandEncoder.iso8601(Date(timeIntervalSince1970: Double(milliseconds) / 1000))
    let fields = text.split(whereSeparator: { "-T:.Z".contains($0) }).map { Int64($0) }
    fuzzCheck(text.count == 24 && fields.count == 7 && fields.allSatisfy { $0 != nil }, "timestamp '\(text)'")
    let (year, month, day) = (fields[0]!, fields[1]!, fields[2]!)
    let (hour, minute, second, millisecond) = (fields[3]!, fields[4]!, fields[5]!, fields[6]!)
    fuzzCheck((1...12).contains(month) && (1...31).contains(day), "date '\(text)'")
    fuzzCheck(hour < 24 && minute < 60 && second < 60 && millisecond < 1000, "time '\(text)'")
    // Days from civil (the inverse of the encoder's conversion).
    let y = month <= 2 ? year - 1 : year
    let era = (y >= 0 ? y : y - 399) / 400
    let yearOfEra = y - era * 400
    let dayOfYear = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1
    let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
    let days = era * 146_097 + dayOfEra - 719_468
    let back = ((days * 24 + hour) * 60 + minute) * 60_000 + second * 1000 + millisecond
    // The Date holds seconds as a Double: the millisecond can be one off from the input.
    fuzzCheck(abs(back - milliseconds) <= 1, "'\(text)' is \(back) ms, not \(milliseconds)")
}
