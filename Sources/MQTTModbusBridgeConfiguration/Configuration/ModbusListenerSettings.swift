import ModbusCore

/// The Modbus TCP side of the bridge (the `modbus:` section): where SCADA masters connect.
public struct ModbusListenerSettings: Sendable, Hashable {
    /// What to do with a new connection when ``maxConnections`` are open.
    public enum ConnectionLimitPolicy: String, Sendable, Hashable, CaseIterable {
        /// Close the connection idle longest to admit the new one (TCP guide §4.2.1). Default.
        case closeOldestIdle = "close_oldest_idle"
        /// Refuse the new connection.
        case rejectNew = "reject_new"
    }

    /// How a request for a unit id the configuration does not serve (neither a unit's id nor an
    /// alias) is answered.
    public enum UnknownUnitPolicy: String, Sendable, Hashable, CaseIterable {
        /// Exception 0B, gateway target device failed to respond: what the specification asks of
        /// a gateway whose target does not answer (App §7, TCP guide §4.4.1.2), and the quickest
        /// clear answer for a master. Default.
        case exception
        /// No answer at all, like a serial gateway whose slave is absent: some masters only mark
        /// a unit as failed after a timeout and treat 0B as a protocol error.
        case ignore
    }

    /// Listen address. Default `0.0.0.0`.
    public var host: String
    /// TCP port, 0...65535 (0 picks a free port). Default 502.
    public var port: Int
    /// Connections served at once. Default 32.
    public var maxConnections: Int
    /// What happens at the limit. Default ``ConnectionLimitPolicy/closeOldestIdle``.
    public var connectionLimitPolicy: ConnectionLimitPolicy
    /// Close a connection without requests for this long; `nil` never. Default 300 s.
    public var idleTimeout: Duration?
    /// Pipelined requests queued per connection behind a pending write. Default 64.
    public var maxQueuedRequestsPerConnection: Int
    /// How long a shutdown lets connections answer what they received. Default 10 s.
    public var shutdownGracePeriod: Duration
    /// Modbus writes that may wait for device acknowledgements at once; one more is answered
    /// 06 (server device busy). Bounds the commands a master can pile onto slow devices.
    public var maxWritesInFlight: Int
    /// The objects of Read Device Identification (FC43/14).
    public var deviceIdentification: ModbusDeviceIdentification
    /// How requests for units the configuration does not serve are answered. Default
    /// ``UnknownUnitPolicy/exception`` (0B).
    public var unknownUnit: UnknownUnitPolicy
    /// The client addresses that may connect (`allowed_clients`); `nil`: every address.
    public var allowedClients: [ModbusClientAddressRange]?
    /// Every write function code answers 01 (`read_only`). Default `false`.
    public var readOnly: Bool
    /// Event-loop threads serving the Modbus connections (`event_loop_threads`); `nil`, the
    /// default: one per CPU the process may use (its CPU affinity).
    public var eventLoopThreads: Int?
    /// Whether the plain Modbus TCP listener (``host``, ``port``) runs (`plain_listener`).
    /// Default `true`; `false` needs ``tls``: the bridge then serves TLS masters only.
    public var plainListener: Bool
    /// The Modbus/TCP Security listener (`tls:`), beside the plain one; `nil`: none.
    public var tls: ModbusTLSListenerSettings?

    /// The identity reported when the configuration names none.
    public static let defaultDeviceIdentification = ModbusDeviceIdentification(
        vendorName: "swift-mqtt-modbus",
        productCode: "mqtt-modbus-bridge",
        majorMinorRevision: "1.0"
    )

    /// Creates settings; every parameter has the default the configuration file uses.
    public init(
        host: String = "0.0.0.0",
        port: Int = 502,
        maxConnections: Int = 32,
        connectionLimitPolicy: ConnectionLimitPolicy = .closeOldestIdle,
        idleTimeout: Duration? = .seconds(300),
        maxQueuedRequestsPerConnection: Int = 64,
        shutdownGracePeriod: Duration = .seconds(10),
        maxWritesInFlight: Int = 64,
        deviceIdentification: ModbusDeviceIdentification = Self.defaultDeviceIdentification,
        unknownUnit: UnknownUnitPolicy = .exception,
        allowedClients: [ModbusClientAddressRange]? = nil,
        readOnly: Bool = false,
        eventLoopThreads: Int? = nil,
        plainListener: Bool = true,
        tls: ModbusTLSListenerSettings? = nil
    ) {
        self.plainListener = plainListener
        self.tls = tls
        self.eventLoopThreads = eventLoopThreads
        self.unknownUnit = unknownUnit
        self.allowedClients = allowedClients
        self.readOnly = readOnly
        self.host = host
        self.port = port
        self.maxConnections = maxConnections
        self.connectionLimitPolicy = connectionLimitPolicy
        self.idleTimeout = idleTimeout
        self.maxQueuedRequestsPerConnection = maxQueuedRequestsPerConnection
        self.shutdownGracePeriod = shutdownGracePeriod
        self.maxWritesInFlight = maxWritesInFlight
        self.deviceIdentification = deviceIdentification
    }
}

/// The Modbus/TCP Security listener of the bridge (`modbus.tls:`): TLS 1.2 or later, a client
/// certificate required and verified against ``caFile``, and per-role permissions. It shares
/// the plain listener's limits, timeouts, `allowed_clients`, `read_only` and identity, and
/// answers from the same register image.
public struct ModbusTLSListenerSettings: Sendable, Hashable {
    /// Listen address; `nil`: the plain listener's `host`.
    public var host: String?
    /// TCP port. Default 802, the Modbus/TCP Security port (below 1024: the process needs root
    /// or `CAP_NET_BIND_SERVICE`).
    public var port: Int
    /// The server certificate (PEM, intermediates after it), `certificate`.
    public var certificateFile: String
    /// Its private key (PEM, unencrypted), `key`.
    public var keyFile: String
    /// The CA certificates client certificates must chain to (PEM), `ca`.
    public var caFile: String
    /// What each role may do, by the exact text of the certificate's role extension.
    public var roles: [String: ModbusRolePermissions]
    /// The role of a client certificate without the role extension (`default_role`); `nil`, the
    /// default: such a client is answered 01 to every request.
    public var defaultRole: String?
    /// A connection whose handshake has not finished in this time is closed. Default 10 s.
    public var handshakeTimeout: Duration

    /// Creates the settings; `port` defaults to 802.
    public init(
        host: String? = nil,
        port: Int = 802,
        certificateFile: String,
        keyFile: String,
        caFile: String,
        roles: [String: ModbusRolePermissions],
        defaultRole: String? = nil,
        handshakeTimeout: Duration = .seconds(10)
    ) {
        self.host = host
        self.port = port
        self.certificateFile = certificateFile
        self.keyFile = keyFile
        self.caFile = caFile
        self.roles = roles
        self.defaultRole = defaultRole
        self.handshakeTimeout = handshakeTimeout
    }

    /// The role map and the missing-role rule, as the server checks them.
    public var authorization: ModbusAuthorizationPolicy {
        ModbusAuthorizationPolicy(roles: roles, defaultRole: defaultRole)
    }
}
