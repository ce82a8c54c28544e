import ModbusCore

/// How one point write ended.
package enum WriteOutcome: Sendable, Hashable {
    /// The device (or, in broker mode, the broker) confirmed it.
    case acknowledged
    /// The device refused it; `code` is the exception its ack named, or 04.
    case rejected(code: ModbusExceptionCode, reason: String)
    /// No acknowledgement before the point's ack timeout.
    case timedOut
    /// The broker could not be reached, or the connection dropped while waiting.
    case brokerUnavailable(reason: String)

    /// The Modbus exception for a failed write (docs/design.md §4).
    package var exceptionCode: ModbusExceptionCode? {
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
    package static func combined(_ outcomes: [WriteOutcome]) -> WriteOutcome {
        if let broker = outcomes.first(where: { if case .brokerUnavailable = $0 { true } else { false } }) {
            return broker
        }
        if let refusal = outcomes.first(where: { if case .rejected = $0 { true } else { false } }) { return refusal }
        if outcomes.contains(.timedOut) { return .timedOut }
        return .acknowledged
    }
}

extension ModbusExceptionCode {
    /// The exception codes the bridge answers a Modbus request with (docs/design.md §3.7, §4.2):
    /// 01, 02, 03, 04, 06, 0A, 0B. Of the other codes Modbus defines, 05 (acknowledge) says the
    /// request was accepted and is still being processed, which is not a failure and never true
    /// of a write the bridge answers; 08 (memory parity error) belongs to file-record function
    /// codes the bridge does not serve.
    package static let bridgeAnswers: [ModbusExceptionCode] = [
        .illegalFunction, .illegalDataAddress, .illegalDataValue, .serverDeviceFailure, .serverDeviceBusy,
        .gatewayPathUnavailable, .gatewayTargetDeviceFailedToRespond,
    ]

    /// Whether the bridge answers with this code (one of ``bridgeAnswers``).
    package var isBridgeAnswer: Bool {
        switch self {
        case .illegalFunction, .illegalDataAddress, .illegalDataValue, .serverDeviceFailure, .serverDeviceBusy,
            .gatewayPathUnavailable, .gatewayTargetDeviceFailedToRespond:
            true
        default: false
        }
    }
}
