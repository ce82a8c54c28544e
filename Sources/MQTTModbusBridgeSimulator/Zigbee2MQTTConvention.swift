import Foundation
import MQTTModbusBridgeConfiguration

/// A zigbee2mqtt device: its state as one JSON document on `<base>/<name>` (with `linkquality`,
/// as zigbee2mqtt adds it), commands as JSON on `<base>/<name>/set` (one or more fields,
/// `{"state":"ON"}`) answered with the new document, and `<base>/<name>/get` (`{"state":""}`)
/// answered with the document. Not retained (zigbee2mqtt's default); the availability is.
///
/// zigbee2mqtt has no negative answer: a refused command is answered with the unchanged state.
struct Zigbee2MQTTConvention: DeviceConvention {
    enum Request: Sendable, Hashable {
        /// A `/set` document, with the values it sets for the device's writable points.
        case set([PointChange])
        /// `/get`.
        case get
    }

    let device: DeviceConfiguration
    let points: [PointConfiguration]
    /// `<base>/<name>`.
    let stateTopic: String
    /// The fields of the state document.
    let fields: [PointConfiguration]
    /// Points whose topics are not the device's (written over the profile's).
    let otherPoints: [PointConfiguration]

    init(device: DeviceConfiguration, points: [PointConfiguration], stateTopic: String) {
        self.device = device
        self.points = points
        self.stateTopic = stateTopic
        self.fields = points.filter { $0.stateTopic == stateTopic && $0.payload.jsonPath != nil }
        self.otherPoints = points.filter { !($0.stateTopic == stateTopic && $0.payload.jsonPath != nil) }
    }

    var setTopic: String { stateTopic + "/set" }
    var getTopic: String { stateTopic + "/get" }
    var requestTopics: [String] { [setTopic, getTopic] }

    func request(topic: String, payload: [UInt8]) -> Request? {
        if topic == getTopic { return .get }
        guard topic == setTopic else { return nil }
        // Each writable point whose field the document has (zigbee2mqtt takes several at once).
        var changes: [PointChange] = []
        for point in fields where point.command?.topic == setTopic {
            let format = point.command?.payload ?? point.payload
            guard let value = try? PayloadDecoder(format: format, type: point.type).decode(payload) else { continue }
            changes.append(PointChange(point: point.name, value: value))
        }
        return changes.isEmpty ? nil : .set(changes)
    }

    func changes(in request: Request, values: [String: PointValue]) -> [PointChange] {
        guard case .set(let changes) = request else { return [] }
        return changes
    }

    func answer(
        _ request: Request,
        behaviour: (String) -> DeviceSimulator.AckBehaviour,
        values: inout [String: PointValue],
        now: Date
    ) -> [Publication] {
        if case .set(let changes) = request {
            var answered = false
            for change in changes {
                switch behaviour(change.point) {
                case .ignore: continue
                case .refuse: answered = true  // the state stays as it was
                case .acknowledge:
                    values[change.point] = change.value
                    answered = true
                }
            }
            if !answered { return [] }
        }
        return [state(values: values)]
    }

    /// The device's document on `<base>/<name>`.
    func state(values: [String: PointValue]) -> Publication {
        var document = Self.document(of: fields, values: values)
        if document.member("linkquality") == nil {
            _ = document.set(.number("120"), at: [JSONPath.Component.key("linkquality")][...])
        }
        return Publication(topic: stateTopic, json: document)
    }

    func report(_ occasion: ReportOccasion, values: [String: PointValue], now: Date) -> [Publication] {
        [state(values: values)] + Self.plainStates(of: otherPoints, values: values)
    }
}
