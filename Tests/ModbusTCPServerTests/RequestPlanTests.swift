import ModbusCore
import NIOCore
import Testing

@testable import ModbusTCPServer

/// Each function code's plan: which handler calls, in which order, and what the reply carries.
@Suite("Request plans: the steps of each function code, without a handler")
struct RequestPlanTests {
    static func plan(_ pdu: [UInt8], unit: UInt8 = 7) throws -> ModbusRequestPlan {
        let request = try ModbusRequest.parse(ByteBuffer(bytes: pdu)).get()
        return ModbusRequestPlan(request, unitID: unit)
    }

    static func fixedReply(_ plan: ModbusRequestPlan) throws -> [UInt8] {
        var out = ByteBuffer()
        let identification = ModbusDeviceIdentificationResponder(ModbusServerConfiguration().deviceIdentification)
        try plan.writeFixedReply(identification: identification, into: &out)
        return Array(out.readableBytesView)
    }

    @Test(
        "FC1 to FC4: one step, the read whose values make the reply",
        arguments: [
            (UInt8(0x01), ModbusArea.coil), (0x02, .discreteInput), (0x03, .holdingRegister), (0x04, .inputRegister),
        ]
    )
    func reads(function: UInt8, area: ModbusArea) throws {
        let plan = try Self.plan(ModbusFrames.read(function, address: 9, count: 4))
        #expect(plan.write == nil && plan.maskWrite == nil)
        guard case .values(let read) = plan.reply else {
            Issue.record("the reply carries the values read")
            return
        }
        #expect(
            read
                == ModbusReadRequest(
                    unitID: 7,
                    functionCode: ModbusFunctionCode(rawValue: function),
                    area: area,
                    address: 9,
                    count: 4
                )
        )
        #expect(plan.callsReadHandler && !plan.callsWriteHandler)
    }

    @Test("FC5 writes the coil as 0 or 1 and echoes 0xFF00 or 0x0000")
    func writeSingleCoil() throws {
        let on = try Self.plan([0x05, 0x00, 0x0A, 0xFF, 0x00])
        #expect(
            on.write
                == ModbusWriteRequest(
                    unitID: 7,
                    functionCode: .writeSingleCoil,
                    area: .coil,
                    address: 10,
                    values: [1]
                )
        )
        #expect(try Self.fixedReply(on) == [0x05, 0x00, 0x0A, 0xFF, 0x00])
        let off = try Self.plan([0x05, 0x00, 0x0A, 0x00, 0x00])
        #expect(off.write?.values == [0])
        #expect(try Self.fixedReply(off) == [0x05, 0x00, 0x0A, 0x00, 0x00])
        #expect(!on.callsReadHandler && on.callsWriteHandler)
    }

    @Test("FC6 writes the register and echoes it")
    func writeSingleRegister() throws {
        let plan = try Self.plan([0x06, 0x00, 0x01, 0x12, 0x34])
        #expect(
            plan.write
                == ModbusWriteRequest(
                    unitID: 7,
                    functionCode: .writeSingleRegister,
                    area: .holdingRegister,
                    address: 1,
                    values: [0x1234]
                )
        )
        #expect(try Self.fixedReply(plan) == [0x06, 0x00, 0x01, 0x12, 0x34])
    }

    @Test("FC15 and FC16 write the values and reply with address and quantity")
    func writeMultiple() throws {
        let coils = try Self.plan(ModbusFrames.writeCoils(address: 3, bits: [true, false, true]))
        #expect(
            coils.write
                == ModbusWriteRequest(
                    unitID: 7,
                    functionCode: .writeMultipleCoils,
                    area: .coil,
                    address: 3,
                    values: [1, 0, 1]
                )
        )
        #expect(try Self.fixedReply(coils) == [0x0F, 0x00, 0x03, 0x00, 0x03])
        let registers = try Self.plan(ModbusFrames.writeRegisters(address: 4, values: [5, 6]))
        #expect(
            registers.write
                == ModbusWriteRequest(
                    unitID: 7,
                    functionCode: .writeMultipleRegisters,
                    area: .holdingRegister,
                    address: 4,
                    values: [5, 6]
                )
        )
        #expect(try Self.fixedReply(registers) == [0x10, 0x00, 0x04, 0x00, 0x02])
    }

    @Test("FC22 reads the register, writes it back masked with the masks attached, and echoes the request")
    func maskWrite() throws {
        let plan = try Self.plan([0x16, 0x00, 0x04, 0x00, 0xF2, 0x00, 0x25])
        #expect(plan.write == nil)
        let maskWrite = try #require(plan.maskWrite)
        #expect(
            maskWrite.read
                == ModbusReadRequest(
                    unitID: 7,
                    functionCode: .maskWriteRegister,
                    area: .holdingRegister,
                    address: 4,
                    count: 1
                )
        )
        // The specification's example: current 0x12, AND 0xF2, OR 0x25 gives 0x17.
        #expect(
            maskWrite.write(current: 0x12)
                == ModbusWriteRequest(
                    unitID: 7,
                    functionCode: .maskWriteRegister,
                    area: .holdingRegister,
                    address: 4,
                    values: [0x17],
                    mask: ModbusRegisterMask(andMask: 0xF2, orMask: 0x25)
                )
        )
        #expect(try Self.fixedReply(plan) == [0x16, 0x00, 0x04, 0x00, 0xF2, 0x00, 0x25])
        #expect(plan.callsReadHandler && plan.callsWriteHandler)
    }

    @Test("FC23 writes first, then reads, both holding registers under function code 23")
    func readWrite() throws {
        let pdu: [UInt8] = [0x17, 0x00, 0x03, 0x00, 0x02, 0x00, 0x0E, 0x00, 0x01, 0x02, 0xAB, 0xCD]
        let plan = try Self.plan(pdu)
        #expect(
            plan.write
                == ModbusWriteRequest(
                    unitID: 7,
                    functionCode: .readWriteMultipleRegisters,
                    area: .holdingRegister,
                    address: 14,
                    values: [0xABCD]
                )
        )
        guard case .values(let read) = plan.reply else {
            Issue.record("the reply carries the values read")
            return
        }
        #expect(
            read
                == ModbusReadRequest(
                    unitID: 7,
                    functionCode: .readWriteMultipleRegisters,
                    area: .holdingRegister,
                    address: 3,
                    count: 2
                )
        )
    }

    @Test("FC8/00 and FC43/14 call no handler")
    func noHandler() throws {
        let echo = try Self.plan([0x08, 0x00, 0x00, 0xA5, 0x5A])
        #expect(!echo.callsReadHandler && !echo.callsWriteHandler)
        #expect(try Self.fixedReply(echo) == [0x08, 0x00, 0x00, 0xA5, 0x5A])
        let identification = try Self.plan([0x2B, 0x0E, 0x01, 0x00])
        #expect(!identification.callsReadHandler && !identification.callsWriteHandler)
        #expect(try Self.fixedReply(identification).prefix(3) == [0x2B, 0x0E, 0x01])
    }
}
