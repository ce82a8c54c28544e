/// Takes a fuzzer's input apart: leading bytes choose what to do, the rest is data.
///
/// Every read succeeds: past the end, numbers are 0 and byte runs are empty, so any input is a
/// valid program for a fuzzer and libFuzzer's mutations stay meaningful.
public struct FuzzInput: Sendable {
    private let bytes: [UInt8]
    private var index = 0

    /// Input over `bytes`.
    public init(_ bytes: [UInt8]) { self.bytes = bytes }

    /// Whether everything was read.
    public var isEmpty: Bool { index >= bytes.count }

    /// The next byte, 0 at the end.
    public mutating func byte() -> UInt8 {
        guard index < bytes.count else { return 0 }
        defer { index += 1 }
        return bytes[index]
    }

    /// The next byte as a choice among `count` options.
    public mutating func choice(_ count: Int) -> Int { Int(byte()) % count }

    /// A flag from the next byte.
    public mutating func flag() -> Bool { byte() & 1 == 1 }

    /// The next two bytes, big-endian.
    public mutating func uint16() -> UInt16 { UInt16(byte()) << 8 | UInt16(byte()) }

    /// The next eight bytes, big-endian.
    public mutating func uint64() -> UInt64 { (0..<8).reduce(0) { value, _ in value << 8 | UInt64(byte()) } }

    /// Up to `count` bytes.
    public mutating func take(_ count: Int) -> [UInt8] {
        let end = min(bytes.count, index + max(0, count))
        defer { index = end }
        return Array(bytes[min(index, end)..<end])
    }

    /// A run whose length the next byte gives (up to `maxLength`).
    public mutating func chunk(maxLength: Int = 255) -> [UInt8] { take(Int(byte()) % (maxLength + 1)) }

    /// Text from a run whose length the next byte gives; invalid UTF-8 is repaired.
    public mutating func text(maxLength: Int = 255) -> String {
        String(decoding: chunk(maxLength: maxLength), as: UTF8.self)
    }

    /// Everything not read yet.
    public mutating func rest() -> [UInt8] { take(bytes.count - index) }
}
