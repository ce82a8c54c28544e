import Foundation

/// Builds the payload of the command message that carries a Modbus write to a device.
///
/// With a ``CommandTemplate`` the placeholders are filled in (`{{value}}` rendered for the
/// payload format: a JSON literal for `json`, the text otherwise). Without one, the value is
/// published in the point's payload format:
///
/// | format | command payload for 21.5 / true / "abc" |
/// |---|---|
/// | `plain` | `21.5` / the first true word / `abc` |
/// | `json` with path `a.b` | `{"a":{"b":21.5}}` / `{"a":{"b":true}}` / `{"a":{"b":"abc"}}` |
/// | `json` with path `$` | `21.5` / `true` / `"abc"` |
/// | `boolean` | the first true word if the value is non-zero, else the first false word |
///
/// The format is the command's own (``CommandSettings/payload``, the `command_payload` key) when
/// it has one, the point's otherwise. A `bool` or `bit` point whose format lists its own true and
/// false words (not the defaults) sends its first word in JSON too, as a string: a zigbee2mqtt
/// plug with `true_words: [ON]` gets `{"state":"ON"}`, not `{"state":true}`, and `{{value}}`
/// becomes `"ON"`. With the default words JSON carries `true`/`false`.
///
/// With the `correlation_id` ack mode and no template, the id is added to the JSON document at
/// ``AckSettings/idField`` (the loader refuses configurations where it cannot be).
///
/// Numbers: integer types and integral values without a fraction (`21`, not `21.0`);
/// `float32` points in the shortest form that reads back as the same `Float` (`21.3`); other
/// numbers in the shortest form that reads back as the same `Double`.
public struct CommandEncoder: Sendable {
    /// The point the commands are for.
    public let point: PointConfiguration
    /// The format commands are written in: the command's own, or the point's.
    public let format: PayloadFormat

    /// An encoder for a point (normally a writable one; without command settings the payload
    /// format alone decides).
    public init(point: PointConfiguration) {
        self.point = point
        self.format = point.command?.payload ?? point.payload
    }

    /// The command payload for `value`.
    ///
    /// - Parameters:
    ///   - value: the value written, normally what ``RegisterDecoder`` made of the Modbus write.
    ///   - correlationID: the id of this command; required by templates that use
    ///     `{{correlation_id}}` and by default JSON commands in the `correlation_id` ack mode.
    ///   - timestamp: the time for `{{timestamp}}`.
    public func encode(
        _ value: PointValue,
        correlationID: String? = nil,
        timestamp: Date = Date()
    ) throws(CommandEncodingError) -> [UInt8] {
        if let template = point.command?.template {
            return Array(try render(template, value: value, correlationID: correlationID, timestamp: timestamp).utf8)
        }
        switch format.encoding {
        case .plain, .boolean:
            return Array(try plainText(value).utf8)
        case .json(let path):
            var document = JSONValue.building(try jsonLiteral(value), at: path.components[...])
            if let ack = point.command?.ack, ack.mode == .correlationID {
                guard let correlationID else {
                    throw CommandEncodingError("the correlation_id ack mode needs a correlation id for the command")
                }
                guard document.set(.string(correlationID), at: ack.idField.components[...]) else {
                    throw CommandEncodingError("the id field '\(ack.idField)' collides with the value path '\(path)'")
                }
            }
            return Array(document.serialized().utf8)
        }
    }

    /// The template with its placeholders filled in.
    func render(
        _ template: CommandTemplate,
        value: PointValue,
        correlationID: String?,
        timestamp: Date
    ) throws(CommandEncodingError) -> String {
        let isJSON = format.jsonPath != nil
        var out = ""
        for segment in template.segments {
            switch segment {
            case .literal(let text):
                out += text
            case .placeholder(let placeholder):
                let text: String
                switch placeholder {
                case .value:
                    out += isJSON ? try jsonLiteral(value).serialized() : try plainText(value)
                    continue
                case .correlationID:
                    guard let correlationID else {
                        throw CommandEncodingError(
                            "the template uses {{correlation_id}} but the command has no correlation id"
                        )
                    }
                    text = correlationID
                case .point: text = point.name
                case .unit: text = String(point.unitID)
                case .timestamp: text = Self.iso8601(timestamp)
                }
                out += isJSON ? JSONText.escaped(text) : text
            }
        }
        return out
    }

    /// The value as plain text: numbers, the first true/false word, or the text.
    func plainText(_ value: PointValue) throws(CommandEncodingError) -> String {
        let kind = point.type
        if format.encoding == .boolean || kind.isBoolean {
            return try truth(value) ? format.trueWords.first ?? "true" : format.falseWords.first ?? "false"
        }
        if case .string = kind { return text(value) }
        return try number(value)
    }

    /// The value as a JSON literal.
    func jsonLiteral(_ value: PointValue) throws(CommandEncodingError) -> JSONValue {
        if point.type.isBoolean {
            let truth = try truth(value)
            if format.hasOwnWords, let word = truth ? format.trueWords.first : format.falseWords.first {
                return .string(word)
            }
            return .bool(truth)
        }
        if case .string = point.type { return .string(text(value)) }
        return .number(try number(value))
    }

    private func truth(_ value: PointValue) throws(CommandEncodingError) -> Bool {
        switch value {
        case .bool(let flag): return flag
        case .text(let text):
            guard let truth = format.truthValue(of: text) else {
                throw CommandEncodingError("'\(text)' is not a true or false word")
            }
            return truth
        default:
            guard let number = value.doubleValue, number.isFinite else {
                throw CommandEncodingError("\(value) is not a truth value")
            }
            return number != 0
        }
    }

    private func text(_ value: PointValue) -> String {
        switch value {
        case .text(let text): text
        case .bool(let flag): flag ? "true" : "false"
        case .integer(let integer): String(integer)
        case .unsigned(let integer): String(integer)
        case .number(let number): NumberFormatting.shortest(number)
        }
    }

    private func number(_ value: PointValue) throws(CommandEncodingError) -> String {
        switch value {
        case .integer(let integer): return String(integer)
        case .unsigned(let integer): return String(integer)
        case .bool(let flag): return flag ? "1" : "0"
        case .text(let text):
            throw CommandEncodingError("a \(point.type.name) point needs a number, not the text '\(text)'")
        case .number(let number):
            guard number.isFinite else {
                throw CommandEncodingError("\(number) cannot be sent: commands carry finite numbers only")
            }
            if point.type == .float32, Float(number).isFinite { return NumberFormatting.shortest(Float(number)) }
            return NumberFormatting.shortest(number)
        }
    }

    /// `2025-01-02T03:04:05.678Z`.
    static func iso8601(_ date: Date) -> String {
        // Dates beyond ±73 million years are clamped rather than trapping: the arithmetic below
        // must stay clear of Int64's ends (a date just inside them overflowed; found by fuzzing).
        let limit = Double(Int64.max / 4)
        let milliseconds = min(max((date.timeIntervalSince1970 * 1000).rounded(.down), -limit), limit)
        let totalMilliseconds = Int64(milliseconds.isNaN ? 0 : milliseconds)
        let millisecond = Int(((totalMilliseconds % 1000) + 1000) % 1000)
        let totalSeconds = (totalMilliseconds - Int64(millisecond)) / 1000
        var days = totalSeconds / 86_400
        var secondOfDay = totalSeconds % 86_400
        if secondOfDay < 0 {
            secondOfDay += 86_400
            days -= 1
        }
        // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let monthIndex = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * monthIndex + 2) / 5 + 1
        let month = monthIndex < 10 ? monthIndex + 3 : monthIndex - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        func pad(_ value: Int64, _ width: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        return
            "\(pad(year, 4))-\(pad(month, 2))-\(pad(day, 2))T\(pad(secondOfDay / 3600, 2)):\(pad(secondOfDay / 60 % 60, 2)):\(pad(secondOfDay % 60, 2)).\(pad(Int64(millisecond), 3))Z"
    }
}

/// Why a command payload could not be built.
public struct CommandEncodingError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What is wrong.
    public var message: String

    /// Creates an error.
    public init(_ message: String) {
        self.message = message
    }

    /// The message.
    public var description: String { message }
}
