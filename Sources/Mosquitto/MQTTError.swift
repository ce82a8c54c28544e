/// An error reported by ``MQTTClient``.
///
/// Errors are a struct with an open-ended ``Code`` rather than an enum so that
/// new kinds of failure can be added without breaking callers that switch over
/// them. ``reason`` is libmosquitto's own text for the failure
/// (`mosquitto_strerror`, `mosquitto_connack_string` or
/// `mosquitto_reason_string`), so log lines match the library's documentation;
/// ``detail`` adds context the library only logs, such as the OpenSSL error
/// behind a TLS failure.
public struct MQTTError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The kind of failure.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        private enum Base: String, Sendable, Hashable {
            case notConnected
            case connectionLost
            case connectionRefused
            case notAuthorized
            case tls
            case hostLookupFailed
            case networkError
            case timeout
            case invalidArgument
            case notSupported
            case protocolError
            case publishRejected
            case subscriptionRejected
            case disconnected
            case alreadyConnected
            case library
        }

        private let base: Base

        private init(_ base: Base) {
            self.base = base
        }

        /// The operation needs a connection and the client has none right now.
        ///
        /// Returned immediately, without queueing anything, so a caller such as
        /// a Modbus gateway can answer "path unavailable" at once.
        public static let notConnected = Code(.notConnected)
        /// The connection dropped before the operation completed.
        ///
        /// For a QoS 1/2 publish the outcome is unknown: the broker may have
        /// received the message, and libmosquitto retransmits unacknowledged
        /// messages after reconnecting.
        public static let connectionLost = Code(.connectionLost)
        /// The broker refused the connection (CONNACK with a failure code other
        /// than an authentication failure).
        public static let connectionRefused = Code(.connectionRefused)
        /// The broker refused the credentials or the client's permissions
        /// (CONNACK "not authorised" / "bad user name or password").
        public static let notAuthorized = Code(.notAuthorized)
        /// TLS setup, handshake or certificate verification failed.
        public static let tls = Code(.tls)
        /// The broker's host name could not be resolved.
        public static let hostLookupFailed = Code(.hostLookupFailed)
        /// A socket call failed (for example "Connection refused").
        public static let networkError = Code(.networkError)
        /// The operation did not complete within its time limit.
        public static let timeout = Code(.timeout)
        /// An argument was rejected (invalid topic or filter, payload too large,
        /// malformed UTF-8, unusable configuration).
        public static let invalidArgument = Code(.invalidArgument)
        /// The request needs a feature the negotiated protocol does not have
        /// (for example MQTT 5 properties on an MQTT 3.1.1 connection).
        public static let notSupported = Code(.notSupported)
        /// The broker sent something that violates the MQTT protocol.
        public static let protocolError = Code(.protocolError)
        /// The broker answered a publish with a failure reason code (MQTT 5
        /// PUBACK/PUBREC reason code 0x80 or above).
        public static let publishRejected = Code(.publishRejected)
        /// The broker refused a subscription (SUBACK 0x80 or above).
        public static let subscriptionRejected = Code(.subscriptionRejected)
        /// The application called ``MQTTClient/disconnect(publishingWill:)`` (or
        /// released the client) before the operation completed.
        public static let disconnected = Code(.disconnected)
        /// ``MQTTClient/connect()`` was called while a connection is active.
        public static let alreadyConnected = Code(.alreadyConnected)
        /// Any other libmosquitto failure; ``MQTTError/reason`` has its text.
        public static let library = Code(.library)

        /// The code's name, for example `notAuthorized`.
        public var description: String {
            self.base.rawValue
        }
    }

    /// The kind of failure.
    public var code: Code
    /// Human-readable reason, normally libmosquitto's own text.
    public var reason: String
    /// The MQTT reason code the broker sent, when the failure came from a
    /// CONNACK, PUBACK/PUBREC, SUBACK or DISCONNECT packet.
    public var mqttReasonCode: UInt8?
    /// Additional context, such as the OpenSSL error line behind a TLS failure
    /// or the system error text behind a socket failure.
    public var detail: String?

    /// Creates an error.
    public init(code: Code, reason: String, mqttReasonCode: UInt8? = nil, detail: String? = nil) {
        self.code = code
        self.reason = reason
        self.mqttReasonCode = mqttReasonCode
        self.detail = detail
    }

    /// A one-line rendering such as
    /// `MQTTError.notAuthorized: Connection Refused: not authorised. (reason code 0x05)`.
    public var description: String {
        var text = "MQTTError.\(self.code): \(self.reason)"
        if let detail = self.detail, !detail.isEmpty {
            text += " — \(detail)"
        }
        if let reasonCode = self.mqttReasonCode {
            let hex = String(reasonCode, radix: 16, uppercase: true)
            text += " (reason code 0x\(hex.count < 2 ? "0" + hex : hex))"
        }
        return text
    }
}
