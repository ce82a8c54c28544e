/// A point's value in engineering units: what an MQTT payload carries and what the registers
/// encode.
///
/// 64-bit integers have cases of their own so that `int64` and `uint64` values pass through the
/// bridge exactly; they are never routed through `Double`.
public enum PointValue: Sendable, Hashable, CustomStringConvertible {
    /// A signed integer, exact.
    case integer(Int64)
    /// An unsigned integer above `Int64.max`, exact. Smaller unsigned values use ``integer(_:)``.
    case unsigned(UInt64)
    /// A floating-point (or scaled) number.
    case number(Double)
    /// A truth value.
    case bool(Bool)
    /// Text.
    case text(String)

    /// The value as a `Double` (booleans as 1 and 0); `nil` for text.
    public var doubleValue: Double? {
        switch self {
        case .integer(let value): Double(value)
        case .unsigned(let value): Double(value)
        case .number(let value): value
        case .bool(let value): value ? 1 : 0
        case .text: nil
        }
    }

    /// Creates the exact integer value of `value`: ``integer(_:)`` when it fits `Int64`,
    /// ``unsigned(_:)`` otherwise.
    public static func exact(_ value: UInt64) -> PointValue {
        value <= UInt64(Int64.max) ? .integer(Int64(value)) : .unsigned(value)
    }

    /// A short rendering for logs: `42`, `21.5`, `true`, `"text"`.
    public var description: String {
        switch self {
        case .integer(let value): String(value)
        case .unsigned(let value): String(value)
        case .number(let value): NumberFormatting.shortest(value)
        case .bool(let value): value ? "true" : "false"
        case .text(let value): "\"\(value)\""
        }
    }
}
