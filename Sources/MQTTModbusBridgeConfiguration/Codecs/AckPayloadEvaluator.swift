import Foundation
import ModbusCore

/// Reads an acknowledgement message (docs/design.md §4): what the device said about a command.
package enum AckPayloadEvaluator {
    /// - Empty payload: success (MQTT 5 responses often carry none).
    /// - JSON object: the `code_field` (a Modbus exception code 1...255) makes it a refusal with
    ///   that code; `success_field` true/false decides; otherwise a non-null `error_field` is a
    ///   refusal; otherwise success.
    /// - Text: "ok", "success", "true", "ack", "done" (any case) is success; other text is a
    ///   refusal carrying that text.
    /// - MQTT 5 user properties `error` (refusal) and `modbus_exception` (its code) are honoured too.
    /// - A named code the bridge does not answer with (anything but 01, 02, 03, 04, 06, 0A, 0B)
    ///   becomes 04; ``read(payload:userProperties:settings:)`` also reports it.
    package static func evaluate(
        payload: [UInt8],
        userProperties: [(name: String, value: String)] = [],
        settings: AckSettings
    ) -> WriteOutcome {
        read(payload: payload, userProperties: userProperties, settings: settings).outcome
    }

    /// What an acknowledgement says, and the exception code it named if the bridge cannot answer
    /// with it.
    package struct Reading: Sendable, Hashable {
        /// The write's outcome. A refusal's code is always one the bridge answers with.
        package var outcome: WriteOutcome
        /// The code the device named when it is not one of ``ModbusExceptionCode/bridgeAnswers``
        /// (undefined by Modbus, such as 99, or 05 and 08): the outcome then carries 04 instead,
        /// and the caller logs the device's code.
        package var unanswerableCode: UInt8?
    }

    /// Like ``evaluate(payload:userProperties:settings:)``, and says when the device named an
    /// exception code the bridge does not answer with: a master must only ever see a code it can
    /// interpret (docs/design.md §4.1), so that code becomes 04.
    package static func read(
        payload: [UInt8],
        userProperties: [(name: String, value: String)] = [],
        settings: AckSettings
    ) -> Reading {
        let outcome = namedOutcome(payload: payload, userProperties: userProperties, settings: settings)
        guard case .rejected(let code, let reason) = outcome, !code.isBridgeAnswer else {
            return Reading(outcome: outcome, unanswerableCode: nil)
        }
        return Reading(
            outcome: .rejected(code: .serverDeviceFailure, reason: "\(reason) (the device named exception \(code))"),
            unanswerableCode: code.rawValue
        )
    }

    /// The outcome with the code exactly as the device named it.
    private static func namedOutcome(
        payload: [UInt8],
        userProperties: [(name: String, value: String)],
        settings: AckSettings
    ) -> WriteOutcome {
        var namedCode: ModbusExceptionCode?
        var errorText: String?
        for property in userProperties {
            switch property.name.lowercased() {
            case "error": errorText = property.value
            case "modbus_exception", "code":
                if let code = Self.exceptionCode(from: property.value) { namedCode = code }
            default: break
            }
        }
        var success: Bool?
        if payload.isEmpty {
            success = nil
        } else if let document = try? JSONParser.parse(payload), case .object = document {
            if case .success(let codeValue) = document.value(at: settings.codeField),
                let code = Self.exceptionCode(from: codeValue)
            {
                namedCode = code
            }
            if case .success(let errorValue) = document.value(at: settings.errorField), errorValue != .null {
                errorText = Self.text(of: errorValue)
            }
            if case .success(let successValue) = document.value(at: settings.successField) {
                switch successValue {
                case .bool(let flag): success = flag
                case .string(let word): success = ["ok", "true", "success"].contains(word.lowercased())
                case .number(let number): success = Double(number) != 0
                default: break
                }
            }
        } else {
            let text = String(decoding: payload, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            if ["ok", "success", "true", "ack", "done"].contains(text.lowercased()) {
                success = true
            } else {
                success = false
                errorText = errorText ?? text
            }
        }
        // A blank error text (`{"error": ""}`, a payload of spaces) still refuses, but says
        // nothing: the refusal gets the general reason rather than an empty one (found by fuzzing).
        let reason =
            errorText.flatMap { $0.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty ? nil : $0 }
            ?? "the device refused the command"
        if let namedCode, success != true {
            return .rejected(code: namedCode, reason: reason)
        }
        if success == false || (success == nil && errorText != nil) {
            return .rejected(code: namedCode ?? .serverDeviceFailure, reason: reason)
        }
        return .acknowledged
    }

    /// The correlation id an ack carries at `path`, as text.
    package static func correlationID(in payload: [UInt8], at path: JSONPath) -> String? {
        guard let document = try? JSONParser.parse(payload), case .success(let value) = document.value(at: path) else {
            return nil
        }
        return text(of: value)
    }

    private static func text(of value: JSONValue) -> String {
        switch value {
        case .string(let text): text
        case .number(let number): number
        case .bool(let flag): flag ? "true" : "false"
        case .null: "null"
        case .array, .object: value.serialized()
        }
    }

    private static func exceptionCode(from value: JSONValue) -> ModbusExceptionCode? {
        switch value {
        case .number(let text): exceptionCode(from: text)
        case .string(let text): exceptionCode(from: text)
        default: nil
        }
    }

    private static func exceptionCode(from text: String) -> ModbusExceptionCode? {
        let trimmed = text.trimmingCharacters(in: .whitespaces).lowercased()
        let number = trimmed.hasPrefix("0x") ? Int(trimmed.dropFirst(2), radix: 16) : Int(trimmed)
        guard let number, (1...255).contains(number) else { return nil }
        return ModbusExceptionCode(rawValue: UInt8(number))
    }
}
