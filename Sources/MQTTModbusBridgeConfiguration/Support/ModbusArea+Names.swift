import ModbusCore

extension ModbusArea {
    /// The area's name in configuration files: `coil`, `discrete_input`, `holding_register`,
    /// `input_register`.
    public var configurationName: String {
        switch self {
        case .coil: "coil"
        case .discreteInput: "discrete_input"
        case .holdingRegister: "holding_register"
        case .inputRegister: "input_register"
        }
    }

    /// The 1-based Modicon reference that SCADA tools often show for a 0-based `address`: the
    /// area's digit (0 coils, 1 discrete inputs, 3 input registers, 4 holding registers) and the
    /// address + 1 in five digits, e.g. holding register 0 is `400001`, input register 99 `300100`.
    public func modiconReference(_ address: UInt16) -> String {
        let digit: Int
        switch self {
        case .coil: digit = 0
        case .discreteInput: digit = 1
        case .inputRegister: digit = 3
        case .holdingRegister: digit = 4
        }
        let number = String(Int(address) + 1)
        return "\(digit)" + String(repeating: "0", count: max(0, 5 - number.count)) + number
    }
}
