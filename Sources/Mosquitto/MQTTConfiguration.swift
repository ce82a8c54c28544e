/// The MQTT protocol version spoken to the broker.
public enum MQTTProtocolVersion: Sendable, Hashable {
    /// MQTT 3.1.1: no properties, no reason codes beyond CONNACK.
    case v311
    /// MQTT 5: properties (request/response, user properties) and reason codes.
    case v5
}

/// How a client connects to its broker. A value type: build it, then hand it to
/// ``MQTTClient/init(configuration:logger:)``.
public struct MQTTConfiguration: Sendable {
    /// Broker host name or IP address.
    public var host: String
    /// Broker TCP port (1883 plain, 8883 conventionally for TLS).
    public var port: Int
    /// Client identifier. `nil` lets the broker assign one, which requires
    /// ``cleanSession`` (a persistent session must be found again by its id).
    public var clientID: String?
    /// Start with a clean session (MQTT 3.1.1 clean session / MQTT 5 clean
    /// start). When `false` the broker keeps subscriptions and queued QoS 1/2
    /// messages across disconnections; this client restores its subscriptions
    /// on every connection anyway, so it never depends on that.
    public var cleanSession: Bool
    /// MQTT 5 session expiry interval in seconds, sent with CONNECT. Needed for
    /// an MQTT 5 persistent session (with 0 the session ends at disconnection).
    /// Ignored over MQTT 3.1.1.
    public var sessionExpiryInterval: UInt32?
    /// Keep-alive interval. libmosquitto accepts 0 (off) or 5 s...65535 s.
    public var keepAlive: Duration
    /// Protocol version.
    public var protocolVersion: MQTTProtocolVersion
    /// User name, sent with CONNECT.
    public var username: String?
    /// Password, sent with CONNECT (only together with ``username``).
    public var password: String?
    /// TLS settings; `nil` connects in plain TCP.
    public var tls: MQTTTLSConfiguration?
    /// Last will the broker publishes if this client disappears without a
    /// clean DISCONNECT.
    public var will: MQTTWill?
    /// Automatic reconnection after a connection is lost.
    public var reconnect: MQTTReconnectPolicy
    /// Time allowed for one connection attempt: TCP and TLS set-up plus the
    /// broker's CONNACK.
    public var connectTimeout: Duration
    /// Default time limit for publish (QoS 1/2), subscribe and unsubscribe.
    public var operationTimeout: Duration
    /// How many received messages are buffered for a consumer of
    /// ``MQTTClient/messages`` that is slower than the broker. When the buffer
    /// is full the oldest message is dropped and counted in
    /// ``MQTTClient/droppedMessageCount``.
    public var messageBufferCapacity: Int
    /// QoS 1/2 messages libmosquitto keeps in flight at once (0: no limit).
    /// Messages beyond the limit wait in libmosquitto's queue.
    public var maxInflightMessages: Int
    /// Disable Nagle's algorithm on the client socket (`MOSQ_OPT_TCP_NODELAY`).
    ///
    /// On by default: with Nagle on, a QoS 1 round trip meets delayed ACKs and
    /// takes tens of milliseconds instead of a fraction of one. The broker needs
    /// `set_tcp_nodelay true` as well for the full effect.
    public var tcpNoDelay: Bool

    /// Creates a configuration with defaults suited to a long-running gateway.
    public init(
        host: String = "127.0.0.1",
        port: Int = 1883,
        clientID: String? = nil,
        cleanSession: Bool = true,
        sessionExpiryInterval: UInt32? = nil,
        keepAlive: Duration = .seconds(30),
        protocolVersion: MQTTProtocolVersion = .v5,
        username: String? = nil,
        password: String? = nil,
        tls: MQTTTLSConfiguration? = nil,
        will: MQTTWill? = nil,
        reconnect: MQTTReconnectPolicy = MQTTReconnectPolicy(),
        connectTimeout: Duration = .seconds(10),
        operationTimeout: Duration = .seconds(10),
        messageBufferCapacity: Int = 100_000,
        maxInflightMessages: Int = 20,
        tcpNoDelay: Bool = true
    ) {
        self.host = host
        self.port = port
        self.clientID = clientID
        self.cleanSession = cleanSession
        self.sessionExpiryInterval = sessionExpiryInterval
        self.keepAlive = keepAlive
        self.protocolVersion = protocolVersion
        self.username = username
        self.password = password
        self.tls = tls
        self.will = will
        self.reconnect = reconnect
        self.connectTimeout = connectTimeout
        self.operationTimeout = operationTimeout
        self.messageBufferCapacity = messageBufferCapacity
        self.maxInflightMessages = maxInflightMessages
        self.tcpNoDelay = tcpNoDelay
    }
}

/// TLS settings (`mosquitto_tls_set` and friends).
///
/// The server's certificate chain and host name are verified by default; a
/// certificate that does not chain to ``caFile``/``caDirectory`` makes the
/// connection attempt fail with ``MQTTError/Code/tls``.
public struct MQTTTLSConfiguration: Sendable, Hashable {
    /// PEM file with the certificate authorities trusted for the server.
    public var caFile: String?
    /// Directory of PEM CA certificates prepared with `openssl rehash`.
    public var caDirectory: String?
    /// PEM client certificate, for brokers that require one.
    public var certificateFile: String?
    /// PEM private key of the client certificate (unencrypted).
    public var privateKeyFile: String?
    /// Verify the server's certificate chain. Turn off only for testing.
    public var verifyServerCertificate: Bool
    /// Check that the server certificate names ``MQTTConfiguration/host``.
    /// Turning this off lets anyone with a certificate from the same CA
    /// impersonate the broker.
    public var verifyHostname: Bool
    /// TLS protocol version to use, such as `"tlsv1.3"`; `nil` for
    /// libmosquitto's default (TLS 1.2 and later).
    public var tlsVersion: String?
    /// OpenSSL cipher list; `nil` for the default.
    public var ciphers: String?

    /// Creates TLS settings. At least one of `caFile` or `caDirectory` is needed.
    public init(
        caFile: String? = nil,
        caDirectory: String? = nil,
        certificateFile: String? = nil,
        privateKeyFile: String? = nil,
        verifyServerCertificate: Bool = true,
        verifyHostname: Bool = true,
        tlsVersion: String? = nil,
        ciphers: String? = nil
    ) {
        self.caFile = caFile
        self.caDirectory = caDirectory
        self.certificateFile = certificateFile
        self.privateKeyFile = privateKeyFile
        self.verifyServerCertificate = verifyServerCertificate
        self.verifyHostname = verifyHostname
        self.tlsVersion = tlsVersion
        self.ciphers = ciphers
    }
}

/// A last will: the message the broker publishes on the client's behalf when
/// the client goes away without a clean DISCONNECT.
public struct MQTTWill: Sendable, Hashable {
    /// Topic of the will message.
    public var topic: String
    /// Payload of the will message.
    public var payload: [UInt8]
    /// QoS of the will message.
    public var qos: MQTTQoS
    /// Whether the broker retains the will message.
    public var retain: Bool
    /// MQTT 5 properties of the will message; non-empty properties need
    /// ``MQTTProtocolVersion/v5``.
    public var properties: MQTTProperties

    /// Creates a will.
    public init(
        topic: String,
        payload: [UInt8],
        qos: MQTTQoS = .atLeastOnce,
        retain: Bool = false,
        properties: MQTTProperties = MQTTProperties()
    ) {
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = retain
        self.properties = properties
    }
}

/// Bounded exponential backoff between reconnection attempts.
///
/// After a connection that was up is lost, the first attempt waits
/// ``initialDelay``; each further failed attempt multiplies the delay by
/// ``multiplier`` up to ``maximumDelay``. A successful connection resets it.
public struct MQTTReconnectPolicy: Sendable, Hashable {
    /// Delay before the first reconnection attempt.
    public var initialDelay: Duration
    /// Upper bound of the delay.
    public var maximumDelay: Duration
    /// Growth factor per failed attempt (at least 1).
    public var multiplier: Double
    /// Whether ``MQTTClient/connect()`` keeps retrying when the very first
    /// attempt fails. `false` (the default) makes `connect()` throw the first
    /// attempt's error; `true` suits a service that must start before its
    /// broker (it then waits until connected or cancelled). Either way, a first
    /// attempt refused for its TLS handshake (an untrusted or wrongly named
    /// certificate) or its credentials fails `connect()` at once
    /// (``failsInitialConnectAtOnce(_:)``): retrying cannot change the answer.
    public var retryInitialConnect: Bool

    /// Whether `error` ends the first connection attempt for good even with
    /// ``retryInitialConnect``: ``MQTTError/Code/tls`` and
    /// ``MQTTError/Code/notAuthorized``.
    public static func failsInitialConnectAtOnce(_ error: MQTTError) -> Bool {
        error.code == .tls || error.code == .notAuthorized
    }

    /// Creates a policy.
    public init(
        initialDelay: Duration = .milliseconds(500),
        maximumDelay: Duration = .seconds(30),
        multiplier: Double = 2,
        retryInitialConnect: Bool = false
    ) {
        self.initialDelay = initialDelay
        self.maximumDelay = maximumDelay
        self.multiplier = multiplier
        self.retryInitialConnect = retryInitialConnect
    }

    /// The delay before reconnection attempt `attempt` (0 for the first).
    public func delay(beforeAttempt attempt: Int) -> Duration {
        let factor = Swift.max(self.multiplier, 1)
        var delay = self.initialDelay
        var remaining = Swift.max(attempt, 0)
        while remaining > 0 && delay < self.maximumDelay {
            delay = delay * factor
            remaining -= 1
        }
        return Swift.min(delay, self.maximumDelay)
    }
}
