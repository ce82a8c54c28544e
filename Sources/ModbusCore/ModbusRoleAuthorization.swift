/// What one Modbus/TCP Security role may do: which units it may address, which areas it may
/// read and write, and optionally which function codes it may use.
///
/// A request is allowed only when every rule agrees: the unit is among ``units``, the function
/// code is among ``functionCodes`` (when that is set), and each area the function code reads or
/// writes is among ``readableAreas`` or ``writableAreas``. FC22 (mask write) and FC23
/// (read/write) both read and write holding registers, so they need both.
public struct ModbusRolePermissions: Sendable, Hashable {
    /// The unit ids the role may address; `nil`: every unit.
    public var units: Set<UInt8>?
    /// The areas the role may read (FC1, FC2, FC3, FC4, and the read half of FC22, FC23).
    public var readableAreas: Set<ModbusArea>
    /// The areas the role may write (FC5, FC15 for coils; FC6, FC16, FC22, FC23 for holding
    /// registers). Discrete inputs and input registers cannot be written by any function code.
    public var writableAreas: Set<ModbusArea>
    /// The function codes the role may use; `nil`: any, as far as the area rules allow (function
    /// codes that touch no area, FC8 diagnostics and FC43 device identification, are then
    /// allowed).
    public var functionCodes: Set<UInt8>?

    /// Creates the permissions of a role. With the defaults the role may do nothing.
    public init(
        units: Set<UInt8>? = nil,
        readableAreas: Set<ModbusArea> = [],
        writableAreas: Set<ModbusArea> = [],
        functionCodes: Set<UInt8>? = nil
    ) {
        self.units = units
        self.readableAreas = readableAreas
        self.writableAreas = writableAreas
        self.functionCodes = functionCodes
    }

    /// Every unit, every area read and written, every function code.
    public static let fullAccess = ModbusRolePermissions(
        readableAreas: Set(ModbusArea.allCases),
        writableAreas: [.coil, .holdingRegister]
    )

    /// Every unit and every area, read only.
    public static let readOnly = ModbusRolePermissions(readableAreas: Set(ModbusArea.allCases))

    /// Whether the role may send `functionCode` to `unitID`; the reason when it may not.
    public func decide(unitID: UInt8, functionCode: ModbusFunctionCode) -> ModbusAuthorizationDecision {
        if let units, !units.contains(unitID) { return .denied(.unit(unitID)) }
        if let functionCodes, !functionCodes.contains(functionCode.rawValue) {
            return .denied(.functionCode(functionCode))
        }
        let access = functionCode.dataAccess
        if let area = access.reads, !readableAreas.contains(area) { return .denied(.read(area)) }
        if let area = access.writes, !writableAreas.contains(area) { return .denied(.write(area)) }
        return .allowed
    }
}

/// The role → permission map of a Modbus/TCP Security listener, and the rule for a client
/// whose certificate names no role.
///
/// Pure: ``decide(role:unitID:functionCode:)`` looks only at its arguments, so the whole policy
/// is tested without a socket. A request it denies is answered 01 (illegal function), as the
/// Modbus/TCP Security specification asks.
public struct ModbusAuthorizationPolicy: Sendable, Hashable {
    /// The permissions of each role, by the exact (case-sensitive) text of the certificate's
    /// role extension.
    public var roles: [String: ModbusRolePermissions]
    /// The role given to a client whose certificate has no role extension. `nil`, the default:
    /// such a client passes the handshake (its certificate is trusted) but every request it
    /// sends is answered 01. Naming a role here grants those clients that role's permissions.
    public var defaultRole: String?

    /// Creates a policy.
    public init(roles: [String: ModbusRolePermissions], defaultRole: String? = nil) {
        self.roles = roles
        self.defaultRole = defaultRole
    }

    /// The role a client has: the one its certificate names, else ``defaultRole``.
    public func effectiveRole(certificateRole: String?) -> String? {
        certificateRole ?? defaultRole
    }

    /// Whether a client whose certificate names `role` (`nil`: no role extension) may send
    /// `functionCode` to `unitID`. A role the map does not know is denied everything.
    public func decide(role: String?, unitID: UInt8, functionCode: ModbusFunctionCode) -> ModbusAuthorizationDecision {
        guard let effective = effectiveRole(certificateRole: role) else { return .denied(.noRole) }
        guard let permissions = roles[effective] else { return .denied(.unknownRole(effective)) }
        return permissions.decide(unitID: unitID, functionCode: functionCode)
    }
}

/// The outcome of an authorization check.
public enum ModbusAuthorizationDecision: Sendable, Hashable {
    /// The request goes on to the usual checks and the handlers.
    case allowed
    /// The request is answered 01, for this reason (logged, never sent).
    case denied(ModbusAuthorizationDenial)
}

/// Why a role may not make a request.
public enum ModbusAuthorizationDenial: Sendable, Hashable, CustomStringConvertible {
    /// The certificate has no role extension and the policy has no default role.
    case noRole
    /// The certificate names a role the policy does not define.
    case unknownRole(String)
    /// The role may not address this unit.
    case unit(UInt8)
    /// The role's function code list does not have this one.
    case functionCode(ModbusFunctionCode)
    /// The role may not read this area.
    case read(ModbusArea)
    /// The role may not write this area.
    case write(ModbusArea)

    public var description: String {
        switch self {
        case .noRole: "the client certificate names no role and there is no default role"
        case .unknownRole(let role): "role '\(role)' is not in the role map"
        case .unit(let unit): "the role may not address unit \(unit)"
        case .functionCode(let code): "the role may not use \(code)"
        case .read(let area): "the role may not read \(area)s"
        case .write(let area): "the role may not write \(area)s"
        }
    }
}

extension ModbusFunctionCode {
    /// The area this function code reads and the one it writes, for authorization: FC1 to FC4
    /// read their area, FC5 and FC15 write coils, FC6 and FC16 write holding registers, FC22
    /// and FC23 read and write holding registers. Both `nil` for every other code (FC8, FC43,
    /// and codes the server does not serve).
    public var dataAccess: (reads: ModbusArea?, writes: ModbusArea?) {
        switch self {
        case .readCoils: (.coil, nil)
        case .readDiscreteInputs: (.discreteInput, nil)
        case .readHoldingRegisters: (.holdingRegister, nil)
        case .readInputRegisters: (.inputRegister, nil)
        case .writeSingleCoil, .writeMultipleCoils: (nil, .coil)
        case .writeSingleRegister, .writeMultipleRegisters: (nil, .holdingRegister)
        case .maskWriteRegister, .readWriteMultipleRegisters: (.holdingRegister, .holdingRegister)
        default: (nil, nil)
        }
    }
}
