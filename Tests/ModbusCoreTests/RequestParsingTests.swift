import ModbusCore
import NIOCore
import Testing

/// FC1...FC4 PDU: function, start address, quantity.
private func readPDU(_ function: UInt8, address: UInt16, quantity: UInt16) -> [UInt8] {
    [function] + be(address) + be(quantity)
}

/// FC15 PDU; byte count defaults to ceil(N/8) and data to that many zero bytes.
private func writeCoilsPDU(address: UInt16, quantity: UInt16, byteCount: UInt8? = nil, data: [UInt8]? = nil) -> [UInt8]
{
    let count = byteCount ?? UInt8(truncatingIfNeeded: (Int(quantity) + 7) / 8)
    return [0x0F] + be(address) + be(quantity) + [count] + (data ?? [UInt8](repeating: 0, count: Int(count)))
}

/// FC16 PDU; byte count defaults to 2N and data to N registers 0x0000, 0x0001, ...
private func writeRegistersPDU(
    address: UInt16,
    quantity: UInt16,
    byteCount: UInt8? = nil,
    data: [UInt8]? = nil
) -> [UInt8] {
    let count = byteCount ?? UInt8(truncatingIfNeeded: 2 * Int(quantity))
    let values = data ?? (0..<Int(quantity)).flatMap { be(UInt16($0)) }
    return [0x10] + be(address) + be(quantity) + [count] + values
}

/// FC23 PDU; byte count defaults to 2 × write quantity and data to that many registers.
private func readWritePDU(
    readAddress: UInt16,
    readQuantity: UInt16,
    writeAddress: UInt16,
    writeQuantity: UInt16,
    byteCount: UInt8? = nil,
    data: [UInt8]? = nil
) -> [UInt8] {
    let count = byteCount ?? UInt8(truncatingIfNeeded: 2 * Int(writeQuantity))
    let values = data ?? (0..<Int(writeQuantity)).flatMap { be(UInt16(0x100 + $0)) }
    return [0x17] + be(readAddress) + be(readQuantity) + be(writeAddress) + be(writeQuantity) + [count] + values
}

@Suite("Request parsing: FC1 / FC2 read bits")
struct ReadBitsParsingTests {
    @Test("FC1/FC2 quantity 0 is illegal data value (03)", arguments: [UInt8(0x01), 0x02])
    func quantityZero(function: UInt8) {
        #expect(
            parseFailure(readPDU(function, address: 0, quantity: 0)) == .illegalDataValue,
            "quantity must be 1...2000"
        )
    }

    @Test("FC1/FC2 quantity 1 and 2000 are accepted", arguments: [UInt8(0x01), 0x02])
    func quantityBounds(function: UInt8) {
        let area: ModbusArea = function == 0x01 ? .coil : .discreteInput
        #expect(parse(readPDU(function, address: 0, quantity: 1)) == .success(.read(area: area, address: 0, count: 1)))
        #expect(
            parse(readPDU(function, address: 100, quantity: 2000))
                == .success(.read(area: area, address: 100, count: 2000))
        )
    }

    @Test("FC1/FC2 quantity 2001 is illegal data value (03)", arguments: [UInt8(0x01), 0x02])
    func quantity2001(function: UInt8) {
        #expect(
            parseFailure(readPDU(function, address: 0, quantity: 2001)) == .illegalDataValue,
            "quantity must be 1...2000"
        )
    }

    @Test("FC1 start + quantity = 65536 is accepted, 65537 is illegal data address (02)")
    func addressRange() {
        #expect(
            parse(readPDU(0x01, address: 63536, quantity: 2000))
                == .success(.read(area: .coil, address: 63536, count: 2000))
        )
        #expect(parseFailure(readPDU(0x01, address: 63537, quantity: 2000)) == .illegalDataAddress)
    }

    @Test("FC2 address 65535 with quantity 2001 is 03, not 02: quantity is checked before address")
    func quantityBeforeAddress() {
        #expect(parseFailure(readPDU(0x02, address: 65535, quantity: 2001)) == .illegalDataValue)
    }
}

@Suite("Request parsing: FC3 / FC4 read registers")
struct ReadRegistersParsingTests {
    @Test("FC3/FC4 quantity 0 is illegal data value (03)", arguments: [UInt8(0x03), 0x04])
    func quantityZero(function: UInt8) {
        #expect(
            parseFailure(readPDU(function, address: 0, quantity: 0)) == .illegalDataValue,
            "quantity must be 1...125"
        )
    }

    @Test("FC3/FC4 quantity 1 and 125 are accepted", arguments: [UInt8(0x03), 0x04])
    func quantityBounds(function: UInt8) {
        let area: ModbusArea = function == 0x03 ? .holdingRegister : .inputRegister
        #expect(
            parse(readPDU(function, address: 0x006B, quantity: 1))
                == .success(.read(area: area, address: 0x006B, count: 1))
        )
        #expect(
            parse(readPDU(function, address: 0x006B, quantity: 125))
                == .success(.read(area: area, address: 0x006B, count: 125))
        )
    }

    @Test("FC3/FC4 quantity 126 is illegal data value (03)", arguments: [UInt8(0x03), 0x04])
    func quantity126(function: UInt8) {
        #expect(
            parseFailure(readPDU(function, address: 0, quantity: 126)) == .illegalDataValue,
            "quantity must be 1...125"
        )
    }

    @Test("FC3 quantity 0xFFFF is illegal data value (03)")
    func quantityMax() {
        #expect(parseFailure(readPDU(0x03, address: 0, quantity: 0xFFFF)) == .illegalDataValue)
    }

    @Test("FC3 address 65535 quantity 1 is accepted (start + quantity = 65536)")
    func lastAddress() {
        #expect(
            parse(readPDU(0x03, address: 65535, quantity: 1))
                == .success(.read(area: .holdingRegister, address: 65535, count: 1))
        )
    }

    @Test("FC3 address 65535 quantity 2 is illegal data address (02)")
    func pastLastAddress() {
        #expect(
            parseFailure(readPDU(0x03, address: 65535, quantity: 2)) == .illegalDataAddress,
            "start + quantity must be ≤ 65536"
        )
    }

    @Test("FC4 address 65000 quantity 126 is 03, not 02: quantity is checked before address")
    func quantityBeforeAddress() {
        #expect(parseFailure(readPDU(0x04, address: 65000, quantity: 126)) == .illegalDataValue)
        #expect(parseFailure(readPDU(0x03, address: 65000, quantity: 126)) == .illegalDataValue)
    }

    @Test("FC3 with 3 data bytes (truncated) is illegal data value (03)")
    func truncated() {
        #expect(parseFailure([0x03, 0x00, 0x00, 0x00]) == .illegalDataValue)
        #expect(parseFailure([0x03]) == .illegalDataValue)
    }

    @Test("FC3 with 5 data bytes (too long) is illegal data value (03)")
    func tooLong() {
        #expect(parseFailure([0x03, 0x00, 0x00, 0x00, 0x01, 0x00]) == .illegalDataValue)
    }
}

@Suite("Request parsing: FC5 / FC6 single writes")
struct SingleWriteParsingTests {
    @Test("FC5 value 0xFF00 is ON")
    func coilOn() {
        #expect(parse([0x05, 0x00, 0xAC, 0xFF, 0x00]) == .success(.writeSingleCoil(address: 0x00AC, value: true)))
    }

    @Test("FC5 value 0x0000 is OFF")
    func coilOff() {
        #expect(parse([0x05, 0xFF, 0xFF, 0x00, 0x00]) == .success(.writeSingleCoil(address: 0xFFFF, value: false)))
    }

    @Test(
        "FC5 value other than 0xFF00/0x0000 is illegal data value (03)",
        arguments: [UInt16(0x00FF), 0x1234, 0xFFFF, 0x0001, 0xFF01]
    )
    func coilBadValue(value: UInt16) {
        #expect(
            parseFailure([0x05, 0x00, 0x01] + be(value)) == .illegalDataValue,
            "coil value must be 0xFF00 or 0x0000"
        )
    }

    @Test("FC5 truncated or too long is illegal data value (03)")
    func coilWrongLength() {
        #expect(parseFailure([0x05, 0x00, 0x01, 0xFF]) == .illegalDataValue)
        #expect(parseFailure([0x05, 0x00, 0x01, 0xFF, 0x00, 0x00]) == .illegalDataValue)
    }

    @Test("FC6 accepts any value", arguments: [UInt16(0x0000), 0x0003, 0x8000, 0xFFFF])
    func registerAnyValue(value: UInt16) {
        #expect(parse([0x06, 0x00, 0x01] + be(value)) == .success(.writeSingleRegister(address: 1, value: value)))
    }

    @Test("FC6 at address 65535 is accepted")
    func registerLastAddress() {
        #expect(
            parse([0x06, 0xFF, 0xFF, 0x12, 0x34]) == .success(.writeSingleRegister(address: 0xFFFF, value: 0x1234))
        )
    }

    @Test("FC6 with 5 data bytes or 3 data bytes is illegal data value (03)")
    func registerWrongLength() {
        #expect(parseFailure([0x06, 0x00, 0x01, 0x00, 0x03, 0x00]) == .illegalDataValue)
        #expect(parseFailure([0x06, 0x00, 0x01, 0x00]) == .illegalDataValue)
    }
}

@Suite("Request parsing: FC15 write multiple coils")
struct WriteMultipleCoilsParsingTests {
    @Test("FC15 bits are unpacked LSB first: 0xCD 0x01 for 10 coils is 1,0,1,1,0,0,1,1,1,0")
    func bitUnpacking() {
        let request = parseSuccess(writeCoilsPDU(address: 0x0013, quantity: 10, byteCount: 2, data: [0xCD, 0x01]))
        #expect(request == .writeMultipleCoils(address: 0x0013, values: [1, 0, 1, 1, 0, 0, 1, 1, 1, 0]))
    }

    @Test("FC15 padding bits of the last byte are ignored")
    func paddingIgnored() {
        let request = parseSuccess(writeCoilsPDU(address: 0, quantity: 3, byteCount: 1, data: [0xFA]))
        #expect(request == .writeMultipleCoils(address: 0, values: [0, 1, 0]))
    }

    @Test("FC15 quantity 1 and 1968 are accepted")
    func quantityBounds() {
        #expect(
            parse(writeCoilsPDU(address: 5, quantity: 1, data: [0x01]))
                == .success(.writeMultipleCoils(address: 5, values: [1]))
        )
        let data = [UInt8](repeating: 0xFF, count: 246)
        #expect(
            parse(writeCoilsPDU(address: 0, quantity: 1968, data: data))
                == .success(.writeMultipleCoils(address: 0, values: [UInt16](repeating: 1, count: 1968)))
        )
    }

    @Test("FC15 quantity 0 and 1969 are illegal data value (03)")
    func quantityOutOfRange() {
        #expect(parseFailure(writeCoilsPDU(address: 0, quantity: 0)) == .illegalDataValue, "quantity must be 1...1968")
        #expect(
            parseFailure(writeCoilsPDU(address: 0, quantity: 1969)) == .illegalDataValue,
            "quantity must be 1...1968"
        )
    }

    @Test("FC15 byte count ≠ ceil(N/8) is illegal data value (03)")
    func byteCountMismatch() {
        #expect(parseFailure(writeCoilsPDU(address: 0, quantity: 10, byteCount: 1, data: [0xFF])) == .illegalDataValue)
        #expect(
            parseFailure(writeCoilsPDU(address: 0, quantity: 10, byteCount: 3, data: [0xFF, 0x03, 0x00]))
                == .illegalDataValue
        )
        #expect(
            parseFailure(writeCoilsPDU(address: 0, quantity: 8, byteCount: 2, data: [0xFF, 0x00])) == .illegalDataValue
        )
    }

    @Test("FC15 PDU shorter or longer than its byte count is illegal data value (03)")
    func dataLengthMismatch() {
        #expect(
            parseFailure(writeCoilsPDU(address: 0, quantity: 10, byteCount: 2, data: [0xFF])) == .illegalDataValue,
            "one data byte missing"
        )
        #expect(
            parseFailure(writeCoilsPDU(address: 0, quantity: 10, byteCount: 2, data: [0xFF, 0x03, 0x00]))
                == .illegalDataValue,
            "one byte too many"
        )
    }

    @Test("FC15 header truncated is illegal data value (03)")
    func headerTruncated() {
        #expect(parseFailure([0x0F, 0x00, 0x00, 0x00, 0x01]) == .illegalDataValue)
    }

    @Test("FC15 start + quantity past 65536 is illegal data address (02)")
    func addressOverflow() {
        #expect(
            parse(writeCoilsPDU(address: 65535, quantity: 1, data: [0x01]))
                == .success(.writeMultipleCoils(address: 65535, values: [1]))
        )
        #expect(parseFailure(writeCoilsPDU(address: 65535, quantity: 2)) == .illegalDataAddress)
    }

    @Test("FC15 address 65535 quantity 1969 is 03, not 02: quantity is checked before address")
    func quantityBeforeAddress() {
        #expect(parseFailure(writeCoilsPDU(address: 65535, quantity: 1969)) == .illegalDataValue)
    }
}

@Suite("Request parsing: FC16 write multiple registers")
struct WriteMultipleRegistersParsingTests {
    @Test("FC16 values are read big-endian")
    func values() {
        let request = parseSuccess(writeRegistersPDU(address: 1, quantity: 2, data: [0x00, 0x0A, 0x01, 0x02]))
        #expect(request == .writeMultipleRegisters(address: 1, values: [0x000A, 0x0102]))
    }

    @Test("FC16 quantity 1 and 123 are accepted")
    func quantityBounds() {
        #expect(
            parse(writeRegistersPDU(address: 0, quantity: 1))
                == .success(.writeMultipleRegisters(address: 0, values: [0]))
        )
        #expect(
            parse(writeRegistersPDU(address: 0, quantity: 123))
                == .success(.writeMultipleRegisters(address: 0, values: (0..<123).map { UInt16($0) }))
        )
    }

    @Test("FC16 quantity 0 and 124 are illegal data value (03)")
    func quantityOutOfRange() {
        #expect(
            parseFailure(writeRegistersPDU(address: 0, quantity: 0)) == .illegalDataValue,
            "quantity must be 1...123"
        )
        #expect(
            parseFailure(writeRegistersPDU(address: 0, quantity: 124)) == .illegalDataValue,
            "quantity must be 1...123"
        )
    }

    @Test("FC16 byte count ≠ 2N is illegal data value (03)")
    func byteCountMismatch() {
        #expect(
            parseFailure(writeRegistersPDU(address: 0, quantity: 2, byteCount: 3, data: [0, 1, 0])) == .illegalDataValue
        )
        #expect(
            parseFailure(writeRegistersPDU(address: 0, quantity: 2, byteCount: 6, data: [0, 1, 0, 2, 0, 3]))
                == .illegalDataValue
        )
    }

    @Test("FC16 PDU shorter or longer than its byte count is illegal data value (03)")
    func dataLengthMismatch() {
        #expect(
            parseFailure(writeRegistersPDU(address: 0, quantity: 2, byteCount: 4, data: [0, 1, 0])) == .illegalDataValue
        )
        #expect(
            parseFailure(writeRegistersPDU(address: 0, quantity: 2, byteCount: 4, data: [0, 1, 0, 2, 0]))
                == .illegalDataValue
        )
    }

    @Test("FC16 start + quantity past 65536 is illegal data address (02)")
    func addressOverflow() {
        #expect(
            parse(writeRegistersPDU(address: 65534, quantity: 2))
                == .success(.writeMultipleRegisters(address: 65534, values: [0, 1]))
        )
        #expect(parseFailure(writeRegistersPDU(address: 65535, quantity: 2)) == .illegalDataAddress)
    }

    @Test("FC16 address 65535 quantity 124 is 03, not 02: quantity is checked before address")
    func quantityBeforeAddress() {
        #expect(parseFailure(writeRegistersPDU(address: 65535, quantity: 124)) == .illegalDataValue)
    }
}

@Suite("Request parsing: FC22 mask write register")
struct MaskWriteParsingTests {
    @Test("FC22 parses address, AND mask and OR mask")
    func parsesMasks() {
        #expect(
            parse([0x16, 0x00, 0x04, 0x00, 0xF2, 0x00, 0x25])
                == .success(.maskWriteRegister(address: 0x0004, andMask: 0x00F2, orMask: 0x0025))
        )
    }

    @Test("FC22 PDU length ≠ 7 is illegal data value (03)", arguments: [6, 8])
    func wrongLength(length: Int) {
        let full: [UInt8] = [0x16, 0x00, 0x04, 0x00, 0xF2, 0x00, 0x25, 0x00]
        #expect(parseFailure(Array(full[..<length])) == .illegalDataValue)
    }
}

@Suite("Request parsing: FC23 read/write multiple registers")
struct ReadWriteParsingTests {
    @Test("FC23 parses read range and write values")
    func parses() {
        let request = parseSuccess(
            readWritePDU(
                readAddress: 3,
                readQuantity: 6,
                writeAddress: 14,
                writeQuantity: 3,
                data: [0x00, 0xFF, 0x00, 0xFF, 0x00, 0xFF]
            )
        )
        #expect(
            request
                == .readWriteMultipleRegisters(
                    readAddress: 3,
                    readCount: 6,
                    writeAddress: 14,
                    writeValues: [0xFF, 0xFF, 0xFF]
                )
        )
    }

    @Test("FC23 read quantity 1 and 125 are accepted, 0 and 126 are 03")
    func readQuantity() {
        #expect(parseSuccess(readWritePDU(readAddress: 0, readQuantity: 1, writeAddress: 0, writeQuantity: 1)) != nil)
        #expect(parseSuccess(readWritePDU(readAddress: 0, readQuantity: 125, writeAddress: 0, writeQuantity: 1)) != nil)
        #expect(
            parseFailure(readWritePDU(readAddress: 0, readQuantity: 0, writeAddress: 0, writeQuantity: 1))
                == .illegalDataValue
        )
        #expect(
            parseFailure(readWritePDU(readAddress: 0, readQuantity: 126, writeAddress: 0, writeQuantity: 1))
                == .illegalDataValue
        )
    }

    @Test("FC23 write quantity 1 and 121 are accepted, 0 and 122 are 03")
    func writeQuantity() {
        #expect(parseSuccess(readWritePDU(readAddress: 0, readQuantity: 1, writeAddress: 0, writeQuantity: 121)) != nil)
        #expect(
            parseFailure(readWritePDU(readAddress: 0, readQuantity: 1, writeAddress: 0, writeQuantity: 0))
                == .illegalDataValue
        )
        #expect(
            parseFailure(readWritePDU(readAddress: 0, readQuantity: 1, writeAddress: 0, writeQuantity: 122))
                == .illegalDataValue,
            "write quantity must be 1...121"
        )
    }

    @Test("FC23 byte count ≠ 2 × write quantity is illegal data value (03)")
    func byteCountMismatch() {
        #expect(
            parseFailure(
                readWritePDU(
                    readAddress: 0,
                    readQuantity: 1,
                    writeAddress: 0,
                    writeQuantity: 2,
                    byteCount: 2,
                    data: [0, 1]
                )
            ) == .illegalDataValue
        )
        #expect(
            parseFailure(
                readWritePDU(
                    readAddress: 0,
                    readQuantity: 1,
                    writeAddress: 0,
                    writeQuantity: 2,
                    byteCount: 4,
                    data: [0, 1, 0]
                )
            ) == .illegalDataValue,
            "data shorter than byte count"
        )
        #expect(
            parseFailure(
                readWritePDU(
                    readAddress: 0,
                    readQuantity: 1,
                    writeAddress: 0,
                    writeQuantity: 2,
                    byteCount: 4,
                    data: [0, 1, 0, 2, 9]
                )
            ) == .illegalDataValue,
            "data longer than byte count"
        )
    }

    @Test("FC23 read range past 65536 is illegal data address (02)")
    func readAddressOverflow() {
        #expect(
            parseSuccess(readWritePDU(readAddress: 65411, readQuantity: 125, writeAddress: 0, writeQuantity: 1)) != nil
        )
        #expect(
            parseFailure(readWritePDU(readAddress: 65412, readQuantity: 125, writeAddress: 0, writeQuantity: 1))
                == .illegalDataAddress
        )
    }

    @Test("FC23 write range past 65536 is illegal data address (02)")
    func writeAddressOverflow() {
        #expect(
            parseSuccess(readWritePDU(readAddress: 0, readQuantity: 1, writeAddress: 65535, writeQuantity: 1)) != nil
        )
        #expect(
            parseFailure(readWritePDU(readAddress: 0, readQuantity: 1, writeAddress: 65535, writeQuantity: 2))
                == .illegalDataAddress
        )
    }

    @Test("FC23 bad quantity with overflowing address is 03, not 02")
    func quantityBeforeAddress() {
        #expect(
            parseFailure(readWritePDU(readAddress: 65535, readQuantity: 126, writeAddress: 0, writeQuantity: 1))
                == .illegalDataValue
        )
        #expect(
            parseFailure(readWritePDU(readAddress: 0, readQuantity: 1, writeAddress: 65535, writeQuantity: 122))
                == .illegalDataValue
        )
    }
}

@Suite("Request parsing: FC43 read device identification")
struct DeviceIdentificationParsingTests {
    @Test(
        "FC43 MEI 0x0E with read codes 1...4 is accepted",
        arguments: [
            (UInt8(1), ModbusDeviceIDReadCode.basic), (2, .regular), (3, .extended), (4, .individual),
        ]
    )
    func validCodes(raw: UInt8, code: ModbusDeviceIDReadCode) {
        #expect(parse([0x2B, 0x0E, raw, 0x05]) == .success(.readDeviceIdentification(code: code, objectID: 0x05)))
    }

    @Test("FC43 read code 0 and 5 are illegal data value (03)", arguments: [UInt8(0), 5, 0xFF])
    func invalidCodes(raw: UInt8) {
        #expect(parseFailure([0x2B, 0x0E, raw, 0x00]) == .illegalDataValue)
    }

    @Test("FC43 with another MEI type (0x0D, CANopen) is illegal function (01)")
    func otherMEIType() {
        #expect(parseFailure([0x2B, 0x0D, 0x01, 0x00]) == .illegalFunction)
    }

    @Test("FC43 / 0x0E with wrong length is illegal data value (03)")
    func wrongLength() {
        #expect(parseFailure([0x2B, 0x0E, 0x01]) == .illegalDataValue, "object id missing")
        #expect(parseFailure([0x2B, 0x0E, 0x01, 0x00, 0x00]) == .illegalDataValue, "one byte too many")
        #expect(parseFailure([0x2B, 0x0E]) == .illegalDataValue)
    }
}

@Suite("Request parsing: FC8 diagnostics")
struct DiagnosticsParsingTests {
    @Test("FC8 sub-function 0 (return query data) carries the whole PDU for the echo")
    func returnQueryData() {
        let bytes: [UInt8] = [0x08, 0x00, 0x00, 0xA5, 0x37]
        let request = parseSuccess(bytes)
        #expect(request == .diagnosticsReturnQueryData(pdu: buffer(bytes)))
        if case .diagnosticsReturnQueryData(let pdu) = request {
            #expect(Array(pdu.readableBytesView) == bytes, "echo is the request PDU, function code included")
        }
    }

    @Test("FC8 sub-function 0 with no data echoes the 3-byte PDU")
    func returnQueryDataEmpty() {
        #expect(parse([0x08, 0x00, 0x00]) == .success(.diagnosticsReturnQueryData(pdu: buffer([0x08, 0x00, 0x00]))))
    }

    @Test("FC8 echo contains only the PDU even when the input buffer's reader index is not 0")
    func returnQueryDataReaderIndex() {
        var input = buffer([0xDE, 0xAD, 0x08, 0x00, 0x00, 0x12, 0x34])
        input.moveReaderIndex(forwardBy: 2)
        let result = ModbusRequest.parse(input)
        #expect(
            result == .success(.diagnosticsReturnQueryData(pdu: buffer([0x08, 0x00, 0x00, 0x12, 0x34]))),
            "the echo must start at the function code, not at byte 0 of the underlying storage"
        )
    }

    @Test("FC8 sub-function 1 (restart communications) is illegal function (01)")
    func otherSubFunction() {
        #expect(parseFailure([0x08, 0x00, 0x01, 0x00, 0x00]) == .illegalFunction)
        #expect(parseFailure([0x08, 0x00, 0x0A, 0x00, 0x00]) == .illegalFunction)
    }

    @Test("FC8 without a sub-function is illegal data value (03)")
    func truncated() {
        #expect(parseFailure([0x08, 0x00]) == .illegalDataValue)
    }
}

@Suite("Request parsing: function codes")
struct FunctionCodeParsingTests {
    @Test(
        "Unsupported function codes are illegal function (01)",
        arguments: [UInt8(0x00), 0x07, 0x0B, 0x0C, 0x11, 0x14, 0x15, 0x18, 0x41, 0x80, 0x83, 0xFF]
    )
    func unknownFunction(function: UInt8) {
        #expect(parseFailure([function, 0x00, 0x00, 0x00, 0x01]) == .illegalFunction)
        #expect(parseFailure([function]) == .illegalFunction, "01 even without data: the function is checked first")
    }

    @Test("Every supported function code parses to a request with that functionCode")
    func functionCodeOfEachCase() {
        let cases: [([UInt8], ModbusFunctionCode)] = [
            ([0x01, 0, 0, 0, 1], .readCoils),
            ([0x02, 0, 0, 0, 1], .readDiscreteInputs),
            ([0x03, 0, 0, 0, 1], .readHoldingRegisters),
            ([0x04, 0, 0, 0, 1], .readInputRegisters),
            ([0x05, 0, 0, 0xFF, 0], .writeSingleCoil),
            ([0x06, 0, 0, 0, 1], .writeSingleRegister),
            ([0x08, 0, 0, 1, 2], .diagnostics),
            ([0x0F, 0, 0, 0, 1, 1, 1], .writeMultipleCoils),
            ([0x10, 0, 0, 0, 1, 2, 0, 1], .writeMultipleRegisters),
            ([0x16, 0, 0, 0, 1, 0, 2], .maskWriteRegister),
            ([0x17, 0, 0, 0, 1, 0, 0, 0, 1, 2, 0, 1], .readWriteMultipleRegisters),
            ([0x2B, 0x0E, 1, 0], .encapsulatedInterfaceTransport),
        ]
        for (bytes, expected) in cases {
            let request = parseSuccess(bytes)
            #expect(request?.functionCode == expected, "PDU \(bytes)")
            #expect(request?.functionCode.rawValue == bytes[0])
        }
        #expect(Set(cases.map(\.1)) == ModbusRequest.supportedFunctionCodes)
    }

    @Test("An empty PDU is rejected")
    func emptyPDU() {
        #expect(parseFailure([]) != nil)
    }
}
