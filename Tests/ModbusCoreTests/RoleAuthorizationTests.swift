import ModbusCore
import Testing

/// The Modbus/TCP Security role → permission decision, without any I/O.
@Suite("Role authorization")
struct RoleAuthorizationTests {
    static let policy = ModbusAuthorizationPolicy(roles: [
        "operator": .fullAccess,
        "viewer": .readOnly,
        "unit1-operator": ModbusRolePermissions(
            units: [1],
            readableAreas: Set(ModbusArea.allCases),
            writableAreas: [.coil, .holdingRegister]
        ),
        "coils-only": ModbusRolePermissions(
            readableAreas: [.coil],
            writableAreas: [.coil],
            functionCodes: [1, 5]
        ),
    ])

    @Test("each function code reads and writes the areas the specification gives it")
    func functionCodeAccess() {
        let expected: [(ModbusFunctionCode, ModbusArea?, ModbusArea?)] = [
            (.readCoils, .coil, nil), (.readDiscreteInputs, .discreteInput, nil),
            (.readHoldingRegisters, .holdingRegister, nil), (.readInputRegisters, .inputRegister, nil),
            (.writeSingleCoil, nil, .coil), (.writeMultipleCoils, nil, .coil),
            (.writeSingleRegister, nil, .holdingRegister), (.writeMultipleRegisters, nil, .holdingRegister),
            (.maskWriteRegister, .holdingRegister, .holdingRegister),
            (.readWriteMultipleRegisters, .holdingRegister, .holdingRegister),
            (.diagnostics, nil, nil), (.encapsulatedInterfaceTransport, nil, nil),
            (ModbusFunctionCode(rawValue: 7), nil, nil),
        ]
        for (code, reads, writes) in expected {
            #expect(code.dataAccess.reads == reads && code.dataAccess.writes == writes, "\(code)")
        }
    }

    @Test("a full-access role may do everything, a viewer only read")
    func operatorAndViewer() {
        let every: [ModbusFunctionCode] = [
            .readCoils, .readDiscreteInputs, .readHoldingRegisters, .readInputRegisters, .writeSingleCoil,
            .writeSingleRegister, .writeMultipleCoils, .writeMultipleRegisters, .maskWriteRegister,
            .readWriteMultipleRegisters, .diagnostics, .encapsulatedInterfaceTransport,
        ]
        for code in every {
            #expect(Self.policy.decide(role: "operator", unitID: 9, functionCode: code) == .allowed, "\(code)")
            let viewer = Self.policy.decide(role: "viewer", unitID: 9, functionCode: code)
            if code.isWrite {
                #expect(viewer == .denied(.write(code.dataAccess.writes!)), "\(code)")
            } else {
                #expect(viewer == .allowed, "\(code)")
            }
        }
    }

    @Test("FC22 and FC23 need both read and write of holding registers")
    func readModifyWriteNeedsBoth() {
        let writeOnly = ModbusRolePermissions(writableAreas: [.holdingRegister])
        #expect(writeOnly.decide(unitID: 1, functionCode: .maskWriteRegister) == .denied(.read(.holdingRegister)))
        #expect(writeOnly.decide(unitID: 1, functionCode: .writeSingleRegister) == .allowed)
        let readOnly = ModbusRolePermissions(readableAreas: [.holdingRegister])
        #expect(
            readOnly.decide(unitID: 1, functionCode: .readWriteMultipleRegisters) == .denied(.write(.holdingRegister))
        )
    }

    @Test("units, function code lists and areas each deny on their own")
    func eachRuleDenies() {
        #expect(Self.policy.decide(role: "unit1-operator", unitID: 1, functionCode: .writeSingleRegister) == .allowed)
        #expect(
            Self.policy.decide(role: "unit1-operator", unitID: 2, functionCode: .readHoldingRegisters)
                == .denied(.unit(2))
        )
        #expect(Self.policy.decide(role: "coils-only", unitID: 3, functionCode: .readCoils) == .allowed)
        #expect(Self.policy.decide(role: "coils-only", unitID: 3, functionCode: .writeSingleCoil) == .allowed)
        #expect(
            Self.policy.decide(role: "coils-only", unitID: 3, functionCode: .writeMultipleCoils)
                == .denied(.functionCode(.writeMultipleCoils)),
            "listed areas, but the function code is not on the list"
        )
        #expect(
            Self.policy.decide(role: "coils-only", unitID: 3, functionCode: .encapsulatedInterfaceTransport)
                == .denied(.functionCode(.encapsulatedInterfaceTransport))
        )
        let noList = ModbusRolePermissions(readableAreas: [.coil])
        #expect(noList.decide(unitID: 1, functionCode: .readInputRegisters) == .denied(.read(.inputRegister)))
        #expect(noList.decide(unitID: 1, functionCode: .diagnostics) == .allowed, "no area, no list: allowed")
    }

    @Test("no role: denied unless a default role is configured; an unknown role is denied; names are exact")
    func missingAndUnknownRoles() {
        #expect(Self.policy.decide(role: nil, unitID: 1, functionCode: .readHoldingRegisters) == .denied(.noRole))
        #expect(
            Self.policy.decide(role: "admin", unitID: 1, functionCode: .readHoldingRegisters)
                == .denied(.unknownRole("admin"))
        )
        #expect(
            Self.policy.decide(role: "Operator", unitID: 1, functionCode: .readHoldingRegisters)
                == .denied(.unknownRole("Operator"))
        )
        var withDefault = Self.policy
        withDefault.defaultRole = "viewer"
        #expect(withDefault.decide(role: nil, unitID: 1, functionCode: .readHoldingRegisters) == .allowed)
        #expect(
            withDefault.decide(role: nil, unitID: 1, functionCode: .writeSingleRegister)
                == .denied(.write(.holdingRegister))
        )
        #expect(
            withDefault.decide(role: "operator", unitID: 1, functionCode: .writeSingleRegister) == .allowed,
            "a certificate's own role wins over the default"
        )
        #expect(ModbusRolePermissions().decide(unitID: 1, functionCode: .readCoils) == .denied(.read(.coil)))
    }
}
