/// How the bridge connects to its MQTT broker (the `broker:` section).
///
/// Mirrors what the MQTT client offers; the runtime maps it onto the client's configuration.
public struct BrokerSettings: Sendable, Hashable {
    /// The MQTT protocol version.
    public enum ProtocolVersion: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
        /// MQTT 5 (the default): needed for the `mqtt5` ack mode.
        case mqtt5
        /// MQTT 3.1.1.
        case mqtt311

        /// `mqtt5` or `mqtt311`.
        public var description: String { rawValue }
    }

    /// Which MQTT connection carries the commands and their acknowledgements
    /// (`command_connection`).
    public enum CommandConnection: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
        /// A second connection of the bridge's own, client id ``BrokerSettings/commandClientID``,
        /// subscribed to the ack topics only (the default): the broker queues an acknowledgement
        /// for the bridge on a connection no telemetry flood fills, so it neither waits behind
        /// the flood nor is dropped for it (docs/design.md §4.9).
        case separate
        /// Everything on the one connection, for brokers that allow a single client per
        /// credential or count connections: acknowledgements then share the broker's queue
        /// to the bridge with the telemetry.
        case shared

        /// `separate` or `shared`.
        public var description: String { rawValue }
    }

    /// Where the password comes from.
    public enum Password: Sendable, Hashable {
        /// Written in the configuration (`password:`).
        case literal(String)
        /// Read from a file when connecting (`password_file:`), for secrets mounted by Docker or
        /// Kubernetes; one trailing new line is ignored. Relative paths are resolved against the
        /// configuration file's directory by ``BridgeConfiguration/load(path:)``.
        case file(path: String)
        /// Read from an environment variable of the process when the service is created
        /// (`password_env:`), for orchestrators that hand secrets over that way.
        case environment(name: String)
    }

    /// Broker host name or IP address. Default `127.0.0.1`.
    public var host: String
    /// Broker port. Default 1883, or 8883 when ``tls`` is set.
    public var port: Int
    /// The client id. Default `mqtt-modbus-bridge`; two bridges on one broker need different ids.
    public var clientID: String
    /// Protocol version. Default ``ProtocolVersion/mqtt5``.
    public var protocolVersion: ProtocolVersion
    /// Start with a clean session. Default `true`.
    public var cleanSession: Bool
    /// MQTT 5 session expiry interval (for a persistent session with `clean_session: false`);
    /// `nil` by default. Only with `mqtt5`.
    public var sessionExpiry: Duration?
    /// Keep-alive interval: 0 (off) or 5 s ... 65535 s, whole seconds. Default 30 s.
    public var keepAlive: Duration
    /// User name, if the broker wants one.
    public var username: String?
    /// Password, needs ``username``.
    public var password: Password?
    /// TLS; `nil` connects in plain TCP.
    public var tls: TLSSettings?
    /// The bridge publishes `online` here (retained) once connected, and sets `offline` (retained)
    /// as its last will. Default `<client_id>/status`.
    public var statusTopic: String
    /// Reconnection backoff.
    public var reconnect: ReconnectSettings
    /// Time allowed for one connection attempt (TCP, TLS, CONNACK). Default 10 s.
    public var connectTimeout: Duration
    /// Time limit for one publish (QoS 1/2), subscribe or unsubscribe. Default 10 s.
    public var operationTimeout: Duration
    /// Received messages buffered while the bridge is busy; beyond that the oldest are dropped
    /// (the cache is "last value wins", so only stale values are lost). Default 100000.
    public var messageBufferCapacity: Int
    /// QoS 1/2 messages in flight at once (0: no limit). Default 20.
    public var maxInflightMessages: Int
    /// Switch Nagle's algorithm off on the client socket. Default `true`: with Nagle a QoS 1
    /// round trip takes tens of milliseconds (docs/design.md §6). The broker needs `set_tcp_nodelay true`.
    public var tcpNoDelay: Bool
    /// Refresh messages (``DeviceConfiguration/refresh``) published per second at most, on start
    /// and after each reconnection (`refresh_rate`). Default ``defaultRefreshRate``.
    public var refreshRate: Double = BrokerSettings.defaultRefreshRate
    /// Which connection carries commands and acknowledgements. Default
    /// ``CommandConnection/separate``.
    public var commandConnection: CommandConnection = .separate

    /// The client id of the command connection: ``clientID`` with `-cmd`, so that two bridges
    /// with different ids get different command connections too.
    public var commandClientID: String { "\(clientID)-cmd" }

    /// Default refresh rate: 10 messages per second, which a broker and a zigbee network take in
    /// their stride, and 1000 devices refreshed in under two minutes.
    public static let defaultRefreshRate = 10.0

    /// Default client id: `mqtt-modbus-bridge`.
    public static let defaultClientID = "mqtt-modbus-bridge"

    /// Creates settings; every parameter has the default the configuration file uses.
    public init(
        host: String = "127.0.0.1",
        port: Int? = nil,
        clientID: String = Self.defaultClientID,
        protocolVersion: ProtocolVersion = .mqtt5,
        cleanSession: Bool = true,
        sessionExpiry: Duration? = nil,
        keepAlive: Duration = .seconds(30),
        username: String? = nil,
        password: Password? = nil,
        tls: TLSSettings? = nil,
        statusTopic: String? = nil,
        reconnect: ReconnectSettings = ReconnectSettings(),
        connectTimeout: Duration = .seconds(10),
        operationTimeout: Duration = .seconds(10),
        messageBufferCapacity: Int = 100_000,
        maxInflightMessages: Int = 20,
        tcpNoDelay: Bool = true
    ) {
        self.host = host
        self.port = port ?? (tls == nil ? 1883 : 8883)
        self.clientID = clientID
        self.protocolVersion = protocolVersion
        self.cleanSession = cleanSession
        self.sessionExpiry = sessionExpiry
        self.keepAlive = keepAlive
        self.username = username
        self.password = password
        self.tls = tls
        self.statusTopic = statusTopic ?? "\(clientID)/status"
        self.reconnect = reconnect
        self.connectTimeout = connectTimeout
        self.operationTimeout = operationTimeout
        self.messageBufferCapacity = messageBufferCapacity
        self.maxInflightMessages = maxInflightMessages
        self.tcpNoDelay = tcpNoDelay
    }

    /// The payload published retained on ``statusTopic`` while the bridge is connected.
    public static let onlinePayload = "online"
    /// The retained last-will payload of ``statusTopic``.
    public static let offlinePayload = "offline"
}

/// TLS towards the broker (`broker.tls`).
public struct TLSSettings: Sendable, Hashable {
    /// PEM file of the certificate authorities trusted for the broker.
    public var caFile: String?
    /// Directory of PEM CA certificates (prepared with `openssl rehash`). At least one of
    /// ``caFile`` and ``caPath`` is required.
    public var caPath: String?
    /// PEM client certificate (with ``keyFile``), for brokers that require one.
    public var certFile: String?
    /// PEM private key of ``certFile`` (unencrypted).
    public var keyFile: String?
    /// Verify the broker's certificate chain. Default `true`; `false` only for tests.
    public var verifyServer: Bool
    /// Check that the broker's certificate names the host. Default `true`.
    public var verifyHostname: Bool
    /// TLS version such as `tlsv1.3`; `nil` for the library's default (TLS 1.2 and later).
    public var version: String?
    /// OpenSSL cipher list; `nil` for the default.
    public var ciphers: String?

    /// Creates TLS settings.
    public init(
        caFile: String? = nil,
        caPath: String? = nil,
        certFile: String? = nil,
        keyFile: String? = nil,
        verifyServer: Bool = true,
        verifyHostname: Bool = true,
        version: String? = nil,
        ciphers: String? = nil
    ) {
        self.caFile = caFile
        self.caPath = caPath
        self.certFile = certFile
        self.keyFile = keyFile
        self.verifyServer = verifyServer
        self.verifyHostname = verifyHostname
        self.version = version
        self.ciphers = ciphers
    }

    /// The TLS versions accepted in ``version``.
    public static let supportedVersions = ["tlsv1.2", "tlsv1.3"]
}

/// Bounded exponential backoff between reconnection attempts (`broker.reconnect`).
public struct ReconnectSettings: Sendable, Hashable {
    /// Delay before the first attempt after a connection was lost. Default 1 s.
    public var minDelay: Duration
    /// Upper bound of the delay. Default 30 s.
    public var maxDelay: Duration
    /// Growth factor per failed attempt, at least 1. Default 2.
    public var multiplier: Double
    /// Keep retrying when the very first connection fails (`true` by default: the bridge is a
    /// service that may start before its broker). `false` makes start-up fail at once on a wrong
    /// password or an unreachable broker.
    public var retryInitialConnect: Bool

    /// Creates settings.
    public init(
        minDelay: Duration = .seconds(1),
        maxDelay: Duration = .seconds(30),
        multiplier: Double = 2,
        retryInitialConnect: Bool = true
    ) {
        self.minDelay = minDelay
        self.maxDelay = maxDelay
        self.multiplier = multiplier
        self.retryInitialConnect = retryInitialConnect
    }
}
