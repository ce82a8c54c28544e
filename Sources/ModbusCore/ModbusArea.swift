/// One of the four Modbus data areas.
///
/// The area decides which function codes can reach a value: discrete inputs and input
/// registers are read-only because no write function code targets them.
public enum ModbusArea: UInt8, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    /// Single-bit, read-write (FC1 read; FC5, FC15 write).
    case coil
    /// Single-bit, read-only (FC2).
    case discreteInput
    /// 16-bit, read-write (FC3 read; FC6, FC16, FC22, FC23 write).
    case holdingRegister
    /// 16-bit, read-only (FC4).
    case inputRegister

    /// Whether values in this area are single bits (coils, discrete inputs) rather than 16-bit registers.
    @inlinable
    public var isBitArea: Bool { self == .coil || self == .discreteInput }

    /// Whether any Modbus function code can write to this area.
    @inlinable
    public var isWritable: Bool { self == .coil || self == .holdingRegister }

    public var description: String {
        switch self {
        case .coil: "coil"
        case .discreteInput: "discrete input"
        case .holdingRegister: "holding register"
        case .inputRegister: "input register"
        }
    }
}
