import Foundation
import Logging
import MQTTModbusBridgeConfiguration
import Mosquitto
import NIOConcurrencyHelpers
import SparkplugB

/// The bridge as a Sparkplug B consumer, for one topic map: which configured devices and points
/// each edge node's messages feed, and the node sessions (``SparkplugSessions``) that say what
/// a message means. Births, data and deaths become cache updates and availability; a node out
/// of step makes its points stale and, when the bridge is a host application, is asked for a
/// rebirth (an NCMD, QoS 0, not retained, at most once per `rebirth_interval`).
///
/// The sessions are carried to the next topic map by a reload (``carrySessions(from:)``): a
/// reload does not make the bridge forget which aliases a node gave.
final class SparkplugIngest: Sendable {
    /// A configured device (an index into ``RegisterMap/devices``) and where it sits.
    struct DeviceRef: Sendable, Hashable {
        var index: Int
        var node: SparkplugNodeKey
        var deviceID: String?
    }

    let host: SparkplugHostSettings
    /// The configured devices of each edge node (its own metrics and its devices').
    let devicesByNode: [SparkplugNodeKey: [DeviceRef]]
    /// For each configured Sparkplug device (by index), its points by metric name.
    let pointsByMetric: [Int: [String: [Int]]]
    /// For each configured Sparkplug device (by index), all its points.
    let pointsOfDevice: [Int: [Int]]
    private let sessions = NIOLockedValueBox(SparkplugSessions())

    init(map: RegisterMap, host: SparkplugHostSettings) {
        self.host = host
        var byNode: [SparkplugNodeKey: [DeviceRef]] = [:]
        for (index, device) in map.devices.enumerated() {
            guard let source = device.sparkplug else { continue }
            let node = SparkplugNodeKey(source)
            byNode[node, default: []].append(DeviceRef(index: index, node: node, deviceID: source.deviceID))
        }
        var byMetric: [Int: [String: [Int]]] = [:]
        var ofDevice: [Int: [Int]] = [:]
        for (index, point) in map.points.enumerated() {
            guard let metric = point.sparkplug, let device = map.deviceOfPoint[index] else { continue }
            byMetric[device, default: [:]][metric.name, default: []].append(index)
            ofDevice[device, default: []].append(index)
        }
        self.devicesByNode = byNode
        self.pointsByMetric = byMetric
        self.pointsOfDevice = ofDevice
    }

    /// Whether any configured device is a Sparkplug device.
    var isEmpty: Bool { devicesByNode.isEmpty }

    /// Whether `topic` is a Sparkplug topic of a configured edge node.
    func handles(_ topic: String) -> Bool {
        guard !devicesByNode.isEmpty, topic.hasPrefix(SparkplugSource.namespace + "/"),
            let parsed = SparkplugTopic(parsing: topic)
        else { return false }
        return devicesByNode[parsed.node] != nil
    }

    /// Takes over the sessions of an earlier map's nodes that this map still has.
    func carrySessions(from old: SparkplugIngest) {
        var carried = old.sessions.withLockedValue { $0 }
        carried.keep(only: Set(devicesByNode.keys))
        sessions.withLockedValue { $0 = carried }
    }

    /// Forgets every session: the broker connection was lost, and a death may be missed meanwhile.
    func reset() {
        sessions.withLockedValue { $0.reset() }
    }

    /// The metric a write to point `index` commands, as the node's current session declared
    /// it: its alias (when the birth gave one) and its datatype (the configuration's, or else the
    /// birth's). `nil`: no birth of the metric is known and the configuration names no datatype.
    func commandTarget(
        point index: Int,
        map: RegisterMap
    ) -> (name: String, alias: UInt64?, datatype: SparkplugDataType)? {
        let point = map.points[index]
        guard let metric = point.sparkplug, let device = map.deviceOfPoint[index],
            let source = map.devices[device].sparkplug
        else { return nil }
        let birth = sessions.withLockedValue {
            $0.birthMetric(SparkplugNodeKey(source), device: source.deviceID, name: metric.name)
        }
        guard let datatype = metric.datatype ?? birth?.datatype else { return nil }
        return (metric.name, birth?.alias, datatype)
    }

    /// What the runtime must do after a message, besides the cache updates done here.
    struct Outcome: Sendable {
        /// Point values that are new state (not a birth, not retained): they may confirm a write.
        var confirmations: [(point: String, value: PointValue)] = []
        /// The node to ask for a rebirth, when the bridge is a host and the interval allows.
        var rebirth: SparkplugNodeKey?
        /// A node to ask later (the interval does not allow it yet), and when.
        var deferredRebirth: (node: SparkplugNodeKey, delay: Duration)?
    }

    /// Applies one message of a configured node to `cache`, logging what it changes.
    func handle(
        _ message: MQTTMessage,
        map: RegisterMap,
        cache: PointCache,
        metrics: BridgeMetrics,
        logger: Logger
    ) -> Outcome {
        var outcome = Outcome()
        guard let topic = SparkplugTopic(parsing: message.topic), let devices = devicesByNode[topic.node] else {
            return outcome
        }
        if topic.messageType == .nodeCommand || topic.messageType == .deviceCommand { return outcome }
        let payload: SparkplugPayload
        do {
            payload = try SparkplugPayload.decode(message.payload)
        } catch {
            metrics.decodeFailures.increment()
            logger.warning(
                "Sparkplug payload not usable",
                metadata: ["topic": "\(message.topic)", "error": "\(error)", "bytes": "\(message.payload.count)"]
            )
            return outcome
        }
        let event = sessions.withLockedValue { $0.receive(topic, payload) }
        switch event {
        case .born(let node, let device, let born):
            for ref in devices where ref.deviceID == device {
                cache.setAvailability(device: ref.index, online: true)
                apply(born, to: ref.index, birth: true, map: map, cache: cache, metrics: metrics, logger: logger)
            }
            // A new node session: its devices count again once their own DBIRTH comes.
            if device == nil {
                for ref in devices where ref.deviceID != nil { cache.setAvailability(device: ref.index, online: false) }
            }
            logger.info(
                "Sparkplug \(device == nil ? "NBIRTH" : "DBIRTH")",
                metadata: ["node": "\(node)", "device": "\(device ?? "-")", "metrics": "\(born.count)"]
            )
        case .data(_, let device, let values):
            for ref in devices where ref.deviceID == device {
                let confirmed = apply(
                    values,
                    to: ref.index,
                    birth: false,
                    map: map,
                    cache: cache,
                    metrics: metrics,
                    logger: logger
                )
                if !message.retain { outcome.confirmations += confirmed }
            }
        case .nodeDied(let node):
            for ref in devices { cache.setAvailability(device: ref.index, online: false) }
            logger.notice(
                "Sparkplug NDEATH: the node's points answer their missing-value policy",
                metadata: ["node": "\(node)"]
            )
        case .deviceDied(let node, let device):
            for ref in devices where ref.deviceID == device { cache.setAvailability(device: ref.index, online: false) }
            logger.notice(
                "Sparkplug DDEATH: the device's points answer their missing-value policy",
                metadata: ["node": "\(node)", "device": "\(device)"]
            )
        case .outOfStep(let node, let reason):
            for ref in devices { cache.setAvailability(device: ref.index, online: false) }
            var asks = false
            if host.isHost {
                switch sessions.withLockedValue({ $0.rebirthDecision(node, now: .now, interval: host.rebirthInterval) })
                {
                case .now:
                    outcome.rebirth = node
                    asks = true
                case .after(let delay):
                    outcome.deferredRebirth = (node, delay)
                    asks = true
                case .pending:
                    asks = true
                }
            }
            logger.warning(
                asks
                    ? "Sparkplug node out of step; requesting a rebirth"
                    : "Sparkplug node out of step; its points are stale until its next NBIRTH",
                metadata: ["node": "\(node)", "reason": "\(reason)"]
            )
        case .ignored(let reason):
            logger.debug("Sparkplug message ignored", metadata: ["topic": "\(message.topic)", "reason": "\(reason)"])
        }
        return outcome
    }

    /// Updates the points of device `index` from `values`; returns the live values (for write
    /// confirmations). A birth also clears the device's points whose metric it lacks.
    @discardableResult
    private func apply(
        _ values: [SparkplugSessions.ResolvedMetric],
        to index: Int,
        birth: Bool,
        map: RegisterMap,
        cache: PointCache,
        metrics: BridgeMetrics,
        logger: Logger
    ) -> [(point: String, value: PointValue)] {
        guard let byMetric = pointsByMetric[index] else { return [] }
        var updated: Set<Int> = []
        var live: [(point: String, value: PointValue)] = []
        for resolved in values {
            guard let points = byMetric[resolved.name] else { continue }
            let metric = resolved.metric
            for pointIndex in points {
                let point = map.points[pointIndex]
                updated.insert(pointIndex)
                if metric.isHistorical { continue }
                let datatype = point.sparkplug?.datatype ?? resolved.datatype
                if birth, let born = resolved.datatype, !born.fits(point.type) {
                    logger.warning(
                        "Sparkplug metric's datatype does not fit the point's type",
                        metadata: [
                            "point": "\(point.name)", "metric": "\(resolved.name)", "datatype": "\(born)",
                            "type": "\(point.type.name)", "fix": "make the point \(born.suggestedPointTypes)",
                        ]
                    )
                }
                guard !metric.isNull, metric.quality == .good, let value = metric.value else {
                    // No value, or one its own quality says is not live: missing, not the old one.
                    cache.invalidate(point: pointIndex)
                    continue
                }
                do {
                    guard let datatype else { throw SparkplugValueError("the metric's datatype is not known") }
                    var pointValue = try value.pointValue(as: datatype)
                    if case .bool(let flag) = pointValue, point.type.isNumeric { pointValue = .integer(flag ? 1 : 0) }
                    let image = try RegisterEncoder(point: point).encode(pointValue)
                    cache.update(point: pointIndex, image: image)
                    metrics.messagesDecoded.increment()
                    live.append((point.name, pointValue))
                } catch {
                    metrics.decodeFailures.increment()
                    cache.invalidate(point: pointIndex)
                    logger.warning(
                        "Sparkplug metric not usable; the point has no value until a usable one",
                        metadata: ["point": "\(point.name)", "metric": "\(resolved.name)", "error": "\(error)"]
                    )
                }
            }
        }
        if birth {
            for pointIndex in pointsOfDevice[index] ?? [] where !updated.contains(pointIndex) {
                cache.invalidate(point: pointIndex)
            }
        }
        return live
    }

    /// A deferred rebirth request is due: whether to send it (the node is still out of step).
    func deferredRebirthDue(_ node: SparkplugNodeKey) -> Bool {
        sessions.withLockedValue { $0.deferredRebirthDue(node, now: .now) }
    }

    /// The topic and payload of a rebirth request to `node`.
    static func rebirthRequest(for node: SparkplugNodeKey) -> (topic: String, payload: [UInt8]) {
        (node.commandTopic, SparkplugPayload.rebirthRequest(timestamp: Self.nowMilliseconds()).encoded())
    }

    /// Milliseconds since 1970-01-01 UTC.
    static func nowMilliseconds() -> UInt64 {
        UInt64(max(0, (Date().timeIntervalSince1970 * 1000).rounded()))
    }

    /// The STATE payload of a host application: `{"online":true,"timestamp":…}`.
    static func statePayload(online: Bool) -> [UInt8] {
        Array("{\"online\":\(online),\"timestamp\":\(nowMilliseconds())}".utf8)
    }
}
