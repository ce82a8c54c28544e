import Foundation
import Logging
import Metrics
import ModbusTCPServer
import MQTTModbusBridgeBroker
import Mosquitto
import MQTTModbusBridgeConfiguration
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
    /// The configuration the bridge runs.
    public let configuration: BridgeConfiguration

    let map: RegisterMap
    let cache: PointCache
    let tracker = AckTracker()
    let client: MQTTClient
    let server: ModbusServer
    private let planner: WritePlanner
    private let logger: Logger
    let routes: MessageRoutes
    private let writesInFlight = Atomic<Int>(0)
    private let maxWritesInFlight: Int
    private let commandSequence = Atomic<UInt64>(0)
    private let instanceTag: String
    private let metrics: BridgeMetrics

    /// Creates the bridge; nothing connects or listens until ``run()``.
    ///
    /// - Throws: an `MQTTError` when the broker settings cannot be applied (for example a
    ///   missing TLS file), or a `CocoaError` when the password file cannot be read.
    public init(configuration: BridgeConfiguration, logger: Logger = Logger(label: "bridge")) throws {
        self.configuration = configuration
        self.logger = logger
        self.map = RegisterMap(configuration)
        self.cache = PointCache(map: map)
        self.planner = WritePlanner(map: map, cache: cache)
        self.routes = MessageRoutes(map: map)
        self.maxWritesInFlight = max(1, configuration.modbus.maxWritesInFlight)
        self.instanceTag = String(UInt32.random(in: 0...UInt32.max), radix: 36)
        self.metrics = BridgeMetrics()
        self.client = try MQTTClient(
            configuration: try MQTTConfiguration(bridgeBroker: configuration.broker), logger: logger.component("mqtt"))

        var listener = ModbusServerConfiguration(host: configuration.modbus.host, port: configuration.modbus.port)
        listener.unitIDs = configuration.unitIDs
        listener.maxConnections = configuration.modbus.maxConnections
        listener.connectionLimitPolicy = configuration.modbus.connectionLimitPolicy == .rejectNew ? .rejectNew : .closeOldestIdle
        listener.idleTimeout = configuration.modbus.idleTimeout
        listener.maxQueuedRequestsPerConnection = configuration.modbus.maxQueuedRequestsPerConnection
        listener.shutdownGracePeriod = configuration.modbus.shutdownGracePeriod
        listener.deviceIdentification = configuration.modbus.deviceIdentification
        let cache = self.cache
        let writer = WriteForwarder()
        self.server = ModbusServer(
            configuration: listener,
            readHandler: .syncInPlace { request, values in
                try cache.read(unit: request.unitID, area: request.area, address: request.address, count: request.count, into: &values)
            },
            writeHandler: .async { request in
                guard let bridge = writer.bridge else {
                    // The bridge is gone (only while it is being torn down): nothing can be commanded.
                    throw ModbusException(.gatewayPathUnavailable, "the bridge is shutting down")
                }
                try await bridge.write(request)
            },
            logger: logger.component("modbus"))
        writer.bridge = self
    }

    /// The Modbus port the bridge listens on (useful with port 0), once running.
    public var modbusPort: Int? { server.port }

    /// Whether the MQTT connection is up.
    public var isConnectedToBroker: Bool { client.state == .connected }

    /// State payloads that could not be decoded since start (each point kept its last good value).
    public var payloadDecodeFailures: Int { decodeFailureCounts.withLock { $0.values.reduce(0, +) } }

    /// The bridge's state for a health check (see ``StatusEndpoint``).
    public var health: BridgeHealth {
        let mqtt: String
        switch client.state {
        case .connected: mqtt = "connected"
        case .connecting: mqtt = "connecting"
        case .disconnected: mqtt = "disconnected"
        }
        return BridgeHealth(
            mqtt: mqtt, modbusListening: server.isRunning, modbusConnections: server.activeConnections,
            writesInFlight: writesInFlight.load(ordering: .relaxed), payloadDecodeFailures: payloadDecodeFailures)
    }

    /// Starts the Modbus listener and the MQTT connection, serves until graceful shutdown or
    /// cancellation, then publishes "offline", stops the listener and disconnects.
    public func run() async throws {
        try await server.start()
        logger.info(
            "bridge started",
            metadata: [
                "modbus": "\(configuration.modbus.host):\(server.port ?? configuration.modbus.port)",
                "broker": "\(configuration.broker.host):\(configuration.broker.port)", "points": "\(map.points.count)",
            ])
        await withGracefulShutdownHandler {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await self.consumeMessages() }
                group.addTask { await self.watchConnection() }
                group.addTask { await self.connectAndSubscribe() }
                await self.waitUntilCancelled()
                // The Modbus side stops first, answering what it received, while acknowledgements
                // can still arrive: a write in flight gets its real outcome, not a timeout.
                await self.server.stop()
                group.cancelAll()
            }
        } onGracefulShutdown: {
            self.shutdownSignal.finish()
        }
        if let failure = startFailure.withLock({ $0 }) {
            await client.disconnect()
            throw failure
        }
        if client.state == .connected {
            // In a task of its own: when the bridge is stopped by cancellation, a publish from
            // this task would fail at once, and the clean disconnect below suppresses the will,
            // leaving "online" retained for a bridge that is gone.
            let client = self.client
            let topic = configuration.broker.statusTopic
            await Task {
                try? await client.publish(
                    topic: topic, payload: Array(BrokerSettings.offlinePayload.utf8), qos: .atLeastOnce, retain: true,
                    timeout: .seconds(2))
            }.value
        }
        await client.disconnect()
        tracker.failAll(.brokerUnavailable(reason: "the bridge is shutting down"))
        logger.info("bridge stopped")
    }

    private let decodeFailureCounts = Mutex<[Int: Int]>([:])
    /// The first subscriptions are in place: before that, a command's acknowledgement (or state
    /// echo) could arrive unseen, so writes answer 0A. (The MQTT client restores subscriptions
    /// itself before it reports a reconnection.)
    private let subscribed = Atomic<Bool>(false)
    private let shutdownSignal = AsyncShutdownSignal()
    private let startFailure = Mutex<(any Error)?>(nil)

    private func waitUntilCancelled() async {
        await withTaskCancellationHandler {
            await shutdownSignal.wait()
        } onCancel: {
            shutdownSignal.finish()
        }
    }

    // MARK: MQTT side

    /// Connects (a broker that is down is retried with backoff when
    /// `reconnect.retry_initial_connect` is on, the default); an error that retrying cannot
    /// fix, such as a refused password or an untrusted certificate, stops the bridge with that
    /// error rather than leaving it running without data.
    private func connectAndSubscribe() async {
        do {
            try await client.connect()
        } catch is CancellationError {
            return
        } catch {
            logger.critical("cannot connect to the MQTT broker: \(error)")
            startFailure.withLock { $0 = error }
            shutdownSignal.finish()
            return
        }
        for filter in routes.subscriptions {
            do {
                try await client.subscribe(filter.topic, qos: filter.qos)
            } catch {
                logger.error("cannot subscribe to \(filter.topic): \(error)")
            }
        }
        subscribed.store(true, ordering: .releasing)
        await announceOnline()
    }

    private func announceOnline() async {
        do {
            try await client.publish(
                topic: configuration.broker.statusTopic, payload: Array(BrokerSettings.onlinePayload.utf8), qos: .atLeastOnce,
                retain: true)
        } catch {
            logger.warning("cannot publish the bridge status: \(error)")
        }
    }

    private func watchConnection() async {
        var wasConnected = false
        for await state in client.connectionStates() {
            switch state {
            case .connected:
                metrics.mqttConnected.record(1)
                if wasConnected == false { logger.info("connected to the MQTT broker") }
                // After a reconnection the client has re-subscribed; retained values repopulate
                // the cache. Say we are back.
                if wasConnected == false, metrics.connections.incrementAndGet() > 1 { await announceOnline() }
                wasConnected = true
            case .disconnected(let reason):
                metrics.mqttConnected.record(0)
                if wasConnected {
                    logger.warning("lost the MQTT broker; values are stale until it is back", metadata: ["reason": "\(reason.map { "\($0)" } ?? "-")"])
                    // The values no longer follow the plant: reads answer each point's policy.
                    cache.invalidateAll()
                    tracker.failAll(.brokerUnavailable(reason: "the broker connection was lost"))
                }
                wasConnected = false
            case .connecting:
                break
            }
        }
    }

    private func consumeMessages() async {
        for await message in client.messages {
            handle(message)
        }
    }

    /// Routes one message: ack topics resolve waiting writes; state topics update the cache.
    func handle(_ message: MQTTMessage) {
        metrics.messagesReceived.increment()
        if routes.responseTopics.contains(message.topic) {
            if let data = message.properties.correlationData, let promise = tracker.take(.correlationData(data)) {
                let properties = message.properties.userProperties.map { (name: $0.name, value: $0.value) }
                promise.fulfil(AckPayloadEvaluator.evaluate(payload: message.payload, userProperties: properties, settings: promise.settings))
            } else if routes.correlationAckTopics[message.topic] == nil {
                metrics.lateAcks.increment()
                logger.debug("an acknowledgement nobody waits for (late or foreign)", metadata: ["topic": "\(message.topic)"])
            }
        }
        let idFields = routes.correlationIDFields(forAckTopic: message.topic)
        if !idFields.isEmpty {
            var matched = false
            for field in idFields {
                if let id = AckPayloadEvaluator.correlationID(in: message.payload, at: field), let promise = tracker.take(.correlationID(id)) {
                    promise.fulfil(AckPayloadEvaluator.evaluate(payload: message.payload, settings: promise.settings))
                    matched = true
                    break
                }
            }
            if !matched {
                metrics.lateAcks.increment()
                logger.debug("an acknowledgement nobody waits for (late or foreign)", metadata: ["topic": "\(message.topic)"])
            }
        }
        for index in routes.points(forStateTopic: message.topic) {
            updatePoint(index, from: message)
        }
    }

    private func updatePoint(_ index: Int, from message: MQTTMessage) {
        let point = map.points[index]
        do {
            let value = try PayloadDecoder(point: point).decode(message.payload)
            let image = try RegisterEncoder(point: point).encode(value)
            cache.update(point: index, image: image)
            // A retained state is what the device said at some time before, not an answer to a
            // command: it must not confirm a state_echo write (a device dead for days would).
            if !message.retain { tracker.offerState(point: index, value: value) }
        } catch {
            metrics.decodeFailures.increment()
            // Every failure is counted; the log names the first and then every 100th per point,
            // so a misconfigured device cannot flood it.
            let failures = decodeFailureCounts.withLock { counts in
                counts[index, default: 0] += 1
                return counts[index]!
            }
            guard failures % 100 == 1 else { return }
            logger.warning(
                "payload not usable; keeping the last good value",
                metadata: ["topic": "\(message.topic)", "point": "\(point.name)", "error": "\(error)", "failures": "\(failures)",
                           "payload": "\(String(decoding: message.payload.prefix(200), as: UTF8.self))"])
        }
    }

    // MARK: Modbus writes

    /// Applies a Modbus write: plans it per point, publishes every command, and returns only
    /// when every point was acknowledged (docs/design.md §4).
    func write(_ request: ModbusWriteRequest) async throws {
        let planned = try planner.plan(
            unit: request.unitID, area: request.area, address: request.address, values: request.values,
            changedBits: request.mask?.changedBits)
        guard client.state == .connected, subscribed.load(ordering: .acquiring) else {
            metrics.writes(.gatewayPathUnavailable).increment()
            throw ModbusException(.gatewayPathUnavailable, "the MQTT broker is not connected")
        }
        let inFlight = writesInFlight.add(1, ordering: .relaxed).newValue
        guard inFlight <= maxWritesInFlight else {
            writesInFlight.subtract(1, ordering: .relaxed)
            metrics.writes(.serverDeviceBusy).increment()
            throw ModbusException(.serverDeviceBusy, "\(maxWritesInFlight) writes are already waiting for acknowledgements")
        }
        metrics.writesInFlight.record(inFlight)
        defer { metrics.writesInFlight.record(writesInFlight.subtract(1, ordering: .relaxed).newValue) }

        let tokens = planned.map { cache.lastUpdate(of: $0.point) }
        let outcomes = await withTaskGroup(of: WriteOutcome.self) { group in
            for write in planned { group.addTask { await self.command(write) } }
            var outcomes: [WriteOutcome] = []
            for await outcome in group { outcomes.append(outcome) }
            return outcomes
        }
        let outcome = WriteOutcome.combined(outcomes)
        if let code = outcome.exceptionCode {
            metrics.writes(code).increment()
            logger.warning(
                "write failed", metadata: ["unit": "\(request.unitID)", "area": "\(request.area)", "address": "\(request.address)", "outcome": "\(outcome)"])
            throw ModbusException(code, "\(outcome)")
        }
        metrics.writes(nil).increment()
        // The device confirmed: reads return the written value until its next state message,
        // unless one arrived while the write waited (it is newer, and may differ: a clamped
        // value). With state_echo the state message itself was the confirmation. Broker mode
        // confirms nothing about the device: a point with a state topic waits for it.
        for (write, token) in zip(planned, tokens) {
            let point = map.points[write.point]
            switch point.command?.ack.mode {
            case .stateEcho?: continue
            case .broker? where point.stateTopic != nil: continue
            default: cache.update(point: write.point, image: write.image, ifUnchangedSince: token)
            }
        }
    }

    /// Publishes one point's command and waits for its acknowledgement.
    private func command(_ write: PlannedPointWrite) async -> WriteOutcome {
        let point = map.points[write.point]
        guard let command = point.command else { return .rejected(code: .illegalDataAddress, reason: "\(point.name) is read-only") }
        let ack = command.ack
        let correlationID = "\(instanceTag)-\(commandSequence.add(1, ordering: .relaxed).newValue)"
        let payload: [UInt8]
        do {
            payload = try CommandEncoder(point: point).encode(write.value, correlationID: correlationID)
        } catch {
            return .rejected(code: .illegalDataValue, reason: "\(point.name): \(error)")
        }
        let qos = MQTTQoS(rawValue: UInt8(command.qos.rawValue)) ?? .atLeastOnce
        logger.debug("command", metadata: ["point": "\(point.name)", "topic": "\(command.topic)", "value": "\(write.value)", "id": "\(correlationID)"])

        switch ack.mode {
        case .broker:
            do {
                try await client.publish(topic: command.topic, payload: payload, qos: max(qos, .atLeastOnce), retain: command.retain, timeout: ack.timeout)
                return .acknowledged
            } catch {
                return Self.outcome(ofPublishError: error)
            }
        case .mqtt5:
            let key = AckTracker.Key.correlationData(Array(correlationID.utf8))
            let promise = tracker.register(key, settings: ack)
            let properties = MQTTProperties(responseTopic: routes.responseTopic(for: point), correlationData: Array(correlationID.utf8))
            return await publishAndWait(command, payload, qos, properties, promise, ack) { self.tracker.remove(key) }
        case .correlationID:
            let key = AckTracker.Key.correlationID(correlationID)
            let promise = tracker.register(key, settings: ack)
            return await publishAndWait(command, payload, qos, MQTTProperties(), promise, ack) { self.tracker.remove(key) }
        case .stateEcho:
            let (id, promise) = tracker.registerEcho(point: write.point, of: point, value: write.value, settings: ack)
            return await publishAndWait(command, payload, qos, MQTTProperties(), promise, ack) {
                self.tracker.removeEcho(point: write.point, id: id)
            }
        }
    }

    private func publishAndWait(
        _ command: CommandSettings, _ payload: [UInt8], _ qos: MQTTQoS, _ properties: MQTTProperties,
        _ promise: AckPromise, _ ack: AckSettings, cleanup: @Sendable () -> Void
    ) async -> WriteOutcome {
        defer { cleanup() }
        // One deadline for the publish and the acknowledgement together: the Modbus reply never
        // waits longer than the point's ack timeout.
        let deadline = ContinuousClock.now + ack.timeout
        do {
            try await client.publish(topic: command.topic, payload: payload, qos: qos, retain: command.retain, properties: properties, timeout: ack.timeout)
        } catch {
            promise.fulfil(Self.outcome(ofPublishError: error))
        }
        return await promise.outcome(timeout: max(.zero, deadline - ContinuousClock.now))
    }

    static func outcome(ofPublishError error: any Error) -> WriteOutcome {
        guard let mqttError = error as? MQTTError else { return .brokerUnavailable(reason: "\(error)") }
        switch mqttError.code {
        case .timeout: return .timedOut
        case .publishRejected, .notSupported, .invalidArgument:
            return .rejected(code: .serverDeviceFailure, reason: "\(mqttError)")
        default: return .brokerUnavailable(reason: "\(mqttError)")
        }
    }
}

/// Lets the server's write handler reach the bridge, which is created after the server.
private final class WriteForwarder: @unchecked Sendable {
    // Set once in the bridge's initialiser, before the server can accept a connection.
    nonisolated(unsafe) weak var bridge: MQTTModbusBridgeService?
}

/// A one-shot signal: `wait()` returns once `finish()` has been called.
final class AsyncShutdownSignal: Sendable {
    private let state = Mutex<(finished: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

    func finish() {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.finished = true
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    func wait() async {
        await withCheckedContinuation { continuation in
            let done = state.withLock { state in
                if state.finished { return true }
                state.waiters.append(continuation)
                return false
            }
            if done { continuation.resume() }
        }
    }
}
