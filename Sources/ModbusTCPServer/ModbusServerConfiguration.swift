import ModbusCore

/// Settings of a ``ModbusServer``. Every property has a default suited to a production gateway.
public struct ModbusServerConfiguration: Sendable {
    /// The address to listen on. `"0.0.0.0"` listens on every IPv4 interface, `"::"` on every
    /// IPv6 (and, on Linux, IPv4) interface, `"127.0.0.1"` on loopback only.
    public var host: String = "0.0.0.0"
    /// The TCP port. 502 is the Modbus port (binding it needs privileges on Linux); 0 picks a
    /// free ephemeral port, readable from ``ModbusServer/port`` after start.
    public var port: Int = 502
    /// The unit ids the server answers; requests for any other unit get 0B (gateway target device
    /// failed to respond). `nil`, the default, answers every unit id, 0 and 0xFF included, as a
    /// server reached directly must (TCP guide §4.4.1.2).
    public var unitIDs: Set<UInt8>? = nil
    /// How a request for a unit id outside ``unitIDs`` is answered: exception 0B (the default,
    /// what the specification asks of a gateway whose target does not respond), or not at all,
    /// for masters that treat a gateway like a serial line, where an absent slave is a timeout.
    public var unknownUnitResponse: ModbusUnknownUnitResponse = .exception
    /// The most connections served at once. See ``connectionLimitPolicy`` for what happens to the
    /// next one.
    public var maxConnections: Int = 32
    /// What to do when a connection arrives while ``maxConnections`` are open.
    public var connectionLimitPolicy: ModbusConnectionLimitPolicy = .closeOldestIdle
    /// A connection with no request for this long is closed. `nil` keeps idle connections open
    /// for ever. A connection waiting on a handler is never idle.
    public var idleTimeout: Duration? = .seconds(300)
    /// How long the bytes of one request may take to arrive, from its first byte to its last; a
    /// connection whose request is still incomplete after this long is closed. A master writes a
    /// request (at most 260 bytes) at once, so its bytes arrive together or within a
    /// retransmission or two; a client that trickles a request in byte by byte (slowloris) would
    /// otherwise complete one now and then, never be idle, and hold a connection for ever. The
    /// clock does not run against the client while the server holds reading back (a handler at
    /// work, a full queue, blocked output): it starts again, whole, when reading resumes. `nil`
    /// waits for ever.
    public var partialRequestTimeout: Duration? = .seconds(10)
    /// How many received requests a connection may queue while an earlier one waits for an
    /// asynchronous handler. Beyond that the server stops reading from that connection (TCP
    /// flow control pushes back on the client) until the queue drains.
    public var maxQueuedRequestsPerConnection: Int = 64
    /// How long ``ModbusServer/stop()`` lets connections finish the requests they already
    /// received before it closes them.
    public var shutdownGracePeriod: Duration = .seconds(10)
    /// The objects reported by Read Device Identification (FC43 / MEI 14).
    public var deviceIdentification = ModbusDeviceIdentification(
        vendorName: "swift-mqtt-modbus",
        productCode: "ModbusTCPServer",
        majorMinorRevision: "1.0"
    )

    /// The client addresses allowed to connect; a connection from any other address is closed
    /// at once, before it can send a request, counted (`modbus_server_connections_denied_total`)
    /// and logged (the first, then at most one line per ``deniedLogInterval`` with how many
    /// more there were). `nil`, the default, allows every address. An empty list allows none.
    public var allowedClients: [ModbusClientAddressRange]? = nil
    /// The least time between two log lines about denied connections, between two about
    /// connections refused or closed at the connection limit, and between two about connections
    /// closed for a header that cannot be trusted (a scan, a flood of connection attempts or a
    /// peer sending garbage in a loop must not flood the log). Each line says how many more
    /// there were since the last; every event is counted in the server's metrics.
    public var deniedLogInterval: Duration = .seconds(10)
    /// Answer every write function code (5, 6, 15, 16, 22, 23) with 01 (illegal function),
    /// whatever the write handler: a listener for masters that may only read.
    public var readOnly: Bool = false
    /// How many event-loop threads serve the connections when the server is created without an
    /// event-loop group; ignored when the host passes one. `nil`, the default, runs one thread
    /// per CPU the process may use: its CPU affinity mask (`taskset`, a container's cpuset,
    /// systemd's `CPUAffinity=`), bounded by the machine's cores and a cgroup CPU quota. More
    /// threads than CPUs only make the loops take turns on a core, which shows as latency. Servers
    /// with the same count share one group of threads, kept for the life of the process.
    public var eventLoopThreads: Int? = nil
    /// Modbus/TCP Security: with settings here the listener speaks only TLS (1.2 or later),
    /// requires a client certificate that verifies against the configured CA, and answers each
    /// request as the role in that certificate allows (01 when it does not). `nil`, the
    /// default: plain Modbus TCP. The port is still ``port``; 802 is the Modbus/TCP Security
    /// port (``securePort``). To serve plain and TLS masters side by side, run two servers with
    /// the same handlers.
    public var tls: ModbusTLSConfiguration? = nil

    /// Creates a configuration with every default.
    public init() {}

    /// Creates a configuration for a host and port, other settings at their defaults.
    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }
}

/// What the server does with a new connection when ``ModbusServerConfiguration/maxConnections``
/// are already open.
public enum ModbusConnectionLimitPolicy: Sendable, Hashable {
    /// Close the connection that has been idle longest (no request in progress, oldest last
    /// request) to make room, as the Modbus TCP implementation guide recommends (§4.2.1): a
    /// master that reconnects after a network failure gets in even though its old, dead
    /// connection has not timed out yet. Connections that have not sent a single request yet go
    /// first, oldest first, so a flood of connections that send nothing only evicts its own and
    /// never a master that is polling. If every connection has a request in progress, the new
    /// connection is refused.
    case closeOldestIdle
    /// Refuse the new connection (it is accepted and closed at once).
    case rejectNew
}

/// What a ``ModbusServer`` answers to a request for a unit id it does not serve.
public enum ModbusUnknownUnitResponse: Sendable, Hashable {
    /// Exception 0B, gateway target device failed to respond.
    case exception
    /// Nothing: the request is dropped, and the connection answers the requests behind it in
    /// order. The master sees its own response timeout.
    case noResponse
}
