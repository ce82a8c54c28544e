import ModbusCore

/// A read-only register the bridge computes itself, beside a point's value: the point's
/// ``PointQuality`` (`quality:`) or the ``LastCommandStatus`` of its last write (`last_command:`).
/// It lives in the point's unit, in an area and at an address no other point or status register
/// uses; a Modbus write to it is answered 02, like a write to any read-only point.
public struct StatusRegister: Sendable, Hashable {
    /// The area: `holding_register`, `input_register` or (quality only) `discrete_input`. Never
    /// `coil`: a master may write coils, and these registers only report.
    public var area: ModbusArea
    /// The 0-based protocol address.
    public var address: UInt16
    /// Where it was written in the configuration file.
    public var location: ConfigurationLocation

    /// Creates a status register.
    public init(
        area: ModbusArea,
        address: UInt16,
        location: ConfigurationLocation = ConfigurationLocation(file: "", line: 0, column: 0)
    ) {
        self.area = area
        self.address = address
        self.location = location
    }
}

/// The data quality a point's `quality:` register reports: why a read of the value answers what
/// it answers. It is computed at read time by the same rule that decides whether the value is
/// current, so the two never disagree. When several reasons apply, the first in this order wins:
/// device offline, then connection lost or missing, then stale.
///
/// In a register the code is the raw value; in a discrete input, 1 means ``fresh`` and 0
/// anything else.
public enum PointQuality: UInt16, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    /// The value is current: reads answer it.
    case fresh = 0
    /// The last value is older than the point's `max_age`.
    case stale = 1
    /// No value since the bridge started (or, for a command-only point, no acknowledged write).
    case missing = 2
    /// The point's device is offline: its availability topic said so, or it has been silent for
    /// longer than its `silence` limit.
    case deviceOffline = 3
    /// The point had a value, but the broker connection was lost since, and no value has arrived
    /// since it came back.
    case connectionLost = 4

    /// The word used in documentation and by `explain`.
    public var description: String {
        switch self {
        case .fresh: "fresh"
        case .stale: "stale"
        case .missing: "missing"
        case .deviceOffline: "device offline"
        case .connectionLost: "connection lost"
        }
    }

    /// The value the quality register answers in `area`: the code in a register, 1 (fresh) or 0
    /// in a discrete input.
    public func registerValue(in area: ModbusArea) -> UInt16 {
        area.isBitArea ? (self == .fresh ? 1 : 0) : rawValue
    }
}

/// What a writable point's `last_command:` register reports: how the last Modbus write to the
/// point ended. One register: the outcome code in the high byte, the Modbus exception code the
/// write was answered with in the low byte (0 for none).
public struct LastCommandStatus: Sendable, Hashable, CustomStringConvertible {
    /// How the write ended.
    public enum Outcome: UInt8, Sendable, Hashable, CaseIterable, CustomStringConvertible {
        /// No write to the point since the bridge started.
        case none = 0
        /// The device acknowledged the command (in `broker` ack mode: the broker accepted it).
        case acknowledged = 1
        /// The device refused it (a negative acknowledgement), or the broker rejected the publish.
        case refused = 2
        /// No acknowledgement before the point's `ack.timeout`.
        case timedOut = 3
        /// The broker was not connected, or the connection was lost while waiting.
        case brokerUnavailable = 4
        /// The point's device is offline: nothing was published (`offline_writes: refuse`).
        case deviceOffline = 5
        /// The bridge did not send the command: it could not be encoded (03), too many writes
        /// were in flight (06), or the write included an offline device's point (0B).
        case notSent = 6

        /// The words used in documentation and by `explain`.
        public var description: String {
            switch self {
            case .none: "no write yet"
            case .acknowledged: "acknowledged"
            case .refused: "refused"
            case .timedOut: "timed out"
            case .brokerUnavailable: "broker unavailable"
            case .deviceOffline: "device offline"
            case .notSent: "not sent"
            }
        }
    }

    /// How the write ended.
    public var outcome: Outcome
    /// The exception the Modbus write was answered with; `nil` for a normal reply.
    public var exceptionCode: ModbusExceptionCode?

    /// Creates a status.
    public init(outcome: Outcome, exceptionCode: ModbusExceptionCode? = nil) {
        self.outcome = outcome
        self.exceptionCode = exceptionCode
    }

    /// Before any write: register value 0.
    public static let none = LastCommandStatus(outcome: .none)

    /// The register: outcome in the high byte, exception code in the low byte.
    public var registerValue: UInt16 { UInt16(outcome.rawValue) << 8 | UInt16(exceptionCode?.rawValue ?? 0) }

    /// The status of a point write that was sent and ended with `outcome`.
    package init(_ outcome: WriteOutcome) {
        switch outcome {
        case .acknowledged: self.init(outcome: .acknowledged)
        case .rejected(let code, _): self.init(outcome: .refused, exceptionCode: code)
        case .timedOut: self.init(outcome: .timedOut, exceptionCode: .gatewayTargetDeviceFailedToRespond)
        case .brokerUnavailable: self.init(outcome: .brokerUnavailable, exceptionCode: .gatewayPathUnavailable)
        }
    }

    /// `timed out (0B)`.
    public var description: String {
        guard let exceptionCode else { return "\(outcome)" }
        return "\(outcome) (\(exceptionCode))"
    }
}
