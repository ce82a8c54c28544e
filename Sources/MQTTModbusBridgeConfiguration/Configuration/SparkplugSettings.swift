/// The datatypes of Sparkplug B metrics, numbered as in the payload definition (`datatype` of a
/// metric). The bridge maps the scalar ones (``isSupported``) to points; the others (data sets,
/// templates, files, bytes, property sets) have no register form and are refused.
public enum SparkplugDataType: UInt32, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    case int8 = 1
    case int16 = 2
    case int32 = 3
    case int64 = 4
    case uint8 = 5
    case uint16 = 6
    case uint32 = 7
    case uint64 = 8
    case float = 9
    case double = 10
    case boolean = 11
    case string = 12
    /// Milliseconds since 1970-01-01 UTC, carried as an unsigned 64-bit integer.
    case dateTime = 13
    case text = 14
    case uuid = 15
    case dataSet = 16
    case bytes = 17
    case file = 18
    case template = 19
    case propertySet = 20
    case propertySetList = 21

    /// The name the specification uses, which is also the configuration's word (`Int16`,
    /// `Float`, `DateTime`).
    public var description: String {
        switch self {
        case .int8: "Int8"
        case .int16: "Int16"
        case .int32: "Int32"
        case .int64: "Int64"
        case .uint8: "UInt8"
        case .uint16: "UInt16"
        case .uint32: "UInt32"
        case .uint64: "UInt64"
        case .float: "Float"
        case .double: "Double"
        case .boolean: "Boolean"
        case .string: "String"
        case .dateTime: "DateTime"
        case .text: "Text"
        case .uuid: "UUID"
        case .dataSet: "DataSet"
        case .bytes: "Bytes"
        case .file: "File"
        case .template: "Template"
        case .propertySet: "PropertySet"
        case .propertySetList: "PropertySetList"
        }
    }

    /// The datatypes a point can carry: the integers, Float, Double, Boolean, String, Text,
    /// UUID and DateTime.
    public static let supported: [SparkplugDataType] = allCases.filter(\.isSupported)

    /// Whether a point can carry a metric of this datatype.
    public var isSupported: Bool { rawValue <= SparkplugDataType.uuid.rawValue }

    /// Whether values of this datatype are text (String, Text, UUID).
    public var isText: Bool { self == .string || self == .text || self == .uuid }

    /// Whether a point of `type` can hold this datatype's values: numbers (integers, Float,
    /// Double, DateTime) in numeric types, Boolean in `bool`, `bit` and the integer types, text
    /// in `string`. A numeric metric in a `bool` point would lose everything but zero / not
    /// zero, so it is refused.
    public func fits(_ type: PointType) -> Bool {
        guard isSupported else { return false }
        if isText { return type.kind == .string }
        if self == .boolean { return type.isBoolean || type.isInteger }
        return type.isNumeric
    }

    /// What a point of this datatype should be, for error messages.
    public var suggestedPointTypes: String {
        switch self {
        case .boolean: "bool (coil, discrete_input), bit, or an integer type"
        case .string, .text, .uuid: "string"
        case .float: "float32 (or any numeric type, with a scale)"
        case .double: "float64 (or any numeric type, with a scale)"
        case .int8, .int16: "int16"
        case .uint8, .uint16: "uint16"
        case .int32: "int32"
        case .uint32: "uint32"
        case .int64, .dateTime: "int64"
        case .uint64: "uint64"
        default: "none: the bridge cannot map \(self) metrics to registers"
        }
    }
}

/// Where a device's metrics come from in Sparkplug B (`sparkplug:` on a device): an edge node of
/// a group, and one of its devices or the node itself.
///
/// Its topics are `spBv1.0/<group_id>/<N|D><BIRTH|DATA|DEATH|CMD>/<edge_node_id>[/<device_id>]`.
public struct SparkplugSource: Sendable, Hashable {
    /// The Sparkplug group id.
    public var groupID: String
    /// The edge node id.
    public var edgeNodeID: String
    /// The device id; `nil`: the metrics of the edge node itself (NBIRTH, NDATA, NCMD).
    public var deviceID: String?

    /// Creates a source.
    public init(groupID: String, edgeNodeID: String, deviceID: String? = nil) {
        self.groupID = groupID
        self.edgeNodeID = edgeNodeID
        self.deviceID = deviceID
    }

    /// The Sparkplug B topic namespace.
    public static let namespace = "spBv1.0"

    /// The topic of one of the source's message types (`DDATA`, `DCMD`, …; `N…` for a node):
    /// `spBv1.0/<group>/<type>/<node>[/<device>]`.
    public func topic(_ kind: String) -> String {
        let prefix = deviceID == nil ? "N" : "D"
        var topic = "\(Self.namespace)/\(groupID)/\(prefix)\(kind)/\(edgeNodeID)"
        if let deviceID { topic += "/\(deviceID)" }
        return topic
    }

    /// The filter that receives every message of the edge node and its devices (and its NCMD
    /// and DCMD, which the bridge passes over).
    public var nodeFilter: String { "\(Self.namespace)/\(groupID)/+/\(edgeNodeID)/#" }

    /// Whether a Sparkplug id may be used: not empty, and none of `/`, `+`, `#` (they would
    /// change the topic's levels).
    public static func isValidID(_ id: String) -> Bool {
        !id.isEmpty && !id.contains(where: { $0 == "/" || $0 == "+" || $0 == "#" })
    }
}

/// A point fed by a Sparkplug B metric (`metric:` on a point of a device with `sparkplug:`).
public struct SparkplugMetric: Sendable, Hashable {
    /// The metric's name as births carry it (`Inputs/Temperature`).
    public var name: String
    /// The datatype the configuration expects (`datatype:`), checked against the point's type
    /// when the file is loaded and against the birth at run time; `nil`: the birth's datatype.
    public var datatype: SparkplugDataType?

    /// Creates a metric reference.
    public init(name: String, datatype: SparkplugDataType? = nil) {
        self.name = name
        self.datatype = datatype
    }
}

/// The bridge's own role in Sparkplug B (the top-level `sparkplug:` section).
///
/// Without a ``hostID`` the bridge only listens: it never publishes on Sparkplug topics except
/// the commands of Modbus writes. With one it acts as a Sparkplug host application: it publishes
/// its STATE (`spBv1.0/STATE/<host_id>`, retained) and asks an edge node to be born again
/// (NCMD `Node Control/Rebirth`) when it misses a message or meets an alias it does not know.
/// Only a primary host should do that: an edge node answers every rebirth request with all its
/// births.
public struct SparkplugHostSettings: Sendable, Hashable {
    /// The host application id; `nil`: not a host application.
    public var hostID: String?
    /// The shortest time between two rebirth requests to one edge node.
    public var rebirthInterval: Duration

    /// The default ``rebirthInterval``: 5 s.
    public static let defaultRebirthInterval: Duration = .seconds(5)

    /// Creates host settings (by default: not a host application).
    public init(hostID: String? = nil, rebirthInterval: Duration = Self.defaultRebirthInterval) {
        self.hostID = hostID
        self.rebirthInterval = rebirthInterval
    }

    /// Whether the bridge acts as a host application.
    public var isHost: Bool { hostID != nil }

    /// The host's STATE topic, `spBv1.0/STATE/<host_id>`.
    public var stateTopic: String? { hostID.map { "\(SparkplugSource.namespace)/STATE/\($0)" } }
}
