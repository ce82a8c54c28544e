import Foundation
import Yams

/// What the loader knows of a device with a `profile:` while it reads the device's points.
struct ProfileContext {
    var kind: DeviceProfile.Kind
    var device: String
    var mark: Mark?
    /// Tasmota: the device's Topic, its FullTopic pattern and how many relays it has.
    var topic = ""
    var fullTopic = "%prefix%/%topic%/"
    var relays = 1
    /// zigbee2mqtt: the base topic and the friendly name.
    var base = "zigbee2mqtt"
    var friendlyName = ""
    /// Shelly: the topic prefix (the device id) and the source the bridge names in its requests.
    var prefix = ""
    var source = ""
    /// Refresh messages the points asked for, in order.
    var refresh: [RefreshMessage] = []
    /// zigbee2mqtt: the top-level fields of the writable points, for the `get` request.
    var fieldsToGet: [String] = []
    /// `refresh:` was written on the device: it replaces the profile's.
    var refreshWritten = false

    /// A Tasmota topic: FullTopic with `%prefix%` and `%topic%` filled in, then the command.
    func tasmota(_ prefix: String, _ command: String) -> String {
        DeviceProfile.tasmotaTopic(fullTopic: fullTopic, topic: topic, prefix: prefix, command: command)
    }

    /// What the topics were made from, for the device's profile record.
    var identity: DeviceProfile.Identity {
        switch kind {
        case .tasmota: .tasmota(topic: topic, fullTopic: fullTopic)
        case .zigbee2mqtt: .zigbee2mqtt(baseTopic: base, friendlyName: friendlyName)
        case .shellyGen2: .shellyGen2(topicPrefix: prefix, rpcSource: source)
        }
    }

    /// Where a zigbee2mqtt device publishes its state.
    var zigbeeState: String { "\(base)/\(friendlyName)" }

    /// The topics the profile derived, for `explain`.
    var topics: [DeviceProfile.Topic] {
        switch kind {
        case .tasmota:
            return [
                .init(role: "FullTopic", topic: fullTopic),
                .init(role: "commands", topic: tasmota("cmnd", "POWER<n>")),
                .init(role: "confirmations", topic: tasmota("stat", "RESULT") + ", " + tasmota("stat", "POWER<n>")),
                .init(role: "telemetry", topic: tasmota("tele", "STATE") + ", " + tasmota("tele", "SENSOR")),
            ]
        case .zigbee2mqtt:
            return [
                .init(role: "state", topic: zigbeeState),
                .init(role: "commands", topic: zigbeeState + "/set"),
                .init(role: "refresh", topic: zigbeeState + "/get"),
            ]
        case .shellyGen2:
            return [
                .init(role: "status", topic: "\(prefix)/status/<component>"),
                .init(role: "requests", topic: "\(prefix)/rpc"),
                .init(role: "replies", topic: "\(source)/rpc"),
            ]
        }
    }
}

/// A Shelly method that sets a value, and the parameter that carries it.
struct ShellySetter {
    var method: String
    /// The parameter for an on/off point and for a numeric one (`nil`: the method takes none).
    var boolParameter: String?
    var numberParameter: String?

    static let known = [
        ShellySetter(method: "Switch.Set", boolParameter: "on", numberParameter: nil),
        ShellySetter(method: "Light.Set", boolParameter: "on", numberParameter: "brightness"),
        ShellySetter(method: "RGB.Set", boolParameter: "on", numberParameter: "brightness"),
        ShellySetter(method: "RGBW.Set", boolParameter: "on", numberParameter: "brightness"),
        ShellySetter(method: "Cover.GoToPosition", boolParameter: nil, numberParameter: "pos"),
        ShellySetter(method: "Number.Set", boolParameter: nil, numberParameter: "value"),
        ShellySetter(method: "Boolean.Set", boolParameter: "value", numberParameter: nil),
    ]

    /// The setter of a component type when a point names none.
    static let byComponent = [
        "switch": "Switch.Set", "light": "Light.Set", "rgb": "RGB.Set", "rgbw": "RGBW.Set",
        "cover": "Cover.GoToPosition", "number": "Number.Set", "boolean": "Boolean.Set",
    ]

    /// The RPC namespace of a component type: `switch` → `Switch`, `em1` → `EM1`.
    static func namespace(of type: String) -> String {
        let upper = ["em", "em1", "pm1", "rgb", "rgbw", "emdata", "em1data"]
        if upper.contains(type) { return type.uppercased() }
        return type.prefix(1).uppercased() + type.dropFirst()
    }
}

extension ConfigurationLoader {
    static let profileChoices = DeviceProfile.Kind.allCases.map { ($0.rawValue, $0) }
    /// Device keys that only apply to one profile.
    static let profileDeviceKeys: [(key: String, kind: DeviceProfile.Kind)] = [
        ("topic", .tasmota), ("full_topic", .tasmota), ("relays", .tasmota), ("base_topic", .zigbee2mqtt),
        ("friendly_name", .zigbee2mqtt), ("topic_prefix", .shellyGen2), ("rpc_source", .shellyGen2),
    ]
    /// Point keys that only apply to one profile.
    static let profilePointKeys: [(key: String, kinds: [DeviceProfile.Kind])] = [
        ("relay", [.tasmota]), ("sensor", [.tasmota]), ("state", [.tasmota]), ("field", [.zigbee2mqtt, .shellyGen2]),
        ("component", [.shellyGen2]), ("method", [.shellyGen2]),
    ]

    static func keys(of kind: DeviceProfile.Kind) -> [String] {
        profilePointKeys.filter { $0.kinds.contains(kind) }.map(\.key)
    }

    // MARK: Devices

    /// `profile:` and the keys that go with it, on a device. Returns the profile's availability
    /// (used unless the device writes its own).
    func parseProfile(_ view: MappingView, name: String) -> AvailabilitySettings? {
        var kind: DeviceProfile.Kind?
        if let entry = view["profile"] { kind = reader.choice(entry, Self.profileChoices) }
        for (key, owner) in Self.profileDeviceKeys
        where view.has(key) && kind != owner && !(view.has("profile") && kind == nil) {
            diagnostics.error(
                "'\(key)' only applies to devices with profile \(owner)"
                    + (kind.map { " (this one is \($0))" } ?? " (this one has no profile)"),
                at: view[key]!.keyNode.mark,
                fix: kind == nil ? "add profile: \(owner), or remove \(key)" : "remove \(key)"
            )
        }
        guard let kind else { return nil }
        let mark = view["profile"]?.mark
        var context = ProfileContext(kind: kind, device: name, mark: mark)
        let nameEntry = view["name"]!
        func topicPart(_ key: String, default value: String) -> String? {
            guard let entry = view[key] else { return value }
            return reader.string(entry)
        }
        var availability: AvailabilitySettings?
        switch kind {
        case .tasmota:
            guard let topic = topicPart("topic", default: name),
                let full = topicPart("full_topic", default: context.fullTopic)
            else { return nil }
            context.topic = topic
            context.fullTopic = full
            if let entry = view["full_topic"] {
                let unknown = Self.placeholders(in: full).filter { $0 != "%prefix%" && $0 != "%topic%" }
                if let first = unknown.first {
                    diagnostics.error(
                        "full_topic placeholder \(first) is not supported; the bridge knows %prefix% and %topic%",
                        at: entry.mark,
                        fix: "write the device's FullTopic with %prefix% and %topic% only, e.g. %prefix%/%topic%/"
                    )
                    return nil
                }
                if !full.contains("%prefix%") {
                    diagnostics.error(
                        "full_topic '\(full)' has no %prefix%: Tasmota's commands, states and telemetry would share one topic",
                        at: entry.mark,
                        fix: "write the device's FullTopic, e.g. %prefix%/%topic%/"
                    )
                    return nil
                }
            }
            if let entry = view["relays"],
                let relays = reader.integer(entry, in: 1...32, fix: "Tasmota has 1...32 relays")
            {
                context.relays = relays
            }
            let lwt = context.tasmota("tele", "LWT")
            guard checkTopicName(lwt, view["full_topic"] ?? view["topic"] ?? nameEntry) else { return nil }
            availability = AvailabilitySettings(topic: lwt, onlineWords: ["Online"], offlineWords: ["Offline"])
        case .zigbee2mqtt:
            guard let base = topicPart("base_topic", default: context.base),
                let friendly = topicPart("friendly_name", default: name)
            else { return nil }
            context.base = base
            context.friendlyName = friendly
            let topic = context.zigbeeState + "/availability"
            guard checkTopicName(topic, view["friendly_name"] ?? view["base_topic"] ?? nameEntry) else { return nil }
            // zigbee2mqtt 2 publishes {"state":"online"}, 1.x with the legacy payload a plain word.
            availability = AvailabilitySettings(topic: topic, path: JSONPath([.key("state")]))
        case .shellyGen2:
            guard let prefix = topicPart("topic_prefix", default: name),
                let source = topicPart("rpc_source", default: clientID)
            else { return nil }
            context.prefix = prefix
            context.source = source
            let topic = prefix + "/online"
            guard checkTopicName(topic, view["topic_prefix"] ?? nameEntry),
                checkTopicName(source + "/rpc", view["rpc_source"] ?? nameEntry)
            else { return nil }
            if source == prefix, let entry = view["rpc_source"] ?? view["topic_prefix"] {
                diagnostics.error(
                    "rpc_source '\(source)' is the device's own prefix: the bridge would read its requests as replies",
                    at: entry.mark,
                    fix: "choose another rpc_source (the default is the bridge's client_id)"
                )
                return nil
            }
            availability = AvailabilitySettings(topic: topic, onlineWords: ["true"], offlineWords: ["false"])
        }
        profiles[name] = context
        return availability
    }

    static func placeholders(in text: String) -> [String] {
        var found: [String] = []
        var rest = Substring(text)
        while let start = rest.firstIndex(of: "%") {
            let after = rest[rest.index(after: start)...]
            guard let end = after.firstIndex(of: "%") else { break }
            found.append(String(rest[start...end]))
            rest = rest[rest.index(after: end)...]
        }
        return found
    }

    /// `refresh:` written by hand: `{ topic, payload }` or a list of them.
    func parseRefresh(_ entry: Entry, context: String) -> [RefreshMessage] {
        let nodes: [Node]
        if case .sequence = entry.value {
            nodes = reader.sequence(entry) ?? []
        } else {
            nodes = [entry.value]
        }
        var messages: [RefreshMessage] = []
        for node in nodes {
            guard
                let view = reader.mapping(
                    node,
                    context: "\(context) refresh",
                    allowed: ["topic", "payload"],
                    at: entry.mark
                )
            else { continue }
            guard
                let topicEntry = reader.required(
                    view,
                    "topic",
                    fix: "add 'topic:' (where the device takes the request)"
                ),
                let topic = reader.string(topicEntry), checkTopicName(topic, topicEntry)
            else { continue }
            let payload = view["payload"].flatMap { reader.string($0, allowEmpty: true) } ?? ""
            messages.append(RefreshMessage(topic: topic, payload: payload))
        }
        return messages
    }

    /// After every unit is read: each profile's refresh messages and topics go to its device.
    func finishProfiles(_ devices: inout [DeviceConfiguration]) {
        for index in devices.indices {
            guard let context = profiles[devices[index].name] else { continue }
            devices[index].profile = DeviceProfile(
                kind: context.kind,
                topics: context.topics,
                identity: context.identity
            )
            if context.refreshWritten { continue }
            switch context.kind {
            case .tasmota:
                devices[index].refresh =
                    context.refresh.isEmpty
                    ? [RefreshMessage(topic: context.tasmota("cmnd", "STATE"))] : context.refresh
            case .zigbee2mqtt:
                let fields = context.fieldsToGet.isEmpty ? ["state"] : context.fieldsToGet
                let document = JSONValue.object(fields.map { JSONMember(key: $0, value: .string("")) })
                devices[index].refresh = [
                    RefreshMessage(topic: context.zigbeeState + "/get", payload: document.serialized())
                ]
            case .shellyGen2:
                devices[index].refresh = context.refresh
            }
        }
    }

    // MARK: Points

    /// What a profile adds to a point after it is loaded.
    typealias ProfileFinish = (inout PointConfiguration) -> Void

    /// Fills in the keys a point's profile derives (state and command topics, payload, ack),
    /// removing the profile's own keys (`relay`, `field`, ...). Keys written on the point win;
    /// `payload` and `ack` are merged key by key. A point whose device has no profile keeps its
    /// node, with an error for each profile key it uses. `nil`: the profile keys are wrong (and
    /// reported); the point is not read further, which would only report what follows from them.
    func expandProfile(_ node: Node, unitDevice: String?) -> (Node?, ProfileFinish?) {
        guard case .mapping(let mapping) = node else { return (node, nil) }
        let pairs = Array(mapping)
        let deviceName = pairs.first { $0.key.scalarText == "device" }?.value.scalarText ?? unitDevice
        let context = deviceName.flatMap { profiles[$0] }
        let written = pairs.filter { pair in Self.profilePointKeys.contains { $0.key == pair.key.scalarText } }
        guard let context else {
            for pair in written {
                let key = pair.key.scalarText ?? ""
                let owners = Self.profilePointKeys.first { $0.key == key }!.kinds.map(\.rawValue).joined(
                    separator: " or "
                )
                diagnostics.error(
                    "'\(key)' is a key of profile \(owners), but the point's device "
                        + (deviceName.map { "'\($0)' has no profile" } ?? "is not set"),
                    at: pair.key.mark,
                    fix: "give the point (or its unit) a device with profile: \(owners), or remove \(key)"
                )
            }
            return (
                Node.mapping(
                    Node.Mapping(
                        pairs.filter { !written.map(\.key).contains($0.key) },
                        mapping.tag,
                        mapping.style,
                        mapping.mark
                    )
                ), nil
            )
        }
        let own = Self.keys(of: context.kind)
        var valid = true
        var values: [String: (text: String, mark: Mark?)] = [:]
        for pair in written {
            let key = pair.key.scalarText ?? ""
            guard own.contains(key) else {
                diagnostics.error(
                    "'\(key)' is not a key of profile \(context.kind) (device '\(context.device)')",
                    at: pair.key.mark,
                    fix: "profile \(context.kind) points use \(own.joined(separator: ", "))"
                )
                valid = false
                continue
            }
            guard let text = reader.string(Entry(key: key, keyNode: pair.key, value: pair.value)) else {
                valid = false
                continue
            }
            values[key] = (text, pair.value.mark ?? pair.key.mark)
        }
        let rest = pairs.filter { pair in !written.contains { $0.key == pair.key } }
        func scalar(_ key: String) -> String? { rest.first { $0.key.scalarText == key }?.value.scalarText }
        let area = scalar("area")?.lowercased()
        let type = scalar("type")?.lowercased()
        let isBoolean = area == "coil" || area == "discrete_input" || type == "bit"
        let isWritable = area == "coil" || area == "holding_register"
        var added: [(String, Node)] = []
        var finish: ProfileFinish?
        let anchor = written.first?.key.mark ?? mapping.mark
        func text(_ value: String) -> Node { .scalar(Node.Scalar(value, .implicit, .doubleQuoted, anchor)) }
        func map(_ entries: [(String, Node)]) -> Node {
            .mapping(Node.Mapping(entries.map { (text($0.0), $0.1) }, .implicit, .block, anchor))
        }
        func words(_ list: [String]) -> Node { .sequence(Node.Sequence(list.map(text), .implicit, .flow, anchor)) }
        let onOff: [(String, Node)] = [("true_words", words(["ON"])), ("false_words", words(["OFF"]))]

        switch context.kind {
        case .tasmota:
            let chosen = ["relay", "sensor", "state"].filter { values[$0] != nil }
            if chosen.count > 1 {
                diagnostics.error(
                    "a Tasmota point takes one of relay, sensor and state, found \(chosen.joined(separator: " and "))",
                    at: values[chosen[1]]?.mark,
                    fix: "split it into one point per value"
                )
                valid = false
            }
            if valid, let (relayText, mark) = values["relay"] {
                guard let relay = YAMLReader.parseInteger(relayText), (1...32).contains(relay) else {
                    diagnostics.error(
                        "Tasmota relay '\(relayText)' is out of range: relays are numbered 1...32",
                        at: mark,
                        fix: "write the relay's number as Tasmota counts them: 1 for POWER1 (or POWER), up to 32"
                    )
                    return (nil, nil)
                }
                guard relay <= context.relays else {
                    diagnostics.error(
                        "relay \(relay), but device '\(context.device)' has \(context.relays) relay\(context.relays == 1 ? "" : "s")",
                        at: mark,
                        fix:
                            "set relays: \(relay) (or more) on the device: with several relays Tasmota names them POWER1, POWER2, ..."
                    )
                    return (nil, nil)
                }
                guard isBoolean else {
                    diagnostics.error(
                        "a Tasmota relay is on or off, but this point is \(area ?? "in no area")\(type.map { " of type \($0)" } ?? "")",
                        at: mark,
                        fix: "put it in a coil (to switch it) or a discrete input, or make it type bit"
                    )
                    return (nil, nil)
                }
                if let retain = rest.first(where: { $0.key.scalarText == "command_retain" }),
                    ["true", "yes", "on"].contains(retain.value.scalarText?.lowercased() ?? "")
                {
                    diagnostics.error(
                        "Tasmota commands are never retained: a retained POWER command would switch the relay again whenever the device reconnects",
                        at: retain.key.mark,
                        fix: "remove command_retain"
                    )
                    valid = false
                }
                // One relay: Tasmota says POWER; several: POWER1, POWER2, ...
                let key = context.relays == 1 ? "POWER" : "POWER\(relay)"
                added.append(("state_topic", text(context.tasmota("stat", "RESULT"))))
                added.append(
                    (
                        "payload",
                        map([("format", text("json")), ("path", text(key)), ("if_absent", text("ignore"))] + onOff)
                    )
                )
                if isWritable {
                    added.append(("command_topic", text(context.tasmota("cmnd", key))))
                    added.append(("command_payload", map([("format", text("plain"))])))
                    added.append(("ack", map([("mode", text("state_echo"))])))
                }
                let refresh = RefreshMessage(topic: context.tasmota("cmnd", key))
                if !(profiles[context.device]?.refresh.contains(refresh) ?? true) {
                    profiles[context.device]?.refresh.append(refresh)
                }
                let echo = context.tasmota("stat", key)
                finish = { point in
                    let plain = PayloadFormat(
                        encoding: .plain,
                        trueWords: point.payload.trueWords,
                        falseWords: point.payload.falseWords
                    )
                    point.additionalStates.append(StateSource(topic: echo, payload: plain))
                }
            } else if valid, let key = chosen.first, let (path, _) = values[key] {
                added.append(("state_topic", text(context.tasmota("tele", key == "sensor" ? "SENSOR" : "STATE"))))
                added.append(
                    ("payload", map([("format", text("json")), ("path", text(path))] + (isBoolean ? onOff : [])))
                )
            } else if valid {
                diagnostics.error(
                    "a point of Tasmota device '\(context.device)' needs relay, sensor or state",
                    at: mapping.mark,
                    fix:
                        "relay: 1 for a relay, sensor: DS18B20.Temperature for tele/…/SENSOR, state: Wifi.RSSI for tele/…/STATE"
                )
                return (nil, nil)
            }
        case .zigbee2mqtt:
            guard let (field, mark) = values["field"] else {
                if valid {
                    diagnostics.error(
                        "a point of zigbee2mqtt device '\(context.device)' needs 'field', the JSON key of its value",
                        at: mapping.mark,
                        fix: "add field: (state, power, temperature, ...: the keys of \(context.zigbeeState))"
                    )
                }
                return (nil, nil)
            }
            added.append(("state_topic", text(context.zigbeeState)))
            added.append(
                ("payload", map([("format", text("json")), ("path", text(field))] + (isBoolean ? onOff : [])))
            )
            if isWritable {
                added.append(("command_topic", text(context.zigbeeState + "/set")))
                added.append(("ack", map([("mode", text("state_echo"))])))
                if let path = try? JSONPath(parsing: field), case .key(let top)? = path.components.first,
                    !(profiles[context.device]?.fieldsToGet.contains(top) ?? true)
                {
                    profiles[context.device]?.fieldsToGet.append(top)
                }
            }
            _ = mark
        case .shellyGen2:
            guard let (field, _) = values["field"] else {
                if valid {
                    diagnostics.error(
                        "a point of Shelly device '\(context.device)' needs 'field', the key of its value in the component's status",
                        at: mapping.mark,
                        fix: "add field: (output, apower, voltage, aenergy.total, ...)"
                    )
                }
                return (nil, nil)
            }
            let component = values["component"]?.text ?? "switch:0"
            let parts = component.split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count == 2, !parts[0].isEmpty, let componentID = Int(parts[1]), componentID >= 0 else {
                diagnostics.error(
                    "Shelly component '\(component)' must be <type>:<id>",
                    at: values["component"]?.mark,
                    fix: "write it as the device names it, e.g. switch:0, cover:0, em:0"
                )
                return (nil, nil)
            }
            let componentType = String(parts[0]).lowercased()
            let source = context.source
            let refreshID = "refresh:\(context.device):\(component)"
            added.append(("state_topic", text("\(context.prefix)/status/\(component)")))
            added.append(("payload", map([("format", text("json")), ("path", text(field))])))
            if isWritable {
                let method = values["method"]?.text ?? ShellySetter.byComponent[componentType]
                guard let method else {
                    diagnostics.error(
                        "no known Shelly setter for component '\(component)'",
                        at: values["component"]?.mark ?? anchor,
                        fix:
                            "write method: (\(ShellySetter.known.map(\.method).joined(separator: ", "))), or make the point read-only"
                    )
                    return (nil, nil)
                }
                guard let setter = ShellySetter.known.first(where: { $0.method.lowercased() == method.lowercased() })
                else {
                    let suggestion = YAMLReader.closest(to: method, in: ShellySetter.known.map(\.method))
                    diagnostics.error(
                        "'\(method)' is not a Shelly method the bridge can write with; known setters: \(ShellySetter.known.map(\.method).joined(separator: ", "))",
                        at: values["method"]?.mark,
                        fix: suggestion.map { "did you mean '\($0)'?" } ?? "choose one of the known setters"
                    )
                    return (nil, nil)
                }
                guard let parameter = isBoolean ? setter.boolParameter : setter.numberParameter else {
                    diagnostics.error(
                        "\(setter.method) takes \(isBoolean ? "a number" : "on/off"), but this point is \(isBoolean ? "on/off" : "a number")",
                        at: values["method"]?.mark ?? anchor,
                        fix: isBoolean
                            ? "use a holding_register for \(setter.method)"
                            : "use a coil (or type bit) for \(setter.method)"
                    )
                    return (nil, nil)
                }
                let template =
                    "{\"id\":\"{{correlation_id}}\",\"src\":\(JSONText.escaped(source).quotedJSON),\"method\":\"\(setter.method)\",\"params\":{\"id\":\(componentID),\"\(parameter)\":{{value}}}}"
                added.append(("command_topic", text("\(context.prefix)/rpc")))
                added.append(("command_template", text(template)))
                added.append(
                    ("ack", map([("mode", text("correlation_id")), ("response_topic", text("\(source)/rpc"))]))
                )
            } else if let method = values["method"] {
                diagnostics.error(
                    "'method' is for writable points; this one is \(area ?? "in no area")",
                    at: method.mark,
                    fix: "remove method, or put the point in a coil or holding_register"
                )
                valid = false
            }
            let request = JSONValue.object([
                JSONMember(key: "id", value: .string(refreshID)), JSONMember(key: "src", value: .string(source)),
                JSONMember(key: "method", value: .string("\(ShellySetter.namespace(of: componentType)).GetStatus")),
                JSONMember(key: "params", value: .object([JSONMember(key: "id", value: .number(String(componentID)))])),
            ])
            let refresh = RefreshMessage(topic: "\(context.prefix)/rpc", payload: request.serialized())
            if !(profiles[context.device]?.refresh.contains(refresh) ?? true) {
                profiles[context.device]?.refresh.append(refresh)
            }
            finish = { point in
                guard case .json(let path) = point.payload.encoding else { return }
                var reply = point.payload
                reply.encoding = .json(path: JSONPath([.key("result")] + path.components))
                point.additionalStates.append(
                    StateSource(
                        topic: "\(source)/rpc",
                        payload: reply,
                        match: StateSource.Match(path: JSONPath([.key("id")]), value: refreshID)
                    )
                )
            }
        }
        // Keys written on the point win; payload and ack merge key by key.
        var result = rest
        for (key, value) in added {
            if let index = result.firstIndex(where: { $0.key.scalarText == key }) {
                if case .mapping(let written) = result[index].value, case .mapping(let derived) = value {
                    let ownKeys = Set(written.compactMap { $0.key.scalarText })
                    let merged = Array(derived).filter { !ownKeys.contains($0.key.scalarText ?? "") } + Array(written)
                    result[index] = (
                        result[index].key, .mapping(Node.Mapping(merged, written.tag, written.style, written.mark))
                    )
                }
                continue
            }
            result.append((text(key), value))
        }
        return (.mapping(Node.Mapping(result, mapping.tag, mapping.style, mapping.mark)), valid ? finish : nil)
    }
}

extension String {
    /// The text in double quotes (it is already JSON-escaped).
    var quotedJSON: String { "\"" + self + "\"" }
}
