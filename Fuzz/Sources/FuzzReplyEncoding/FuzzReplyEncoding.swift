import FuzzSupport
import ModbusCore
import NIOCore

/// The reply encoders, round-tripped: each reply is built from the input, encoded by the
/// library, and read back here the way a master reads it.
///
/// Input: a byte that picks the reply (read bits, read registers, write multiple, exception,
/// device identification), then its fields and values.
///
/// Invariants: the byte count and the length agree with the values, the values read back are
/// the ones encoded, coil padding is 0, no reply exceeds 253 bytes; for device identification,
/// a valid identity read in stream access by following "more follows" yields every object of
/// the category exactly once and in order, and individual access answers exactly one object or
/// 02 for an id that names none.
@main
enum FuzzReplyEncoding {
    static func main() { FuzzDriver.main(fuzzReplyEncoding) }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzReplyEncoding(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    var input = FuzzInput(FuzzDriver.bytes(data, size))
    switch input.choice(5) {
    case 0: readBits(&input)
    case 1: readRegisters(&input)
    case 2: writeMultiple(&input)
    case 3: exception(&input)
    default: deviceIdentification(&input)
    }
    return 0
}

func encoded(_ write: (inout ByteBuffer) -> Void) -> [UInt8] {
    var out = ByteBuffer()
    write(&out)
    let bytes = Array(out.readableBytesView)
    fuzzCheck(bytes.count <= ModbusTCPLimits.maxPDULength, "a reply of \(bytes.count) bytes")
    return bytes
}

func readBits(_ input: inout FuzzInput) {
    let function: ModbusFunctionCode = input.flag() ? .readCoils : .readDiscreteInputs
    let count = Int(input.uint16()) % ModbusQuantityLimits.readBits.upperBound + 1
    let packed = input.take((count + 7) / 8)
    let bits = (0..<count).map { index in
        index / 8 < packed.count ? UInt16(packed[index / 8] >> UInt8(index % 8) & 1) : 0
    }
    let reply = encoded { $0.writeModbusReadBitsPDU(function: function, bits: bits) }
    let byteCount = (count + 7) / 8
    fuzzCheck(reply.count == 2 + byteCount, "\(count) bits in \(reply.count) bytes")
    fuzzCheck(reply[0] == function.rawValue && Int(reply[1]) == byteCount, "header \(reply.prefix(2))")
    let decoded = (0..<count).map { UInt16(reply[2 + $0 / 8] >> UInt8($0 % 8) & 1) }
    fuzzCheck(decoded == bits, "bits read back differ")
    if count % 8 != 0 {
        fuzzCheck(reply[reply.count - 1] >> UInt8(count % 8) == 0, "padding bits set")
    }
}

func readRegisters(_ input: inout FuzzInput) {
    let functions: [ModbusFunctionCode] = [.readHoldingRegisters, .readInputRegisters, .readWriteMultipleRegisters]
    let function = functions[input.choice(functions.count)]
    let count = Int(input.byte()) % ModbusQuantityLimits.readRegisters.upperBound + 1
    let registers = (0..<count).map { _ in input.uint16() }
    let reply = encoded { $0.writeModbusReadRegistersPDU(function: function, registers: registers) }
    fuzzCheck(reply.count == 2 + 2 * count && reply[0] == function.rawValue, "\(count) registers in \(reply.count)")
    fuzzCheck(Int(reply[1]) == 2 * count, "byte count \(reply[1]) for \(count) registers")
    let decoded = (0..<count).map { UInt16(reply[2 + 2 * $0]) << 8 | UInt16(reply[3 + 2 * $0]) }
    fuzzCheck(decoded == registers, "registers read back differ")
}

func writeMultiple(_ input: inout FuzzInput) {
    let function: ModbusFunctionCode = input.flag() ? .writeMultipleCoils : .writeMultipleRegisters
    let address = input.uint16()
    let limits = function == .writeMultipleCoils ? ModbusQuantityLimits.writeCoils : ModbusQuantityLimits.writeRegisters
    let count = Int(input.uint16()) % limits.upperBound + 1
    let reply = encoded { $0.writeModbusWriteMultiplePDU(function: function, address: address, count: count) }
    fuzzCheck(
        reply == [
            function.rawValue, UInt8(address >> 8), UInt8(address & 0xFF), UInt8(count >> 8), UInt8(count & 0xFF),
        ],
        "write reply \(reply)"
    )
}

func exception(_ input: inout FuzzInput) {
    let function = input.byte()
    let code = ModbusExceptionCode(rawValue: input.byte())
    let reply = encoded { $0.writeModbusExceptionPDU(function: function, code: code) }
    fuzzCheck(reply == [function | 0x80, code.rawValue], "exception reply \(reply)")
}

func deviceIdentification(_ input: inout FuzzInput) {
    var identity = ModbusDeviceIdentification(
        vendorName: input.text(),
        productCode: input.text(),
        majorMinorRevision: input.text()
    )
    if input.flag() { identity.vendorURL = input.text() }
    if input.flag() { identity.productName = input.text() }
    if input.flag() { identity.modelName = input.text() }
    if input.flag() { identity.userApplicationName = input.text() }
    for _ in 0..<input.choice(8) { identity.privateObjects[input.byte()] = input.chunk() }
    do {
        try identity.validate()
    } catch {
        let tooLong = identity.objects.contains { $0.value.count > ModbusDeviceIdentification.maxObjectLength }
        fuzzCheck(tooLong || identity.privateObjects.keys.contains { $0 < 0x80 }, "refused: \(error)")
        return
    }
    let responder = ModbusDeviceIdentificationResponder(identity)
    let objects = identity.objects
    let code = ModbusDeviceIDReadCode(rawValue: UInt8(input.choice(4) + 1))!
    let objectID = input.byte()

    if code == .individual {
        var out = ByteBuffer()
        let refusal = responder.writeResponse(code: code, objectID: objectID, into: &out)
        guard let object = objects.first(where: { $0.id == objectID }) else {
            fuzzCheck(
                refusal == .illegalDataAddress,
                "object \(objectID) of none answered \(String(describing: refusal))"
            )
            return
        }
        fuzzCheck(refusal == nil, "object \(objectID) refused with \(String(describing: refusal))")
        let reply = readDeviceIDReply(Array(out.readableBytesView), code: code)
        fuzzCheck(reply.objects.count == 1 && reply.objects[0] == object, "individual access to \(objectID)")
        return
    }

    let highest: UInt8 = code == .basic ? 0x02 : code == .regular ? 0x7F : 0xFF
    let category = objects.filter { $0.id <= highest }
    // A start that names no object of the category begins at object 0.
    var next = category.contains { $0.id == objectID } ? objectID : 0
    var streamed: [(id: UInt8, value: [UInt8])] = []
    for _ in 0...category.count {
        var out = ByteBuffer()
        let refusal = responder.writeResponse(code: code, objectID: next, into: &out)
        fuzzCheck(refusal == nil, "stream access refused with \(String(describing: refusal))")
        let reply = readDeviceIDReply(Array(out.readableBytesView), code: code)
        streamed += reply.objects
        guard let following = reply.nextObjectID else {
            let expected = category.filter { $0.id >= (category.contains { $0.id == objectID } ? objectID : 0) }
            fuzzCheck(
                streamed.map(\.id) == expected.map(\.id),
                "streamed \(streamed.map(\.id)), not \(expected.map(\.id))"
            )
            fuzzCheck(streamed.map(\.value) == expected.map(\.value), "streamed values differ")
            return
        }
        fuzzCheck(!reply.objects.isEmpty, "more follows, but no object in this reply")
        fuzzCheck(following > reply.objects.last!.id, "the next object \(following) does not follow")
        next = following
    }
    fuzzCheck(false, "the stream did not end after \(category.count + 1) replies")
}

/// A Read Device Identification reply as a master reads it.
func readDeviceIDReply(
    _ reply: [UInt8],
    code: ModbusDeviceIDReadCode
) -> (objects: [(id: UInt8, value: [UInt8])], nextObjectID: UInt8?) {
    fuzzCheck(reply.count >= 7 && reply.count <= ModbusTCPLimits.maxPDULength, "a reply of \(reply.count) bytes")
    fuzzCheck(reply[0] == 0x2B && reply[1] == 0x0E && reply[2] == code.rawValue, "reply header \(reply.prefix(3))")
    fuzzCheck(reply[4] == 0x00 || reply[4] == 0xFF, "more follows is \(reply[4])")
    var objects: [(id: UInt8, value: [UInt8])] = []
    var index = 7
    for _ in 0..<Int(reply[6]) {
        fuzzCheck(index + 2 <= reply.count, "object header past the end")
        let length = Int(reply[index + 1])
        fuzzCheck(index + 2 + length <= reply.count, "object value past the end")
        objects.append((reply[index], Array(reply[(index + 2)..<(index + 2 + length)])))
        index += 2 + length
    }
    fuzzCheck(index == reply.count, "\(reply.count - index) bytes after the last object")
    fuzzCheck(zip(objects, objects.dropFirst()).allSatisfy { $0.id < $1.id }, "objects out of order")
    return (objects, reply[4] == 0xFF ? reply[5] : nil)
}
