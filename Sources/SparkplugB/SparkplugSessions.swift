import MQTTModbusBridgeConfiguration

/// What a host application knows of the edge nodes it listens to: each node's session (its
/// birth/death sequence number `bdSeq`, the `seq` it expects next, the aliases its births gave),
/// and whether it is in step with the node. A value type with no I/O: the runtime feeds it
/// every Sparkplug message and acts on what it answers.
///
/// The rules it follows:
/// - An NBIRTH starts a new session: it sets `bdSeq` and `seq`, and the node's metric table;
///   its devices are unborn until their DBIRTH.
/// - Every later message of the node (NDATA, DBIRTH, DDATA, DDEATH) must carry the next `seq`
///   (0...255, wrapping). A gap, DATA naming an alias or name no birth gave, DATA of a device
///   that was not born, or any message of a node whose birth was not seen, puts the node out of
///   step: nothing it sends counts until its next NBIRTH.
/// - An NDEATH ends the session only when its `bdSeq` is the session's: the will of an
///   earlier connection, delivered late, says nothing about the node that is there now.
/// - A DDEATH ends the device's session.
public struct SparkplugSessions: Sendable {
    /// A metric that a birth declared.
    public struct BirthMetric: Sendable, Hashable {
        /// The metric's name.
        public var name: String
        /// Its alias, when the birth gave one: commands then name it by alias.
        public var alias: UInt64?
        /// Its datatype, as the birth gave it.
        public var datatype: SparkplugDataType?
    }

    /// The metrics of one birth, by name and by alias.
    struct MetricTable: Sendable {
        var byName: [String: BirthMetric] = [:]
        var byAlias: [UInt64: String] = [:]

        init(_ metrics: [SparkplugPayload.Metric]) {
            for metric in metrics {
                guard let name = metric.name else { continue }
                byName[name] = BirthMetric(name: name, alias: metric.alias, datatype: metric.knownDatatype)
                if let alias = metric.alias { byAlias[alias] = name }
            }
        }

        func resolve(_ metric: SparkplugPayload.Metric) -> BirthMetric? {
            if let name = metric.name { return byName[name] }
            return metric.alias.flatMap { byAlias[$0] }.flatMap { byName[$0] }
        }
    }

    struct NodeSession: Sendable {
        var bdSeq: UInt64?
        var nextSeq: UInt64
        var metrics: MetricTable
        var devices: [String: MetricTable] = [:]
    }

    /// Nodes in step, by node.
    private var sessions: [SparkplugNodeKey: NodeSession] = [:]
    /// When a rebirth was last requested from each node.
    private var rebirthRequests: [SparkplugNodeKey: ContinuousClock.Instant] = [:]
    /// Nodes with a deferred rebirth request.
    private var rebirthScheduled: Set<SparkplugNodeKey> = []

    /// Creates the state of a host that has heard nothing yet.
    public init() {}

    /// A metric of a message, with the name and datatype its birth gave it.
    public struct ResolvedMetric: Sendable, Hashable {
        /// The metric's name (a DATA message may have named it by alias).
        public var name: String
        /// The datatype: the message's, or else the birth's.
        public var datatype: SparkplugDataType?
        /// The metric as it arrived.
        public var metric: SparkplugPayload.Metric
    }

    /// What a message means for the node's and its devices' points.
    public enum Event: Sendable, Hashable {
        /// The node (`device` nil) or one of its devices was born: its points follow the birth
        /// from now on; a point whose metric the birth lacks has no value. An NBIRTH also
        /// unborns every device of the node until its own DBIRTH.
        case born(SparkplugNodeKey, device: String?, metrics: [ResolvedMetric])
        /// New values of the node's or a device's metrics.
        case data(SparkplugNodeKey, device: String?, metrics: [ResolvedMetric])
        /// The node died (its own NDEATH): its and its devices' points have no value.
        case nodeDied(SparkplugNodeKey)
        /// A device died (DDEATH).
        case deviceDied(SparkplugNodeKey, device: String)
        /// The node is out of step (why is said): its and its devices' points have no value
        /// until its next NBIRTH, which a host application asks for.
        case outOfStep(SparkplugNodeKey, reason: String)
        /// Nothing to do (an NDEATH of an earlier session, a command, ...), and why.
        case ignored(String)
    }

    /// Applies one message and says what it means.
    public mutating func receive(_ topic: SparkplugTopic, _ payload: SparkplugPayload) -> Event {
        let node = topic.node
        switch topic.messageType {
        case .nodeCommand, .deviceCommand:
            return .ignored("a command")
        case .nodeBirth:
            let table = MetricTable(payload.metrics)
            // `seq` is a uint64 on the wire: reduce it before adding, or an NBIRTH carrying
            // 2^64 − 1 traps (found while writing Fuzz/FuzzSparkplug's model of these rules).
            sessions[node] = NodeSession(
                bdSeq: payload.bdSeq,
                nextSeq: ((payload.seq ?? 0) % 256 + 1) % 256,
                metrics: table
            )
            return .born(node, device: nil, metrics: resolve(payload.metrics, in: table))
        case .nodeDeath:
            guard let session = sessions[node] else { return .ignored("NDEATH of a node whose birth was not seen") }
            guard payload.bdSeq == session.bdSeq else {
                return .ignored(
                    "NDEATH with bdSeq \(payload.bdSeq.map(String.init) ?? "none") of an earlier session "
                        + "(the NBIRTH's is \(session.bdSeq.map(String.init) ?? "none"))"
                )
            }
            sessions[node] = nil
            return .nodeDied(node)
        case .nodeData, .deviceBirth, .deviceData, .deviceDeath:
            guard var session = sessions[node] else {
                return .outOfStep(node, reason: "\(topic.messageType.rawValue) before the node's NBIRTH")
            }
            guard let seq = payload.seq, seq == session.nextSeq else {
                sessions[node] = nil
                return .outOfStep(
                    node,
                    reason: "seq \(payload.seq.map(String.init) ?? "missing") where \(session.nextSeq) was next"
                )
            }
            session.nextSeq = (seq + 1) % 256
            let event: Event
            switch topic.messageType {
            case .nodeData:
                guard let resolved = resolveAll(payload.metrics, in: session.metrics) else {
                    sessions[node] = nil
                    return .outOfStep(node, reason: "NDATA names a metric no NBIRTH gave")
                }
                event = .data(node, device: nil, metrics: resolved)
            case .deviceBirth:
                let device = topic.deviceID ?? ""
                let table = MetricTable(payload.metrics)
                session.devices[device] = table
                event = .born(node, device: device, metrics: resolve(payload.metrics, in: table))
            case .deviceData:
                let device = topic.deviceID ?? ""
                guard let table = session.devices[device] else {
                    sessions[node] = nil
                    return .outOfStep(node, reason: "DDATA of device '\(device)' before its DBIRTH")
                }
                guard let resolved = resolveAll(payload.metrics, in: table) else {
                    sessions[node] = nil
                    return .outOfStep(node, reason: "DDATA of device '\(device)' names a metric no DBIRTH gave")
                }
                event = .data(node, device: device, metrics: resolved)
            default:
                let device = topic.deviceID ?? ""
                session.devices[device] = nil
                event = .deviceDied(node, device: device)
            }
            sessions[node] = session
            return event
        }
    }

    private func resolve(_ metrics: [SparkplugPayload.Metric], in table: MetricTable) -> [ResolvedMetric] {
        metrics.compactMap { metric in
            guard let name = metric.name else { return nil }
            return ResolvedMetric(
                name: name,
                datatype: metric.knownDatatype ?? table.byName[name]?.datatype,
                metric: metric
            )
        }
    }

    /// Every metric resolved by name or alias; `nil` when one is unknown.
    private func resolveAll(_ metrics: [SparkplugPayload.Metric], in table: MetricTable) -> [ResolvedMetric]? {
        var resolved: [ResolvedMetric] = []
        for metric in metrics {
            guard let birth = table.resolve(metric) else { return nil }
            resolved.append(
                ResolvedMetric(name: birth.name, datatype: metric.knownDatatype ?? birth.datatype, metric: metric)
            )
        }
        return resolved
    }

    /// Whether the node's session is in step (its NBIRTH seen, nothing missed since).
    public func isInStep(_ node: SparkplugNodeKey) -> Bool { sessions[node] != nil }

    /// Whether the device was born in the node's current session.
    public func isBorn(_ node: SparkplugNodeKey, device: String) -> Bool { sessions[node]?.devices[device] != nil }

    /// The birth's record of a metric of the node (`device` nil) or of one of its devices, in the
    /// current session; `nil` when the session or the metric is unknown.
    public func birthMetric(_ node: SparkplugNodeKey, device: String?, name: String) -> BirthMetric? {
        guard let session = sessions[node] else { return nil }
        if let device { return session.devices[device]?.byName[name] }
        return session.metrics.byName[name]
    }

    /// When to ask a node that is out of step for a rebirth.
    public enum RebirthDecision: Sendable, Hashable {
        /// Now (recorded as asked).
        case now
        /// Not before this much time: the last request was too recent. Call
        /// ``deferredRebirthDue(_:now:)`` then.
        case after(Duration)
        /// A deferred request is already waiting.
        case pending
    }

    /// Whether to ask `node` for a rebirth now: at most once per `interval`; a request that
    /// comes too soon is deferred (once), not dropped, so a node that goes quiet out of step is
    /// still asked.
    public mutating func rebirthDecision(
        _ node: SparkplugNodeKey,
        now: ContinuousClock.Instant,
        interval: Duration
    ) -> RebirthDecision {
        if let last = rebirthRequests[node], now - last < interval {
            if rebirthScheduled.contains(node) { return .pending }
            rebirthScheduled.insert(node)
            return .after(interval - (now - last))
        }
        rebirthRequests[node] = now
        rebirthScheduled.remove(node)
        return .now
    }

    /// A deferred rebirth request is due: whether it is still needed (the node is still out of
    /// step); if so it is recorded as asked.
    public mutating func deferredRebirthDue(_ node: SparkplugNodeKey, now: ContinuousClock.Instant) -> Bool {
        guard rebirthScheduled.remove(node) != nil, sessions[node] == nil else { return false }
        rebirthRequests[node] = now
        return true
    }

    /// Forgets every session (the broker connection was lost: a death may have been missed).
    public mutating func reset() {
        sessions = [:]
        rebirthRequests = [:]
        rebirthScheduled = []
    }

    /// Keeps only the sessions of `nodes` (a reload dropped the others).
    public mutating func keep(only nodes: Set<SparkplugNodeKey>) {
        sessions = sessions.filter { nodes.contains($0.key) }
        rebirthRequests = rebirthRequests.filter { nodes.contains($0.key) }
        rebirthScheduled = rebirthScheduled.filter { nodes.contains($0) }
    }
}

extension SparkplugPayload {
    /// The NCMD that asks an edge node for a new birth sequence: `Node Control/Rebirth = true`.
    public static func rebirthRequest(timestamp: UInt64) -> SparkplugPayload {
        SparkplugPayload(
            timestamp: timestamp,
            metrics: [
                Metric(
                    name: rebirthMetric,
                    timestamp: timestamp,
                    datatype: SparkplugDataType.boolean.rawValue,
                    value: .boolean(true)
                )
            ]
        )
    }
}
