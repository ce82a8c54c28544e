import MQTTModbusBridgeConfiguration

/// An edge node: its group id and edge node id (the "edge node descriptor").
public struct SparkplugNodeKey: Sendable, Hashable, CustomStringConvertible {
    /// The Sparkplug group id.
    public var groupID: String
    /// The edge node id.
    public var edgeNodeID: String

    /// Creates a node key.
    public init(groupID: String, edgeNodeID: String) {
        self.groupID = groupID
        self.edgeNodeID = edgeNodeID
    }

    /// The node of a configured source.
    public init(_ source: SparkplugSource) {
        self.init(groupID: source.groupID, edgeNodeID: source.edgeNodeID)
    }

    /// `group/node`.
    public var description: String { "\(groupID)/\(edgeNodeID)" }

    /// The topic of the node's NCMD messages.
    public var commandTopic: String { "\(SparkplugSource.namespace)/\(groupID)/NCMD/\(edgeNodeID)" }
}

/// A Sparkplug B topic: `spBv1.0/<group_id>/<message type>/<edge_node_id>[/<device_id>]`.
public struct SparkplugTopic: Sendable, Hashable {
    /// The message types of edge nodes and devices.
    public enum MessageType: String, Sendable, Hashable, CaseIterable {
        case nodeBirth = "NBIRTH"
        case nodeData = "NDATA"
        case nodeDeath = "NDEATH"
        case nodeCommand = "NCMD"
        case deviceBirth = "DBIRTH"
        case deviceData = "DDATA"
        case deviceDeath = "DDEATH"
        case deviceCommand = "DCMD"

        /// Whether the message is about a device (and its topic names one).
        public var isDeviceMessage: Bool {
            switch self {
            case .deviceBirth, .deviceData, .deviceDeath, .deviceCommand: true
            default: false
            }
        }
    }

    /// The edge node.
    public var node: SparkplugNodeKey
    /// The message type.
    public var messageType: MessageType
    /// The device id, for device messages.
    public var deviceID: String?

    /// Creates a topic.
    public init(node: SparkplugNodeKey, messageType: MessageType, deviceID: String? = nil) {
        self.node = node
        self.messageType = messageType
        self.deviceID = deviceID
    }

    /// Reads a topic; `nil` for anything that is not an edge node's or device's Sparkplug B
    /// topic (the STATE of a host application among them).
    public init?(parsing topic: String) {
        let levels = topic.split(separator: "/", omittingEmptySubsequences: false)
        guard levels.count == 4 || levels.count == 5, levels[0] == SparkplugSource.namespace,
            let type = MessageType(rawValue: String(levels[2]))
        else { return nil }
        guard type.isDeviceMessage == (levels.count == 5) else { return nil }
        let ids = [levels[1], levels[3]] + (levels.count == 5 ? [levels[4]] : [])
        guard ids.allSatisfy({ !$0.isEmpty }) else { return nil }
        self.node = SparkplugNodeKey(groupID: String(levels[1]), edgeNodeID: String(levels[3]))
        self.messageType = type
        self.deviceID = levels.count == 5 ? String(levels[4]) : nil
    }

    /// The topic's text.
    public var text: String {
        var topic = "\(SparkplugSource.namespace)/\(node.groupID)/\(messageType.rawValue)/\(node.edgeNodeID)"
        if let deviceID { topic += "/\(deviceID)" }
        return topic
    }
}
