import ModbusCore
import Synchronization

/// How one point write ended.
enum WriteOutcome: Sendable, Hashable {
    /// The device (or, in broker mode, the broker) confirmed it.
    case acknowledged
    /// The device refused it; `code` is the exception its ack named, or 04.
    case rejected(code: ModbusExceptionCode, reason: String)
    /// No acknowledgement before the point's ack timeout.
    case timedOut
    /// The broker could not be reached, or the connection dropped while waiting.
    case brokerUnavailable(reason: String)

    /// The Modbus exception for a failed write (DESIGN §4).
    var exceptionCode: ModbusExceptionCode? {
        switch self {
        case .acknowledged: nil
        case .rejected(let code, _): code
        case .timedOut: .gatewayTargetDeviceFailedToRespond
        case .brokerUnavailable: .gatewayPathUnavailable
        }
    }

    /// The outcome of a write that spans several points: success only if every point was
    /// acknowledged; otherwise the most telling failure: broker unreachable, then a refusal
    /// (with its code), then a timeout.
    static func combined(_ outcomes: [WriteOutcome]) -> WriteOutcome {
        if let broker = outcomes.first(where: { if case .brokerUnavailable = $0 { true } else { false } }) { return broker }
        if let refusal = outcomes.first(where: { if case .rejected = $0 { true } else { false } }) { return refusal }
        if outcomes.contains(.timedOut) { return .timedOut }
        return .acknowledged
    }
}

/// A write's outcome, fulfilled once by whichever comes first: the ack, the timeout, or the
/// connection loss.
final class AckPromise: Sendable {
    private struct State {
        var outcome: WriteOutcome?
        var waiter: CheckedContinuation<WriteOutcome, Never>?
    }
    private let state = Mutex(State())
    /// How to read the ack message (fields for success, error text and code).
    let settings: AckSettings

    init(settings: AckSettings) { self.settings = settings }

    /// Sets the outcome if none is set yet; returns whether this call set it.
    @discardableResult
    func fulfil(_ outcome: WriteOutcome) -> Bool {
        let waiter = state.withLock { state -> CheckedContinuation<WriteOutcome, Never>?? in
            guard state.outcome == nil else { return .none }
            state.outcome = outcome
            defer { state.waiter = nil }
            return .some(state.waiter)
        }
        guard case .some(let continuation) = waiter else { return false }
        continuation?.resume(returning: outcome)
        return true
    }

    /// Waits for the outcome, or returns it at once if it is already known.
    func outcome(timeout: Duration) async -> WriteOutcome {
        let timer = Task {
            try? await Task.sleep(for: timeout)
            if !Task.isCancelled { self.fulfil(.timedOut) }
        }
        defer { timer.cancel() }
        return await withCheckedContinuation { continuation in
            let known = state.withLock { state -> WriteOutcome? in
                if let outcome = state.outcome { return outcome }
                state.waiter = continuation
                return nil
            }
            if let known { continuation.resume(returning: known) }
        }
    }
}

/// The writes waiting for an acknowledgement, by correlation data (MQTT 5), correlation id
/// (JSON payload) or point (state echo).
///
/// A promise is registered before its command is published, so an ack that arrives before the
/// publish call returns is not missed; it is removed when the write ends, so a late ack finds
/// nothing and changes nothing.
final class AckTracker: Sendable {
    enum Key: Hashable, Sendable {
        case correlationData([UInt8])
        case correlationID(String)
    }

    struct EchoExpectation: Sendable {
        var id: Int
        var value: PointValue
        var point: PointConfiguration
        var promise: AckPromise
    }

    private struct State {
        var byKey: [Key: AckPromise] = [:]
        var echoes: [Int: [EchoExpectation]] = [:]
        var nextEchoID = 0
    }
    private let state = Mutex(State())

    func register(_ key: Key, settings: AckSettings) -> AckPromise {
        let promise = AckPromise(settings: settings)
        state.withLock { $0.byKey[key] = promise }
        return promise
    }

    func remove(_ key: Key) {
        _ = state.withLock { $0.byKey.removeValue(forKey: key) }
    }

    /// The promise waiting for `key`, removed from the tracker; `nil` for a late or unknown ack.
    func take(_ key: Key) -> AckPromise? {
        state.withLock { $0.byKey.removeValue(forKey: key) }
    }

    func registerEcho(point index: Int, of point: PointConfiguration, value: PointValue, settings: AckSettings) -> (id: Int, promise: AckPromise) {
        let promise = AckPromise(settings: settings)
        let id = state.withLock { state in
            state.nextEchoID += 1
            state.echoes[index, default: []].append(
                EchoExpectation(id: state.nextEchoID, value: value, point: point, promise: promise))
            return state.nextEchoID
        }
        return (id, promise)
    }

    func removeEcho(point: Int, id: Int) {
        state.withLock { state in state.echoes[point]?.removeAll { $0.id == id } }
    }

    /// A new state value of `point`: acknowledges every echo write it matches.
    func offerState(point: Int, value: PointValue) {
        let matched = state.withLock { state -> [AckPromise] in
            guard let waiting = state.echoes[point], !waiting.isEmpty else { return [] }
            let (hits, rest) = waiting.partitioned { $0.point.stateEchoConfirms(reported: value, written: $0.value) }
            state.echoes[point] = rest
            return hits.map(\.promise)
        }
        for promise in matched { promise.fulfil(.acknowledged) }
    }

    /// Fails every waiting write (the broker connection is gone).
    func failAll(_ outcome: WriteOutcome) {
        let promises = state.withLock { state -> [AckPromise] in
            let all = Array(state.byKey.values) + state.echoes.values.flatMap { $0.map(\.promise) }
            state.byKey = [:]
            state.echoes = [:]
            return all
        }
        for promise in promises { promise.fulfil(outcome) }
    }

    var pendingCount: Int {
        state.withLock { $0.byKey.count + $0.echoes.values.reduce(0) { $0 + $1.count } }
    }
}

extension Array {
    fileprivate func partitioned(by belongsInFirst: (Element) -> Bool) -> ([Element], [Element]) {
        var first: [Element] = []
        var second: [Element] = []
        for element in self {
            if belongsInFirst(element) { first.append(element) } else { second.append(element) }
        }
        return (first, second)
    }
}

/// Reads an acknowledgement message (DESIGN §4): what the device said about a command.
enum AckPayloadEvaluator {
    /// - Empty payload: success (MQTT 5 responses often carry none).
    /// - JSON object: the `code_field` (a Modbus exception code 1...255) makes it a refusal with
    ///   that code; `success_field` true/false decides; otherwise a non-null `error_field` is a
    ///   refusal; otherwise success.
    /// - Text: "ok", "success", "true", "ack", "done" (any case) is success; other text is a
    ///   refusal carrying that text.
    /// - MQTT 5 user properties `error` (refusal) and `modbus_exception` (its code) are honoured too.
    static func evaluate(payload: [UInt8], userProperties: [(name: String, value: String)] = [], settings: AckSettings) -> WriteOutcome {
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
            if case .success(let codeValue) = document.value(at: settings.codeField), let code = Self.exceptionCode(from: codeValue) {
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
        if let namedCode, success != true {
            return .rejected(code: namedCode, reason: errorText ?? "the device refused the command")
        }
        if success == false || (success == nil && errorText != nil) {
            return .rejected(code: namedCode ?? .serverDeviceFailure, reason: errorText ?? "the device refused the command")
        }
        return .acknowledged
    }

    /// The correlation id an ack carries at `path`, as text.
    static func correlationID(in payload: [UInt8], at path: JSONPath) -> String? {
        guard let document = try? JSONParser.parse(payload), case .success(let value) = document.value(at: path) else { return nil }
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

import Foundation
