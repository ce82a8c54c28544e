/// The Modbus image of a point's value.
public enum RegisterImage: Sendable, Hashable {
    /// ``PointConfiguration/registerCount`` words starting at the point's address: register
    /// values, or 0/1 for a coil or discrete input.
    case words([UInt16])
    /// One bit of the register at the point's address (a `bit` point). The register's other bits
    /// belong to other points: merge with ``merged(into:)``.
    case bit(position: Int, value: Bool)

    /// `word` with this image applied: for ``bit(position:value:)`` the one bit set or cleared,
    /// for ``words(_:)`` the first word.
    public func merged(into word: UInt16) -> UInt16 {
        switch self {
        case .words(let words): return words.first ?? word
        case .bit(let position, let value):
            let mask = UInt16(1) << UInt16(position)
            return value ? word | mask : word & ~mask
        }
    }
}

/// Encodes a ``PointValue`` into a point's registers: scale and offset, rounding, range check,
/// IEEE 754, byte order, text.
///
/// - Numeric types: `register = value × scale + offset`. Integer types round to the nearest
///   integer (halves away from zero) and refuse values outside the type's range (no wrapping).
///   Exact integers (``PointValue/integer(_:)``, ``PointValue/unsigned(_:)``) with an integral
///   scale and offset are computed in integer arithmetic, so 64-bit values stay exact. `true`
///   and `false` count as 1 and 0.
/// - `float32`, `float64`: IEEE 754; values that overflow the type, NaN and infinities are refused.
/// - `string(length)`: UTF-8, two bytes per register, first byte high (unless the byte order
///   swaps bytes), padded with NUL; longer text is refused, not truncated. Numbers are written
///   as their text.
/// - `bool`: 0 or 1. `bit`: the bit. Numbers 0 and 1 are accepted as false and true.
public struct RegisterEncoder: Sendable {
    /// The point's type.
    public let type: PointType
    /// The byte order.
    public let byteOrder: ByteOrder
    /// The scale (`register = value × scale + offset`).
    public let scale: Double
    /// The offset, in register units.
    public let offset: Double

    /// An encoder for a point.
    public init(point: PointConfiguration) {
        self.init(type: point.type, byteOrder: point.byteOrder, scale: point.scale, offset: point.offset)
    }

    /// An encoder for explicit parameters.
    public init(type: PointType, byteOrder: ByteOrder = .abcd, scale: Double = 1, offset: Double = 0) {
        self.type = type
        self.byteOrder = byteOrder
        self.scale = scale
        self.offset = offset
    }

    /// Encodes a value.
    public func encode(_ value: PointValue) throws(RegisterEncodingError) -> RegisterImage {
        switch type {
        case .bool:
            return .words([try truth(value) ? 1 : 0])
        case .bit(let position):
            return .bit(position: position, value: try truth(value))
        case .string(let length):
            return .words(try encodeText(value, length: length))
        case .float32:
            let raw = try scaledDouble(value)
            let single = Float(raw)
            guard single.isFinite else {
                throw RegisterEncodingError(.outOfRange, "\(value) is beyond the range of float32 (±3.4e38)")
            }
            return .words(
                RegisterLayout.words(fromBigEndian: UInt64(single.bitPattern), byteCount: 4, order: byteOrder)
            )
        case .float64:
            let raw = try scaledDouble(value)
            return .words(RegisterLayout.words(fromBigEndian: raw.bitPattern, byteCount: 8, order: byteOrder))
        case .int16, .uint16, .int32, .uint32, .int64, .uint64:
            let raw = try scaledInteger(value)
            let range = type.integerRange!
            guard range.contains(raw) else {
                throw RegisterEncodingError(.outOfRange, outOfRangeMessage(value, raw: raw, range: range))
            }
            let byteCount = type.registerCount * 2
            let bits = UInt64(truncatingIfNeeded: raw)
            let masked = byteCount == 8 ? bits : bits & ((1 << UInt64(byteCount * 8)) - 1)
            return .words(RegisterLayout.words(fromBigEndian: masked, byteCount: byteCount, order: byteOrder))
        }
    }

    private func outOfRangeMessage(_ value: PointValue, raw: Int128, range: ClosedRange<Int128>) -> String {
        let scaling =
            scale == 1 && offset == 0
            ? ""
            : " (register value \(raw) after scale \(NumberFormatting.shortest(scale)) and offset \(NumberFormatting.shortest(offset)))"
        return "\(value)\(scaling) is outside the range of \(type.name), \(range.lowerBound)...\(range.upperBound)"
    }

    private func truth(_ value: PointValue) throws(RegisterEncodingError) -> Bool {
        switch value {
        case .bool(let flag): return flag
        case .integer(0): return false
        case .integer(1): return true
        case .number(let number) where number == 0 || number == 1: return number == 1
        case .text:
            throw RegisterEncodingError(.wrongType, "a \(type.name) point needs true or false, not text \(value)")
        default:
            throw RegisterEncodingError(
                .outOfRange,
                "a \(type.name) point holds true or false; the number \(value) is neither 0 nor 1"
            )
        }
    }

    /// `value × scale + offset` as a finite `Double`.
    private func scaledDouble(_ value: PointValue) throws(RegisterEncodingError) -> Double {
        guard let number = value.doubleValue else {
            throw RegisterEncodingError(.wrongType, "a \(type.name) point needs a number, not text \(value)")
        }
        guard number.isFinite else { throw RegisterEncodingError(.notFinite, "\(value) is not a finite number") }
        let raw = scale == 1 && offset == 0 ? number : number * scale + offset
        guard raw.isFinite else {
            throw RegisterEncodingError(.outOfRange, "\(value) × \(NumberFormatting.shortest(scale)) overflows")
        }
        return raw
    }

    /// The rounded register value, exact for exact integers with an integral scale and offset.
    private func scaledInteger(_ value: PointValue) throws(RegisterEncodingError) -> Int128 {
        let exact: Int128?
        switch value {
        case .integer(let integer): exact = Int128(integer)
        case .unsigned(let integer): exact = Int128(integer)
        case .bool(let flag): exact = flag ? 1 : 0
        default: exact = nil
        }
        if let exact, let integralScale = Self.exactInteger(scale), let integralOffset = Self.exactInteger(offset) {
            // |exact| < 2^64 and |scale|, |offset| < 2^63: the result fits Int128.
            return exact * integralScale + integralOffset
        }
        let raw = try scaledDouble(value).rounded(.toNearestOrAwayFromZero)
        // Values beyond 2^100 are out of every integer type's range; clamp before converting.
        if raw.magnitude >= 0x1p100 { return raw < 0 ? -(Int128(1) << 100) : Int128(1) << 100 }
        return Int128(raw)
    }

    static func exactInteger(_ value: Double) -> Int128? {
        guard value.isFinite, value.rounded(.towardZero) == value, value.magnitude < 0x1p63 else { return nil }
        return Int128(value)
    }

    private func encodeText(_ value: PointValue, length: Int) throws(RegisterEncodingError) -> [UInt16] {
        let text: String
        switch value {
        case .text(let string): text = string
        case .integer(let integer): text = String(integer)
        case .unsigned(let integer): text = String(integer)
        case .number(let number):
            guard number.isFinite else { throw RegisterEncodingError(.notFinite, "\(value) is not a finite number") }
            text = NumberFormatting.shortest(number)
        case .bool(let flag): text = flag ? "true" : "false"
        }
        var bytes = Array(text.utf8)
        if bytes.contains(0) {
            throw RegisterEncodingError(.invalidText, "the text contains NUL, which ends a string in registers")
        }
        guard bytes.count <= length * 2 else {
            throw RegisterEncodingError(
                .textTooLong,
                "the text is \(bytes.count) bytes of UTF-8; \(length) registers hold at most \(length * 2)"
            )
        }
        bytes += Array(repeating: 0, count: length * 2 - bytes.count)
        return (0..<length).map { index in
            let word = UInt16(bytes[2 * index]) << 8 | UInt16(bytes[2 * index + 1])
            return byteOrder.swapsBytes ? word.byteSwapped : word
        }
    }
}

/// Decodes a point's registers into a ``PointValue``: the inverse of ``RegisterEncoder``.
///
/// - Integer types with scale 1 and an integral offset give exact integers
///   (``PointValue/integer(_:)``, or ``PointValue/unsigned(_:)`` above `Int64.max`); with any
///   other scaling they give `(register − offset) / scale` as ``PointValue/number(_:)``, rounded
///   to one decimal more than the scale resolves (scale 10 → 2 decimals) to remove binary noise,
///   so that encoding the result gives the same registers back.
/// - `float32`, `float64`: ``PointValue/number(_:)``; NaN and infinities are refused
///   (``RegisterDecodingError/Kind/notFinite``).
/// - `string`: the text up to the first NUL; invalid UTF-8 is refused.
/// - `bool`: any non-zero value is true. `bit`: the bit of the register.
public struct RegisterDecoder: Sendable {
    /// The point's type.
    public let type: PointType
    /// The byte order.
    public let byteOrder: ByteOrder
    /// The scale (`register = value × scale + offset`).
    public let scale: Double
    /// The offset, in register units.
    public let offset: Double

    /// A decoder for a point.
    public init(point: PointConfiguration) {
        self.init(type: point.type, byteOrder: point.byteOrder, scale: point.scale, offset: point.offset)
    }

    /// A decoder for explicit parameters.
    public init(type: PointType, byteOrder: ByteOrder = .abcd, scale: Double = 1, offset: Double = 0) {
        self.type = type
        self.byteOrder = byteOrder
        self.scale = scale
        self.offset = offset
    }

    /// Decodes exactly ``PointType/registerCount`` words (for a `bit` point, the whole register).
    public func decode(_ words: some Collection<UInt16>) throws(RegisterDecodingError) -> PointValue {
        let words = Array(words)
        guard words.count == type.registerCount else {
            throw RegisterDecodingError(
                .wrongCount,
                "a \(type) point spans \(type.registerCount) registers, got \(words.count)"
            )
        }
        switch type {
        case .bool:
            return .bool(words[0] != 0)
        case .bit(let position):
            return .bool(words[0] >> UInt16(position) & 1 == 1)
        case .string:
            var bytes: [UInt8] = []
            bytes.reserveCapacity(words.count * 2)
            for word in words {
                let ordered = byteOrder.swapsBytes ? word.byteSwapped : word
                bytes.append(UInt8(ordered >> 8))
                bytes.append(UInt8(ordered & 0xFF))
            }
            if let end = bytes.firstIndex(of: 0) { bytes.removeSubrange(end...) }
            guard let text = String(validating: bytes, as: UTF8.self) else {
                throw RegisterDecodingError(.invalidUTF8, "the registers do not hold valid UTF-8 text")
            }
            return .text(text)
        case .float32:
            let bits = RegisterLayout.bigEndian(fromWords: words, order: byteOrder)
            let single = Float(bitPattern: UInt32(truncatingIfNeeded: bits))
            guard single.isFinite else {
                throw RegisterDecodingError(.notFinite, "the registers hold \(single), not a finite float32")
            }
            return .number(try unscaled(Double(single)))
        case .float64:
            let double = Double(bitPattern: RegisterLayout.bigEndian(fromWords: words, order: byteOrder))
            guard double.isFinite else {
                throw RegisterDecodingError(.notFinite, "the registers hold \(double), not a finite float64")
            }
            return .number(try unscaled(double))
        case .int16, .uint16, .int32, .uint32, .int64, .uint64:
            let bits = RegisterLayout.bigEndian(fromWords: words, order: byteOrder)
            let raw: Int128
            switch type {
            case .int16: raw = Int128(Int16(truncatingIfNeeded: bits))
            case .int32: raw = Int128(Int32(truncatingIfNeeded: bits))
            case .int64: raw = Int128(Int64(bitPattern: bits))
            default: raw = Int128(bits)
            }
            if scale == 1, let integralOffset = RegisterEncoder.exactInteger(offset) {
                let value = raw - integralOffset
                if let signed = Int64(exactly: value) { return .integer(signed) }
                if let unsigned = UInt64(exactly: value) { return .unsigned(unsigned) }
                return .number(Double(value))
            }
            let shifted = RegisterEncoder.exactInteger(offset).map { Double(raw - $0) } ?? (Double(raw) - offset)
            return .number(Self.roundedToResolution(shifted / scale, scale: scale))
        }
    }

    private func unscaled(_ raw: Double) throws(RegisterDecodingError) -> Double {
        if scale == 1 && offset == 0 { return raw }
        let value = (raw - offset) / scale
        guard value.isFinite else {
            throw RegisterDecodingError(
                .notFinite,
                "\(raw) divided by the scale \(NumberFormatting.shortest(scale)) is beyond the range of float64"
            )
        }
        return value
    }

    /// Rounds to one decimal more than `1 / scale` resolves (`ceil(log10 |scale|) + 1` decimals,
    /// at least 1); values too large for that to matter are left alone.
    static func roundedToResolution(_ value: Double, scale: Double) -> Double {
        var decimals = 1
        var power = 1.0
        while power < scale.magnitude && decimals <= 15 {
            power *= 10
            decimals += 1
        }
        guard decimals <= 15 else { return value }
        var factor = 1.0
        for _ in 0..<decimals { factor *= 10 }
        let scaled = value * factor
        guard scaled.magnitude < 0x1p52 else { return value }
        return scaled.rounded(.toNearestOrAwayFromZero) / factor
    }
}

/// Why a value cannot be encoded into a point's registers.
public struct RegisterEncodingError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The kind of problem.
    public enum Kind: Sendable, Hashable {
        /// Text for a numeric or boolean point.
        case wrongType
        /// Outside the type's range after scaling (or not 0/1 for a boolean point).
        case outOfRange
        /// NaN or infinity.
        case notFinite
        /// More UTF-8 bytes than the string's registers hold.
        case textTooLong
        /// Text that cannot be stored (it contains NUL).
        case invalidText
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

/// Why registers cannot be decoded into a value.
public struct RegisterDecodingError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The kind of problem.
    public enum Kind: Sendable, Hashable {
        /// Not ``PointType/registerCount`` words.
        case wrongCount
        /// A float register image that is NaN or infinite (or becomes infinite when unscaled).
        case notFinite
        /// A string image that is not UTF-8.
        case invalidUTF8
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

/// Byte-order arithmetic between a big-endian value and its register words.
enum RegisterLayout {
    /// The words of the low `byteCount` bytes of `value` (bytes A... from the most significant).
    static func words(fromBigEndian value: UInt64, byteCount: Int, order: ByteOrder) -> [UInt16] {
        let wordCount = byteCount / 2
        var words = (0..<wordCount).map { index in
            UInt16(truncatingIfNeeded: value >> UInt64((wordCount - 1 - index) * 16))
        }
        if order.reversesWords { words.reverse() }
        if order.swapsBytes { words = words.map(\.byteSwapped) }
        return words
    }

    /// The inverse of ``words(fromBigEndian:byteCount:order:)``.
    static func bigEndian(fromWords words: [UInt16], order: ByteOrder) -> UInt64 {
        var ordered = order.swapsBytes ? words.map(\.byteSwapped) : words
        if order.reversesWords { ordered.reverse() }
        return ordered.reduce(0) { $0 << 16 | UInt64($1) }
    }
}

extension PointConfiguration {
    /// For the `state_echo` ack mode: whether a reported state value confirms a written one.
    ///
    /// With tolerance 0 (the default) the two values must encode to the same registers (exactly
    /// the same for integers and text; the same `float32` for `float32` points; within half a
    /// scale step for scaled points). With a positive ``AckSettings/tolerance`` numbers also match
    /// when they differ by at most the tolerance.
    public func stateEchoConfirms(reported: PointValue, written: PointValue) -> Bool {
        let encoder = RegisterEncoder(point: self)
        if let reportedImage = try? encoder.encode(reported), let writtenImage = try? encoder.encode(written),
            reportedImage == writtenImage
        {
            return true
        }
        let tolerance = command?.ack.tolerance ?? 0
        if tolerance > 0, let a = reported.doubleValue, let b = written.doubleValue {
            return (a - b).magnitude <= tolerance
        }
        return false
    }
}
