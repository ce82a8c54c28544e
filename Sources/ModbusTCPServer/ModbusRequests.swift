import ModbusCore
import NIOCore

/// What a read handler is asked for: `count` consecutive values of `area` starting at `address`.
public struct ModbusReadRequest: Sendable, Hashable {
    /// The unit id of the request (the server has applied its unit filter already).
    public var unitID: UInt8
    /// The function code that caused this read: FC1...FC4, or FC22 / FC23 (which read holding registers).
    public var functionCode: ModbusFunctionCode
    /// The area to read.
    public var area: ModbusArea
    /// The first address (0-based, as on the wire).
    public var address: UInt16
    /// How many values; `address + count` never exceeds 65536.
    public var count: Int

    /// Creates a read request.
    public init(unitID: UInt8, functionCode: ModbusFunctionCode, area: ModbusArea, address: UInt16, count: Int) {
        self.unitID = unitID
        self.functionCode = functionCode
        self.area = area
        self.address = address
        self.count = count
    }
}

/// What a write handler is asked to do: store `values` at consecutive addresses of `area`.
public struct ModbusWriteRequest: Sendable, Hashable {
    /// The unit id of the request (the server has applied its unit filter already).
    public var unitID: UInt8
    /// The function code that caused this write: FC5, FC6, FC15, FC16, FC22 or FC23.
    public var functionCode: ModbusFunctionCode
    /// The area written: always ``ModbusArea/coil`` or ``ModbusArea/holdingRegister``.
    public var area: ModbusArea
    /// The first address (0-based, as on the wire).
    public var address: UInt16
    /// The values: registers as they are, coils as 0 (off) or 1 (on).
    public var values: [UInt16]
    /// For FC22 (mask write register), the request's masks. `values` holds the one register
    /// computed from them and the value read just before; the masks say which bits the master
    /// meant to change (those where `andMask` is 0), for a host that must not touch the others.
    public var mask: ModbusRegisterMask?

    /// Creates a write request.
    public init(
        unitID: UInt8,
        functionCode: ModbusFunctionCode,
        area: ModbusArea,
        address: UInt16,
        values: [UInt16],
        mask: ModbusRegisterMask? = nil
    ) {
        self.unitID = unitID
        self.functionCode = functionCode
        self.area = area
        self.address = address
        self.values = values
        self.mask = mask
    }
}

/// The masks of an FC22 mask write: result = (current AND `andMask`) OR (`orMask` AND NOT `andMask`).
public struct ModbusRegisterMask: Sendable, Hashable {
    /// Bits kept from the current value (1) or replaced from `orMask` (0).
    public var andMask: UInt16
    /// The values of the replaced bits.
    public var orMask: UInt16

    /// The bits the request changes: those where `andMask` is 0.
    public var changedBits: UInt16 { ~andMask }

    /// Masks as in the request.
    public init(andMask: UInt16, orMask: UInt16) {
        self.andMask = andMask
        self.orMask = orMask
    }
}

/// Where a synchronous in-place read handler puts its values: straight into the reply frame,
/// with no intermediate array.
///
/// Append exactly ``ModbusReadRequest/count`` values. Fewer or more, or a bit value other than
/// 0 and 1, makes the server answer 04 (server device failure) and log the mistake.
public struct ModbusReadValues: ~Copyable {
    /// The most data bytes a read reply carries: 125 registers or 2,000 bits (250 bytes).
    @usableFromInline static let capacity = 250

    @usableFromInline var buffer: ByteBuffer
    @usableFromInline let isBits: Bool
    @usableFromInline let expected: Int
    @usableFromInline var appended = 0
    @usableFromInline var invalidValue: UInt16?
    /// The reply's data bytes, gathered here and written to `buffer` once, in `finish()`. A
    /// `ByteBuffer` write checks the storage's uniqueness, capacity and exclusive access each
    /// time; one per register cost more than the rest of a 125-register request.
    @usableFromInline var bytes = InlineArray<250, UInt8>(repeating: 0)

    init(buffer: consuming ByteBuffer, isBits: Bool, expected: Int) {
        // The request parser keeps counts within the specification's limits (2,000 bits, 125
        // registers), which is what `capacity` holds.
        precondition((isBits ? (expected + 7) / 8 : expected * 2) <= Self.capacity, "read of \(expected) values")
        self.buffer = buffer
        self.isBits = isBits
        self.expected = expected
    }

    /// How many values have been appended so far.
    @inlinable
    public var count: Int { appended }

    /// Appends one value: a register, or a bit as 0 or 1.
    @inlinable
    public mutating func append(_ value: UInt16) {
        defer { appended += 1 }
        guard appended < expected else { return }
        if isBits {
            if value > 1 { invalidValue = invalidValue ?? value }
            bytes[appended >> 3] |= UInt8(truncatingIfNeeded: value & 1) << UInt8(truncatingIfNeeded: appended & 7)
        } else {
            bytes[2 * appended] = UInt8(truncatingIfNeeded: value >> 8)
            bytes[2 * appended + 1] = UInt8(truncatingIfNeeded: value)
        }
    }

    /// Appends one bit (coils and discrete inputs).
    @inlinable
    public mutating func append(bit: Bool) {
        append(bit ? 1 : 0)
    }

    /// Appends several values.
    @inlinable
    public mutating func append(contentsOf values: some Sequence<UInt16>) {
        for value in values { append(value) }
    }

    consuming func finish() -> (ByteBuffer, problem: String?) {
        let problem: String?
        if appended != expected {
            problem = "read handler supplied \(appended) values for \(expected) requested"
        } else if let invalidValue {
            problem = "read handler supplied bit value \(invalidValue); bits must be 0 or 1"
        } else {
            problem = nil
        }
        let values = min(appended, expected)
        let byteCount = isBits ? (values + 7) / 8 : values * 2
        // Written through `self.buffer`, the storage's only reference, so that it is not copied.
        bytes.span.withUnsafeBufferPointer { all in
            _ = self.buffer.writeBytes(UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: all[0..<byteCount])))
        }
        return (buffer, problem)
    }
}
