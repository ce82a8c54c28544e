/// Turns the payload of a state message into a ``PointValue``, following the point's
/// ``PayloadFormat`` and type. Pure and total: any byte sequence gives a value or a
/// ``PayloadDecodingError``, never a crash.
///
/// What each point kind accepts:
///
/// | point type | `plain` | `json` (value at the path) | `boolean` |
/// |---|---|---|---|
/// | numeric (`int16` ... `float64`) | a number: `21.5`, `-3`, `1e3`, `0x1F` | a number, a string holding a number, `true`/`false` (1/0) | a true/false word (1/0) |
/// | `bool`, `bit` | a true/false word | `true`/`false`, 0/1, a string holding a word | a true/false word |
/// | `string` | the payload text, unchanged | a string; numbers and booleans as their text | not allowed |
///
/// Numbers: integer literals that fit `Int64` or `UInt64` decode exactly (``PointValue/integer(_:)``,
/// ``PointValue/unsigned(_:)``); others decode as `Double` (``PointValue/number(_:)``). `NaN`,
/// infinities and numbers beyond the range of `Double` are errors. Surrounding white space is
/// ignored for numbers and words.
public struct PayloadDecoder: Sendable {
    /// The payload format.
    public let format: PayloadFormat
    /// The point's type.
    public let type: PointType

    /// A decoder for a point.
    public init(point: PointConfiguration) {
        self.init(format: point.payload, type: point.type)
    }

    /// A decoder for a format and a type.
    public init(format: PayloadFormat, type: PointType) {
        self.format = format
        self.type = type
    }

    /// Decodes one payload.
    public func decode(_ payload: [UInt8]) throws(PayloadDecodingError) -> PointValue {
        guard let text = String(validating: payload, as: UTF8.self) else {
            throw PayloadDecodingError(.invalidUTF8, "the payload is not valid UTF-8")
        }
        switch format.encoding {
        case .plain:
            if case .string = type { return .text(text) }
            if type.isBoolean { return try word(text) }
            return try NumberText.parse(text.trimmingWhitespace())
        case .boolean:
            if case .string = type {
                throw PayloadDecodingError(.wrongType, "the boolean payload format does not apply to string points")
            }
            return try word(text)
        case .json(let path):
            let document: JSONValue
            do {
                document = try JSONParser.parse(payload)
            } catch {
                throw PayloadDecodingError(.invalidJSON, error.message)
            }
            let value: JSONValue
            switch document.value(at: path) {
            case .success(let found): value = found
            case .failure(let error): throw PayloadDecodingError(.pathNotFound, error.message)
            }
            return try convert(value, path: path)
        }
    }

    private func word(_ text: String) throws(PayloadDecodingError) -> PointValue {
        if let truth = format.truthValue(of: text) { return .bool(truth) }
        let shown = text.count > 40 ? String(text.prefix(40)) + "…" : text
        throw PayloadDecodingError(
            .unknownWord,
            "'\(shown)' is neither a true word (\(format.trueWords.joined(separator: ", "))) nor a false word (\(format.falseWords.joined(separator: ", ")))"
        )
    }

    private func convert(_ value: JSONValue, path: JSONPath) throws(PayloadDecodingError) -> PointValue {
        switch value {
        case .null:
            throw PayloadDecodingError(.wrongType, "the value at '\(path)' is null")
        case .array, .object:
            throw PayloadDecodingError(.wrongType, "the value at '\(path)' is \(value.kindName), not a single value")
        case .bool(let flag):
            if case .string = type { return .text(flag ? "true" : "false") }
            return .bool(flag)
        case .number(let literal):
            if case .string = type { return .text(literal) }
            let number = try NumberText.parse(Substring(literal))
            if type.isBoolean {
                switch number {
                case .integer(0): return .bool(false)
                case .integer(1): return .bool(true)
                default:
                    throw PayloadDecodingError(
                        .wrongType,
                        "the number \(literal) at '\(path)' is not a truth value; only 0 and 1 are"
                    )
                }
            }
            return number
        case .string(let text):
            if case .string = type { return .text(text) }
            if type.isBoolean { return try word(text) }
            return try NumberText.parse(text.trimmingWhitespace())
        }
    }
}

/// Why a payload could not be decoded.
public struct PayloadDecodingError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The kind of problem.
    public enum Kind: Sendable, Hashable {
        /// The bytes are not UTF-8.
        case invalidUTF8
        /// The payload is not a JSON document.
        case invalidJSON
        /// The JSON path does not lead to a value.
        case pathNotFound
        /// The value is of the wrong kind (an object, null, text where a number is needed...).
        case wrongType
        /// The text is not a number.
        case notANumber
        /// The number is beyond the range of `Double` (or not finite).
        case outOfRange
        /// The text is neither a true nor a false word.
        case unknownWord
    }

    /// The kind of problem.
    public var kind: Kind
    /// A sentence for logs.
    public var message: String

    /// Creates an error.
    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    /// The message.
    public var description: String { message }
}

/// Number literals in payloads and configuration values.
enum NumberText {
    /// Parses `[+-]digits[.digits][e[+-]digits]`, `[+-].digits...`, or `[+-]0x<hex>`.
    /// Integer literals that fit become exact integers.
    static func parse(_ text: Substring) throws(PayloadDecodingError) -> PointValue {
        let shown = text.count > 40 ? String(text.prefix(40)) + "…" : String(text)
        let notANumber = PayloadDecodingError(
            .notANumber,
            text.isEmpty ? "the payload is empty, not a number" : "'\(shown)' is not a number"
        )
        let scalars = Array(text.utf8)
        var index = 0
        var negative = false
        if index < scalars.count, scalars[index] == UInt8(ascii: "+") || scalars[index] == UInt8(ascii: "-") {
            negative = scalars[index] == UInt8(ascii: "-")
            index += 1
        }
        // Hexadecimal integers.
        if index + 1 < scalars.count, scalars[index] == UInt8(ascii: "0"),
            scalars[index + 1] == UInt8(ascii: "x") || scalars[index + 1] == UInt8(ascii: "X")
        {
            let digits = String(decoding: scalars[(index + 2)...], as: UTF8.self)
            guard !digits.isEmpty, let magnitude = UInt64(digits, radix: 16) else {
                if !digits.isEmpty, digits.utf8.allSatisfy({ isHexDigit($0) }) {
                    throw PayloadDecodingError(.outOfRange, "'\(shown)' is beyond 64 bits")
                }
                throw notANumber
            }
            return try integer(magnitude: magnitude, negative: negative, shown: shown)
        }
        var sawDigit = false
        var isInteger = true
        while index < scalars.count, isDigit(scalars[index]) {
            index += 1
            sawDigit = true
        }
        if index < scalars.count, scalars[index] == UInt8(ascii: ".") {
            isInteger = false
            index += 1
            while index < scalars.count, isDigit(scalars[index]) {
                index += 1
                sawDigit = true
            }
        }
        guard sawDigit else { throw notANumber }
        if index < scalars.count, scalars[index] == UInt8(ascii: "e") || scalars[index] == UInt8(ascii: "E") {
            isInteger = false
            index += 1
            if index < scalars.count, scalars[index] == UInt8(ascii: "+") || scalars[index] == UInt8(ascii: "-") {
                index += 1
            }
            var exponentDigits = false
            while index < scalars.count, isDigit(scalars[index]) {
                index += 1
                exponentDigits = true
            }
            guard exponentDigits else { throw notANumber }
        }
        guard index == scalars.count else { throw notANumber }
        if isInteger {
            let digitStart = (scalars.first == UInt8(ascii: "+") || scalars.first == UInt8(ascii: "-")) ? 1 : 0
            let digits = String(decoding: scalars[digitStart...], as: UTF8.self)
            if let magnitude = UInt64(digits) {
                return try integer(magnitude: magnitude, negative: negative, shown: shown)
            }
        }
        let literal = String(decoding: scalars, as: UTF8.self)
        guard let value = Double(literal) else { throw notANumber }
        guard value.isFinite else {
            throw PayloadDecodingError(.outOfRange, "'\(shown)' is beyond the range of a 64-bit float")
        }
        return .number(value)
    }

    private static func integer(
        magnitude: UInt64,
        negative: Bool,
        shown: String
    ) throws(PayloadDecodingError) -> PointValue {
        if !negative { return .exact(magnitude) }
        if magnitude <= UInt64(Int64.max) { return .integer(-Int64(magnitude)) }
        if magnitude == UInt64(Int64.max) + 1 { return .integer(Int64.min) }
        return .number(-Double(magnitude))
    }

    private static func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }
    private static func isHexDigit(_ byte: UInt8) -> Bool {
        isDigit(byte) || (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "f"))
            || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "F"))
    }
}
