import ModbusCore

/// The data type of a point: how its value is laid out in Modbus bits or registers.
public enum PointType: Sendable, Hashable, CustomStringConvertible {
    /// A single bit: a coil or a discrete input, 0 or 1. Only in the bit areas.
    case bool
    /// Signed 16-bit integer, one register.
    case int16
    /// Unsigned 16-bit integer, one register.
    case uint16
    /// Signed 32-bit integer, two registers.
    case int32
    /// Unsigned 32-bit integer, two registers.
    case uint32
    /// Signed 64-bit integer, four registers.
    case int64
    /// Unsigned 64-bit integer, four registers.
    case uint64
    /// IEEE 754 single precision, two registers.
    case float32
    /// IEEE 754 double precision, four registers.
    case float64
    /// UTF-8 text in `length` registers (2 bytes each, padded with NUL), `length` in 1...123.
    case string(length: Int)
    /// One bit (`position` 0...15, 0 = least significant) of a holding or input register. Several
    /// `bit` points may share a register, each with its own position.
    case bit(position: Int)

    /// The most registers a string point may span: the most FC16 can write in one request.
    public static let maxStringLength = 123

    /// The number of Modbus addresses the point occupies: 1 for `bool` and `bit`, 1, 2 or 4 for
    /// the numeric types, `length` for `string`.
    public var registerCount: Int {
        switch self {
        case .bool, .int16, .uint16, .bit: 1
        case .int32, .uint32, .float32: 2
        case .int64, .uint64, .float64: 4
        case .string(let length): length
        }
    }

    /// The type's name without its parameter: the word a configuration's `type:` key takes.
    ///
    /// The one list of type names: the loader, its error messages and ``name`` all read it.
    public enum Kind: String, CaseIterable, Sendable, Hashable {
        case bool, int16, uint16, int32, uint32, int64, uint64, float32, float64, string, bit

        /// The type, for the kinds that need no parameter; `nil` for `string` (a length) and
        /// `bit` (a position).
        public var unparameterized: PointType? {
            switch self {
            case .bool: .bool
            case .int16: .int16
            case .uint16: .uint16
            case .int32: .int32
            case .uint32: .uint32
            case .int64: .int64
            case .uint64: .uint64
            case .float32: .float32
            case .float64: .float64
            case .string, .bit: nil
            }
        }
    }

    /// The type's kind: its name without the length or bit position.
    public var kind: Kind {
        switch self {
        case .bool: .bool
        case .int16: .int16
        case .uint16: .uint16
        case .int32: .int32
        case .uint32: .uint32
        case .int64: .int64
        case .uint64: .uint64
        case .float32: .float32
        case .float64: .float64
        case .string: .string
        case .bit: .bit
        }
    }

    /// The name used in configuration files: `float32`, `string`, `bit` ...
    public var name: String { kind.rawValue }

    /// The configuration name, with the length or bit position: `string(8)`, `bit(3)`.
    public var description: String {
        switch self {
        case .string(let length): "string(\(length))"
        case .bit(let position): "bit(\(position))"
        default: name
        }
    }

    /// Whether the type is one of the integer types (`int16` ... `uint64`).
    public var isInteger: Bool {
        switch self {
        case .int16, .uint16, .int32, .uint32, .int64, .uint64: true
        default: false
        }
    }

    /// Whether the type is `float32` or `float64`.
    public var isFloatingPoint: Bool { self == .float32 || self == .float64 }

    /// Whether the type holds a number (integer or floating point), so that scale and offset apply.
    public var isNumeric: Bool { isInteger || isFloatingPoint }

    /// Whether the type holds a truth value (`bool` or `bit`).
    public var isBoolean: Bool {
        switch self {
        case .bool, .bit: true
        default: false
        }
    }

    /// Whether a value of this type can live in `area`: `bool` only in the bit areas (coils,
    /// discrete inputs), every other type only in the register areas.
    public func fits(_ area: ModbusArea) -> Bool {
        self == .bool ? area.isBitArea : !area.isBitArea
    }

    /// The range of raw integer values, for the integer types.
    var integerRange: ClosedRange<Int128>? {
        switch self {
        case .int16: Int128(Int16.min)...Int128(Int16.max)
        case .uint16: 0...Int128(UInt16.max)
        case .int32: Int128(Int32.min)...Int128(Int32.max)
        case .uint32: 0...Int128(UInt32.max)
        case .int64: Int128(Int64.min)...Int128(Int64.max)
        case .uint64: 0...Int128(UInt64.max)
        default: nil
        }
    }
}

/// The order in which the bytes of a multi-register value are placed in registers.
///
/// Letters name the bytes of the value from the most significant (A) down. For a 32-bit value
/// with bytes A B C D, register *n* is the first register (the point's address):
///
/// | order | register n | register n+1 | known as |
/// |---|---|---|---|
/// | `ABCD` | A B | C D | big-endian, the Modbus convention |
/// | `CDAB` | C D | A B | word-swapped (little-endian word order) |
/// | `BADC` | B A | D C | byte-swapped within each word |
/// | `DCBA` | D C | B A | little-endian |
///
/// 64-bit values (bytes A...H) follow the same two rules: `ABCD` = `AB CD EF GH`, `CDAB` =
/// `GH EF CD AB` (word order reversed), `BADC` = `BA DC FE HG` (bytes swapped in each word),
/// `DCBA` = `HG FE DC BA` (fully little-endian). 16-bit values are affected only by the byte
/// swap (`BADC` and `DCBA` put the low byte first). Strings keep their word order (text reads
/// from the first register on); `BADC` and `DCBA` put each pair's first character in the low byte.
public enum ByteOrder: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    /// Big-endian words in big-endian order (the Modbus convention, the default).
    case abcd = "ABCD"
    /// Big-endian words, least significant word first.
    case cdab = "CDAB"
    /// Byte-swapped words, most significant word first.
    case badc = "BADC"
    /// Fully little-endian.
    case dcba = "DCBA"

    /// Whether the words are placed least significant first (`CDAB`, `DCBA`).
    public var reversesWords: Bool { self == .cdab || self == .dcba }
    /// Whether the two bytes of each register are swapped (`BADC`, `DCBA`).
    public var swapsBytes: Bool { self == .badc || self == .dcba }

    /// `ABCD`, `CDAB`, `BADC` or `DCBA`.
    public var description: String { rawValue }
}

/// An MQTT quality-of-service level.
public enum QoSLevel: Int, Sendable, Hashable, CaseIterable, Comparable, CustomStringConvertible {
    /// 0: at most once, no acknowledgement from the broker.
    case atMostOnce = 0
    /// 1: at least once, the broker acknowledges (PUBACK).
    case atLeastOnce = 1
    /// 2: exactly once (PUBREC / PUBREL / PUBCOMP).
    case exactlyOnce = 2

    /// Orders by level.
    public static func < (lhs: QoSLevel, rhs: QoSLevel) -> Bool { lhs.rawValue < rhs.rawValue }

    /// `0`, `1` or `2`.
    public var description: String { String(rawValue) }
}
