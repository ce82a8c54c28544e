/// MQTT quality of service level.
public enum MQTTQoS: UInt8, Sendable, Hashable, CaseIterable, Comparable, CustomStringConvertible {
    /// QoS 0: fire and forget; no acknowledgement.
    case atMostOnce = 0
    /// QoS 1: acknowledged by PUBACK; may be delivered more than once.
    case atLeastOnce = 1
    /// QoS 2: four-step handshake ending with PUBCOMP; delivered once.
    case exactlyOnce = 2

    /// Orders levels by their numeric value.
    public static func < (lhs: MQTTQoS, rhs: MQTTQoS) -> Bool {
        lhs.rawValue < rhs.rawValue
    }

    /// `QoS 0`, `QoS 1` or `QoS 2`.
    public var description: String {
        "QoS \(self.rawValue)"
    }
}

/// One MQTT 5 user property: a name/value pair of UTF-8 strings.
///
/// A message may carry several properties with the same name, so they are kept
/// as an ordered array rather than a dictionary.
public struct MQTTUserProperty: Sendable, Hashable, CustomStringConvertible {
    /// The property's name.
    public var name: String
    /// The property's value.
    public var value: String

    /// Creates a user property.
    public init(_ name: String, _ value: String) {
        self.name = name
        self.value = value
    }

    /// `name=value`.
    public var description: String {
        "\(self.name)=\(self.value)"
    }
}

/// The MQTT 5 payload format indicator.
public enum MQTTPayloadFormat: UInt8, Sendable, Hashable {
    /// Unspecified bytes (indicator 0).
    case bytes = 0
    /// UTF-8 encoded character data (indicator 1).
    case utf8 = 1
}

/// MQTT 5 properties of a published or received message.
///
/// All fields are optional; an empty value sends no properties. Properties need
/// an MQTT 5 connection: publishing non-empty properties over MQTT 3.1.1 fails
/// with ``MQTTError/Code/notSupported``, and messages received over MQTT 3.1.1
/// always have empty properties.
public struct MQTTProperties: Sendable, Hashable {
    /// Topic the receiver should publish its answer to (request/response).
    public var responseTopic: String?
    /// Opaque bytes the responder echoes so the requester can match the answer.
    public var correlationData: [UInt8]?
    /// Application-defined name/value pairs, in the order they were sent.
    public var userProperties: [MQTTUserProperty]
    /// MIME type or other description of the payload.
    public var contentType: String?
    /// Whether the payload is UTF-8 text.
    public var payloadFormat: MQTTPayloadFormat?
    /// Lifetime of the message in seconds; the broker discards it afterwards.
    public var messageExpiryInterval: UInt32?

    /// Creates a property set.
    public init(
        responseTopic: String? = nil,
        correlationData: [UInt8]? = nil,
        userProperties: [MQTTUserProperty] = [],
        contentType: String? = nil,
        payloadFormat: MQTTPayloadFormat? = nil,
        messageExpiryInterval: UInt32? = nil
    ) {
        self.responseTopic = responseTopic
        self.correlationData = correlationData
        self.userProperties = userProperties
        self.contentType = contentType
        self.payloadFormat = payloadFormat
        self.messageExpiryInterval = messageExpiryInterval
    }

    /// True when no property is set.
    public var isEmpty: Bool {
        self.responseTopic == nil && self.correlationData == nil && self.userProperties.isEmpty
            && self.contentType == nil && self.payloadFormat == nil && self.messageExpiryInterval == nil
    }

    /// The value of the first user property called `name`, if any.
    public func userProperty(_ name: String) -> String? {
        self.userProperties.first { $0.name == name }?.value
    }
}

/// A message received from the broker.
public struct MQTTMessage: Sendable, Hashable {
    /// The topic the message was published to.
    public var topic: String
    /// The payload bytes, exactly as published.
    public var payload: [UInt8]
    /// The QoS the message was delivered with (the lower of the publisher's
    /// and the subscription's).
    public var qos: MQTTQoS
    /// True when the broker delivered a retained message because of a new
    /// subscription, rather than a live publication.
    public var retain: Bool
    /// MQTT 5 properties (empty over MQTT 3.1.1).
    public var properties: MQTTProperties
    /// The broker connection the message arrived on: 1 for the client's first accepted
    /// connection, one more for each reconnection; 0 for a message not received from a broker.
    /// A message still buffered when its connection is lost can be told apart from the values
    /// that came after the loss (``MQTTClient/lastEndedConnection``).
    public var connection: UInt64

    /// Creates a message (useful for tests of code that consumes messages).
    public init(
        topic: String,
        payload: [UInt8],
        qos: MQTTQoS = .atMostOnce,
        retain: Bool = false,
        properties: MQTTProperties = MQTTProperties(),
        connection: UInt64 = 0
    ) {
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = retain
        self.properties = properties
        self.connection = connection
    }

    /// The payload decoded as UTF-8 (invalid sequences are replaced).
    public var payloadString: String {
        String(decoding: self.payload, as: UTF8.self)
    }
}
