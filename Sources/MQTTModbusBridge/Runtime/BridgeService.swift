import Foundation
import Logging
import MQTTModbusBridgeBroker
import MQTTModbusBridgeConfiguration
import Metrics
import ModbusTCPServer
import Mosquitto
import NIOConcurrencyHelpers
import ServiceLifecycle
import Synchronization

/// The bridge: MQTT messages feed a register cache that answers Modbus reads; Modbus writes
/// become MQTT commands whose replies wait for the device's acknowledgement.
///
/// Run it as a swift-service-lifecycle `Service`. The Modbus listener starts first and answers
/// at once (reads of values not yet received follow each point's missing-value policy, writes
/// answer 0A) while the MQTT connection is being established; a broker that is down at start is
/// retried with backoff, as after any later loss of the connection.
public final class MQTTModbusBridgeService: Service, Sendable {
    /// The configuration the bridge runs (the last one a reload put in force).
    public var configuration: BridgeConfiguration { topics.current.configuration }

    /// The topic map in force: replaced whole by ``reload(_:)``.
    let topics: TopicMapHolder
    var map: RegisterMap { topics.current.map }
    var cache: PointCache { topics.current.cache }
    var routes: MessageRoutes { topics.current.routes }
    let client: MQTTClient
    /// The command connection (`broker.command_connection: separate`, the default): commands
    /// go out and acknowledgements come in on a connection of their own, subscribed to
    /// ``MessageRoutes/commandFilters`` only, so that the broker never queues an
    /// acknowledgement behind telemetry. `nil` with `shared`: ``client`` carries everything.
    let commandClient: MQTTClient?
    /// The connection commands are published on and acknowledgements arrive on.
    var commands: MQTTClient { commandClient ?? client }
    /// The messages on the ack topics of the topic map in force, received apart from the
    /// telemetry on ``MQTTClient/messages`` and consumed by a task of their own
    /// (docs/design.md §4.9).
    let acks: MQTTMessageRoute
    /// The plain Modbus TCP listener (not started with `plain_listener: false`).
    let server: ModbusServer
    /// The Modbus/TCP Security listener, with `modbus.tls`.
    let tlsServer: ModbusServer?
    /// Commands and their acknowledgements; the server's write handler captures it.
    let writes: BridgeWritePath
    /// Asks the devices for their state once subscribed, and after each reconnection.
    let refresh: ActiveRefresh
    private let logger: Logger
    private let metrics: BridgeMetrics
    private let state = NIOLockedValueBox(State())
    /// Held while a message is handled, and while a reload moves the values to its new cache:
    /// a message never lands in a cache that is being replaced. It holds the number of the
    /// latest broker connection known to be lost (`MQTTMessage.connection`): messages of that
    /// connection or an older one, still buffered when the loss invalidated the cache, are
    /// dropped, or they would serve values as live while the broker is away (docs/soak.md).
    /// A `Synchronization.Mutex`, not a `NIOLockedValueBox`: it is taken once per message
    /// received, and the ingest figures of docs/benchmarks.md were measured with it.
    private let ingest = Mutex<UInt64>(0)

    private struct State {
        /// A reload is being applied; another one is refused meanwhile.
        var reloading = false
        /// Filters a reload added that have no SUBACK yet (in flight, or failed and waiting for
        /// a retry): the bridge is not ready while there are any.
        var reloadSubscriptions: [MessageRoutes.Subscription] = []
        var reloadSubscriptionsInFlight = 0
        /// Filters a reload dropped whose UNSUBSCRIBE failed (the broker was away).
        var reloadUnsubscriptions: [String] = []
        /// Undecodable payloads per point, to log the first and then every 100th.
        var decodeFailures: [String: Int] = [:]
        /// Availability payloads that were neither an online nor an offline word.
        var availabilityFailures = 0
        var totalDecodeFailures: Int { decodeFailures.values.reduce(0, +) + availabilityFailures }
    }

    /// The acknowledgement tracker of the write path.
    var tracker: AckTracker { writes.tracker }

    /// Creates the bridge; nothing connects or listens until ``run()``.
    ///
    /// - Parameters:
    ///   - configuration: the topic map and the broker and listener settings.
    ///   - logger: the bridge's log; its components add `mqtt`, `modbus` and so on to the label.
    ///   - metricsFactory: where the bridge's and its Modbus server's metrics go (the
    ///     bootstrapped swift-metrics backend by default; a program running several bridges,
    ///     or a test, passes its own). The series are listed in docs/operations-observability.md.
    /// - Throws: an `MQTTError` when the broker settings cannot be applied (for example a
    ///   missing TLS file), or a `CocoaError` when the password file cannot be read.
    public init(
        configuration: BridgeConfiguration,
        logger: Logger = Logger(label: "bridge"),
        metricsFactory: any MetricsFactory = MetricsSystem.factory
    ) throws {
        self.logger = logger
        let metrics = BridgeMetrics(factory: metricsFactory)
        self.metrics = metrics
        let topics = TopicMapHolder(BridgeTopicMap(configuration, metrics: metrics))
        self.topics = topics
        self.client = try MQTTClient(
            configuration: try MQTTConfiguration(bridgeBroker: configuration.broker),
            logger: logger.component("mqtt")
        )
        let commandClient =
            configuration.broker.commandConnection == .separate
            ? try MQTTClient(
                configuration: try MQTTConfiguration(bridgeCommands: configuration.broker),
                logger: logger.component("mqtt-commands")
            ) : nil
        self.commandClient = commandClient
        let commands = commandClient ?? client
        // Created before the client connects, so that no ack reaches the telemetry buffer first.
        // holdBack: an ack is never dropped; at worst reading from the broker waits for this
        // consumer, which only matches the ack against the writes waiting for one.
        self.acks = try commands.routeMessages(
            matching: topics.current.routes.ackFilters,
            capacity: Self.ackBufferCapacity,
            whenFull: .holdBack
        )
        let writes = BridgeWritePath(
            topics: topics,
            client: commands,
            telemetry: client,
            metrics: metrics,
            logger: logger
        )
        self.writes = writes
        self.refresh = ActiveRefresh(configuration: configuration, client: client, logger: logger)

        let readHandler = ModbusReadHandler.syncInPlace { request, values in
            try topics.withCurrent { topics in
                try topics.cache.read(
                    unit: request.unitID,
                    area: request.area,
                    address: request.address,
                    count: request.count,
                    into: &values
                )
            }
        }
        let writeHandler = ModbusWriteHandler.async { request in try await writes.write(request) }
        // Every request once, those the server answers itself included (0B, 01, 02, 03).
        let observer = ModbusRequestObserver { request in
            topics.withCurrent { topics in topics.requests.count(request) }
        }
        self.server = ModbusServer(
            configuration: Self.listenerConfiguration(configuration, tls: nil),
            readHandler: readHandler,
            writeHandler: writeHandler,
            logger: logger.component("modbus"),
            requestObserver: observer,
            metricsFactory: metricsFactory
        )
        // The Modbus/TCP Security listener: the same handlers, so the same register image and
        // write path, behind TLS and the role map.
        self.tlsServer = configuration.modbus.tls.map { tls in
            ModbusServer(
                configuration: Self.listenerConfiguration(configuration, tls: tls),
                readHandler: readHandler,
                writeHandler: writeHandler,
                logger: logger.component("modbus.tls"),
                requestObserver: observer,
                metricsFactory: metricsFactory
            )
        }
        // What loading the configuration left free (the caller's copy of it is kept).
        FreedMemory.returnToSystem()
    }

    /// The server settings of the plain listener (`tls` `nil`) or of the TLS listener.
    static func listenerConfiguration(
        _ configuration: BridgeConfiguration,
        tls: ModbusTLSListenerSettings?
    ) -> ModbusServerConfiguration {
        var listener = ModbusServerConfiguration(host: configuration.modbus.host, port: configuration.modbus.port)
        if let tls {
            listener.host = tls.host ?? configuration.modbus.host
            listener.port = tls.port
            listener.tls = Self.serverTLS(tls)
        }
        listener.unitIDs = configuration.unitIDs
        listener.unknownUnitResponse = configuration.modbus.unknownUnit == .ignore ? .noResponse : .exception
        listener.maxConnections = configuration.modbus.maxConnections
        listener.connectionLimitPolicy =
            configuration.modbus.connectionLimitPolicy == .rejectNew ? .rejectNew : .closeOldestIdle
        listener.idleTimeout = configuration.modbus.idleTimeout
        listener.maxQueuedRequestsPerConnection = configuration.modbus.maxQueuedRequestsPerConnection
        listener.shutdownGracePeriod = configuration.modbus.shutdownGracePeriod
        listener.deviceIdentification = configuration.modbus.deviceIdentification
        listener.allowedClients = configuration.modbus.allowedClients
        listener.readOnly = configuration.modbus.readOnly
        listener.eventLoopThreads = configuration.modbus.eventLoopThreads
        return listener
    }

    /// The configuration's `modbus.tls` as the server's TLS settings.
    static func serverTLS(_ tls: ModbusTLSListenerSettings) -> ModbusTLSConfiguration {
        var settings = ModbusTLSConfiguration(
            certificateChainFile: tls.certificateFile,
            privateKeyFile: tls.keyFile,
            trustedCAFile: tls.caFile,
            authorization: tls.authorization
        )
        settings.handshakeTimeout = tls.handshakeTimeout
        return settings
    }

    /// The listeners the configuration runs: the plain one unless `plain_listener: false`, and
    /// the TLS one when configured.
    var listeners: [ModbusServer] {
        (configuration.modbus.plainListener ? [server] : []) + (tlsServer.map { [$0] } ?? [])
    }

    /// How many acknowledgements wait for the ack consumer before reading from the broker
    /// waits: far more than `modbus.max_writes_in_flight` writes can produce at once.
    static let ackBufferCapacity = 1024

    /// The name of the write acknowledgement latency histogram, for a metrics backend that sets
    /// buckets per histogram (swift-prometheus's `durationHistogramBuckets`).
    public static let ackLatencyHistogram = BridgeMetrics.ackLatencyLabel

    /// Buckets suited to acknowledgement latencies: from 250 µs (a LAN round trip) to 10 s (a
    /// long ack timeout).
    public static let ackLatencyBuckets: [Duration] = [
        .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5),
        .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250),
        .milliseconds(500), .seconds(1), .seconds(2), .seconds(5), .seconds(10),
    ]

    /// The Modbus port the bridge listens on (useful with port 0), once running.
    public var modbusPort: Int? { server.port }

    /// The Modbus/TCP Security port the bridge listens on, once running; `nil` without
    /// `modbus.tls`.
    public var modbusTLSPort: Int? { tlsServer?.port }

    /// Whether every configured Modbus listener is up.
    private var modbusListening: Bool { listeners.allSatisfy(\.isRunning) }

    /// Connections open on every listener.
    private var modbusConnections: Int { listeners.reduce(0) { $0 + $1.activeConnections } }

    /// Whether the MQTT connection is up (both of them, with a separate command connection).
    public var isConnectedToBroker: Bool { client.state == .connected && commands.state == .connected }

    /// State payloads that could not be decoded since start (each point kept its last good value).
    public var payloadDecodeFailures: Int { state.withLockedValue { $0.totalDecodeFailures } }

    /// Whether the bridge is ready for traffic: broker connected, every subscription
    /// acknowledged on this connection, Modbus listener up (see ``BridgeReadiness``).
    public var readiness: BridgeReadiness {
        let connected = isConnectedToBroker
        let configured = routes.subscriptions.count
        // The clients subscribe to nothing but the routes' filters; a reload's new filters
        // count as pending until their own SUBACK, whatever the clients' counts say.
        let reloadPending = state.withLockedValue { $0.reloadSubscriptions.count }
        let acknowledged =
            client.subscriptionCounts.acknowledged + (commandClient?.subscriptionCounts.acknowledged ?? 0)
        return BridgeReadiness(
            brokerConnected: connected,
            subscriptionsConfigured: configured,
            subscriptionsAcknowledged: connected ? min(acknowledged, configured - reloadPending) : 0,
            modbusListening: modbusListening
        )
    }

    /// The bridge's state for a liveness check and for people (see ``StatusEndpoint``).
    public var health: BridgeHealth {
        let mqtt: String
        // With a separate command connection, the one further from connected.
        let connectionState = client.state == .connected ? commands.state : client.state
        switch connectionState {
        case .connected: mqtt = "connected"
        case .connecting: mqtt = "connecting"
        case .disconnected: mqtt = "disconnected"
        }
        return BridgeHealth(
            mqtt: mqtt,
            modbusListening: modbusListening,
            modbusConnections: modbusConnections,
            writesInFlight: writes.writesInFlight,
            payloadDecodeFailures: payloadDecodeFailures
        )
    }

    /// Starts the Modbus listener and the MQTT connection, serves until graceful shutdown or
    /// cancellation, then publishes "offline", stops the listener and disconnects.
    public func run() async throws {
        do {
            for listener in listeners { try await listener.start() }
        } catch {
            for listener in listeners { await listener.stop() }
            throw error
        }
        var started: Logger.Metadata = [
            "modbus": "\(configuration.modbus.host):\(server.port ?? configuration.modbus.port)",
            "broker": "\(configuration.broker.host):\(configuration.broker.port)", "points": "\(map.points.count)",
        ]
        if !configuration.modbus.plainListener { started["modbus"] = "off (plain_listener: false)" }
        if let tls = configuration.modbus.tls {
            started["modbus_tls"] = "\(tls.host ?? configuration.modbus.host):\(tlsServer?.port ?? tls.port)"
        }
        logger.info("bridge started", metadata: started)
        let startFailure = await withTaskGroup(of: RunEvent.self) { group in
            group.addTask {
                await self.consumeMessages()
                return .ended
            }
            // Acknowledgements in parallel with the telemetry: a write's reply never waits for
            // state messages received before its ack.
            group.addTask {
                await self.consumeAcknowledgements()
                return .ended
            }
            group.addTask {
                await self.watchConnection()
                return .ended
            }
            if let commandClient = self.commandClient {
                group.addTask {
                    await self.watchCommandConnection(commandClient)
                    return .ended
                }
                // Nothing but the routed acks is subscribed there; should anything else come, it
                // must not fill the client's buffer unread.
                group.addTask {
                    for await message in commandClient.messages { self.handleAcknowledgement(message) }
                    return .ended
                }
            }
            group.addTask { await self.connectAndSubscribe() }
            group.addTask {
                await self.sampleMetrics()
                return .ended
            }
            group.addTask {
                await self.retryReloadSubscriptions()
                return .ended
            }
            // Returns on graceful shutdown; throws when the task is cancelled. Either way: stop.
            group.addTask {
                try? await gracefulShutdown()
                return .stop
            }
            var failure: (any Error)?
            loop: while let event = await group.next() {
                switch event {
                case .ended: continue
                case .stop: break loop
                case .startFailed(let error):
                    failure = error
                    break loop
                }
            }
            // The Modbus side stops first, answering what it received, while acknowledgements
            // can still arrive: a write in flight gets its real outcome, not a timeout.
            for listener in self.listeners { await listener.stop() }
            group.cancelAll()
            return failure
        }
        if let startFailure {
            await commandClient?.disconnect()
            await client.disconnect()
            throw startFailure
        }
        if client.state == .connected {
            // In a task of its own: when the bridge is stopped by cancellation, a publish from
            // this task would fail at once, and the clean disconnect below suppresses the will,
            // leaving "online" retained for a bridge that is gone.
            let client = self.client
            let topic = configuration.broker.statusTopic
            let logger = self.logger
            await Task {
                await self.publishSparkplugState(online: false, logger: logger)
                try? await client.publish(
                    topic: topic,
                    payload: Array(BrokerSettings.offlinePayload.utf8),
                    qos: .atLeastOnce,
                    retain: true,
                    timeout: .seconds(2)
                )
            }.value
        }
        await commandClient?.disconnect()
        await client.disconnect()
        writes.failAll(.brokerUnavailable(reason: "the bridge is shutting down"))
        logger.info("bridge stopped")
    }

    /// What ends ``run()``'s task group, or not.
    private enum RunEvent: Sendable {
        /// A task finished without asking to stop (connected and subscribed, say).
        case ended
        /// Graceful shutdown or cancellation.
        case stop
        /// The broker cannot be used, and retrying cannot fix it.
        case startFailed(any Error)
    }

    // MARK: MQTT side

    /// Connects (a broker that is down is retried with backoff when
    /// `reconnect.retry_initial_connect` is on, the default); an error that retrying cannot
    /// fix, such as a refused password or an untrusted certificate, stops the bridge with that
    /// error rather than leaving it running without data.
    private func connectAndSubscribe() async -> RunEvent {
        do {
            try await client.connect()
        } catch is CancellationError {
            return .ended
        } catch {
            logger.critical("cannot connect to the MQTT broker: \(error)")
            return .startFailed(error)
        }
        if let commandClient {
            // Its failures are the main connection's (same broker, same credentials, same TLS).
            do {
                try await commandClient.connect()
            } catch is CancellationError {
                return .ended
            } catch {
                logger.critical("cannot open the command connection to the MQTT broker: \(error)")
                return .startFailed(error)
            }
        }
        var remaining = await subscribe(routes.subscriptions)
        metrics.record(readiness)
        writes.acceptCommands()
        await announceOnline()
        // A filter the broker refused or did not confirm is not restored by the client after a
        // reconnection either (it restores what was granted): retry until it is in place. The
        // bridge stays not ready meanwhile.
        var delay = Duration.seconds(1)
        while !remaining.isEmpty {
            do { try await Task.sleep(for: delay) } catch { break }
            delay = min(delay * 2, .seconds(30))
            remaining = await subscribe(remaining)
            metrics.record(readiness)
        }
        if remaining.isEmpty { refresh.start() }
        return .ended
    }

    /// Subscribes to `filters`, many per SUBSCRIBE packet (`MQTTClient.subscribe(_:qos:)` with a
    /// list: libmosquitto's `mosquitto_subscribe_multiple`, up to 1,000 filters a packet, the
    /// packets in flight together), one call per QoS. One SUBSCRIBE per filter cost a round
    /// trip of work each: 10,000 filters took about 1.5 s even with 1,024 in flight, and the
    /// broker routed most topics to the bridge only at the end. Each filter's SUBACK entry is
    /// still its own: returns the filters that failed (refused, or their packet failed).
    private func subscribe(_ filters: [MessageRoutes.Subscription]) async -> [MessageRoutes.Subscription] {
        // Each filter on its connection: ack-only filters on the command connection, if any.
        let commandFilters = commandClient == nil ? [] : routes.commandFilters
        var byQoS: [MQTTQoS: [MessageRoutes.Subscription]] = [:]
        var commandsByQoS: [MQTTQoS: [MessageRoutes.Subscription]] = [:]
        for filter in filters {
            if commandFilters.contains(filter.topic) {
                commandsByQoS[filter.qos, default: []].append(filter)
            } else {
                byQoS[filter.qos, default: []].append(filter)
            }
        }
        let batches = byQoS.map { (client, $0.key, $0.value) } + commandsByQoS.map { (commands, $0.key, $0.value) }
        let (failures, firstErrors) = await withTaskGroup(
            of: [(MessageRoutes.Subscription, any Error)].self
        ) { group -> ([MessageRoutes.Subscription], [String]) in
            for (client, qos, subscriptions) in batches {
                group.addTask {
                    do {
                        let results = try await client.subscribe(subscriptions.map(\.topic), qos: qos)
                        return zip(subscriptions, results).compactMap { filter, result in
                            if case .failure(let error) = result { (filter, error) } else { nil }
                        }
                    } catch {
                        // Cancelled (or options the protocol cannot carry): none is in place.
                        return subscriptions.map { ($0, error) }
                    }
                }
            }
            var failures: [MessageRoutes.Subscription] = []
            var firstErrors: [String] = []
            for await failed in group {
                for (filter, error) in failed {
                    failures.append(filter)
                    if firstErrors.count < 10 { firstErrors.append("\(filter.topic): \(error)") }
                }
            }
            return (failures, firstErrors)
        }
        if !failures.isEmpty && !Task.isCancelled {
            logger.error(
                "cannot subscribe to \(failures.count) of \(filters.count) filters; retrying",
                metadata: ["first failures": "\(firstErrors.joined(separator: "; "))"]
            )
        }
        return failures
    }

    private func announceOnline() async {
        await publishSparkplugState(online: true, logger: logger)
        do {
            try await client.publish(
                topic: configuration.broker.statusTopic,
                payload: Array(BrokerSettings.onlinePayload.utf8),
                qos: .atLeastOnce,
                retain: true
            )
        } catch {
            logger.warning("cannot publish the bridge status: \(error)")
        }
    }

    private func watchConnection() async {
        var wasConnected = false
        for await state in client.connectionStates() {
            metrics.record(readiness)
            switch state {
            case .connected:
                metrics.mqttConnected.record(1)
                if wasConnected == false { logger.info("connected to the MQTT broker") }
                // After a reconnection the client has re-subscribed; retained values repopulate
                // the cache. Say we are back.
                if wasConnected == false, metrics.connections.incrementAndGet() > 1 {
                    await announceOnline()
                    refresh.start()
                }
                wasConnected = true
            case .disconnected(let reason):
                metrics.mqttConnected.record(0)
                if wasConnected {
                    logger.warning(
                        "lost the MQTT broker; values are stale until it is back",
                        metadata: ["reason": "\(reason.map { "\($0)" } ?? "-")"]
                    )
                    brokerConnectionLost(through: client.lastEndedConnection)
                }
                wasConnected = false
            case .connecting:
                break
            }
        }
    }

    /// The command connection's state: a write waiting for its acknowledgement cannot get
    /// it once this connection is lost, so it fails at once (0A) rather than timing out.
    private func watchCommandConnection(_ commandClient: MQTTClient) async {
        var wasConnected = false
        for await state in commandClient.connectionStates() {
            metrics.record(readiness)
            switch state {
            case .connected:
                if wasConnected == false { logger.info("command connection to the MQTT broker open") }
                wasConnected = true
            case .disconnected(let reason):
                if wasConnected {
                    logger.warning(
                        "lost the command connection to the MQTT broker; writes answer 0A until it is back",
                        metadata: ["reason": "\(reason.map { "\($0)" } ?? "-")"]
                    )
                    writes.failAll(.brokerUnavailable(reason: "the command connection was lost"))
                }
                wasConnected = false
            case .connecting:
                break
            }
        }
    }

    /// The broker connection numbered `connection` (and every earlier one) is lost: the values
    /// no longer follow the plant, so reads answer each point's policy, and the messages of
    /// those connections still buffered are dropped when their turn comes; waiting writes end 0A.
    func brokerConnectionLost(through connection: UInt64) {
        ingest.withLock { lostConnection in
            lostConnection = max(lostConnection, connection)
            cache.invalidateAll()
            // A death may come while the bridge is away: every node must be born again.
            topics.current.sparkplug.reset()
        }
        writes.failAll(.brokerUnavailable(reason: "the broker connection was lost"))
    }

    // MARK: Reload

    /// Puts a new configuration in force without closing a Modbus connection: new, changed and
    /// removed points, units and devices take effect at once; new filters are subscribed and
    /// dropped ones unsubscribed. Unchanged points keep their values; a point whose scale, type
    /// or address changed keeps its value, re-encoded; a point whose topic or payload format
    /// changed reads as missing until its next message (its filter is subscribed again, so a
    /// retained one comes at once). The Modbus listener's and the broker connection's settings
    /// apply only at start: a configuration that changes them is refused whole.
    ///
    /// A write in flight finishes against the map it started with and records its outcome in
    /// the new one, for its point if that is unchanged.
    ///
    /// - Returns: what changed, once the new map is in force and its subscriptions were sent
    ///   (``readiness`` is not ready until each has its SUBACK; one that fails is retried).
    /// - Throws: ``ReloadRefusal`` naming every setting that cannot change while running; the
    ///   running configuration stays in force.
    public func reload(_ configuration: BridgeConfiguration) async throws(ReloadRefusal) -> ReloadSummary {
        let summary = try await apply(configuration)
        // The old map is gone now, and what loading the new configuration left.
        FreedMemory.returnToSystem()
        return summary
    }

    private func apply(_ configuration: BridgeConfiguration) async throws(ReloadRefusal) -> ReloadSummary {
        let started = state.withLockedValue { state in
            if state.reloading { return false }
            state.reloading = true
            return true
        }
        guard started else { throw ReloadRefusal(reasons: ["another reload is being applied; send it again"]) }
        defer { state.withLockedValue { $0.reloading = false } }

        let old = topics.current
        let new = BridgeTopicMap(configuration, metrics: metrics)
        let plan = ReloadPlan(from: old, to: new)
        guard plan.refusals.isEmpty else { throw ReloadRefusal(reasons: plan.refusals) }
        // The TLS files are read again on every reload (a renewed certificate under the same
        // name is the usual case), before anything changes: a file that cannot be used refuses
        // the whole reload, and the certificate in force stays.
        var credentials: ModbusTLSCredentials?
        if let tls = configuration.modbus.tls, tlsServer != nil {
            do {
                credentials = try ModbusTLSCredentials(Self.serverTLS(tls))
            } catch {
                throw ReloadRefusal(reasons: [
                    "modbus.tls: \(error.message); the certificate, key and role map in force are kept"
                ])
            }
        }
        ingest.withLock { _ in
            new.cache.carry(from: old.cache, points: plan.points, devices: plan.devices)
            new.sparkplug.carrySessions(from: old.sparkplug)
            topics.replace(with: new)
        }
        // Before the new filters are subscribed: their first acks already take the ack path.
        // (A message routed by the old filters is handled all the same: both paths handle every
        // kind of message; the routes only decide which waits behind what.)
        do {
            try acks.setFilters(new.routes.ackFilters)
        } catch {
            logger.error("cannot route the new ack topics apart from telemetry: \(error)")
        }
        // Units added answer from now on; units removed are answered as any unknown unit.
        for listener in listeners {
            listener.setUnits(
                configuration.unitIDs,
                unknownUnitResponse: configuration.modbus.unknownUnit == .ignore ? .noResponse : .exception
            )
        }
        if let credentials, let tlsServer {
            try? tlsServer.replaceTLSCredentials(credentials)
        }
        // With a separate command connection, a filter that became, or stopped being, an ack
        // topic and nothing else moves to the other connection: unsubscribed (from both: an
        // UNSUBSCRIBE of a filter a connection does not have is harmless), then subscribed.
        let moved =
            commandClient == nil
            ? []
            : new.routes.subscriptions.filter { subscription in
                old.routes.subscriptions.contains { $0.topic == subscription.topic }
                    && old.routes.commandFilters.contains(subscription.topic)
                        != new.routes.commandFilters.contains(subscription.topic)
            }
        state.withLockedValue { state in
            // What an earlier reload still waits for, unless this one dropped it.
            let wanted = Set(new.routes.subscriptions.map(\.topic))
            state.reloadSubscriptions = state.reloadSubscriptions.filter { wanted.contains($0.topic) }
            let pending = Set(state.reloadSubscriptions.map(\.topic))
            let added = (plan.subscribe + moved).filter { !pending.contains($0.topic) }
            state.reloadSubscriptions += Array(Set(added)).sorted { $0.topic < $1.topic }
            state.reloadUnsubscriptions =
                state.reloadUnsubscriptions.filter { !wanted.contains($0) } + plan.unsubscribe + moved.map(\.topic)
        }
        refresh.update(configuration)
        metrics.record(readiness)
        await applyReloadSubscriptions()
        // Values that are not retained: ask the new devices, once their topics are subscribed.
        if client.state == .connected, state.withLockedValue({ $0.reloadSubscriptions.isEmpty }) {
            refresh.start(devices: plan.refreshDevices)
        }
        logger.notice(
            "configuration reloaded",
            metadata: ["changes": "\(plan.summary)", "points": "\(new.map.points.count)"]
        )
        return plan.summary
    }

    /// Sends the UNSUBSCRIBEs and SUBSCRIBEs reloads left to do; what fails stays to do.
    private func applyReloadSubscriptions() async {
        guard isConnectedToBroker else { return }
        let (subscriptions, unsubscriptions) = state.withLockedValue { state in
            state.reloadSubscriptionsInFlight += 1
            return (state.reloadSubscriptions, state.reloadUnsubscriptions)
        }
        defer { state.withLockedValue { $0.reloadSubscriptionsInFlight -= 1 } }
        var failedUnsubscriptions: [String] = []
        for filter in unsubscriptions {
            do {
                try await client.unsubscribe(filter)
                try await commandClient?.unsubscribe(filter)
            } catch {
                failedUnsubscriptions.append(filter)
            }
        }
        // A filter moving between connections is subscribed only once it is unsubscribed: an
        // UNSUBSCRIBE retried later would otherwise take it away again.
        let unsubscribing = Set(failedUnsubscriptions)
        let ready = subscriptions.filter { !unsubscribing.contains($0.topic) }
        let failed = Set(await subscribe(ready).map(\.topic)).union(unsubscribing)
        state.withLockedValue { state in
            let sent = Set(subscriptions.map(\.topic))
            state.reloadSubscriptions.removeAll { sent.contains($0.topic) && !failed.contains($0.topic) }
            let tried = Set(unsubscriptions)
            state.reloadUnsubscriptions.removeAll { tried.contains($0) && !failedUnsubscriptions.contains($0) }
        }
        metrics.record(readiness)
    }

    /// Retries, every few seconds while connected, what a reload could not subscribe or
    /// unsubscribe (the broker was away, or refused a filter).
    private func retryReloadSubscriptions() async {
        while true {
            do { try await Task.sleep(for: .seconds(2)) } catch { return }
            let (waiting, busy) = state.withLockedValue { state in
                (
                    !state.reloadSubscriptions.isEmpty || !state.reloadUnsubscriptions.isEmpty,
                    state.reloading || state.reloadSubscriptionsInFlight > 0
                )
            }
            if waiting && !busy { await applyReloadSubscriptions() }
        }
    }

    /// How often the gauges that nothing announces (points stale or missing, open Modbus
    /// connections, the readiness facts) and the client's dropped-message count are read.
    static let metricsSampleInterval = Duration.seconds(1)

    /// Updates the sampled metrics every ``metricsSampleInterval`` until cancelled: a point goes
    /// stale by the clock, not by an event, and a pass over 10,000 points once a second costs
    /// nothing the hot path would notice.
    private func sampleMetrics() async {
        var dropped = 0
        while true {
            metrics.record(readiness)
            let (stale, missing) = topics.current.cache.freshnessCounts()
            metrics.pointsStale.record(stale)
            metrics.pointsMissing.record(missing)
            metrics.modbusConnectionsOpen.record(modbusConnections)
            let droppedNow =
                client.droppedMessageCount + acks.droppedMessageCount + (commandClient?.droppedMessageCount ?? 0)
            if droppedNow > dropped {
                metrics.messagesDropped.increment(by: droppedNow - dropped)
                dropped = droppedNow
            }
            do { try await Task.sleep(for: Self.metricsSampleInterval) } catch { return }
        }
    }

    /// Whether `message` arrived on a broker connection that is known to be lost (connection 0:
    /// not received from a broker, as in tests, never counts as lost).
    static func isFromLostConnection(_ message: MQTTMessage, lostConnection: UInt64) -> Bool {
        message.connection != 0 && message.connection <= lostConnection
    }

    /// How many telemetry messages are handled between two yields of the consumer's thread.
    static let messagesPerYield = 256

    private func consumeMessages() async {
        var handled = 0
        for await message in client.messages {
            handle(message)
            // A flood keeps the buffer full, and taking a buffered message need not suspend:
            // without a yield this task would keep its thread of the cooperative pool (the only
            // one, on a one-core machine) and the acknowledgement consumer and the held writes
            // would wait for the flood to end.
            handled &+= 1
            if handled % Self.messagesPerYield == 0 { await Task.yield() }
        }
    }

    private func consumeAcknowledgements() async {
        for await message in acks.messages {
            handleAcknowledgement(message)
        }
    }

    /// A message on an ack topic. An ack resolves its write without the ingest lock, so it does
    /// not wait for the state message being handled on the telemetry path; a topic that is
    /// also a state or availability topic is handled like any message.
    func handleAcknowledgement(_ message: MQTTMessage) {
        let routes = topics.current.routes
        guard routes.isAckOnly(message.topic) else {
            // On a separate command connection it is a copy: the main connection, subscribed
            // to that topic for its telemetry, receives the same message and handles it.
            if commandClient == nil { handle(message) }
            return
        }
        metrics.messagesReceived.increment()
        writes.acknowledge(message, routes: routes)
    }

    /// Routes one message: ack topics resolve waiting writes; state topics update the cache.
    func handle(_ message: MQTTMessage) {
        metrics.messagesReceived.increment()
        ingest.withLock { lostConnection in
            // Received before a loss that has already made every value stale: applying it now
            // would make its point fresh again while the broker is away. What the device says
            // after the reconnection (retained states included) comes on the new connection.
            guard !Self.isFromLostConnection(message, lostConnection: lostConnection) else {
                metrics.messagesFromLostConnection.increment()
                return
            }
            let topics = self.topics.current
            if topics.sparkplug.handles(message.topic) {
                let outcome = topics.sparkplug.handle(
                    message,
                    map: topics.map,
                    cache: topics.cache,
                    metrics: metrics,
                    logger: logger
                )
                return follow(outcome, logger: logger)
            }
            let routes = topics.routes
            if let devices = routes.availabilityTopics[message.topic] {
                for device in devices { updateAvailability(device, from: message, topics) }
            }
            writes.acknowledge(message, routes: routes)
            for index in routes.points(forStateTopic: message.topic) {
                updatePoint(index, from: message, topics)
            }
        }
    }

    private func updateAvailability(_ index: Int, from message: MQTTMessage, _ topics: BridgeTopicMap) {
        let cache = topics.cache
        let device = topics.map.devices[index]
        guard let settings = device.availability else { return }
        guard let online = settings.isOnline(payload: message.payload) else {
            metrics.decodeFailures.increment()
            state.withLockedValue { $0.availabilityFailures += 1 }
            logger.warning(
                "availability payload is neither an online nor an offline word; keeping the device's state",
                metadata: [
                    "device": "\(device.name)", "topic": "\(message.topic)",
                    "payload": "\(String(decoding: message.payload.prefix(200), as: UTF8.self))",
                ]
            )
            return
        }
        let wasOffline = cache.isDeviceOffline(index)
        cache.setAvailability(device: index, online: online)
        if online == wasOffline {
            logger.notice(
                online ? "device online" : "device offline: its points answer their missing-value policy",
                metadata: ["device": "\(device.name)"]
            )
        }
    }

    private func updatePoint(_ index: Int, from message: MQTTMessage, _ topics: BridgeTopicMap) {
        let cache = topics.cache
        let map = topics.map
        let point = map.points[index]
        do {
            guard
                let value = try StateMessageDecoder(point: point).decode(topic: message.topic, payload: message.payload)
            else { return seen(index, topics) }
            let image = try RegisterEncoder(point: point).encode(value)
            cache.update(point: index, image: image)
            metrics.messagesDecoded.increment()
            // A retained state is what the device said at some time before, not an answer to a
            // command: it must not confirm a state_echo write (a device dead for days would).
            if !message.retain { writes.offerState(point: point.name, value: value) }
        } catch {
            // A message came, so the device is not silent, even if this one was not usable.
            if let device = map.deviceOfPoint[index] { cache.deviceSeen(device) }
            metrics.decodeFailures.increment()
            // Every failure is counted; the log names the first and then every 100th per point,
            // so a misconfigured device cannot flood it.
            let failures = state.withLockedValue { state in
                state.decodeFailures[point.name, default: 0] += 1
                return state.decodeFailures[point.name]!
            }
            guard failures % 100 == 1 else { return }
            logger.warning(
                "payload not usable; keeping the last good value",
                metadata: [
                    "topic": "\(message.topic)", "point": "\(point.name)", "error": "\(error)",
                    "failures": "\(failures)",
                    "payload": "\(String(decoding: message.payload.prefix(200), as: UTF8.self))",
                ]
            )
        }
    }
}
