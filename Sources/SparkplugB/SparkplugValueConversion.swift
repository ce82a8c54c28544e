import MQTTModbusBridgeConfiguration

/// A metric value that does not match its datatype, or a point value that its metric's
/// datatype cannot carry.
public struct SparkplugValueError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What is wrong.
    public var reason: String

    /// Creates an error.
    public init(_ reason: String) { self.reason = reason }

    /// The reason.
    public var description: String { reason }
}

extension SparkplugPayload.Value {
    /// The value as a point value, read as `datatype` says.
    ///
    /// Signed integers of up to 32 bits travel in the 32-bit field as their two's complement;
    /// some edge nodes sign-extend an Int8 or Int16 to 32 bits and some do not, so only the
    /// datatype's own bits are read. Integers are accepted in either integer field (a UInt32 in
    /// the 64-bit field, as some implementations send it), never from a float or a text.
    public func pointValue(as datatype: SparkplugDataType) throws(SparkplugValueError) -> PointValue {
        func integer() throws(SparkplugValueError) -> UInt64 {
            switch self {
            case .int(let value): return UInt64(value)
            case .long(let value): return value
            default: throw mismatch(datatype)
            }
        }
        switch datatype {
        case .int8: return .integer(Int64(Int8(truncatingIfNeeded: try integer())))
        case .int16: return .integer(Int64(Int16(truncatingIfNeeded: try integer())))
        case .int32: return .integer(Int64(Int32(truncatingIfNeeded: try integer())))
        case .int64: return .integer(Int64(bitPattern: try integer()))
        case .uint8: return .integer(Int64(UInt8(truncatingIfNeeded: try integer())))
        case .uint16: return .integer(Int64(UInt16(truncatingIfNeeded: try integer())))
        case .uint32: return .integer(Int64(UInt32(truncatingIfNeeded: try integer())))
        case .uint64, .dateTime: return .exact(try integer())
        case .float:
            guard case .float(let value) = self else { throw mismatch(datatype) }
            return .number(Double(value))
        case .double:
            guard case .double(let value) = self else { throw mismatch(datatype) }
            return .number(value)
        case .boolean:
            guard case .boolean(let value) = self else { throw mismatch(datatype) }
            return .bool(value)
        case .string, .text, .uuid:
            guard case .string(let value) = self else { throw mismatch(datatype) }
            return .text(value)
        default:
            throw SparkplugValueError("a \(datatype) metric has no register form")
        }
    }

    private func mismatch(_ datatype: SparkplugDataType) -> SparkplugValueError {
        SparkplugValueError("a \(datatype) metric carries \(fieldName)")
    }

    /// The protobuf field the value is in, for messages.
    var fieldName: String {
        switch self {
        case .int: "int_value"
        case .long: "long_value"
        case .float: "float_value"
        case .double: "double_value"
        case .boolean: "boolean_value"
        case .string: "string_value"
        case .bytes: "bytes_value"
        case .unsupported: "a data set or template"
        }
    }

    /// The value a command carries for `value` in a metric of `datatype`: the field and bits
    /// the datatype travels in (signed integers of up to 32 bits sign-extended to 32 bits).
    ///
    /// Refused, never rounded or wrapped: a number outside the datatype's range, a fraction for
    /// an integer datatype, text for a number and the reverse, NaN and infinities.
    public init(_ value: PointValue, as datatype: SparkplugDataType) throws(SparkplugValueError) {
        func integer(in range: ClosedRange<Int64>) throws(SparkplugValueError) -> Int64 {
            let exact: Int64?
            switch value {
            case .integer(let number): exact = number
            case .unsigned: exact = nil
            case .bool(let flag): exact = flag ? 1 : 0
            case .number(let number):
                exact = number.isFinite && number.rounded() == number ? Int64(exactly: number) : nil
            case .text: throw SparkplugValueError("text '\(value)' cannot be a \(datatype) metric")
            }
            guard let exact, range.contains(exact) else {
                throw SparkplugValueError("\(value) is outside the range of a \(datatype) metric (\(range))")
            }
            return exact
        }
        switch datatype {
        case .int8: self = .int(UInt32(bitPattern: Int32(try integer(in: Int64(Int8.min)...Int64(Int8.max)))))
        case .int16: self = .int(UInt32(bitPattern: Int32(try integer(in: Int64(Int16.min)...Int64(Int16.max)))))
        case .int32: self = .int(UInt32(bitPattern: Int32(try integer(in: Int64(Int32.min)...Int64(Int32.max)))))
        case .int64: self = .long(UInt64(bitPattern: try integer(in: Int64.min...Int64.max)))
        case .uint8: self = .int(UInt32(try integer(in: 0...Int64(UInt8.max))))
        case .uint16: self = .int(UInt32(try integer(in: 0...Int64(UInt16.max))))
        case .uint32: self = .int(UInt32(try integer(in: 0...Int64(UInt32.max))))
        case .uint64, .dateTime:
            if case .unsigned(let number) = value {
                self = .long(number)
            } else if case .number(let number) = value, number.isFinite, number.rounded() == number,
                let exact = UInt64(exactly: number)
            {
                self = .long(exact)
            } else {
                self = .long(UInt64(try integer(in: 0...Int64.max)))
            }
        case .float:
            guard let number = value.numeric, number.isFinite, abs(number) <= Double(Float.greatestFiniteMagnitude)
            else { throw SparkplugValueError("\(value) cannot be a Float metric") }
            self = .float(Float(number))
        case .double:
            guard let number = value.numeric, number.isFinite else {
                throw SparkplugValueError("\(value) cannot be a Double metric")
            }
            self = .double(number)
        case .boolean:
            switch value {
            case .bool(let flag): self = .boolean(flag)
            case .integer(0): self = .boolean(false)
            case .integer(1): self = .boolean(true)
            case .number(let number) where number == 0 || number == 1: self = .boolean(number == 1)
            default: throw SparkplugValueError("\(value) is not a Boolean (0 or 1)")
            }
        case .string, .text, .uuid:
            guard case .text(let text) = value else { throw SparkplugValueError("\(value) is not text") }
            self = .string(text)
        default:
            throw SparkplugValueError("a \(datatype) metric has no register form")
        }
    }
}

extension PointValue {
    /// The value as a number, booleans excepted (a Float metric takes no true/false).
    fileprivate var numeric: Double? {
        switch self {
        case .integer(let value): Double(value)
        case .unsigned(let value): Double(value)
        case .number(let value): value
        case .bool, .text: nil
        }
    }
}
