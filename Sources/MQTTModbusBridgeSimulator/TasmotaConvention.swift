import Foundation
import MQTTModbusBridgeConfiguration

/// A Tasmota device: relays switched on `cmnd/<topic>/POWER<n>` and confirmed on
/// `stat/<topic>/RESULT` (`{"POWER1":"ON"}`) and `stat/<topic>/POWER<n>` (`ON`), an empty
/// command (or `?`) asking for the state, `cmnd/<topic>/STATE` answered with the state document
/// on `stat/<topic>/RESULT`, and telemetry on `tele/<topic>/STATE` and `tele/<topic>/SENSOR`
/// (with `Time`, as Tasmota sends them). Nothing it publishes is retained but the LWT.
///
/// Tasmota has no negative answer: a refused command is answered with the unchanged state.
struct TasmotaConvention: DeviceConvention {
    /// A relay: its point and its key (`POWER` with one relay, `POWER1`, `POWER2`, ... with more).
    struct Relay: Sendable, Hashable {
        var point: PointConfiguration
        var key: String
    }

    /// What a `POWER` command asks.
    enum Power: Sendable, Hashable {
        case set(Bool)
        case toggle
        case query
    }

    enum Request: Sendable, Hashable {
        /// `cmnd/<topic>/POWER<n>`, by index into ``relays``.
        case power(relay: Int, Power)
        /// `cmnd/<topic>/STATE`.
        case state
        /// A relay command with a payload Tasmota does not know: `{"Command":"Unknown"}`.
        case unknown
    }

    let device: DeviceConfiguration
    let points: [PointConfiguration]
    let relays: [Relay]
    /// The points of `tele/<topic>/STATE` and `tele/<topic>/SENSOR`.
    let statePoints: [PointConfiguration]
    let sensorPoints: [PointConfiguration]
    /// Points whose topics are not Tasmota's (written over the profile's).
    let otherPoints: [PointConfiguration]
    private let topic: String
    private let fullTopic: String

    init(device: DeviceConfiguration, points: [PointConfiguration], topic: String, fullTopic: String) {
        self.device = device
        self.points = points
        self.topic = topic
        self.fullTopic = fullTopic
        let result = DeviceProfile.tasmotaTopic(fullTopic: fullTopic, topic: topic, prefix: "stat", command: "RESULT")
        let state = DeviceProfile.tasmotaTopic(fullTopic: fullTopic, topic: topic, prefix: "tele", command: "STATE")
        let sensor = DeviceProfile.tasmotaTopic(fullTopic: fullTopic, topic: topic, prefix: "tele", command: "SENSOR")
        var relays: [Relay] = []
        var others: [PointConfiguration] = []
        for point in points {
            if point.stateTopic == result, let path = point.payload.jsonPath, path.components.count == 1,
                case .key(let key) = path.components[0]
            {
                relays.append(Relay(point: point, key: key))
            } else if point.stateTopic != state && point.stateTopic != sensor {
                others.append(point)
            }
        }
        self.relays = relays
        self.statePoints = points.filter { $0.stateTopic == state && $0.payload.jsonPath != nil }
        self.sensorPoints = points.filter { $0.stateTopic == sensor && $0.payload.jsonPath != nil }
        self.otherPoints = others
    }

    /// `<prefix>/<command>` in the device's FullTopic.
    func topic(_ prefix: String, _ command: String) -> String {
        DeviceProfile.tasmotaTopic(fullTopic: fullTopic, topic: topic, prefix: prefix, command: command)
    }

    var requestTopics: [String] { relays.map { topic("cmnd", $0.key) } + [topic("cmnd", "STATE")] }

    func request(topic requested: String, payload: [UInt8]) -> Request? {
        if requested == topic("cmnd", "STATE") { return .state }
        guard let index = relays.firstIndex(where: { topic("cmnd", $0.key) == requested }) else { return nil }
        guard let power = Self.power(in: payload, for: relays[index].point) else { return .unknown }
        return .power(relay: index, power)
    }

    /// A `POWER` payload: empty or `?` asks; `ON`/`OFF`/`TOGGLE`, `1`/`0`/`2` (any case) or
    /// the point's own words switch.
    static func power(in payload: [UInt8], for point: PointConfiguration) -> Power? {
        let text = String(decoding: payload, as: UTF8.self).trimmingCharacters(in: .whitespaces)
        switch text.lowercased() {
        case "", "?": return .query
        case "on", "1", "true": return .set(true)
        case "off", "0", "false": return .set(false)
        case "toggle", "2": return .toggle
        default:
            let format =
                point.command?.payload
                ?? PayloadFormat(
                    encoding: .plain,
                    trueWords: point.payload.trueWords,
                    falseWords: point.payload.falseWords
                )
            guard case .bool(let on) = try? PayloadDecoder(format: format, type: point.type).decode(payload) else {
                return nil
            }
            return .set(on)
        }
    }

    func changes(in request: Request, values: [String: PointValue]) -> [PointChange] {
        guard case .power(let index, let power) = request else { return [] }
        let point = relays[index].point.name
        switch power {
        case .query: return []
        case .set(let on): return [PointChange(point: point, value: .bool(on))]
        case .toggle: return [PointChange(point: point, value: .bool(values[point] != .bool(true)))]
        }
    }

    func answer(
        _ request: Request,
        behaviour: (String) -> DeviceSimulator.AckBehaviour,
        values: inout [String: PointValue],
        now: Date
    ) -> [Publication] {
        switch request {
        case .state:
            return [Publication(topic: topic("stat", "RESULT"), json: stateDocument(values: values, now: now))]
        case .unknown:
            let unknown = JSONValue.object([JSONMember(key: "Command", value: .string("Unknown"))])
            return [Publication(topic: topic("stat", "RESULT"), json: unknown)]
        case .power(let index, _):
            if let change = changes(in: request, values: values).first {
                switch behaviour(change.point) {
                case .ignore: return []
                case .refuse: break  // no negative answer in Tasmota: the state stays as it was
                case .acknowledge: values[change.point] = change.value
                }
            }
            return relayState(relays[index], values: values)
        }
    }

    /// `stat/<topic>/RESULT` `{"POWER1":"ON"}` then `stat/<topic>/POWER1` `ON`, as Tasmota
    /// confirms a relay (nothing while the relay's value is unknown).
    func relayState(_ relay: Relay, values: [String: PointValue]) -> [Publication] {
        guard let value = values[relay.point.name], case .bool(let on) = value else { return [] }
        let word = Self.word(on, for: relay.point)
        return [
            Publication(
                topic: topic("stat", "RESULT"),
                json: .object([JSONMember(key: relay.key, value: .string(word))])
            ),
            Publication(topic: topic("stat", relay.key), text: word),
        ]
    }

    static func word(_ on: Bool, for point: PointConfiguration) -> String {
        (on ? point.payload.trueWords.first : point.payload.falseWords.first) ?? (on ? "ON" : "OFF")
    }

    /// `tele/<topic>/STATE`: the time, every relay's word and the `state:` points' fields.
    func stateDocument(values: [String: PointValue], now: Date) -> JSONValue {
        var members = [JSONMember(key: "Time", value: .string(Self.time(now)))]
        for relay in relays {
            guard case .bool(let on)? = values[relay.point.name] else { continue }
            members.append(JSONMember(key: relay.key, value: .string(Self.word(on, for: relay.point))))
        }
        return Self.document(.object(members), of: statePoints, values: values)
    }

    /// `tele/<topic>/SENSOR`: the time and the `sensor:` points' fields (with `TempUnit` when
    /// there is a temperature).
    func sensorDocument(values: [String: PointValue], now: Date) -> JSONValue {
        var document = Self.document(
            .object([JSONMember(key: "Time", value: .string(Self.time(now)))]),
            of: sensorPoints,
            values: values
        )
        let temperature = sensorPoints.contains { point in
            if case .key(let last)? = point.payload.jsonPath?.components.last { return last == "Temperature" }
            return false
        }
        if temperature { _ = document.set(.string("C"), at: [JSONPath.Component.key("TempUnit")][...]) }
        return document
    }

    func report(_ occasion: ReportOccasion, values: [String: PointValue], now: Date) -> [Publication] {
        var publications = [Publication(topic: topic("tele", "STATE"), json: stateDocument(values: values, now: now))]
        if !sensorPoints.isEmpty {
            publications.append(
                Publication(topic: topic("tele", "SENSOR"), json: sensorDocument(values: values, now: now))
            )
        }
        // After connecting Tasmota says what its relays are; later only a change does (of a
        // relay the bridge only reads, the simulator's telemetry changes it).
        for relay in relays where occasion == .connected || relay.point.command == nil {
            publications += relayState(relay, values: values)
        }
        return publications + Self.plainStates(of: otherPoints, values: values)
    }

    /// Tasmota's `Time`: local time without a zone, to the second (UTC here).
    static func time(_ date: Date) -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let parts = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
        func two(_ value: Int?) -> String { String((value ?? 0) + 100).dropFirst().description }
        return
            "\(parts.year ?? 1970)-\(two(parts.month))-\(two(parts.day))T\(two(parts.hour)):\(two(parts.minute)):\(two(parts.second))"
    }
}
