import Foundation
import Logging
import MQTTModbusBridgeBroker
import MQTTModbusBridgeConfiguration
import Mosquitto
import ServiceLifecycle
import SparkplugB
import Synchronization

/// A Sparkplug B edge node for the Sparkplug devices of a configuration: one per edge node, with
/// its own MQTT connection, whose will is the node's NDEATH.
///
/// It publishes the NBIRTH (`bdSeq`, `Node Control/Rebirth`, the node's metrics) and a DBIRTH
/// per device, every metric with a name, an alias and a datatype (the point's `datatype:`, or
/// one that fits its type: Float for scaled integers); then DATA by alias for the read-only
/// points, with `seq` wrapping from 255 to 0. A DCMD or NCMD is applied and reported in a DATA
/// message; `Node Control/Rebirth` makes it publish its births again. Fault switches make it
/// skip a `seq`, name an alias no birth gave, or never report a command's value.
public final class SparkplugEdgeNodeSimulator: Service, Sendable {
    /// Simulator settings.
    public struct Options: Sendable {
        /// How often read-only metrics get a new value; `nil`: births only.
        public var telemetryInterval: Duration? = .seconds(1)
        /// Skip one `seq` every this many DATA messages (a lost message); `nil`: never.
        public var seqGapEvery: Int?
        /// Name an alias no birth gave every this many DATA messages; `nil`: never.
        public var unknownAliasEvery: Int?
        /// Apply commands but never report the new values (the bridge's writes time out).
        public var neverConfirm = false
        /// The MQTT client id (default: the bridge's client id + "-sparkplug-" + the node id).
        public var clientID: String?

        /// Options with every default.
        public init() {}
    }

    /// A metric the node publishes.
    struct SimulatedMetric: Sendable {
        var name: String
        var alias: UInt64
        var datatype: SparkplugDataType
        var point: PointConfiguration
        var writable: Bool
    }

    private struct State {
        var seq: UInt64 = 0
        var dataMessages = 0
        var values: [String: PointValue] = [:]
        var tick: Int64 = 0
    }

    /// The edge node.
    public let node: SparkplugNodeKey
    private let bdSeq: UInt64 = 0
    /// Metrics by device id (`nil`: the node's own).
    private let metrics: [String?: [SimulatedMetric]]
    private let options: Options
    private let client: MQTTClient
    private let logger: Logger
    private let state = Mutex(State())

    /// One simulator per edge node of the configuration's Sparkplug devices.
    public static func nodes(
        of configuration: BridgeConfiguration,
        options: Options = Options(),
        logger: Logger = Logger(label: "simulator.sparkplug")
    ) throws -> [SparkplugEdgeNodeSimulator] {
        var seen: [SparkplugNodeKey] = []
        for device in configuration.devices {
            guard let source = device.sparkplug else { continue }
            let node = SparkplugNodeKey(source)
            if !seen.contains(node) { seen.append(node) }
        }
        return try seen.map {
            try SparkplugEdgeNodeSimulator(node: $0, configuration: configuration, options: options, logger: logger)
        }
    }

    /// Creates the simulator of `node` for the points of `configuration`.
    public init(
        node: SparkplugNodeKey,
        configuration: BridgeConfiguration,
        options: Options = Options(),
        logger: Logger = Logger(label: "simulator.sparkplug")
    ) throws {
        self.node = node
        self.options = options
        self.logger = logger
        var byDevice: [String?: [SimulatedMetric]] = [:]
        var alias: UInt64 = 0
        var values: [String: PointValue] = [:]
        for point in configuration.points {
            guard let metric = point.sparkplug, let deviceName = point.device,
                let source = configuration.device(named: deviceName)?.sparkplug, SparkplugNodeKey(source) == node,
                byDevice[source.deviceID]?.contains(where: { $0.name == metric.name }) != true
            else { continue }
            alias += 1
            byDevice[source.deviceID, default: []].append(
                SimulatedMetric(
                    name: metric.name,
                    alias: alias,
                    datatype: metric.datatype ?? Self.datatype(for: point),
                    point: point,
                    writable: point.isWritable
                )
            )
            values[metric.name] = DeviceSimulator.initialValue(for: point)
        }
        self.metrics = byDevice
        var mqtt = try MQTTConfiguration(bridgeBroker: configuration.broker)
        mqtt.clientID = options.clientID ?? "\(configuration.broker.clientID)-sparkplug-\(node.edgeNodeID)"
        // The node's death certificate: delivered by the broker when the node is gone.
        mqtt.will = MQTTWill(
            topic: Self.topic(node, .nodeDeath),
            payload: Self.deathPayload(bdSeq: 0),
            qos: .atLeastOnce,
            retain: false
        )
        mqtt.reconnect.retryInitialConnect = true
        self.client = try MQTTClient(configuration: mqtt, logger: logger.component("mqtt"))
        state.withLock { $0.values = values }
    }

    /// The datatype a point's metric gets when the configuration names none.
    static func datatype(for point: PointConfiguration) -> SparkplugDataType {
        if point.type.isInteger && !point.hasIdentityScaling { return .float }
        switch point.type {
        case .bool, .bit: return .boolean
        case .int16: return .int16
        case .uint16: return .uint16
        case .int32: return .int32
        case .uint32: return .uint32
        case .int64: return .int64
        case .uint64: return .uint64
        case .float32: return .float
        case .float64: return .double
        case .string: return .string
        }
    }

    static func topic(_ node: SparkplugNodeKey, _ type: SparkplugTopic.MessageType, device: String? = nil) -> String {
        SparkplugTopic(node: node, messageType: type, deviceID: device).text
    }

    static func deathPayload(bdSeq: UInt64) -> [UInt8] {
        SparkplugPayload(
            timestamp: now(),
            metrics: [
                .init(
                    name: SparkplugPayload.bdSeqMetric,
                    datatype: SparkplugDataType.uint64.rawValue,
                    value: .long(bdSeq)
                )
            ]
        ).encoded()
    }

    static func now() -> UInt64 { UInt64(max(0, (Date().timeIntervalSince1970 * 1000).rounded())) }

    /// Connects, publishes the births, then answers commands and publishes telemetry until
    /// cancelled or shut down gracefully; ends with an NDEATH.
    public func run() async throws {
        try await client.connect()
        try await client.subscribe(Self.topic(node, .nodeCommand), qos: .atLeastOnce)
        try await client.subscribe(
            SparkplugTopic(node: node, messageType: .deviceCommand, deviceID: "+").text,
            qos: .atLeastOnce
        )
        await publishBirths()
        logger.info("Sparkplug edge node simulator running", metadata: ["node": "\(node)"])
        await cancelWhenGracefulShutdown {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await self.answerCommands() }
                group.addTask { await self.rebirthAfterReconnection() }
                if let interval = self.options.telemetryInterval {
                    group.addTask { await self.publishTelemetry(every: interval) }
                }
                await group.next()
                group.cancelAll()
            }
        }
        // A clean disconnect suppresses the will: say it ourselves.
        try? await client.publish(
            topic: Self.topic(node, .nodeDeath),
            payload: Self.deathPayload(bdSeq: bdSeq),
            qos: .atLeastOnce,
            retain: false,
            timeout: .seconds(2)
        )
        await client.disconnect()
    }

    private func nextSeq() -> UInt64 {
        state.withLock { state in
            state.seq = (state.seq + 1) % 256
            return state.seq
        }
    }

    private func metric(_ simulated: SimulatedMetric, value: PointValue?, birth: Bool) -> SparkplugPayload.Metric {
        let encoded = value.flatMap { try? SparkplugPayload.Value($0, as: simulated.datatype) }
        return SparkplugPayload.Metric(
            name: birth ? simulated.name : nil,
            alias: simulated.alias,
            timestamp: Self.now(),
            datatype: birth ? simulated.datatype.rawValue : nil,
            isNull: encoded == nil,
            value: encoded
        )
    }

    private func publish(_ topic: String, _ payload: SparkplugPayload) async {
        do {
            try await client.publish(topic: topic, payload: payload.encoded(), qos: .atMostOnce, retain: false)
        } catch {
            logger.warning("cannot publish", metadata: ["topic": "\(topic)", "error": "\(error)"])
        }
    }

    /// NBIRTH (seq 0) and one DBIRTH per device, every metric with its current value.
    private func publishBirths() async {
        let values = state.withLock { state in
            state.seq = 0
            return state.values
        }
        let control: [SparkplugPayload.Metric] = [
            .init(name: SparkplugPayload.bdSeqMetric, datatype: SparkplugDataType.uint64.rawValue, value: .long(bdSeq)),
            .init(
                name: SparkplugPayload.rebirthMetric,
                datatype: SparkplugDataType.boolean.rawValue,
                value: .boolean(false)
            ),
        ]
        let nodeMetrics = (metrics[nil] ?? []).map { metric($0, value: values[$0.name], birth: true) }
        await publish(
            Self.topic(node, .nodeBirth),
            SparkplugPayload(timestamp: Self.now(), seq: 0, metrics: control + nodeMetrics)
        )
        for device in metrics.keys.compactMap({ $0 }).sorted() {
            let deviceMetrics = (metrics[device] ?? []).map { metric($0, value: values[$0.name], birth: true) }
            await publish(
                Self.topic(node, .deviceBirth, device: device),
                SparkplugPayload(timestamp: Self.now(), seq: nextSeq(), metrics: deviceMetrics)
            )
        }
    }

    /// A DATA message of `device` (nil: the node) with these metrics, applying the fault switches.
    private func publishData(device: String?, _ data: [SparkplugPayload.Metric]) async {
        guard !data.isEmpty else { return }
        let (count, skip) = state.withLock { state -> (Int, Bool) in
            state.dataMessages += 1
            let skip = options.seqGapEvery.map { state.dataMessages % $0 == 0 } ?? false
            if skip { state.seq = (state.seq + 1) % 256 }
            return (state.dataMessages, skip)
        }
        var data = data
        if let every = options.unknownAliasEvery, count % every == 0 {
            data.append(.init(alias: 1_000_000, timestamp: Self.now(), value: .int(0)))
        }
        if skip { logger.notice("skipping a seq (fault switch)", metadata: ["node": "\(node)"]) }
        let type: SparkplugTopic.MessageType = device == nil ? .nodeData : .deviceData
        await publish(
            Self.topic(node, type, device: device),
            SparkplugPayload(timestamp: Self.now(), seq: nextSeq(), metrics: data)
        )
    }

    private func publishTelemetry(every interval: Duration) async {
        while true {
            do { try await Task.sleep(for: interval) } catch { return }
            let tick = state.withLock { state in
                state.tick += 1
                return state.tick
            }
            for device in metrics.keys.sorted(by: { ($0 ?? "") < ($1 ?? "") }) {
                let changed = (metrics[device] ?? []).filter { !$0.writable }.map { simulated in
                    let value = DeviceSimulator.telemetryValue(for: simulated.point, tick: tick)
                    state.withLock { $0.values[simulated.name] = value }
                    return metric(simulated, value: value, birth: false)
                }
                await publishData(device: device, changed)
            }
        }
    }

    private func answerCommands() async {
        for await message in client.messages {
            guard let topic = SparkplugTopic(parsing: message.topic), topic.node == node,
                let payload = try? SparkplugPayload.decode(message.payload)
            else { continue }
            if topic.messageType == .nodeCommand,
                payload.metrics.contains(where: {
                    $0.name == SparkplugPayload.rebirthMetric && $0.value == .boolean(true)
                })
            {
                logger.info("rebirth requested", metadata: ["node": "\(node)"])
                await publishBirths()
                continue
            }
            guard topic.messageType == .nodeCommand || topic.messageType == .deviceCommand else { continue }
            let known = metrics[topic.deviceID] ?? []
            var reported: [SparkplugPayload.Metric] = []
            for command in payload.metrics {
                guard
                    let simulated = known.first(where: {
                        $0.writable && ($0.alias == command.alias || (command.name != nil && $0.name == command.name))
                    }),
                    let value = try? command.value?.pointValue(as: simulated.datatype)
                else { continue }
                state.withLock { $0.values[simulated.name] = value }
                reported.append(metric(simulated, value: value, birth: false))
            }
            if options.neverConfirm { continue }
            await publishData(device: topic.deviceID, reported)
        }
    }

    /// After the broker connection comes back, the node is born again (its will may have told
    /// hosts it died).
    private func rebirthAfterReconnection() async {
        var connections = 0
        for await connectionState in client.connectionStates() {
            guard case .connected = connectionState else { continue }
            connections += 1
            if connections > 1 { await publishBirths() }
        }
    }
}
