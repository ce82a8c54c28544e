import MQTTModbusBridgeConfiguration
import Synchronization

/// Everything the bridge derives from one configuration's topic map: where each point sits, its
/// cached value, which topics mean what, how writes are planned, and the request counters of
/// its units. A reload builds a new one and replaces the old one whole
/// (``TopicMapHolder/replace(with:)``), so a reader never sees half of each.
final class BridgeTopicMap: Sendable {
    let configuration: BridgeConfiguration
    let map: RegisterMap
    let cache: PointCache
    let routes: MessageRoutes
    let planner: WritePlanner
    let requests: BridgeMetrics.RequestCounters
    /// The Sparkplug B edge nodes of the map and their sessions.
    let sparkplug: SparkplugIngest
    /// Point name → index in ``map``: a write that outlived a reload finds its point again.
    let indexByName: [String: Int]

    init(_ configuration: BridgeConfiguration, metrics: BridgeMetrics) {
        self.configuration = configuration
        let map = RegisterMap(configuration)
        self.map = map
        self.cache = PointCache(map: map)
        self.routes = MessageRoutes(map: map)
        self.planner = WritePlanner(map: map, cache: cache)
        self.requests = metrics.requestCounters(units: Array(configuration.unitIDs))
        self.sparkplug = SparkplugIngest(map: map, host: configuration.sparkplug)
        self.indexByName = Dictionary(
            map.points.enumerated().map { ($1.name, $0) },
            uniquingKeysWith: { first, _ in first }
        )
    }

    /// The index in this map of point `index` of `other` (an earlier map), when it is the same
    /// point: same name and same configuration (where it was written in the file aside).
    func sameIndex(as index: Int, of other: BridgeTopicMap) -> Int? {
        if other === self { return index }
        let point = other.map.points[index]
        guard let mine = indexByName[point.name], map.points[mine].ignoringLocation == point.ignoringLocation else {
            return nil
        }
        return mine
    }
}

/// The topic map in force. Modbus reads, MQTT messages and writes each take the map once and
/// work on it; a reload swaps it.
final class TopicMapHolder: Sendable {
    private let box: Mutex<BridgeTopicMap>

    init(_ initial: BridgeTopicMap) {
        box = Mutex(initial)
    }

    /// The map in force now.
    var current: BridgeTopicMap { box.withLock { $0 } }

    /// Runs `body` on the map in force, without retaining it: the Modbus read path, where a
    /// reference count changed from two event loops for every request would cost more than
    /// the lock.
    func withCurrent<T, E: Error>(_ body: (borrowing BridgeTopicMap) throws(E) -> T) throws(E) -> T {
        try box.withLock { map throws(E) in try body(map) }
    }

    /// Puts `map` in force; returns the map it replaces.
    @discardableResult
    func replace(with map: BridgeTopicMap) -> BridgeTopicMap {
        box.withLock { current in
            let old = current
            current = map
            return old
        }
    }
}

extension PointConfiguration {
    /// The point with its file position cleared: two loads of the same point compare equal even
    /// when lines above it moved.
    var ignoringLocation: PointConfiguration {
        let nowhere = ConfigurationLocation(file: "", line: 0, column: 0)
        var point = self
        point.location = nowhere
        point.quality?.location = nowhere
        point.lastCommand?.location = nowhere
        return point
    }
}

extension DeviceConfiguration {
    /// The device with its file position cleared.
    var ignoringLocation: DeviceConfiguration {
        var device = self
        device.location = ConfigurationLocation(file: "", line: 0, column: 0)
        return device
    }
}
