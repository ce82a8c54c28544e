import Foundation
import Logging
import MQTTModbusBridgeConfiguration
import ModbusTCPServer
import Mosquitto
import NIOConcurrencyHelpers

/// The bridge's write path: turns a Modbus write into MQTT commands and answers only when the
/// devices acknowledged them (docs/design.md §4).
///
/// It owns what a write needs: the planner, the acknowledgement tracker, the in-flight limit
/// and the correlation ids. It exists before the Modbus server, whose write handler captures
/// it, and it is the one place acknowledgements arrive (``acknowledge(_:)``).
final class BridgeWritePath: Sendable {
    private struct State {
        /// The first subscriptions are in place: before that, a command's acknowledgement (or
        /// state echo) could arrive unseen, so writes answer 0A. (The MQTT client restores
        /// subscriptions itself before it reports a reconnection.)
        var acceptsCommands = false
        var inFlight = 0
        var commandSequence: UInt64 = 0
    }

    let tracker = AckTracker()
    /// Each point's last write and its outcome (the status page shows them).
    let lastWrites = LastWriteLog()
    private let state = NIOLockedValueBox(State())
    /// The topic map in force; a write works on the one it started with, then records its
    /// outcome in the one in force when it ends (a reload may have come in between).
    private let topics: TopicMapHolder
    /// The connection commands are published on (the command connection, or the only one).
    let client: MQTTClient
    /// The main connection: a state_echo or Sparkplug write is confirmed by telemetry, which
    /// only this connection receives.
    private let telemetry: MQTTClient
    /// Tells this instance's correlation ids from those of an earlier run or another bridge.
    private let instanceTag = String(UInt32.random(in: 0...UInt32.max), radix: 36)
    let metrics: BridgeMetrics
    let logger: Logger

    init(topics: TopicMapHolder, client: MQTTClient, telemetry: MQTTClient, metrics: BridgeMetrics, logger: Logger) {
        self.topics = topics
        self.client = client
        self.telemetry = telemetry
        self.metrics = metrics
        self.logger = logger
    }

    /// Writes waiting for acknowledgements now.
    var writesInFlight: Int { state.withLockedValue { $0.inFlight } }

    /// From now on commands are published: the subscriptions that carry their acknowledgements
    /// are in place.
    func acceptCommands() {
        state.withLockedValue { $0.acceptsCommands = true }
    }

    /// Ends every write still waiting with `outcome` (the broker is gone, or the bridge stops).
    func failAll(_ outcome: WriteOutcome) {
        tracker.failAll(outcome)
    }

    // MARK: Acknowledgements

    /// Resolves the writes a message acknowledges: an MQTT 5 response (by correlation data) or
    /// an ack carrying a correlation id. Acks nobody waits for are counted (late, duplicate or
    /// unmatched) and logged.
    func acknowledge(_ message: MQTTMessage, routes: MessageRoutes) {
        if routes.responseTopics.contains(message.topic) {
            if let data = message.properties.correlationData {
                let key = AckTracker.Key.correlationData(data)
                if let promise = tracker.take(key) {
                    let properties = message.properties.userProperties.map { (name: $0.name, value: $0.value) }
                    let outcome = evaluate(
                        AckPayloadEvaluator.read(
                            payload: message.payload,
                            userProperties: properties,
                            settings: promise.settings
                        ),
                        on: message.topic
                    )
                    // Not fulfilled: the write timed out an instant ago and has not ended yet.
                    if !promise.fulfil(outcome) { strayAck(.late, on: message.topic) }
                    return
                }
                if routes.correlationAckTopics[message.topic] == nil {
                    strayAck(tracker.classify(key), on: message.topic)
                    return
                }
            } else if routes.correlationAckTopics[message.topic] == nil {
                strayAck(.unmatched, on: message.topic)
                return
            }
        }
        let idFields = routes.correlationIDFields(forAckTopic: message.topic)
        guard !idFields.isEmpty else { return }
        var stray = AckTracker.StrayAck.unmatched
        for field in idFields {
            guard let id = AckPayloadEvaluator.correlationID(in: message.payload, at: field) else { continue }
            let key = AckTracker.Key.correlationID(id)
            if let promise = tracker.take(key) {
                let outcome = evaluate(
                    AckPayloadEvaluator.read(payload: message.payload, settings: promise.settings),
                    on: message.topic
                )
                if !promise.fulfil(outcome) { strayAck(.late, on: message.topic) }
                return
            }
            let kind = tracker.classify(key)
            if kind != .unmatched { stray = kind }
        }
        // The reply to the bridge's own status request shares the topic with command replies;
        // it is read as the point's state, and it answers no command.
        if stray == .unmatched, routes.isStatusReply(topic: message.topic, payload: message.payload) { return }
        strayAck(stray, on: message.topic)
    }

    /// The outcome of an acknowledgement a write waits for. A code the bridge does not answer
    /// with (99, say, or 05) is answered 04; the device's own code is logged here, once per
    /// acknowledgement, so that the device can be fixed.
    private func evaluate(_ reading: AckPayloadEvaluator.Reading, on topic: String) -> WriteOutcome {
        if let code = reading.unanswerableCode {
            logger.warning(
                "the device's acknowledgement names an exception code the bridge does not answer with; answering 04",
                metadata: [
                    "topic": "\(topic)", "device_code": "\(code) (\(ModbusExceptionCode(rawValue: code)))",
                    "outcome": "\(reading.outcome)",
                ]
            )
        }
        return reading.outcome
    }

    /// A point reported a new state (not a retained one): it may confirm a state_echo write.
    func offerState(point name: String, value: PointValue) {
        tracker.offerState(point: name, value: value)
    }

    private func strayAck(_ kind: AckTracker.StrayAck, on topic: String) {
        switch kind {
        case .late: metrics.lateAcks.increment()
        case .duplicate: metrics.duplicateAcks.increment()
        case .unmatched: metrics.unmatchedAcks.increment()
        }
        logger.debug("an acknowledgement nobody waits for", metadata: ["topic": "\(topic)", "kind": "\(kind)"])
    }

    // MARK: Writes

    /// Applies a Modbus write: plans it per point, publishes every command, and returns only
    /// when every point was acknowledged (docs/design.md §4). Every outcome is counted, as a
    /// write and as a Modbus request.
    func write(_ request: ModbusWriteRequest) async throws {
        do {
            try await perform(request, topics.current)
        } catch {
            // The server answers any other error 04.
            let code = (error as? ModbusException)?.code ?? .serverDeviceFailure
            metrics.writes(code).increment()
            throw error
        }
        metrics.writes(nil).increment()
    }

    private func perform(_ request: ModbusWriteRequest, _ topics: BridgeTopicMap) async throws {
        let map = topics.map
        let cache = topics.cache
        let planned = try topics.planner.plan(
            unit: request.unitID,
            area: request.area,
            address: request.address,
            values: request.values,
            changedBits: request.mask?.changedBits
        )
        let started = ContinuousClock.now
        guard client.state == .connected, telemetry.state == .connected, state.withLockedValue({ $0.acceptsCommands })
        else {
            record(
                planned,
                LastCommandStatus(outcome: .brokerUnavailable, exceptionCode: .gatewayPathUnavailable),
                topics
            )
            logWrites(
                planned,
                .brokerUnavailable(reason: "the MQTT broker is not connected"),
                startedAt: started,
                topics
            )
            throw ModbusException(.gatewayPathUnavailable, "the MQTT broker is not connected")
        }
        // A device that is gone would apply the command whenever it comes back, if ever.
        for write in planned {
            guard let device = map.deviceOfPoint[write.point], map.devices[device].offlineWrites == .refuse,
                cache.isDeviceOffline(device)
            else { continue }
            // The offline device's points say why; the others of the write were not sent either.
            for other in planned {
                let offline = map.deviceOfPoint[other.point].map { cache.isDeviceOffline($0) } ?? false
                cache.recordCommand(
                    point: other.point,
                    LastCommandStatus(
                        outcome: offline ? .deviceOffline : .notSent,
                        exceptionCode: .gatewayTargetDeviceFailedToRespond
                    )
                )
            }
            logWrites(
                planned,
                .rejected(code: .gatewayTargetDeviceFailedToRespond, reason: "device offline, nothing published"),
                startedAt: started,
                topics
            )
            throw ModbusException(
                .gatewayTargetDeviceFailedToRespond,
                "device \(map.devices[device].name) of point \(map.points[write.point].name) is offline"
            )
        }
        let maxWritesInFlight = max(1, topics.configuration.modbus.maxWritesInFlight)
        let inFlight = state.withLockedValue { state -> Int? in
            guard state.inFlight < maxWritesInFlight else { return nil }
            state.inFlight += 1
            return state.inFlight
        }
        guard let inFlight else {
            record(planned, LastCommandStatus(outcome: .notSent, exceptionCode: .serverDeviceBusy), topics)
            logWrites(
                planned,
                .rejected(code: .serverDeviceBusy, reason: "too many writes in flight"),
                startedAt: started,
                topics
            )
            throw ModbusException(
                .serverDeviceBusy,
                "\(maxWritesInFlight) writes are already waiting for acknowledgements"
            )
        }
        metrics.writesInFlight.record(inFlight)
        defer {
            metrics.writesInFlight.record(
                state.withLockedValue { state in
                    state.inFlight -= 1
                    return state.inFlight
                }
            )
        }

        let tokens = planned.map { cache.lastUpdate(of: $0.point) }
        // Sparkplug writes to metrics of one device travel in one DCMD (``sparkplugBatches``).
        let results = await withTaskGroup(of: [(point: Int, result: CommandResult)].self) { group in
            for batch in Self.sparkplugBatches(planned, map) {
                group.addTask {
                    if map.points[batch[0].point].sparkplug != nil { return await self.sparkplugCommand(batch, topics) }
                    return [(batch[0].point, await self.command(batch[0], topics))]
                }
            }
            var results: [(point: Int, result: CommandResult)] = []
            for await result in group { results += result }
            return results
        }
        // A reload may have put another map in force while the write waited: its outcome goes
        // to the map in force now, for each point that is still the same point there.
        let now = self.topics.current
        // Before the reply: a master that reads the last-command register after it sees this write.
        for (point, result) in results {
            if let index = now.sameIndex(as: point, of: topics) { now.cache.recordCommand(point: index, result.status) }
        }
        for write in planned {
            guard let result = results.first(where: { $0.point == write.point }) else { continue }
            lastWrites.record(
                point: map.points[write.point].name,
                value: write.value,
                outcome: result.result.outcome,
                startedAt: started
            )
        }
        let outcome = WriteOutcome.combined(results.map(\.result.outcome))
        if let code = outcome.exceptionCode {
            logger.warning(
                "write failed",
                metadata: [
                    "unit": "\(request.unitID)", "area": "\(request.area)", "address": "\(request.address)",
                    "outcome": "\(outcome)",
                ]
            )
            throw ModbusException(code, "\(outcome)")
        }
        // The device confirmed: reads return the written value until its next state message,
        // unless one arrived while the write waited (it is newer, and may differ: a clamped
        // value). With state_echo the state message itself was the confirmation. Broker mode
        // confirms nothing about the device: a point with a state topic waits for it.
        for (write, token) in zip(planned, tokens) {
            let point = map.points[write.point]
            guard let index = now.sameIndex(as: write.point, of: topics) else { continue }
            switch point.command?.ack.mode {
            case .stateEcho?: continue
            case .broker? where point.stateTopic != nil: continue
            default: now.cache.update(point: index, image: write.image, ifUnchangedSince: token)
            }
        }
    }

    /// Logs the same outcome for every point of a write refused as a whole (the status page).
    private func logWrites(
        _ planned: [PlannedPointWrite],
        _ outcome: WriteOutcome,
        startedAt start: ContinuousClock.Instant,
        _ topics: BridgeTopicMap
    ) {
        for write in planned {
            lastWrites.record(
                point: topics.map.points[write.point].name,
                value: write.value,
                outcome: outcome,
                startedAt: start
            )
        }
    }

    /// Records the same status for every point of a write that was refused as a whole.
    private func record(_ planned: [PlannedPointWrite], _ status: LastCommandStatus, _ topics: BridgeTopicMap) {
        for write in planned { topics.cache.recordCommand(point: write.point, status) }
    }

    /// How one point's command ended, and what its last-command register says about it.
    struct CommandResult: Sendable {
        var outcome: WriteOutcome
        var status: LastCommandStatus

        /// A command that was published (or whose publish failed).
        init(_ outcome: WriteOutcome) {
            self.outcome = outcome
            self.status = LastCommandStatus(outcome)
        }

        /// A command the bridge did not send.
        init(notSent outcome: WriteOutcome) {
            self.outcome = outcome
            self.status = LastCommandStatus(outcome: .notSent, exceptionCode: outcome.exceptionCode)
        }
    }

    /// Publishes one point's command and waits for its acknowledgement.
    private func command(_ write: PlannedPointWrite, _ topics: BridgeTopicMap) async -> CommandResult {
        let point = topics.map.points[write.point]
        guard let command = point.command else {
            return CommandResult(notSent: .rejected(code: .illegalDataAddress, reason: "\(point.name) is read-only"))
        }
        let ack = command.ack
        let sequence = state.withLockedValue { state in
            state.commandSequence += 1
            return state.commandSequence
        }
        let correlationID = "\(instanceTag)-\(sequence)"
        let payload: [UInt8]
        do {
            payload = try CommandEncoder(point: point).encode(write.value, correlationID: correlationID)
        } catch {
            return CommandResult(notSent: .rejected(code: .illegalDataValue, reason: "\(point.name): \(error)"))
        }
        let qos = MQTTQoS(rawValue: UInt8(command.qos.rawValue)) ?? .atLeastOnce
        logger.debug(
            "command",
            metadata: [
                "point": "\(point.name)", "topic": "\(command.topic)", "value": "\(write.value)",
                "id": "\(correlationID)",
            ]
        )

        switch ack.mode {
        case .broker:
            let start = ContinuousClock.now
            do {
                try await client.publish(
                    topic: command.topic,
                    payload: payload,
                    qos: max(qos, .atLeastOnce),
                    retain: command.retain,
                    timeout: ack.timeout
                )
                metrics.recordAckLatency(ContinuousClock.now - start, mode: .broker)
                return CommandResult(.acknowledged)
            } catch {
                return CommandResult(Self.outcome(ofPublishError: error))
            }
        case .mqtt5:
            let key = AckTracker.Key.correlationData(Array(correlationID.utf8))
            let promise = tracker.register(key, settings: ack)
            let properties = MQTTProperties(
                responseTopic: topics.routes.responseTopic(for: point),
                correlationData: Array(correlationID.utf8)
            )
            return CommandResult(
                await publishAndWait(command, payload, qos, properties, promise, ack) { self.tracker.remove(key) }
            )
        case .correlationID:
            let key = AckTracker.Key.correlationID(correlationID)
            let promise = tracker.register(key, settings: ack)
            return CommandResult(
                await publishAndWait(command, payload, qos, MQTTProperties(), promise, ack) {
                    self.tracker.remove(key)
                }
            )
        case .stateEcho:
            let (id, promise) = tracker.registerEcho(of: point, value: write.value, settings: ack)
            return CommandResult(
                await publishAndWait(command, payload, qos, MQTTProperties(), promise, ack) {
                    self.tracker.removeEcho(point: point.name, id: id)
                }
            )
        }
    }

    private func publishAndWait(
        _ command: CommandSettings,
        _ payload: [UInt8],
        _ qos: MQTTQoS,
        _ properties: MQTTProperties,
        _ promise: AckPromise,
        _ ack: AckSettings,
        cleanup: @Sendable () -> Void
    ) async -> WriteOutcome {
        defer { cleanup() }
        // One deadline for the publish and the acknowledgement together: the Modbus reply never
        // waits longer than the point's ack timeout.
        let start = ContinuousClock.now
        let deadline = start + ack.timeout
        var published = true
        do {
            try await client.publish(
                topic: command.topic,
                payload: payload,
                qos: qos,
                retain: command.retain,
                properties: properties,
                timeout: ack.timeout
            )
        } catch {
            published = false
            promise.fulfil(Self.outcome(ofPublishError: error))
        }
        let outcome = await promise.outcome(timeout: max(.zero, deadline - ContinuousClock.now))
        // The device answered, yes or no: how long it took is the latency of its acknowledgements.
        switch outcome {
        case .acknowledged, .rejected:
            if published { metrics.recordAckLatency(ContinuousClock.now - start, mode: ack.mode) }
        case .timedOut, .brokerUnavailable:
            break
        }
        return outcome
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
