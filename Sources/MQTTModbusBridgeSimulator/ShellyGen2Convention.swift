import Foundation
import MQTTModbusBridgeConfiguration

/// A Shelly of the second generation over MQTT: each component's status as JSON on
/// `<prefix>/status/<type>:<id>`, and JSON-RPC on `<prefix>/rpc`. A request
/// `{"id":N,"src":S,"method":"Switch.Set","params":{"id":0,"on":true}}` is answered on `<S>/rpc`
/// with `{"id":N,"src":<prefix>,"dst":S,"result":{"was_on":false}}` (after the new status);
/// `<Type>.GetStatus` and `Shelly.GetStatus` with the status; a failure with
/// `{"id":N,...,"error":{"code":C,"message":M}}`: 404 for a method it has no handler for, -105
/// for a component it does not have, -103 for missing parameters (and for a refused command).
struct ShellyGen2Convention: DeviceConvention {
    /// A component (`switch:0`) and the points of its status.
    struct Component: Sendable, Hashable {
        var name: String
        var type: String
        var id: Int
        var points: [PointConfiguration]
    }

    /// A method that sets a point: the point's own command, read from its template.
    struct Setter: Sendable, Hashable {
        var point: PointConfiguration
        var method: String
        var componentID: Int
        /// The parameter that carries the value (`on`, `brightness`, `pos`, ...).
        var parameter: String
    }

    /// Who asked: the request's id (a number or a string, echoed as it came) and source.
    struct Caller: Sendable, Hashable {
        var id: JSONValue
        var source: String
    }

    enum Request: Sendable, Hashable {
        case set(Caller, setter: Int, value: PointValue)
        /// `<Type>.GetStatus` of one component; `nil`: `Shelly.GetStatus`, every component.
        case getStatus(Caller, component: Int?)
        case failure(Caller, code: Int, message: String)
    }

    /// Shelly's error codes the simulator answers with.
    enum ErrorCode {
        static let invalidArgument = -103
        static let notFound = -105
        static let noHandler = 404
    }

    let device: DeviceConfiguration
    let points: [PointConfiguration]
    let prefix: String
    /// The source the bridge names (its replies' topic is `<source>/rpc`); requests name theirs.
    let source: String
    let components: [Component]
    let setters: [Setter]
    /// Points whose topics are not the device's (written over the profile's).
    let otherPoints: [PointConfiguration]

    init(device: DeviceConfiguration, points: [PointConfiguration], prefix: String, source: String) {
        self.device = device
        self.points = points
        self.prefix = prefix
        self.source = source
        var components: [Component] = []
        var others: [PointConfiguration] = []
        let statusPrefix = "\(prefix)/status/"
        for point in points {
            guard let topic = point.stateTopic, topic.hasPrefix(statusPrefix), point.payload.jsonPath != nil,
                let (type, id) = Self.component(String(topic.dropFirst(statusPrefix.count)))
            else {
                others.append(point)
                continue
            }
            let name = "\(type):\(id)"
            if let index = components.firstIndex(where: { $0.name == name }) {
                components[index].points.append(point)
            } else {
                components.append(Component(name: name, type: type, id: id, points: [point]))
            }
        }
        self.components = components
        self.otherPoints = others
        self.setters = points.compactMap { Self.setter(of: $0, topic: "\(prefix)/rpc") }
    }

    /// `switch:0` → (`switch`, 0).
    static func component(_ text: String) -> (type: String, id: Int)? {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty, let id = Int(parts[1]), id >= 0 else { return nil }
        return (parts[0].lowercased(), id)
    }

    /// The method, component and parameter of a point's commands, read from a command the
    /// bridge's own encoder writes for it; `nil` for a point that is not set over RPC.
    static func setter(of point: PointConfiguration, topic: String) -> Setter? {
        guard point.command?.topic == topic,
            let sample = try? CommandEncoder(point: point).encode(
                DeviceSimulator.initialValue(for: point),
                correlationID: "0"
            ),
            let request = try? JSONParser.parse(sample),
            case .string(let method)? = request.member("method"),
            case .object(let parameters)? = request.member("params"),
            case .number(let idText)? = request.member("params")?.member("id"), let id = Int(idText),
            let parameter = parameters.first(where: { $0.key != "id" })?.key
        else { return nil }
        return Setter(point: point, method: method, componentID: id, parameter: parameter)
    }

    var requestTopics: [String] { ["\(prefix)/rpc"] }

    func request(topic: String, payload: [UInt8]) -> Request? {
        // Without an id and a source there is nobody to answer (a real Shelly drops it too).
        guard topic == "\(prefix)/rpc", let frame = try? JSONParser.parse(payload), let id = frame.member("id"),
            case .string(let source)? = frame.member("src"), !source.isEmpty
        else { return nil }
        let caller = Caller(id: id, source: source)
        guard case .string(let method)? = frame.member("method") else {
            return .failure(caller, code: ErrorCode.invalidArgument, message: "Missing required 'method'")
        }
        let params = frame.member("params") ?? .object([])
        let lowered = method.lowercased()
        if lowered == "shelly.getstatus" { return .getStatus(caller, component: nil) }
        let componentID: Int? = if case .number(let text)? = params.member("id") { Int(text) } else { nil }
        if lowered.hasSuffix(".getstatus") {
            let type = String(lowered.dropLast(".getstatus".count))
            guard components.contains(where: { $0.type == type }) else {
                return .failure(caller, code: ErrorCode.noHandler, message: "No handler for \(method)")
            }
            guard let componentID else {
                return .failure(caller, code: ErrorCode.invalidArgument, message: "Missing required 'id'")
            }
            guard let index = components.firstIndex(where: { $0.type == type && $0.id == componentID }) else {
                return .failure(caller, code: ErrorCode.notFound, message: "Bad id=\(componentID)")
            }
            return .getStatus(caller, component: index)
        }
        let candidates = setters.indices.filter { setters[$0].method.lowercased() == lowered }
        guard !candidates.isEmpty else {
            return .failure(caller, code: ErrorCode.noHandler, message: "No handler for \(method)")
        }
        guard let componentID else {
            return .failure(caller, code: ErrorCode.invalidArgument, message: "Missing required 'id'")
        }
        let forComponent = candidates.filter { setters[$0].componentID == componentID }
        guard !forComponent.isEmpty else {
            return .failure(caller, code: ErrorCode.notFound, message: "Bad id=\(componentID)")
        }
        for index in forComponent {
            let setter = setters[index]
            guard let argument = params.member(setter.parameter) else { continue }
            var format = setter.point.payload
            format.encoding = .json(path: JSONPath([]))
            guard
                let value = try? PayloadDecoder(format: format, type: setter.point.type).decode(
                    Array(argument.serialized().utf8)
                )
            else {
                return .failure(
                    caller,
                    code: ErrorCode.invalidArgument,
                    message: "Invalid argument '\(setter.parameter)'"
                )
            }
            return .set(caller, setter: index, value: value)
        }
        let expected = forComponent.map { "'\(setters[$0].parameter)'" }.joined(separator: " or ")
        return .failure(caller, code: ErrorCode.invalidArgument, message: "Missing required \(expected)")
    }

    func changes(in request: Request, values: [String: PointValue]) -> [PointChange] {
        guard case .set(_, let index, let value) = request else { return [] }
        return [PointChange(point: setters[index].point.name, value: value)]
    }

    func answer(
        _ request: Request,
        behaviour: (String) -> DeviceSimulator.AckBehaviour,
        values: inout [String: PointValue],
        now: Date
    ) -> [Publication] {
        switch request {
        case .failure(let caller, let code, let message):
            return [reply(to: caller, error: code, message)]
        case .getStatus(let caller, nil):
            let all = components.map { JSONMember(key: $0.name, value: status(of: $0, values: values)) }
            return [reply(to: caller, result: .object(all))]
        case .getStatus(let caller, let index?):
            return [reply(to: caller, result: status(of: components[index], values: values))]
        case .set(let caller, let index, let value):
            let setter = setters[index]
            switch behaviour(setter.point.name) {
            case .ignore:
                return []
            case .refuse(let reason, _):
                return [reply(to: caller, error: ErrorCode.invalidArgument, reason)]
            case .acknowledge:
                let before = values[setter.point.name]
                values[setter.point.name] = value
                let result: JSONValue
                if setter.method.lowercased() == "switch.set", case .bool(let wasOn)? = before {
                    result = .object([JSONMember(key: "was_on", value: .bool(wasOn))])
                } else {
                    result = .null
                }
                let changed = components.filter { $0.points.contains { $0.name == setter.point.name } }
                return changed.map { statusPublication(of: $0, values: values) } + [reply(to: caller, result: result)]
            }
        }
    }

    /// A component's status: its id and its points' fields.
    func status(of component: Component, values: [String: PointValue]) -> JSONValue {
        Self.document(
            .object([JSONMember(key: "id", value: .number(String(component.id)))]),
            of: component.points,
            values: values
        )
    }

    func statusPublication(of component: Component, values: [String: PointValue]) -> Publication {
        Publication(topic: "\(prefix)/status/\(component.name)", json: status(of: component, values: values))
    }

    func reply(to caller: Caller, result: JSONValue) -> Publication {
        frame(to: caller, JSONMember(key: "result", value: result))
    }

    func reply(to caller: Caller, error code: Int, _ message: String) -> Publication {
        let error = JSONValue.object([
            JSONMember(key: "code", value: .number(String(code))), JSONMember(key: "message", value: .string(message)),
        ])
        return frame(to: caller, JSONMember(key: "error", value: error))
    }

    private func frame(to caller: Caller, _ body: JSONMember) -> Publication {
        let frame = JSONValue.object([
            JSONMember(key: "id", value: caller.id), JSONMember(key: "src", value: .string(prefix)),
            JSONMember(key: "dst", value: .string(caller.source)), body,
        ])
        return Publication(topic: "\(caller.source)/rpc", json: frame)
    }

    func report(_ occasion: ReportOccasion, values: [String: PointValue], now: Date) -> [Publication] {
        components.map { statusPublication(of: $0, values: values) } + Self.plainStates(of: otherPoints, values: values)
    }
}
