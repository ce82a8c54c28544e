import CoreMetrics
import Logging
import ModbusCore
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import ServiceLifecycle

/// A Modbus TCP server that owns no data: it turns requests into calls of the host's read and
/// write handlers, and their results (or thrown errors) into replies.
///
/// ```swift
/// let server = ModbusServer(
///     configuration: .init(host: "0.0.0.0", port: 502),
///     onRead: { request in try await store.read(request.area, request.address, request.count) },
///     onWrite: { request in try await store.write(request.area, request.address, request.values) })
/// try await server.run()   // or: try await server.start() ... await server.stop()
/// ```
///
/// ## Threads and executors
/// Connections are served on the threads of the event-loop group (by default a group of
/// ``ModbusServerConfiguration/eventLoopThreads`` threads, one per CPU the process may use);
/// each connection stays on one thread. Synchronous handlers
/// (``ModbusReadHandler/sync(_:)``, ``ModbusReadHandler/syncInPlace(_:)``,
/// ``ModbusWriteHandler/sync(_:)``) run on that thread and must not block; asynchronous ones run
/// on Swift's global concurrent executor. Either way, handlers for different connections run at
/// the same time: the host must protect any state they share. Requests of one connection are
/// handled one after the other, in order.
///
/// ## Lifecycle
/// ``start()`` binds and returns; ``stop()`` closes the listener, lets every connection answer
/// the requests it has already received (up to ``ModbusServerConfiguration/shutdownGracePeriod``),
/// then closes them. ``run()`` does both for swift-service-lifecycle and honours graceful
/// shutdown and cancellation. Programs that are not async use ``startBlocking()`` and
/// ``stopBlocking()``.
public final class ModbusServer: Service, Sendable {
    /// The settings the server was created with.
    public let configuration: ModbusServerConfiguration

    private let dispatcher: ModbusRequestDispatcher
    private let group: any EventLoopGroup
    /// The threads of the group the server chose itself; `nil` when the host passed one.
    private let ownGroupThreads: Int?
    private let logger: Logger
    private let wireLogger: Logger
    /// Internal, not private: tests read the accepted sockets' options through it.
    let registry = ModbusConnectionRegistry()
    /// A `pthread_mutex_t` rather than `Synchronization.Mutex`: read from other threads (the
    /// host's readiness checks) while an event loop starts the listener, and ThreadSanitizer
    /// cannot see `Mutex` hand over between threads on Linux (docs/testing.md).
    private let state = NIOLockedValueBox<State>(.idle)
    /// Connections that were accepted but could not be set up (options, handlers).
    private let setupFailures: Counter
    private let refusedConnections: RateLimitedEventLog
    private let evictedConnections: RateLimitedEventLog
    private let deniedConnections: RateLimitedEventLog
    private let framingErrors: RateLimitedEventLog
    /// The TLS credentials and counters of a Modbus/TCP Security listener; `nil` for plain TCP.
    private let tls: ModbusTLSState?
    /// Fault injection for tests; empty in production.
    let testHooks = ModbusServerTestHooks()

    private enum State {
        case idle
        case starting
        case running(listener: any Channel, stopped: EventLoopPromise<Void>)
        case stopping(stopped: EventLoopPromise<Void>)
    }

    /// Creates a server from handlers in any of their forms.
    ///
    /// - Parameters:
    ///   - configuration: address, limits, unit filter, device identity.
    ///   - readHandler: supplies values for reads.
    ///   - writeHandler: applies writes; `nil` answers every write function code with 01.
    ///   - eventLoopGroup: where connections are served. `nil`, the default: a process-wide
    ///     group of ``ModbusServerConfiguration/eventLoopThreads`` threads (one per CPU the
    ///     process may use unless set).
    ///   - logger: connection and handler events (label `modbus.server` by default).
    ///   - wireLogger: the hex of every frame in and out, at debug level (label `modbus.wire`).
    ///   - requestObserver: sees every request once, with its outcome, including those the
    ///     server answers itself (01, 02, 03, 0B, diagnostics, device identification).
    ///   - metricsFactory: where the server's metrics go (swift-metrics; the bootstrapped
    ///     backend by default). Counter `modbus_server_connection_setup_failures_total`:
    ///     connections accepted but closed because their socket options or handlers could not
    ///     be set up (each one is also logged at error level with its peer).
    ///     `modbus_server_connections_refused_total`: connections closed on arrival because
    ///     ``ModbusServerConfiguration/maxConnections`` were open (policy `rejectNew`, or no idle
    ///     one to close). `modbus_server_connections_evicted_total`: idle connections closed to
    ///     make room for a new one (policy `closeOldestIdle`). With
    ///     ``ModbusServerConfiguration/tls``: `modbus_server_tls_handshake_failures_total`,
    ///     connections closed because their TLS handshake failed or did not finish in time, and
    ///     `modbus_server_role_denials_total`, requests answered 01 because the client's role may
    ///     not make them (both also logged, at most one line per
    ///     ``ModbusServerConfiguration/deniedLogInterval`` with the count since the last).
    public init(
        configuration: ModbusServerConfiguration,
        readHandler: ModbusReadHandler,
        writeHandler: ModbusWriteHandler? = nil,
        eventLoopGroup: (any EventLoopGroup)? = nil,
        logger: Logger = Logger(label: "modbus.server"),
        wireLogger: Logger = Logger(label: "modbus.wire"),
        requestObserver: ModbusRequestObserver? = nil,
        metricsFactory: any MetricsFactory = MetricsSystem.factory
    ) {
        self.configuration = configuration
        self.setupFailures = Counter(label: "modbus_server_connection_setup_failures_total", factory: metricsFactory)
        self.refusedConnections = RateLimitedEventLog(
            counter: Counter(label: "modbus_server_connections_refused_total", factory: metricsFactory),
            logInterval: configuration.deniedLogInterval,
            message: "connection limit reached; refusing connection",
            suppressedKey: "also_refused_since_last_line"
        )
        self.evictedConnections = RateLimitedEventLog(
            counter: Counter(label: "modbus_server_connections_evicted_total", factory: metricsFactory),
            logInterval: configuration.deniedLogInterval,
            level: .info,
            message: "connection limit reached; closing the oldest idle connection",
            suppressedKey: "also_evicted_since_last_line"
        )
        self.deniedConnections = RateLimitedEventLog(
            counter: Counter(label: "modbus_server_connections_denied_total", factory: metricsFactory),
            logInterval: configuration.deniedLogInterval,
            message: "connection from an address outside allowed_clients; closing it",
            suppressedKey: "also_denied_since_last_line"
        )
        self.framingErrors = RateLimitedEventLog(
            counter: Counter(label: "modbus_server_framing_errors_total", factory: metricsFactory),
            logInterval: configuration.deniedLogInterval,
            message: "closing connection: a request header that cannot be trusted",
            suppressedKey: "also_closed_since_last_line"
        )
        self.tls =
            configuration.tls == nil
            ? nil : ModbusTLSState(metricsFactory: metricsFactory, logInterval: configuration.deniedLogInterval)
        if let eventLoopGroup {
            self.group = eventLoopGroup
            self.ownGroupThreads = nil
        } else {
            let threads = ModbusEventLoopThreads.forThisProcess(configured: configuration.eventLoopThreads)
            self.group = ModbusEventLoopThreads.sharedGroup(threads: threads)
            self.ownGroupThreads = threads
        }
        self.logger = logger
        self.wireLogger = wireLogger
        self.dispatcher = ModbusRequestDispatcher(
            configuration: configuration,
            read: readHandler,
            // A read-only listener answers write function codes 01, as one without a handler.
            write: configuration.readOnly ? nil : writeHandler,
            observer: requestObserver,
            logger: logger
        )
    }

    /// Creates a server from two async closures, the shape of the reference design.
    ///
    /// - Parameters:
    ///   - onRead: returns exactly `request.count` values (bits as 0 or 1).
    ///   - onWrite: applies a write; `nil` answers every write function code with 01.
    public convenience init(
        configuration: ModbusServerConfiguration,
        onRead: @escaping @Sendable (ModbusReadRequest) async throws -> [UInt16],
        onWrite: (@Sendable (ModbusWriteRequest) async throws -> Void)? = nil,
        logger: Logger = Logger(label: "modbus.server")
    ) {
        self.init(
            configuration: configuration,
            readHandler: .async(onRead),
            writeHandler: onWrite.map { .async($0) },
            logger: logger
        )
    }

    // MARK: Units

    /// Changes which unit ids the server answers, and how it answers the others, at once and
    /// for the connections already open (a host reloading its configuration). ``configuration``
    /// keeps the values the server was created with.
    ///
    /// - Parameters:
    ///   - unitIDs: the units to answer; `nil` answers every unit id.
    ///   - unknownUnitResponse: how a request for any other unit is answered.
    public func setUnits(_ unitIDs: Set<UInt8>?, unknownUnitResponse: ModbusUnknownUnitResponse) {
        dispatcher.units.replace(with: unitIDs, unknownUnitResponse: unknownUnitResponse)
    }

    // MARK: TLS

    /// Whether this is a Modbus/TCP Security (TLS) listener.
    public var isSecure: Bool { tls != nil }

    /// The TLS credentials new connections use: those read at start, or the last ones
    /// ``replaceTLSCredentials(_:)`` put in force; `nil` for a plain listener or before start.
    public var tlsCredentials: ModbusTLSCredentials? { tls?.credentials }

    /// Puts new TLS credentials (certificate, key, CAs, role map) in force, for a host that
    /// reloads them (on SIGHUP, say): connections accepted from now on handshake with the new
    /// certificate and CAs; connections already open keep their TLS session, and every request
    /// from now on, theirs included, is checked against the new role map. Load the credentials
    /// first with ``ModbusTLSCredentials/init(_:)``: a file that cannot be used fails there and
    /// leaves the credentials in force untouched.
    ///
    /// - Throws: ``ModbusServerError`` ``ModbusServerError/Code/invalidState`` on a plain listener.
    public func replaceTLSCredentials(_ credentials: ModbusTLSCredentials) throws(ModbusServerError) {
        guard let tls else {
            throw ModbusServerError(.invalidState, "this listener is plain Modbus TCP; it has no TLS credentials")
        }
        tls.replace(with: credentials)
        logger.notice(
            "TLS credentials replaced; new connections use them",
            metadata: ["certificate": "\(credentials.configuration.certificateChainFile)"]
        )
    }

    // MARK: Status

    /// The port the server listens on (the ephemeral one when configured with port 0), or `nil`
    /// when it is not running.
    public var port: Int? {
        state.withLockedValue { state in
            if case .running(let listener, _) = state { listener.localAddress?.port } else { nil }
        }
    }

    /// Whether the server is listening.
    public var isRunning: Bool {
        state.withLockedValue { if case .running = $0 { true } else { false } }
    }

    /// How many client connections are open.
    public var activeConnections: Int { registry.count }

    /// The open connections, longest open first: peer, age, requests and the time since the
    /// last one (for a status page; takes the registry's lock once).
    public var connections: [ModbusConnectionSnapshot] {
        let now = NIODeadline.now().uptimeNanoseconds
        return registry.all.sorted { $0.acceptedAt < $1.acceptedAt }.map { $0.snapshot(now: now) }
    }

    // MARK: Lifecycle

    /// Binds the listener and starts serving. Returns once the port is bound; does nothing if the
    /// server is already running.
    ///
    /// - Throws: ``ModbusServerError`` when the configuration is invalid or the address cannot
    ///   be bound.
    public func start() async throws {
        try await startFuture().get()
    }

    /// ``start()`` for programs that are not async: blocks the calling thread until the server
    /// listens. Must not be called from an event-loop thread.
    @available(*, noasync, message: "use start() in async code")
    public func startBlocking() throws {
        try startFuture().wait()
    }

    /// Stops gracefully: closes the listener, lets each connection answer the requests it has
    /// received, then closes it. Connections still busy after the grace period are closed.
    /// Returns when every connection is closed; does nothing if the server is not running.
    public func stop() async {
        try? await stopFuture().get()
    }

    /// ``stop()`` for programs that are not async: blocks until the server has stopped.
    @available(*, noasync, message: "use stop() in async code")
    public func stopBlocking() {
        try? stopFuture().wait()
    }

    /// Starts the server and serves until graceful shutdown (swift-service-lifecycle) or task
    /// cancellation, then stops gracefully.
    public func run() async throws {
        try await start()
        guard
            let stopped = state.withLockedValue({ state -> EventLoopFuture<Void>? in
                switch state {
                case .running(_, let stopped), .stopping(let stopped): stopped.futureResult
                case .idle, .starting: nil
                }
            })
        else { return }
        await withTaskCancellationOrGracefulShutdownHandler {
            try? await stopped.get()
        } onCancelOrGracefulShutdown: {
            _ = self.stopFuture()
        }
    }

    private func startFuture() -> EventLoopFuture<Void> {
        let loop = group.next()
        do {
            try validateConfiguration()
        } catch {
            return loop.makeFailedFuture(error)
        }
        let proceed = state.withLockedValue { state -> Bool? in
            switch state {
            case .idle:
                state = .starting
                return true
            case .running:
                return false
            case .starting, .stopping:
                return nil
            }
        }
        guard let proceed else {
            return loop.makeFailedFuture(ModbusServerError(.invalidState, "the server is starting or stopping"))
        }
        guard proceed else { return loop.makeSucceededVoidFuture() }
        if let tls, let settings = configuration.tls {
            do {
                tls.replace(with: try ModbusTLSCredentials(settings))
            } catch {
                state.withLockedValue { $0 = .idle }
                return loop.makeFailedFuture(error)
            }
        }

        let configuration = self.configuration
        return makeBootstrap().bind(host: configuration.host, port: configuration.port)
            .flatMapErrorThrowing { error in
                self.state.withLockedValue { $0 = .idle }
                throw ModbusServerError(
                    .bindFailed,
                    "cannot listen on \(configuration.host):\(configuration.port): \(error)"
                )
            }
            .map { listener in
                let stopped = listener.eventLoop.makePromise(of: Void.self)
                self.state.withLockedValue { $0 = .running(listener: listener, stopped: stopped) }
                var metadata: Logger.Metadata = ["address": "\(listener.localAddress.map { "\($0)" } ?? "?")"]
                if let threads = self.ownGroupThreads { metadata["event_loop_threads"] = "\(threads)" }
                if let tls = configuration.tls {
                    metadata["certificate"] = "\(tls.certificateChainFile)"
                    metadata["roles"] = "\(tls.authorization.roles.keys.sorted().joined(separator: ","))"
                    self.logger.info("Modbus/TCP Security (TLS) server listening", metadata: metadata)
                } else {
                    self.logger.info("Modbus TCP server listening", metadata: metadata)
                }
            }
    }

    private func validateConfiguration() throws {
        guard configuration.maxConnections >= 1 else {
            throw ModbusServerError(
                .invalidConfiguration,
                "maxConnections must be at least 1, got \(configuration.maxConnections)"
            )
        }
        guard (0...65535).contains(configuration.port) else {
            throw ModbusServerError(.invalidConfiguration, "port must be in 0...65535, got \(configuration.port)")
        }
        if let threads = configuration.eventLoopThreads, threads < 1 {
            throw ModbusServerError(
                .invalidConfiguration,
                "eventLoopThreads must be at least 1 or nil, got \(threads)"
            )
        }
        if let handshake = configuration.tls?.handshakeTimeout, handshake <= .zero {
            throw ModbusServerError(
                .invalidConfiguration,
                "tls.handshakeTimeout must be positive, got \(handshake)"
            )
        }
        if let idle = configuration.idleTimeout, idle <= .zero {
            throw ModbusServerError(.invalidConfiguration, "idleTimeout must be positive or nil, got \(idle)")
        }
        if let partial = configuration.partialRequestTimeout, partial <= .zero {
            throw ModbusServerError(
                .invalidConfiguration,
                "partialRequestTimeout must be positive or nil, got \(partial)"
            )
        }
        do {
            try configuration.deviceIdentification.validate()
        } catch {
            throw ModbusServerError(.invalidConfiguration, error.description)
        }
    }

    private func makeBootstrap() -> ServerBootstrap {
        ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            // Child options are set in the initializer, not with `childChannelOption`: NIO closes
            // a connection whose options fail without a word, and here a failure is logged with
            // its peer and counted.
            .childChannelInitializer { channel in
                guard self.isRunning else { return channel.close() }
                let peer = channel.remoteAddress.map { "\($0)" } ?? "unknown"
                if let allowed = self.configuration.allowedClients,
                    !(channel.remoteAddress.map { address in allowed.contains { $0.contains(address) } } ?? false)
                {
                    self.deniedConnections.record(peer: peer, logger: self.logger)
                    return channel.close()
                }
                do {
                    try self.setUpConnection(channel, peer: peer)
                    return channel.eventLoop.makeSucceededVoidFuture()
                } catch is ConnectionRefusal {
                    return channel.close()
                } catch {
                    self.logger.error(
                        "cannot set up an accepted connection; closing it",
                        metadata: ["peer": "\(peer)", "error": "\(error)"]
                    )
                    self.setupFailures.increment()
                    return channel.eventLoop.makeFailedFuture(error)
                }
            }
    }

    /// Thrown by ``setUpConnection(_:peer:)`` for a connection the limit refuses (already logged).
    private struct ConnectionRefusal: Error {}

    /// Sets an accepted connection's options, admits it under the connection limit and installs
    /// its handler. Runs on the channel's event loop.
    private func setUpConnection(_ channel: any Channel, peer: String) throws {
        try testHooks.connectionSetup?(channel)
        // Options first: a connection that cannot be set up must not evict an idle one.
        try Self.setConnectionOptions(channel)
        let record = ModbusConnectionRecord(channel: channel, peer: peer)
        switch registry.admit(record, limit: configuration.maxConnections, policy: configuration.connectionLimitPolicy)
        {
        case .admitted:
            break
        case .admittedAfterEvicting(let victim):
            evictedConnections.record(peer: peer, logger: logger, metadata: ["closed": "\(victim.peer)"])
            victim.channel.close(promise: nil)
        case .rejected:
            refusedConnections.record(
                peer: peer,
                logger: logger,
                metadata: ["limit": "\(configuration.maxConnections)"]
            )
            throw ConnectionRefusal()
        }
        let registry = self.registry
        channel.closeFuture.whenComplete { _ in registry.remove(record) }
        logger.debug("connection accepted", metadata: ["peer": "\(peer)", "active": "\(registry.count)"])
        let makeHandler = {
            [dispatcher, configuration, logger, wireLogger, framingErrors] (access: ModbusConnectionAccess?) in
            ModbusConnectionHandler(
                dispatcher: dispatcher,
                record: record,
                registry: registry,
                framingErrors: framingErrors,
                idleTimeout: configuration.idleTimeout,
                partialRequestTimeout: configuration.partialRequestTimeout,
                maxQueued: configuration.maxQueuedRequestsPerConnection,
                logger: logger,
                wireLogger: wireLogger,
                access: access
            )
        }
        guard let tls else {
            try channel.pipeline.syncOperations.addHandler(makeHandler(nil))
            return
        }
        guard let credentials = tls.credentials, let settings = configuration.tls else {
            throw ModbusServerError(.invalidState, "the TLS listener has no credentials")
        }
        // The context of the credentials in force now: a later reload does not touch this
        // connection's TLS session.
        try channel.pipeline.syncOperations.addHandlers([
            NIOSSLServerHandler(context: credentials.context),
            ModbusTLSHandshakeHandler(
                state: tls,
                peer: peer,
                timeout: settings.handshakeTimeout,
                logger: logger,
                makeConnectionHandler: { makeHandler($0) }
            ),
        ])
    }

    /// The socket options of a Modbus connection. Runs on the channel's event loop.
    static func setConnectionOptions(_ channel: any Channel) throws {
        guard let options = channel.syncOptions else {
            throw ModbusServerError(.invalidState, "the accepted channel has no synchronous options")
        }
        // Level IPPROTO_TCP: `.socketOption(.tcp_nodelay)` would be SOL_SOCKET option 1, which
        // is SO_DEBUG, and an unprivileged process may not set that.
        // Replies are small and a master waits for each one: Nagle's algorithm would hold a
        // reply back until the previous one is acknowledged.
        try options.setOption(.tcpOption(.tcp_nodelay), value: 1)
        try options.setOption(.socketOption(.so_keepalive), value: 1)
        // One read per readiness event: a read can carry thousands of pipelined requests,
        // and the queue limit can only hold further reads between events.
        try options.setOption(.maxMessagesPerRead, value: 1)
        // And a small read. The event loop runs every task it has (a connection's own
        // continuations included) before it looks at the sockets again, so the only point at
        // which a connection that pipelines without end gives way to the others on its thread
        // is the end of its read: the bytes of one read bound what one connection answers per
        // turn of the loop, and so what a well-behaved master waits for behind it.
        try options.setOption(
            .recvAllocator,
            value: AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 512, maximum: Self.maximumReadBytes)
        )
        // A fixed send buffer instead of the kernel's autotuning (up to megabytes on loopback):
        // a client that stops reading blocks the output after this much, and from then on costs
        // no work and no memory until it reads or the idle timeout closes it.
        try options.setOption(.socketOption(.so_sndbuf), value: Self.socketSendBufferBytes)
    }

    /// The most bytes one read takes from a connection's socket: 85 FC3 requests, and at most
    /// 128 of the smallest frames, so one read never exceeds an answering turn.
    static let maximumReadBytes = 1024

    /// `SO_SNDBUF` of accepted connections (Linux doubles it for its bookkeeping): thousands of
    /// replies in flight, far more than a master pipelines, and a bound on what a client that
    /// does not read can make the server answer before its output blocks.
    static let socketSendBufferBytes = 32 * 1024

    private func stopFuture() -> EventLoopFuture<Void> {
        let loop = group.next()
        enum Step {
            case nothing
            case wait(EventLoopFuture<Void>)
            case stop(any Channel, EventLoopPromise<Void>)
        }
        let step = state.withLockedValue { state -> Step in
            switch state {
            case .idle, .starting:
                return .nothing
            case .stopping(let stopped):
                return .wait(stopped.futureResult)
            case .running(let listener, let stopped):
                state = .stopping(stopped: stopped)
                return .stop(listener, stopped)
            }
        }
        switch step {
        case .nothing:
            return loop.makeSucceededVoidFuture()
        case .wait(let stopped):
            return stopped
        case .stop(let listener, let stopped):
            logger.info("Modbus TCP server stopping", metadata: ["connections": "\(registry.count)"])
            let registry = self.registry
            let grace = TimeAmount(configuration.shutdownGracePeriod)
            listener.close().whenComplete { _ in
                let connections = registry.all
                for connection in connections {
                    connection.channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
                }
                let deadline = loop.scheduleTask(in: grace) {
                    for connection in registry.all { connection.channel.close(promise: nil) }
                }
                EventLoopFuture.andAllComplete(connections.map(\.channel.closeFuture), on: loop).whenComplete { _ in
                    deadline.cancel()
                    // Connections that raced the listener's close.
                    for straggler in registry.all { straggler.channel.close(promise: nil) }
                    self.state.withLockedValue { $0 = .idle }
                    self.logger.info("Modbus TCP server stopped")
                    stopped.succeed()
                }
            }
            return stopped.futureResult
        }
    }
}

/// Why a ``ModbusServer`` could not start.
public struct ModbusServerError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The kind of failure; new codes may be added.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private var name: String
        /// A setting is out of range.
        public static let invalidConfiguration = Code(name: "invalid configuration")
        /// The listening address could not be bound (in use, not local, no privilege).
        public static let bindFailed = Code(name: "bind failed")
        /// start() was called while the server was starting or stopping.
        public static let invalidState = Code(name: "invalid state")
        /// The TLS certificate, key or CA file cannot be read or used (``ModbusTLSCredentials``).
        public static let tlsCredentials = Code(name: "TLS credentials")
        public var description: String { name }
    }

    /// The kind of failure.
    public var code: Code
    /// What went wrong and, where possible, how to fix it.
    public var message: String

    /// Creates an error.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code): \(message)" }
}
