import CMosquitto

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A libmosquitto property list built from Swift values. Used synchronously
/// inside one call and released with ``free()`` in a `defer` (a `defer` rather
/// than a `deinit`, so the list provably outlives the C call that reads it).
struct OutgoingProperties {
    private(set) var list: OpaquePointer?

    private init(list: OpaquePointer?) {
        self.list = list
    }

    /// No properties (a `NULL` list).
    static func none() -> OutgoingProperties {
        OutgoingProperties(list: nil)
    }

    /// The list for a PUBLISH or a will (the same property set).
    static func message(_ properties: MQTTProperties) throws(MQTTError) -> OutgoingProperties {
        try Self.build { list throws(MQTTError) in
            if let format = properties.payloadFormat {
                try check(
                    mosquitto_property_add_byte(
                        &list,
                        Int32(MQTT_PROP_PAYLOAD_FORMAT_INDICATOR.rawValue),
                        format.rawValue
                    )
                )
            }
            if let expiry = properties.messageExpiryInterval {
                try check(
                    mosquitto_property_add_int32(&list, Int32(MQTT_PROP_MESSAGE_EXPIRY_INTERVAL.rawValue), expiry)
                )
            }
            if let contentType = properties.contentType {
                try check(mosquitto_property_add_string(&list, Int32(MQTT_PROP_CONTENT_TYPE.rawValue), contentType))
            }
            if let responseTopic = properties.responseTopic {
                try check(mosquitto_property_add_string(&list, Int32(MQTT_PROP_RESPONSE_TOPIC.rawValue), responseTopic))
            }
            if let correlationData = properties.correlationData {
                guard correlationData.count <= Int(UInt16.max) else {
                    throw MQTTError(code: .invalidArgument, reason: "correlation data is longer than 65535 bytes")
                }
                let rc = correlationData.withUnsafeBytes { bytes in
                    mosquitto_property_add_binary(
                        &list,
                        Int32(MQTT_PROP_CORRELATION_DATA.rawValue),
                        bytes.baseAddress,
                        UInt16(bytes.count)
                    )
                }
                try check(rc)
            }
            for property in properties.userProperties {
                try check(
                    mosquitto_property_add_string_pair(
                        &list,
                        Int32(MQTT_PROP_USER_PROPERTY.rawValue),
                        property.name,
                        property.value
                    )
                )
            }
        }
    }

    /// The CONNECT properties.
    static func connect(_ configuration: MQTTConfiguration) throws(MQTTError) -> OutgoingProperties {
        try Self.build { list throws(MQTTError) in
            if let expiry = configuration.sessionExpiryInterval {
                try check(
                    mosquitto_property_add_int32(&list, Int32(MQTT_PROP_SESSION_EXPIRY_INTERVAL.rawValue), expiry)
                )
            }
        }
    }

    private static func build(
        _ body: (inout OpaquePointer?) throws(MQTTError) -> Void
    ) throws(MQTTError) -> OutgoingProperties {
        var list: OpaquePointer?
        do {
            try body(&list)
        } catch {
            mosquitto_property_free_all(&list)
            throw error
        }
        return OutgoingProperties(list: list)
    }

    /// Frees the list; libmosquitto copies what it keeps.
    mutating func free() {
        if self.list != nil {
            mosquitto_property_free_all(&self.list)
        }
    }
}

private func check(_ rc: Int32) throws(MQTTError) {
    guard rc == MOSQ_ERR_SUCCESS.rawValue else {
        throw MosquittoResult.error(rc)
    }
}

extension MQTTProperties {
    /// Reads the properties of a received message. Unknown or irrelevant
    /// properties (topic alias, subscription identifiers) are skipped.
    init(mosquittoProperties: OpaquePointer?) {
        self.init()
        var cursor = mosquittoProperties
        while let property = cursor {
            let identifier = mosquitto_property_identifier(property)
            switch UInt32(bitPattern: identifier) {
            case MQTT_PROP_RESPONSE_TOPIC.rawValue:
                self.responseTopic = Self.readString(property, identifier)
            case MQTT_PROP_CONTENT_TYPE.rawValue:
                self.contentType = Self.readString(property, identifier)
            case MQTT_PROP_CORRELATION_DATA.rawValue:
                var value: UnsafeMutableRawPointer?
                var length: UInt16 = 0
                if mosquitto_property_read_binary(property, identifier, &value, &length, false) != nil {
                    if let value {
                        self.correlationData = Array(UnsafeRawBufferPointer(start: value, count: Int(length)))
                        free(value)
                    } else {
                        self.correlationData = []
                    }
                }
            case MQTT_PROP_USER_PROPERTY.rawValue:
                var name: UnsafeMutablePointer<CChar>?
                var value: UnsafeMutablePointer<CChar>?
                if mosquitto_property_read_string_pair(property, identifier, &name, &value, false) != nil {
                    self.userProperties.append(
                        MQTTUserProperty(
                            name.map { String(cString: $0) } ?? "",
                            value.map { String(cString: $0) } ?? ""
                        )
                    )
                    free(name)
                    free(value)
                }
            case MQTT_PROP_PAYLOAD_FORMAT_INDICATOR.rawValue:
                var value: UInt8 = 0
                if mosquitto_property_read_byte(property, identifier, &value, false) != nil {
                    self.payloadFormat = MQTTPayloadFormat(rawValue: value)
                }
            case MQTT_PROP_MESSAGE_EXPIRY_INTERVAL.rawValue:
                var value: UInt32 = 0
                if mosquitto_property_read_int32(property, identifier, &value, false) != nil {
                    self.messageExpiryInterval = value
                }
            default:
                break
            }
            cursor = mosquitto_property_next(property)
        }
    }

    private static func readString(_ property: OpaquePointer, _ identifier: Int32) -> String? {
        var value: UnsafeMutablePointer<CChar>?
        guard mosquitto_property_read_string(property, identifier, &value, false) != nil, let value else {
            return nil
        }
        defer { free(value) }
        return String(cString: value)
    }
}
