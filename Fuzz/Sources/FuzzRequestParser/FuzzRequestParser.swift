import FuzzSupport
import ModbusCore
import NIOCore

/// The request PDU parser. Input: the PDU.
///
/// Invariants: a parsed request has the input's function code, keeps the quantity limits and
/// the address space, and encodes back to the input (coil padding bits aside); a refusal is 01,
/// 02 or 03, and 01 for every function code the library does not decode; a PDU parsed from the
/// middle of a larger buffer gives the same answer.
@main
enum FuzzRequestParser {
    static func main() { FuzzDriver.main(fuzzRequestParser) }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzRequestParser(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let pdu = FuzzDriver.bytes(data, size)
    let result = ModbusRequest.parse(ByteBuffer(bytes: pdu))

    // The same PDU behind other bytes, its reader index not 0, as it can arrive from a frame.
    var framed = ByteBuffer(bytes: [0xAA, 0xBB, 0xCC] + pdu)
    framed.moveReaderIndex(forwardBy: 3)
    fuzzCheck(ModbusRequest.parse(framed) == result, "a PDU behind other bytes gives another answer")

    switch result {
    case .failure(let code):
        fuzzCheck(
            [.illegalFunction, .illegalDataAddress, .illegalDataValue].contains(code),
            "refused with \(code)"
        )
        if let first = pdu.first, !ModbusRequest.supportedFunctionCodes.contains(ModbusFunctionCode(rawValue: first)) {
            fuzzCheck(code == .illegalFunction, "unsupported function \(first) refused with \(code)")
        }
        fuzzCheck(!pdu.isEmpty || code == .illegalFunction, "an empty PDU refused with \(code)")
    case .success(let request):
        fuzzCheck(request.functionCode.rawValue == pdu.first, "\(request) from function \(pdu.first ?? 0)")
        checkLimits(request)
        var expected = pdu
        if case .writeMultipleCoils(_, let values) = request, values.count % 8 != 0 {
            // Bits past the quantity in the last byte are padding the parser must ignore.
            expected[expected.count - 1] &= UInt8((1 << (values.count % 8)) - 1)
        }
        fuzzCheck(encode(request) == expected, "\(request) does not encode back to its PDU")
    }
    return 0
}

func checkLimits(_ request: ModbusRequest) {
    func fits(_ address: UInt16, _ count: Int) -> Bool { Int(address) + count <= ModbusQuantityLimits.addressSpace }
    switch request {
    case .read(let area, let address, let count):
        let limits = area.isBitArea ? ModbusQuantityLimits.readBits : ModbusQuantityLimits.readRegisters
        fuzzCheck(limits.contains(count) && fits(address, count), "read of \(count) at \(address)")
    case .writeMultipleCoils(let address, let values):
        fuzzCheck(ModbusQuantityLimits.writeCoils.contains(values.count), "\(values.count) coils")
        fuzzCheck(fits(address, values.count), "coils past the address space")
        fuzzCheck(values.allSatisfy { $0 <= 1 }, "a coil value other than 0 or 1")
    case .writeMultipleRegisters(let address, let values):
        fuzzCheck(ModbusQuantityLimits.writeRegisters.contains(values.count), "\(values.count) registers")
        fuzzCheck(fits(address, values.count), "registers past the address space")
    case .readWriteMultipleRegisters(let readAddress, let readCount, let writeAddress, let writeValues):
        fuzzCheck(ModbusQuantityLimits.readWriteRead.contains(readCount), "FC23 reads \(readCount)")
        fuzzCheck(ModbusQuantityLimits.readWriteWrite.contains(writeValues.count), "FC23 writes \(writeValues.count)")
        fuzzCheck(fits(readAddress, readCount) && fits(writeAddress, writeValues.count), "FC23 past the address space")
    case .writeSingleCoil, .writeSingleRegister, .maskWriteRegister, .readDeviceIdentification,
        .diagnosticsReturnQueryData:
        break
    }
}

/// The request PDU as a client writes it (Modbus Application Protocol V1.1b3 §6), written here
/// independently of the library.
func encode(_ request: ModbusRequest) -> [UInt8] {
    var out = ByteBuffer()
    out.writeInteger(request.functionCode.rawValue)
    switch request {
    case .read(_, let address, let count):
        out.writeMultipleIntegers(address, UInt16(count))
    case .writeSingleCoil(let address, let value):
        out.writeMultipleIntegers(address, value ? UInt16(0xFF00) : 0)
    case .writeSingleRegister(let address, let value):
        out.writeMultipleIntegers(address, value)
    case .writeMultipleCoils(let address, let values):
        out.writeMultipleIntegers(address, UInt16(values.count), UInt8((values.count + 7) / 8))
        for start in stride(from: 0, to: values.count, by: 8) {
            var byte: UInt8 = 0
            for (bit, value) in values[start..<min(values.count, start + 8)].enumerated() {
                byte |= UInt8(value) << UInt8(bit)
            }
            out.writeInteger(byte)
        }
    case .writeMultipleRegisters(let address, let values):
        out.writeMultipleIntegers(address, UInt16(values.count), UInt8(values.count * 2))
        for value in values { out.writeInteger(value) }
    case .maskWriteRegister(let address, let andMask, let orMask):
        out.writeMultipleIntegers(address, andMask, orMask)
    case .readWriteMultipleRegisters(let readAddress, let readCount, let writeAddress, let writeValues):
        out.writeMultipleIntegers(
            readAddress,
            UInt16(readCount),
            writeAddress,
            UInt16(writeValues.count),
            UInt8(writeValues.count * 2)
        )
        for value in writeValues { out.writeInteger(value) }
    case .readDeviceIdentification(let code, let objectID):
        out.writeMultipleIntegers(modbusMEIReadDeviceIdentification, code.rawValue, objectID)
    case .diagnosticsReturnQueryData(let pdu):
        // The whole request PDU, function code included.
        return Array(pdu.readableBytesView)
    }
    return Array(out.readableBytesView)
}
