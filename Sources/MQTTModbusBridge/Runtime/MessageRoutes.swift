import MQTTModbusBridgeConfiguration
import Mosquitto

/// Which topics the bridge subscribes to, and what each incoming topic means: a point's state,
/// an MQTT 5 response, or a correlation-id acknowledgement.
struct MessageRoutes: Sendable {
    struct Subscription: Sendable, Hashable {
        var topic: String
        var qos: MQTTQoS
    }

    /// Every filter to subscribe to, once each, with the highest QoS any point asks for.
    let subscriptions: [Subscription]
    /// MQTT 5 response topics (ack mode mqtt5).
    let responseTopics: Set<String>
    /// Ack topics of the correlation_id mode, with the JSON fields that carry the id there.
    let correlationAckTopics: [String: [JSONPath]]
    /// Availability topics, with the devices (indices into ``RegisterMap/devices``) each reports.
    let availabilityTopics: [String: [Int]]
    /// Topics where replies to the bridge's own status requests arrive (a Shelly's `<source>/rpc`,
    /// which also carries command replies), with what marks such a reply (its id).
    private let statusReplies: [String: [StateSource.Match]]
    /// The topics (and filters) acknowledgements arrive on: the MQTT 5 response topics and the
    /// correlation_id ack topics, sorted. The bridge receives them apart from telemetry, so that
    /// a flood of state messages neither delays nor drops an acknowledgement (docs/design.md
    /// §4.9). State topics are not among them, even those a state_echo write waits on: they
    /// carry the telemetry itself.
    let ackFilters: [String]
    /// The ack filters that carry nothing but acknowledgements: what a separate command
    /// connection (`broker.command_connection: separate`) subscribes to instead of the main one.
    /// An ack topic that is also a state or availability topic stays on the main connection,
    /// where its telemetry is.
    let commandFilters: Set<String>
    private let exactStateTopics: [String: [Int]]
    private let wildcardStateTopics: [(filter: String, point: Int)]
    private let responseTopicByPoint: [Int: String]

    init(map: RegisterMap) {
        var qosByTopic: [String: MQTTQoS] = [:]
        var exact: [String: [Int]] = [:]
        var wildcard: [(filter: String, point: Int)] = []
        var responses: Set<String> = []
        var correlation: [String: [JSONPath]] = [:]
        var responseTopicByPoint: [Int: String] = [:]
        var statusReplies: [String: [StateSource.Match]] = [:]
        var telemetryFilters: Set<String> = []
        func want(_ topic: String, _ qos: QoSLevel, ack: Bool = false) {
            let level = MQTTQoS(rawValue: UInt8(qos.rawValue)) ?? .atLeastOnce
            qosByTopic[topic] = max(qosByTopic[topic] ?? .atMostOnce, level)
            if !ack { telemetryFilters.insert(topic) }
        }
        for (index, point) in map.points.enumerated() {
            if let topic = point.stateTopic {
                want(topic, point.qos)
                if MQTTTopicRules.isWildcardFilter(topic) {
                    wildcard.append((topic, index))
                } else {
                    exact[topic, default: []].append(index)
                }
            }
            // The other topics a profile reads the value from (always topic names).
            for source in point.additionalStates where source.topic != point.stateTopic {
                want(source.topic, point.qos)
                if !(exact[source.topic]?.contains(index) ?? false) { exact[source.topic, default: []].append(index) }
                if let match = source.match, !(statusReplies[source.topic]?.contains(match) ?? false) {
                    statusReplies[source.topic, default: []].append(match)
                }
            }
            guard let command = point.command else { continue }
            switch command.ack.mode {
            case .mqtt5:
                let topic = command.ack.responseTopic ?? "\(command.topic)/response"
                responses.insert(topic)
                responseTopicByPoint[index] = topic
                want(topic, command.qos, ack: true)
            case .correlationID:
                if let topic = command.ack.responseTopic {
                    if !(correlation[topic]?.contains(command.ack.idField) ?? false) {
                        correlation[topic, default: []].append(command.ack.idField)
                    }
                    want(topic, command.qos, ack: true)
                }
            case .stateEcho, .broker:
                break
            }
        }
        var availability: [String: [Int]] = [:]
        for (index, device) in map.devices.enumerated() {
            guard let settings = device.availability else { continue }
            // QoS 1: a lost "offline" would leave a dead device's values served.
            want(settings.topic, .atLeastOnce)
            availability[settings.topic, default: []].append(index)
        }
        // Every message of a Sparkplug edge node and its devices; QoS 1 for its death certificate.
        for device in map.devices { if let source = device.sparkplug { want(source.nodeFilter, .atLeastOnce) } }
        self.availabilityTopics = availability
        self.subscriptions = qosByTopic.keys.sorted().map { Subscription(topic: $0, qos: qosByTopic[$0]!) }
        self.responseTopics = responses
        self.correlationAckTopics = correlation
        self.ackFilters = responses.union(correlation.keys).sorted()
        self.commandFilters = Set(ackFilters).subtracting(telemetryFilters)
        self.exactStateTopics = exact
        self.wildcardStateTopics = wildcard
        self.responseTopicByPoint = responseTopicByPoint
        self.statusReplies = statusReplies
    }

    /// Whether a message on `topic` is a reply to one of the bridge's own status requests (its
    /// refresh): a state, not an acknowledgement nobody waits for.
    func isStatusReply(topic: String, payload: [UInt8]) -> Bool {
        statusReplies[topic]?.contains { $0.matches(payload) } ?? false
    }

    /// The JSON fields that carry the correlation id in acks arriving on `topic`: those of every
    /// correlation_id ack topic, or filter (`devices/+/ack`), that matches it.
    func correlationIDFields(forAckTopic topic: String) -> [JSONPath] {
        if correlationAckTopics.isEmpty { return [] }
        var fields = correlationAckTopics[topic] ?? []
        for (filter, filterFields) in correlationAckTopics
        where filter != topic && MQTTTopicRules.isWildcardFilter(filter)
            && MQTTTopicRules.filter(filter, matches: topic)
        {
            fields += filterFields.filter { !fields.contains($0) }
        }
        return fields
    }

    /// The points whose state topic (or filter) matches `topic`.
    func points(forStateTopic topic: String) -> [Int] {
        var points = exactStateTopics[topic] ?? []
        for (filter, point) in wildcardStateTopics where MQTTTopicRules.filter(filter, matches: topic) {
            points.append(point)
        }
        return points
    }

    /// Whether a message on `topic` is an acknowledgement and nothing else: no point's state and
    /// no device's availability arrive there, so it needs nothing of the cache.
    func isAckOnly(_ topic: String) -> Bool {
        availabilityTopics[topic] == nil && points(forStateTopic: topic).isEmpty
    }

    /// The MQTT 5 response topic a point's commands name.
    func responseTopic(for point: PointConfiguration) -> String? {
        point.command.map { $0.ack.responseTopic ?? "\($0.topic)/response" }
    }
}
