/// Home Assistant MQTT discovery as `import-ha` reads it: captured messages, discovery topics,
/// the abbreviated keys, the `~` base topic, and the value templates that are simple JSON paths.
/// No I/O: the program collects the messages (from a broker or a file) and hands them here.

/// One message under the discovery prefix: its topic and payload, as the broker retained it.
public struct HomeAssistantDiscoveryMessage: Sendable, Hashable {
    /// The topic, e.g. `homeassistant/sensor/boiler/temperature/config`.
    public var topic: String
    /// The payload (a JSON object for a config; empty for a removed config).
    public var payload: [UInt8]

    /// Creates a message.
    public init(topic: String, payload: [UInt8]) {
        self.topic = topic
        self.payload = payload
    }
}

/// A captured file that cannot be read.
public struct HomeAssistantCaptureError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The 1-based line of the problem (1 for the JSON form).
    public var line: Int
    /// What is wrong.
    public var reason: String

    /// `line 3: ...`
    public var description: String { "line \(line): \(reason)" }
}

/// The captured-file formats of `import-ha --from-file`.
public enum HomeAssistantCapture {
    /// Reads a captured file in either form:
    ///
    /// - **lines** of `<topic> <payload>`, one message a line, as `mosquitto_sub -v -t
    ///   'homeassistant/#'` prints them. Empty lines and lines starting with `#` are skipped; an
    ///   empty payload (or `(null)`) is a removed config.
    /// - **a JSON object** of topic → config (the config an object, or a string holding the
    ///   payload; `null` for a removed config), recognized by its leading `{`.
    ///
    /// A topic that appears twice keeps its last payload, as a broker keeps the last retained
    /// message.
    public static func parse(_ text: String) throws(HomeAssistantCaptureError) -> [HomeAssistantDiscoveryMessage] {
        var messages: [HomeAssistantDiscoveryMessage] = []
        if text.trimmingWhitespace().hasPrefix("{") {
            let document: JSONValue
            do {
                document = try JSONParser.parse(Array(text.utf8))
            } catch {
                throw HomeAssistantCaptureError(line: 1, reason: error.message)
            }
            guard case .object(let members) = document else {
                throw HomeAssistantCaptureError(line: 1, reason: "expected a JSON object of topic → config")
            }
            for member in members {
                switch member.value {
                case .null: messages.append(HomeAssistantDiscoveryMessage(topic: member.key, payload: []))
                case .string(let payload):
                    messages.append(HomeAssistantDiscoveryMessage(topic: member.key, payload: Array(payload.utf8)))
                case .object:
                    messages.append(
                        HomeAssistantDiscoveryMessage(topic: member.key, payload: Array(member.value.serialized().utf8))
                    )
                default:
                    throw HomeAssistantCaptureError(
                        line: 1,
                        reason: "the config of '\(member.key)' is \(member.value.kindName), not an object or a string"
                    )
                }
            }
        } else {
            for (index, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                let line = rawLine.trimmingWhitespace()
                if line.isEmpty || line.hasPrefix("#") { continue }
                let topic: Substring
                var payload: Substring
                if let space = line.firstIndex(where: { $0 == " " || $0 == "\t" }) {
                    topic = line[..<space]
                    payload = line[space...].trimmingWhitespace()
                } else {
                    topic = line
                    payload = ""
                }
                if payload == "(null)" { payload = "" }
                guard !topic.isEmpty else {
                    throw HomeAssistantCaptureError(line: index + 1, reason: "expected '<topic> <payload>'")
                }
                messages.append(HomeAssistantDiscoveryMessage(topic: String(topic), payload: Array(payload.utf8)))
            }
        }
        // The last payload of a topic wins; the order of first appearance is kept.
        var last: [String: Int] = [:]
        for (index, message) in messages.enumerated() { last[message.topic] = index }
        return messages.enumerated().filter { last[$0.element.topic] == $0.offset }.map(\.element)
    }
}

/// One Home Assistant entity: a discovery config with its keys written out in full and the `~`
/// base topic applied.
struct DiscoveredEntity: Sendable {
    /// The discovery topic (for device discovery, `<topic>#<component id>`).
    var source: String
    /// `sensor`, `switch`, ...
    var component: String
    var nodeID: String?
    var objectID: String
    var config: [String: JSONValue]

    /// The `unique_id`, when the config has one.
    var uniqueID: String? { config["unique_id"]?.scalarText }

    /// The order addresses are allocated in: component, then unique_id (or the discovery topic).
    var sortKey: (String, String) { (component, uniqueID ?? source) }

    func text(_ key: String) -> String? { config[key]?.scalarText }
    func number(_ key: String) -> Double? { config[key]?.numberValue }
}

/// What one message under the prefix is.
enum DiscoveryMessageContent {
    /// One entity (or, for device discovery, several).
    case entities([DiscoveredEntity])
    /// A removed config, or Home Assistant's own `<prefix>/status`.
    case nothing
    /// Not a usable config, with the reason.
    case unusable(String)
}

enum HomeAssistantDiscovery {
    /// Reads one message under `prefix`.
    static func read(_ message: HomeAssistantDiscoveryMessage, prefix: String) -> DiscoveryMessageContent {
        var base = prefix
        while base.hasSuffix("/") { base.removeLast() }
        guard message.topic.hasPrefix(base + "/") else {
            return .unusable("not under the discovery prefix '\(base)'")
        }
        let rest = message.topic.dropFirst(base.count + 1)
        if rest == "status" { return .nothing }
        let levels = rest.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard levels.last == "config", levels.count == 3 || levels.count == 4, !levels.contains("") else {
            return .unusable("not a discovery config topic (<prefix>/<component>/[<node_id>/]<object_id>/config)")
        }
        if message.payload.allSatisfy({ $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }) { return .nothing }
        let document: JSONValue
        do {
            document = try JSONParser.parse(message.payload)
        } catch {
            return .unusable("the payload is not JSON (\(error.message))")
        }
        guard case .object(let members) = document else {
            return .unusable("the payload is \(document.kindName), not a JSON object")
        }
        let component = levels[0]
        let nodeID = levels.count == 4 ? levels[1] : nil
        let objectID = levels[levels.count - 2]
        var config = expanded(members)
        if component == "device" {
            // Device discovery: one config for a device, its entities under `components`; the
            // other keys (state topic, availability, device, ...) are shared by all of them.
            guard case .object(let components)? = config.removeValue(forKey: "components") else {
                return .unusable("a device discovery config without 'components' (cmps)")
            }
            config.removeValue(forKey: "origin")
            var entities: [DiscoveredEntity] = []
            for entry in components.sorted(by: { $0.key < $1.key }) {
                guard case .object(let componentMembers) = entry.value else {
                    return .unusable("component '\(entry.key)' is \(entry.value.kindName), not an object")
                }
                var merged = config
                for (key, value) in expanded(componentMembers) { merged[key] = value }
                guard let platform = merged.removeValue(forKey: "platform")?.scalarText else {
                    return .unusable("component '\(entry.key)' has no 'platform' (p)")
                }
                entities.append(
                    DiscoveredEntity(
                        source: "\(message.topic)#\(entry.key)",
                        component: platform,
                        nodeID: objectID,
                        objectID: entry.key,
                        config: withBaseTopic(merged)
                    )
                )
            }
            return .entities(entities)
        }
        return .entities([
            DiscoveredEntity(
                source: message.topic,
                component: component,
                nodeID: nodeID,
                objectID: objectID,
                config: withBaseTopic(config)
            )
        ])
    }

    /// The members with abbreviated keys written out, in the config, its `device` block and its
    /// `availability` entries.
    static func expanded(_ members: [JSONMember]) -> [String: JSONValue] {
        var config: [String: JSONValue] = [:]
        for member in members {
            let key = abbreviations[member.key] ?? member.key
            switch (key, member.value) {
            case ("device", .object(let deviceMembers)):
                config[key] = .object(
                    deviceMembers.map { JSONMember(key: deviceAbbreviations[$0.key] ?? $0.key, value: $0.value) }
                )
            case ("availability", .array(let entries)):
                config[key] = .array(
                    entries.map { entry in
                        guard case .object(let entryMembers) = entry else { return entry }
                        return .object(
                            entryMembers.map { JSONMember(key: abbreviations[$0.key] ?? $0.key, value: $0.value) }
                        )
                    }
                )
            default:
                config[key] = member.value
            }
        }
        return config
    }

    /// The config with `~` replaced by the base topic at the start or the end of every topic.
    static func withBaseTopic(_ config: [String: JSONValue]) -> [String: JSONValue] {
        guard let base = config["~"]?.scalarText else { return config }
        var result = config
        result.removeValue(forKey: "~")
        func substituted(_ topic: String) -> String {
            var topic = topic
            if topic.hasPrefix("~") { topic = base + topic.dropFirst() }
            if topic.hasSuffix("~") { topic = topic.dropLast() + base }
            return topic
        }
        for (key, value) in result where key.hasSuffix("topic") {
            if case .string(let topic) = value, !topic.isEmpty { result[key] = .string(substituted(topic)) }
        }
        if case .array(let entries)? = result["availability"] {
            result["availability"] = .array(
                entries.map { entry in
                    guard case .object(var members) = entry else { return entry }
                    for index in members.indices where members[index].key == "topic" {
                        if case .string(let topic) = members[index].value, !topic.isEmpty {
                            members[index].value = .string(substituted(topic))
                        }
                    }
                    return .object(members)
                }
            )
        }
        return result
    }

    /// The abbreviations of discovery config keys (and of availability entries).
    static let abbreviations: [String: String] = [
        "act_t": "action_topic", "act_tpl": "action_template", "avty": "availability",
        "avty_mode": "availability_mode", "avty_t": "availability_topic", "avty_tpl": "availability_template",
        "aux_cmd_t": "aux_command_topic", "aux_stat_t": "aux_state_topic", "aux_stat_tpl": "aux_state_template",
        "b_tpl": "blue_template", "bri_cmd_t": "brightness_command_topic", "bri_cmd_tpl": "brightness_command_template",
        "bri_scl": "brightness_scale", "bri_stat_t": "brightness_state_topic", "bri_tpl": "brightness_template",
        "bri_val_tpl": "brightness_value_template", "clr_temp_cmd_t": "color_temp_command_topic",
        "clr_temp_cmd_tpl": "color_temp_command_template", "clr_temp_stat_t": "color_temp_state_topic",
        "clr_temp_tpl": "color_temp_template", "clr_temp_val_tpl": "color_temp_value_template",
        "clrm_stat_t": "color_mode_state_topic", "clrm_val_tpl": "color_mode_value_template",
        "cmd_off_tpl": "command_off_template", "cmd_on_tpl": "command_on_template", "cmd_t": "command_topic",
        "cmd_tpl": "command_template", "cmps": "components", "cod_arm_req": "code_arm_required",
        "cod_dis_req": "code_disarm_required", "curr_hum_t": "current_humidity_topic",
        "curr_hum_tpl": "current_humidity_template", "curr_temp_t": "current_temperature_topic",
        "curr_temp_tpl": "current_temperature_template", "dev": "device", "dev_cla": "device_class",
        "dsp_prc": "display_precision", "e": "encoding", "en": "enabled_by_default", "ent_cat": "entity_category",
        "exp_aft": "expire_after", "fan_mode_cmd_t": "fan_mode_command_topic",
        "fan_mode_cmd_tpl": "fan_mode_command_template", "fan_mode_stat_t": "fan_mode_state_topic",
        "fan_mode_stat_tpl": "fan_mode_state_template", "frc_upd": "force_update", "fx_cmd_t": "effect_command_topic",
        "fx_cmd_tpl": "effect_command_template", "fx_list": "effect_list", "fx_stat_t": "effect_state_topic",
        "fx_tpl": "effect_template", "fx_val_tpl": "effect_value_template", "g_tpl": "green_template",
        "hs_cmd_t": "hs_command_topic", "hs_cmd_tpl": "hs_command_template", "hs_stat_t": "hs_state_topic",
        "hs_val_tpl": "hs_value_template", "ic": "icon", "init": "initial", "json_attr": "json_attributes",
        "json_attr_t": "json_attributes_topic", "json_attr_tpl": "json_attributes_template", "max_mirs": "max_mireds",
        "min_mirs": "min_mireds", "max_temp": "max_temp", "min_temp": "min_temp", "mode_cmd_t": "mode_command_topic",
        "mode_cmd_tpl": "mode_command_template", "mode_stat_t": "mode_state_topic",
        "mode_stat_tpl": "mode_state_template", "o": "origin", "obj_id": "object_id", "off_dly": "off_delay",
        "on_cmd_type": "on_command_type", "ops": "options", "opt": "optimistic", "p": "platform",
        "pct_cmd_t": "percentage_command_topic", "pct_cmd_tpl": "percentage_command_template",
        "pct_stat_t": "percentage_state_topic", "pct_val_tpl": "percentage_value_template", "pl": "payload",
        "pl_avail": "payload_available", "pl_not_avail": "payload_not_available", "pl_off": "payload_off",
        "pl_on": "payload_on", "pl_open": "payload_open", "pl_cls": "payload_close", "pl_stop": "payload_stop",
        "pl_lock": "payload_lock", "pl_unlk": "payload_unlock", "pl_prs": "payload_press",
        "pos_t": "position_topic", "pos_tpl": "position_template", "pr_mode_cmd_t": "preset_mode_command_topic",
        "pr_mode_cmd_tpl": "preset_mode_command_template", "pr_mode_stat_t": "preset_mode_state_topic",
        "pr_mode_val_tpl": "preset_mode_value_template", "pr_modes": "preset_modes", "r_tpl": "red_template",
        "ret": "retain", "rgb_cmd_t": "rgb_command_topic", "rgb_cmd_tpl": "rgb_command_template",
        "rgb_stat_t": "rgb_state_topic", "rgb_val_tpl": "rgb_value_template", "set_pos_t": "set_position_topic",
        "set_pos_tpl": "set_position_template", "stat_cla": "state_class", "stat_clsd": "state_closed",
        "stat_off": "state_off", "stat_on": "state_on", "stat_open": "state_open", "stat_t": "state_topic",
        "stat_tpl": "state_template", "stat_val_tpl": "state_value_template",
        "sug_dsp_prc": "suggested_display_precision",
        "sup_clrm": "supported_color_modes", "swing_mode_cmd_t": "swing_mode_command_topic",
        "swing_mode_cmd_tpl": "swing_mode_command_template", "swing_mode_stat_t": "swing_mode_state_topic",
        "swing_mode_stat_tpl": "swing_mode_state_template", "t": "topic", "temp_cmd_t": "temperature_command_topic",
        "temp_cmd_tpl": "temperature_command_template", "temp_hi_cmd_t": "temperature_high_command_topic",
        "temp_hi_stat_t": "temperature_high_state_topic", "temp_lo_cmd_t": "temperature_low_command_topic",
        "temp_lo_stat_t": "temperature_low_state_topic", "temp_stat_t": "temperature_state_topic",
        "temp_stat_tpl": "temperature_state_template", "temp_unit": "temperature_unit",
        "tilt_cmd_t": "tilt_command_topic", "tilt_status_t": "tilt_status_topic", "uniq_id": "unique_id",
        "unit_of_meas": "unit_of_measurement", "val_tpl": "value_template", "whit_cmd_t": "white_command_topic",
        "xy_cmd_t": "xy_command_topic", "xy_stat_t": "xy_state_topic",
    ]

    /// The abbreviations of the `device` block's keys.
    static let deviceAbbreviations: [String: String] = [
        "cns": "connections", "cu": "configuration_url", "hw": "hw_version", "ids": "identifiers",
        "mdl": "model", "mdl_id": "model_id", "mf": "manufacturer", "sa": "suggested_area", "sn": "serial_number",
        "sw": "sw_version",
    ]
}

/// How a Home Assistant value template reads the payload, when the bridge can do the same.
enum HomeAssistantTemplate: Equatable {
    /// `{{ value }}` (or no template): the payload itself.
    case payload
    /// `{{ value_json.a.b }}`, `{{ value_json['a'] }}`, `{{ value_json[0] }}`: a JSON path.
    case jsonPath(JSONPath)

    /// The template's meaning, or `nil` when it is more than a JSON path (arithmetic, filters
    /// other than `float`, conditions, several expressions).
    static func parse(_ template: String?) -> HomeAssistantTemplate? {
        guard let template else { return .payload }
        let trimmed = template.trimmingWhitespace()
        guard trimmed.hasPrefix("{{"), trimmed.hasSuffix("}}"), trimmed.count >= 4 else { return nil }
        let inner = trimmed.dropFirst(2).dropLast(2)
        guard !inner.contains("{{"), !inner.contains("}}"), !inner.contains("{%") else { return nil }
        // `| float` and `| float(0)` turn a number into a number: the bridge reads numbers anyway.
        var pieces = inner.split(separator: "|", omittingEmptySubsequences: false).map { $0.trimmingWhitespace() }
        let expression = pieces.removeFirst()
        for filter in pieces {
            guard filter == "float" || (filter.hasPrefix("float(") && filter.hasSuffix(")")) else { return nil }
        }
        return parseExpression(expression)
    }

    private static func parseExpression(_ expression: Substring) -> HomeAssistantTemplate? {
        if expression == "value" { return .payload }
        guard expression.hasPrefix("value_json") else { return nil }
        var rest = Array(expression.dropFirst("value_json".count).unicodeScalars)[...]
        var components: [JSONPath.Component] = []
        func isIdentifier(_ scalar: Unicode.Scalar, first: Bool) -> Bool {
            scalar == "_" || ("a"..."z").contains(scalar) || ("A"..."Z").contains(scalar)
                || (!first && ("0"..."9").contains(scalar))
        }
        while let first = rest.first {
            if first == "." {
                rest = rest.dropFirst()
                guard let start = rest.first, isIdentifier(start, first: true) else { return nil }
                let end = rest.firstIndex { !isIdentifier($0, first: false) } ?? rest.endIndex
                components.append(.key(String(String.UnicodeScalarView(rest[..<end]))))
                rest = rest[end...]
            } else if first == "[" {
                rest = rest.dropFirst()
                guard let close = rest.firstIndex(of: "]") else { return nil }
                let inside = String(String.UnicodeScalarView(rest[..<close])).trimmingWhitespace()
                rest = rest[close...].dropFirst()
                if let quote = inside.first, quote == "'" || quote == "\"", inside.count >= 2, inside.last == quote {
                    let key = inside.dropFirst().dropLast()
                    guard !key.contains("'"), !key.contains("\""), !key.contains("\\") else { return nil }
                    components.append(.key(String(key)))
                } else if !inside.isEmpty, inside.unicodeScalars.allSatisfy({ ("0"..."9").contains($0) }),
                    let index = Int(inside)
                {
                    components.append(.index(index))
                } else {
                    return nil
                }
            } else {
                return nil
            }
        }
        return .jsonPath(JSONPath(components))
    }

    /// A command template in the bridge's syntax: `{{ value }}` becomes `{{value}}`; `nil` when
    /// the template uses anything else. A template that is only the value returns `""` (no
    /// template needed).
    static func command(_ template: String?) -> String? {
        guard let template else { return "" }
        var result = ""
        var rest = Substring(template)
        func isLiteral(_ text: Substring) -> Bool {
            !text.contains("{%") && !text.contains("{#") && !text.contains("}}") && !text.contains("{{")
        }
        while let open = rest.firstRange(of: "{{") {
            guard isLiteral(rest[..<open.lowerBound]) else { return nil }
            result += rest[..<open.lowerBound]
            guard let close = rest[open.upperBound...].firstRange(of: "}}") else { return nil }
            guard rest[open.upperBound..<close.lowerBound].trimmingWhitespace() == "value" else { return nil }
            result += "{{value}}"
            rest = rest[close.upperBound...]
        }
        guard isLiteral(rest) else { return nil }
        result += rest
        return result == "{{value}}" ? "" : result
    }

}

extension JSONValue {
    /// A string, or the text of a number or boolean; `nil` for null, arrays and objects.
    var scalarText: String? {
        switch self {
        case .string(let text): text
        case .number(let literal): literal
        case .bool(let value): value ? "true" : "false"
        default: nil
        }
    }

    /// A number, or a string holding one.
    var numberValue: Double? {
        switch self {
        case .number(let literal): Double(literal)
        case .string(let text): Double(text.trimmingWhitespace())
        default: nil
        }
    }
}
