import MQTTModbusBridgeConfiguration
import Synchronization

/// A message a simulated device sends: what the pure conventions produce and the connection
/// publishes (at QoS 1).
struct Publication: Sendable, Hashable, CustomStringConvertible {
    var topic: String
    var payload: [UInt8]
    /// Whether the broker keeps it for later subscribers (availability; never a command reply).
    var retain: Bool

    init(topic: String, payload: [UInt8], retain: Bool = false) {
        self.topic = topic
        self.payload = payload
        self.retain = retain
    }

    init(topic: String, text: String, retain: Bool = false) {
        self.init(topic: topic, payload: Array(text.utf8), retain: retain)
    }

    init(topic: String, json: JSONValue, retain: Bool = false) {
        self.init(topic: topic, text: json.serialized(), retain: retain)
    }

    /// The payload as text (tests and logs).
    var text: String { String(decoding: payload, as: UTF8.self) }

    var description: String { "\(topic) \(text)\(retain ? " (retained)" : "")" }
}

/// A value a command sets on a point.
struct PointChange: Sendable, Hashable {
    var point: String
    var value: PointValue
}

/// The current value of every simulated point, by name, shared by the simulator's connections
/// (each device changes only its own points).
final class SimulatedValues: Sendable {
    private let values: Mutex<[String: PointValue]>

    init(_ initial: [String: PointValue]) {
        self.values = Mutex(initial)
    }

    /// The values now.
    var snapshot: [String: PointValue] { values.withLock { $0 } }

    /// Changes values under the lock; what `body` returns was computed from the same values.
    func update<Result: Sendable>(_ body: (inout [String: PointValue]) -> Result) -> Result {
        values.withLock { body(&$0) }
    }
}

/// One MQTT connection of the simulator: the devices described by hand together, or one
/// device with a profile (which, like the real one, has a connection and a last will of its own).
protocol SimulatedConnection: Sendable {
    /// Connects, subscribes, says it is online and publishes its first state.
    func start() async throws
    /// Answers requests and publishes telemetry until cancelled.
    func serve() async
    /// Says it is offline and disconnects.
    func stop() async
}

extension DeviceSimulator.Options {
    /// How commands of `point` are answered.
    func behaviour(for point: String) -> DeviceSimulator.AckBehaviour {
        perPoint[point] ?? behaviour
    }
}
