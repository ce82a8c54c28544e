import FuzzSupport

// NumberFormatting (the shortest text of a number) is internal to the module.
@testable import MQTTModbusBridgeConfiguration

/// The state payload decoders, on to the registers: payload → value → registers → value →
/// registers.
///
/// Input: five bytes that choose the payload format (plain, json, boolean), the point type,
/// the scale, the offset and the byte order; a flag byte for the format's own true/false words
/// (then each word as a length and bytes); for json the path, as a length and bytes; then the
/// payload.
///
/// Invariants: a decoded value is of the point's kind (a finite number for numeric types, a
/// truth value for bool and bit, text for string); a plain number written back in its shortest
/// form, or wrapped in a JSON document, decodes to the same number; a value the register
/// encoder takes decodes back from its registers and encodes to the same registers again (the
/// register decoder's promise), and to the same value when nothing scales it.
@main
enum FuzzPayloadDecoder {
    static func main() { FuzzDriver.main(fuzzPayloadDecoder) }
}

let scales: [Double] = [1, 10, 0.1, 100, 0.01, 0.5, 3, -1, 7, 1000]
let offsets: [Double] = [0, 5, -40, 273.15, -0.5, 1000]

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzPayloadDecoder(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    var input = FuzzInput(FuzzDriver.bytes(data, size))
    let formatChoice = input.choice(3)
    let type = pointType(input.byte())
    let scale = type.isNumeric ? scales[input.choice(scales.count)] : 1
    let offset = type.isNumeric ? offsets[input.choice(offsets.count)] : 0
    let byteOrder = ByteOrder.allCases[input.choice(ByteOrder.allCases.count)]
    var format = PayloadFormat(encoding: .plain)
    if input.flag() {
        format.trueWords = [input.text(maxLength: 16)]
        format.falseWords = [input.text(maxLength: 16)]
    }
    switch formatChoice {
    case 0: format.encoding = .plain
    case 1: format.encoding = .json(path: (try? JSONPath(parsing: input.text(maxLength: 64))) ?? JSONPath([]))
    default: format.encoding = .boolean
    }
    let payload = input.rest()

    let value: PointValue
    do {
        value = try PayloadDecoder(format: format, type: type).decode(payload)
    } catch {
        fuzzCheck(!error.message.isEmpty, "an error without a message")
        return 0
    }
    checkKind(value, type: type)
    if case .plain = format.encoding, type.isNumeric { checkNumberText(value, type: type) }
    checkRegisters(value, encoder: RegisterEncoder(type: type, byteOrder: byteOrder, scale: scale, offset: offset))
    return 0
}

func pointType(_ byte: UInt8) -> PointType {
    let types: [PointType] = [.bool, .int16, .uint16, .int32, .uint32, .int64, .uint64, .float32, .float64]
    switch Int(byte) % (types.count + 2) {
    case types.count: return .string(length: Int(byte >> 4) + 1)
    case types.count + 1: return .bit(position: Int(byte >> 4))
    case let index: return types[index]
    }
}

extension PointType {
    var isNumeric: Bool { !isBoolean && !isString }
    var isString: Bool {
        if case .string = self { return true }
        return false
    }
}

func checkKind(_ value: PointValue, type: PointType) {
    switch value {
    case .integer, .unsigned:
        fuzzCheck(type.isNumeric, "an integer for a \(type) point")
    case .number(let number):
        fuzzCheck(type.isNumeric, "a number for a \(type) point")
        fuzzCheck(number.isFinite, "\(number) decoded")
    case .bool:
        // Numeric points take true/false words as 1/0.
        fuzzCheck(!type.isString, "a truth value for a \(type) point")
    case .text:
        fuzzCheck(type.isString, "text for a \(type) point")
    }
}

func checkNumberText(_ value: PointValue, type: PointType) {
    let text: String
    switch value {
    case .integer(let integer): text = String(integer)
    case .unsigned(let integer): text = String(integer)
    case .number(let number): text = NumberFormatting.shortest(number)
    default: return
    }
    for (format, payload) in [
        (PayloadFormat.plain, text),
        (PayloadFormat(encoding: .json(path: JSONPath([.key("v")]))), "{\"v\":\(text)}"),
    ] {
        do {
            let again = try PayloadDecoder(format: format, type: type).decode(Array(payload.utf8))
            fuzzCheck(again.doubleValue == value.doubleValue, "\(value) written as '\(payload)' decodes to \(again)")
        } catch {
            fuzzCheck(false, "\(value) written as '\(payload)' does not decode: \(error)")
        }
    }
}

func checkRegisters(_ value: PointValue, encoder: RegisterEncoder) {
    guard case .words(let words)? = try? encoder.encode(value) else { return }
    let decoder = RegisterDecoder(
        type: encoder.type,
        byteOrder: encoder.byteOrder,
        scale: encoder.scale,
        offset: encoder.offset
    )
    let decoded: PointValue
    do {
        decoded = try decoder.decode(words)
    } catch {
        fuzzCheck(false, "registers \(words) encoded from \(value) do not decode: \(error)")
        return
    }
    let again = try? encoder.encode(decoded)
    let trail = "\(value) → \(words) → \(decoded) → \(String(describing: again))"
    guard encoder.scale == 1, encoder.offset == 0 else {
        // Scaled or shifted: the decoder promises the same registers again, for the integer
        // types whose register values a Double holds exactly.
        if !encoder.type.isFloat, encoder.type.registerCount <= 2 {
            fuzzCheck(again == .words(words), trail)
        }
        return
    }
    fuzzCheck(again == .words(words), trail)
    switch (value, decoded) {
    case (.text(let text), .text(let back)):
        fuzzCheck(back == text, trail)
    case (.bool(let flag), .bool(let back)):
        fuzzCheck(back == flag, trail)
    default:
        guard let number = value.doubleValue else { return }
        if encoder.type == .float32 {
            fuzzCheck(decoded.doubleValue == Double(Float(number)), trail)
        } else if encoder.type.isFloat || number.rounded() == number {
            fuzzCheck(decoded.doubleValue == number, trail)
        }
    }
}

extension PointType {
    var isFloat: Bool { self == .float32 || self == .float64 }
}
