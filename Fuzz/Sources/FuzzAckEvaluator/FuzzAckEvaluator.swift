import Foundation
import FuzzSupport
import ModbusCore

// The ack evaluator and the write outcomes are `package` to the bridge's modules.
@testable import MQTTModbusBridgeConfiguration

/// The acknowledgement evaluator (docs/design.md §4).
///
/// Input: a byte that chooses the field paths (the defaults, or each given as a length and
/// bytes), a byte for the number of MQTT 5 user properties (each a name choice and a value),
/// then the payload.
///
/// Invariants: a refusal always carries a code the bridge answers with (docs/design.md §4.1)
/// and a reason; a code the device named that the bridge cannot answer with is reported and
/// becomes 04; an empty payload without properties is a success; a success word ("OK") is a
/// success whatever its case and surrounding white space, and any other text a refusal that
/// carries it; ``AckPayloadEvaluator/evaluate`` says what ``AckPayloadEvaluator/read`` says.
@main
enum FuzzAckEvaluator {
    static func main() { FuzzDriver.main(fuzzAckEvaluator) }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzAckEvaluator(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    var input = FuzzInput(FuzzDriver.bytes(data, size))
    var settings = AckSettings(mode: .correlationID, responseTopic: "fuzz/ack")
    if input.flag() {
        func path() -> JSONPath { (try? JSONPath(parsing: input.text(maxLength: 32))) ?? JSONPath([]) }
        settings.successField = path()
        settings.errorField = path()
        settings.codeField = path()
        settings.idField = path()
    }
    let names = ["error", "modbus_exception", "code", "Error", "MODBUS_EXCEPTION", "reason"]
    var properties: [(name: String, value: String)] = []
    for _ in 0..<input.choice(4) {
        properties.append((names[input.choice(names.count)], input.text(maxLength: 16)))
    }
    let payload = input.rest()

    let reading = AckPayloadEvaluator.read(payload: payload, userProperties: properties, settings: settings)
    fuzzCheck(
        AckPayloadEvaluator.evaluate(payload: payload, userProperties: properties, settings: settings)
            == reading.outcome,
        "evaluate and read disagree"
    )
    switch reading.outcome {
    case .rejected(let code, let reason):
        fuzzCheck(code.isBridgeAnswer, "refused with \(code), which the bridge never answers")
        fuzzCheck(!reason.isEmpty, "a refusal without a reason")
        if let named = reading.unanswerableCode {
            fuzzCheck(code == .serverDeviceFailure, "the unanswerable code \(named) became \(code), not 04")
            fuzzCheck(!ModbusExceptionCode(rawValue: named).isBridgeAnswer, "\(named) reported as unanswerable")
        }
    case .acknowledged:
        fuzzCheck(reading.unanswerableCode == nil, "a success that reports an unanswerable code")
    case .timedOut, .brokerUnavailable:
        fuzzCheck(false, "an ack read as \(reading.outcome)")
    }
    if payload.isEmpty, properties.isEmpty {
        fuzzCheck(reading.outcome == .acknowledged, "an empty ack read as \(reading.outcome)")
    }
    let isObject: Bool
    if case .object? = try? JSONParser.parse(payload) { isObject = true } else { isObject = false }
    if !payload.isEmpty, !isObject, properties.isEmpty {
        let word = String(decoding: payload, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        if ["ok", "success", "true", "ack", "done"].contains(word.lowercased()) {
            fuzzCheck(reading.outcome == .acknowledged, "'\(word)' read as \(reading.outcome)")
        } else {
            fuzzCheck(reading.outcome != .acknowledged, "the text '\(word)' read as a success")
        }
    }
    _ = AckPayloadEvaluator.correlationID(in: payload, at: settings.idField)
    return 0
}
