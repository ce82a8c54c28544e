import CMosquitto

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Translation of libmosquitto's integer results into ``MQTTError``. Kept in one
/// place so no `Int32` result code escapes into the public API.
enum MosquittoResult {
    static func text(of code: Int32) -> String {
        guard let cString = mosquitto_strerror(code) else { return "libmosquitto error \(code)" }
        return String(cString: cString)
    }

    static func systemErrorText(_ errorNumber: Int32) -> String {
        guard let cString = strerror(errorNumber) else { return "errno \(errorNumber)" }
        return String(cString: cString)
    }

    /// The error for a failed libmosquitto call.
    ///
    /// - Parameters:
    ///   - code: the `MOSQ_ERR_*` result.
    ///   - errorNumber: `errno` captured right after the call, used for
    ///     `MOSQ_ERR_ERRNO` (socket errors) and `MOSQ_ERR_EAI` (`getaddrinfo`).
    ///   - logDetail: error lines libmosquitto logged during the operation
    ///     (OpenSSL's reason for a TLS failure lives only there).
    static func error(_ code: Int32, errno errorNumber: Int32 = 0, logDetail: String? = nil) -> MQTTError {
        let reason = Self.text(of: code)
        switch mosq_err_t(code) {
        case MOSQ_ERR_NO_CONN:
            return MQTTError(code: .notConnected, reason: reason, detail: logDetail)
        case MOSQ_ERR_CONN_LOST, MOSQ_ERR_KEEPALIVE, MOSQ_ERR_ADMINISTRATIVE_ACTION:
            return MQTTError(code: .connectionLost, reason: reason, detail: logDetail)
        case MOSQ_ERR_CONN_REFUSED:
            return MQTTError(code: .connectionRefused, reason: reason, detail: logDetail)
        case MOSQ_ERR_AUTH, MOSQ_ERR_ACL_DENIED:
            return MQTTError(code: .notAuthorized, reason: reason, detail: logDetail)
        case MOSQ_ERR_TLS, MOSQ_ERR_TLS_HANDSHAKE, MOSQ_ERR_OCSP:
            return MQTTError(code: .tls, reason: reason, detail: logDetail)
        case MOSQ_ERR_EAI:
            var detail = errorNumber != 0 ? String(cString: gai_strerror(errorNumber)) : nil
            if let logDetail { detail = [detail, logDetail].compactMap { $0 }.joined(separator: "; ") }
            return MQTTError(code: .hostLookupFailed, reason: reason, detail: detail)
        case MOSQ_ERR_LOOKUP:
            return MQTTError(code: .hostLookupFailed, reason: reason, detail: logDetail)
        case MOSQ_ERR_ERRNO:
            // mosquitto_strerror(MOSQ_ERR_ERRNO) reads the *current* errno, which
            // is long gone by now: use the captured one.
            let text = errorNumber != 0 ? Self.systemErrorText(errorNumber) : "system call failed"
            return MQTTError(code: .networkError, reason: text, detail: logDetail)
        case MOSQ_ERR_TIMEOUT:
            return MQTTError(code: .timeout, reason: reason, detail: logDetail)
        case MOSQ_ERR_INVAL, MOSQ_ERR_PAYLOAD_SIZE, MOSQ_ERR_MALFORMED_UTF8, MOSQ_ERR_OVERSIZE_PACKET,
            MOSQ_ERR_QOS_NOT_SUPPORTED, MOSQ_ERR_RETAIN_NOT_SUPPORTED, MOSQ_ERR_TOPIC_ALIAS_INVALID:
            return MQTTError(code: .invalidArgument, reason: reason, detail: logDetail)
        case MOSQ_ERR_NOT_SUPPORTED:
            return MQTTError(code: .notSupported, reason: reason, detail: logDetail)
        case MOSQ_ERR_PROTOCOL, MOSQ_ERR_MALFORMED_PACKET, MOSQ_ERR_DUPLICATE_PROPERTY:
            return MQTTError(code: .protocolError, reason: reason, detail: logDetail)
        default:
            return MQTTError(code: .library, reason: reason, detail: logDetail)
        }
    }

    /// The error for a CONNACK that refused the connection.
    static func connackError(_ reasonCode: Int32, protocolVersion: MQTTProtocolVersion) -> MQTTError {
        let byte = UInt8(truncatingIfNeeded: reasonCode)
        switch protocolVersion {
        case .v311:
            let reason = mosquitto_connack_string(reasonCode).map { String(cString: $0) } ?? "Connection refused"
            // 4: bad user name or password, 5: not authorised (MQTT 3.1.1 §3.2.2.3).
            let code: MQTTError.Code = (byte == 4 || byte == 5) ? .notAuthorized : .connectionRefused
            return MQTTError(code: code, reason: reason, mqttReasonCode: byte)
        case .v5:
            let reason = Self.reasonString(reasonCode)
            let code: MQTTError.Code
            switch mqtt5_return_codes(UInt32(byte)) {
            case MQTT_RC_BAD_USERNAME_OR_PASSWORD, MQTT_RC_NOT_AUTHORIZED, MQTT_RC_BAD_AUTHENTICATION_METHOD,
                MQTT_RC_BANNED:
                code = .notAuthorized
            default:
                code = .connectionRefused
            }
            return MQTTError(code: code, reason: reason, mqttReasonCode: byte)
        }
    }

    /// libmosquitto's text for an MQTT 5 reason code.
    static func reasonString(_ reasonCode: Int32) -> String {
        mosquitto_reason_string(reasonCode).map { String(cString: $0) } ?? "reason code \(reasonCode)"
    }
}
