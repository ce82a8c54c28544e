import MQTTModbusBridgeConfiguration

/// A configuration the runtime cannot serve, although it is valid.
public struct BridgeStartError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What cannot be served, and what to do about it.
    public var description: String

    /// `modbus.unknown_unit: ignore` needs the Modbus server to leave a request unanswered, which
    /// `ModbusTCPServer` cannot do yet: its unit filter always answers 0B. Starting anyway would
    /// answer 0B to a master that was promised silence, so the bridge refuses to start.
    static let unknownUnitIgnoreUnsupported = BridgeStartError(
        description:
            "modbus.unknown_unit: ignore is not supported by this build (its Modbus server always answers unknown "
            + "units with 0B); remove the key or set unknown_unit: exception"
    )

    /// Checks what the runtime needs beyond what the configuration loader validates.
    static func check(_ configuration: BridgeConfiguration) throws(BridgeStartError) {
        if configuration.modbus.unknownUnit == .ignore { throw unknownUnitIgnoreUnsupported }
    }
}
