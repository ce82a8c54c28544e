import ModbusCore
import NIOCore
import Testing

private func bytes(_ write: (inout ByteBuffer) -> Void) -> [UInt8] {
    var out = ByteBuffer()
    write(&out)
    return Array(out.readableBytesView)
}

@Suite("Response encoding")
struct ResponseEncodingTests {
    @Test("Exception PDU is function | 0x80 followed by the code")
    func exceptionPDU() {
        #expect(bytes { $0.writeModbusExceptionPDU(function: 0x03, code: .illegalDataAddress) } == [0x83, 0x02])
        #expect(bytes { $0.writeModbusExceptionPDU(function: 0x2B, code: .illegalDataValue) } == [0xAB, 0x03])
        #expect(bytes { $0.writeModbusExceptionPDU(function: 0x07, code: .illegalFunction) } == [0x87, 0x01])
        #expect(
            bytes { $0.writeModbusExceptionPDU(function: 0x10, code: .gatewayTargetDeviceFailedToRespond) } == [
                0x90, 0x0B,
            ]
        )
    }

    @Test("exceptionReplyByte sets the high bit")
    func exceptionReplyByte() {
        #expect(ModbusFunctionCode.readCoils.exceptionReplyByte == 0x81)
        #expect(ModbusFunctionCode.readWriteMultipleRegisters.exceptionReplyByte == 0x97)
        #expect(ModbusFunctionCode(rawValue: 0x41).exceptionReplyByte == 0xC1)
    }

    @Test("Exception reply frame has MBAP length 3")
    func exceptionFrameLength() {
        var pdu = ByteBuffer()
        pdu.writeModbusExceptionPDU(function: 0x06, code: .serverDeviceFailure)
        let wire = bytes { $0.writeModbusTCPFrame(ModbusTCPFrame(transactionID: 0x0102, unitID: 3, pdu: pdu)) }
        #expect(wire == [0x01, 0x02, 0x00, 0x00, 0x00, 0x03, 0x03, 0x86, 0x04])
    }

    @Test("Read bits: 1 bit packs into one byte, LSB, zero padded")
    func oneBit() {
        #expect(bytes { $0.writeModbusReadBitsPDU(function: .readCoils, bits: [1]) } == [0x01, 0x01, 0x01])
        #expect(bytes { $0.writeModbusReadBitsPDU(function: .readDiscreteInputs, bits: [0]) } == [0x02, 0x01, 0x00])
    }

    @Test("Read bits: 8 bits fill exactly one byte, first bit in bit 0")
    func eightBits() {
        #expect(
            bytes { $0.writeModbusReadBitsPDU(function: .readCoils, bits: [1, 0, 0, 0, 0, 0, 0, 0]) } == [
                0x01, 0x01, 0x01,
            ]
        )
        #expect(
            bytes { $0.writeModbusReadBitsPDU(function: .readCoils, bits: [0, 0, 0, 0, 0, 0, 0, 1]) } == [
                0x01, 0x01, 0x80,
            ]
        )
        #expect(
            bytes { $0.writeModbusReadBitsPDU(function: .readCoils, bits: [1, 1, 1, 1, 1, 1, 1, 1]) } == [
                0x01, 0x01, 0xFF,
            ]
        )
    }

    @Test("Read bits: 9 bits take two bytes, the second zero padded")
    func nineBits() {
        #expect(
            bytes { $0.writeModbusReadBitsPDU(function: .readCoils, bits: [1, 1, 1, 1, 1, 1, 1, 1, 1]) } == [
                0x01, 0x02, 0xFF, 0x01,
            ]
        )
        #expect(
            bytes { $0.writeModbusReadBitsPDU(function: .readCoils, bits: [0, 0, 0, 0, 0, 0, 0, 0, 1]) } == [
                0x01, 0x02, 0x00, 0x01,
            ]
        )
    }

    @Test("Read bits: spec example 1,0,1,1,0,0,1,1,1,0 packs as 0xCD 0x01")
    func specExample() {
        #expect(
            bytes { $0.writeModbusReadBitsPDU(function: .readCoils, bits: [1, 0, 1, 1, 0, 0, 1, 1, 1, 0]) } == [
                0x01, 0x02, 0xCD, 0x01,
            ]
        )
    }

    @Test("Read bits: 2000 bits take 250 bytes (byte count 250, PDU 252)")
    func twoThousandBits() {
        let bits = (0..<2000).map { UInt16($0 % 3 == 0 ? 1 : 0) }
        let out = bytes { $0.writeModbusReadBitsPDU(function: .readDiscreteInputs, bits: bits) }
        #expect(out.count == 252)
        #expect(out[0] == 0x02)
        #expect(out[1] == 250, "byte count = ceil(2000 / 8)")
        for (index, bit) in bits.enumerated() {
            let packed = (out[2 + index / 8] >> UInt8(index % 8)) & 1
            if UInt16(packed) != bit {
                Issue.record("bit \(index): packed \(packed), expected \(bit)")
                break
            }
        }
    }

    @Test("writeModbusPackedBits writes no byte for no bits")
    func packedBitsEmpty() {
        #expect(bytes { $0.writeModbusPackedBits([]) } == [])
        #expect(bytes { $0.writeModbusPackedBits([0, 1, 0, 1, 0, 1, 0, 1, 1, 0, 1, 0, 1, 0, 1, 0]) } == [0xAA, 0x55])
    }

    @Test("Read registers: big-endian registers after byte count 2N")
    func registers() {
        #expect(
            bytes {
                $0.writeModbusReadRegistersPDU(function: .readHoldingRegisters, registers: [0x022B, 0x0000, 0x0064])
            }
                == [0x03, 0x06, 0x02, 0x2B, 0x00, 0x00, 0x00, 0x64]
        )
        #expect(
            bytes { $0.writeModbusReadRegistersPDU(function: .readInputRegisters, registers: [0xABCD]) } == [
                0x04, 0x02, 0xAB, 0xCD,
            ]
        )
    }

    @Test("Read registers: 125 registers give byte count 250")
    func maxRegisters() {
        let out = bytes {
            $0.writeModbusReadRegistersPDU(
                function: .readWriteMultipleRegisters,
                registers: [UInt16](repeating: 0x0102, count: 125)
            )
        }
        #expect(out.count == 252)
        #expect(Array(out[0..<4]) == [0x17, 250, 0x01, 0x02])
    }

    @Test("Write multiple reply: function, start address, quantity (big-endian)")
    func writeMultiple() {
        #expect(
            bytes { $0.writeModbusWriteMultiplePDU(function: .writeMultipleCoils, address: 0x0013, count: 10) }
                == [0x0F, 0x00, 0x13, 0x00, 0x0A]
        )
        #expect(
            bytes { $0.writeModbusWriteMultiplePDU(function: .writeMultipleRegisters, address: 0xFF85, count: 123) }
                == [0x10, 0xFF, 0x85, 0x00, 0x7B]
        )
    }
}

@Suite("Exception and function codes")
struct CodeTests {
    @Test(
        "Exception code descriptions contain the name and the hex code",
        arguments: [
            (ModbusExceptionCode.illegalFunction, "0x01"),
            (.illegalDataAddress, "0x02"),
            (.illegalDataValue, "0x03"),
            (.serverDeviceFailure, "0x04"),
            (.acknowledge, "0x05"),
            (.serverDeviceBusy, "0x06"),
            (.memoryParityError, "0x08"),
            (.gatewayPathUnavailable, "0x0A"),
            (.gatewayTargetDeviceFailedToRespond, "0x0B"),
            (ModbusExceptionCode(rawValue: 0x42), "0x42"),
        ]
    )
    func exceptionDescription(code: ModbusExceptionCode, hex: String) {
        #expect(code.description.contains(hex), "\(code.description) should name \(hex)")
    }

    @Test("Exception code descriptions name the condition")
    func exceptionNames() {
        #expect(ModbusExceptionCode.illegalFunction.description == "illegal function (0x01)")
        #expect(ModbusExceptionCode.illegalDataValue.description == "illegal data value (0x03)")
        #expect(ModbusExceptionCode.gatewayPathUnavailable.description == "gateway path unavailable (0x0A)")
    }

    @Test("Exception code raw values match the specification")
    func exceptionRawValues() {
        let codes: [ModbusExceptionCode] = [
            .illegalFunction, .illegalDataAddress, .illegalDataValue, .serverDeviceFailure, .acknowledge,
            .serverDeviceBusy, .memoryParityError, .gatewayPathUnavailable, .gatewayTargetDeviceFailedToRespond,
        ]
        #expect(codes.map(\.rawValue) == [0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x08, 0x0A, 0x0B])
    }

    @Test("ModbusException carries its code and reason")
    func modbusException() {
        let exception = ModbusException(.illegalDataAddress, "no register at 7")
        #expect(exception.code == .illegalDataAddress)
        #expect(exception.description.contains("0x02"))
        #expect(exception.description.contains("no register at 7"))
        #expect(ModbusException.serverDeviceBusy.code == .serverDeviceBusy)
        #expect(ModbusException.serverDeviceBusy.reason == nil)
    }

    @Test("isWrite is true for FC 5, 6, 15, 16, 22, 23 only")
    func isWrite() {
        let writes: Set<UInt8> = [5, 6, 15, 16, 22, 23]
        for raw in UInt8.min...UInt8.max {
            #expect(ModbusFunctionCode(rawValue: raw).isWrite == writes.contains(raw), "FC\(raw)")
        }
    }

    @Test("Function code raw values match the specification")
    func functionCodeRawValues() {
        let codes: [ModbusFunctionCode] = [
            .readCoils, .readDiscreteInputs, .readHoldingRegisters, .readInputRegisters, .writeSingleCoil,
            .writeSingleRegister, .diagnostics, .writeMultipleCoils, .writeMultipleRegisters, .maskWriteRegister,
            .readWriteMultipleRegisters, .encapsulatedInterfaceTransport,
        ]
        #expect(codes.map(\.rawValue) == [0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x08, 0x0F, 0x10, 0x16, 0x17, 0x2B])
        #expect(ModbusFunctionCode.readHoldingRegisters.description == "FC3")
    }

    @Test("Area properties: bit areas and writable areas")
    func areas() {
        #expect(ModbusArea.allCases.filter(\.isBitArea) == [.coil, .discreteInput])
        #expect(ModbusArea.allCases.filter(\.isWritable) == [.coil, .holdingRegister])
    }
}
