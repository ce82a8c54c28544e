/// A Modbus function code (the first byte of every PDU).
///
/// A struct rather than an enum so that any byte received on the wire can be represented,
/// including codes this library does not implement.
public struct ModbusFunctionCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    /// The byte on the wire.
    public var rawValue: UInt8

    /// Wraps a raw function-code byte.
    @inlinable
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// FC1, read coils.
    public static let readCoils = Self(rawValue: 0x01)
    /// FC2, read discrete inputs.
    public static let readDiscreteInputs = Self(rawValue: 0x02)
    /// FC3, read holding registers.
    public static let readHoldingRegisters = Self(rawValue: 0x03)
    /// FC4, read input registers.
    public static let readInputRegisters = Self(rawValue: 0x04)
    /// FC5, write single coil.
    public static let writeSingleCoil = Self(rawValue: 0x05)
    /// FC6, write single register.
    public static let writeSingleRegister = Self(rawValue: 0x06)
    /// FC8, diagnostics (only sub-function 0, return query data, is served).
    public static let diagnostics = Self(rawValue: 0x08)
    /// FC15 (0x0F), write multiple coils.
    public static let writeMultipleCoils = Self(rawValue: 0x0F)
    /// FC16 (0x10), write multiple registers.
    public static let writeMultipleRegisters = Self(rawValue: 0x10)
    /// FC22 (0x16), mask write register.
    public static let maskWriteRegister = Self(rawValue: 0x16)
    /// FC23 (0x17), read/write multiple registers.
    public static let readWriteMultipleRegisters = Self(rawValue: 0x17)
    /// FC43 (0x2B), encapsulated interface transport (MEI); sub-type 14 is read device identification.
    public static let encapsulatedInterfaceTransport = Self(rawValue: 0x2B)

    /// The function-code byte of an exception reply to this function code (high bit set).
    @inlinable
    public var exceptionReplyByte: UInt8 { rawValue | 0x80 }

    /// Whether this function code writes data (and therefore needs a write handler).
    public var isWrite: Bool {
        switch self {
        case .writeSingleCoil, .writeSingleRegister, .writeMultipleCoils, .writeMultipleRegisters,
            .maskWriteRegister, .readWriteMultipleRegisters:
            true
        default:
            false
        }
    }

    public var description: String {
        "FC\(rawValue)"
    }
}
