/// A device convention the loader knows (`profile:` on a device): the topics, payload formats,
/// acknowledgement, availability and refresh of a device family, filled in from the device's
/// name so that its points only say what is specific to them (a relay number, a JSON field).
///
/// Profiles are expanded when the file is loaded, into ordinary points, availability settings
/// and refresh messages: the runtime never sees a profile. What a device's profile made of it is
/// kept here for `explain` and `registers`.
public struct DeviceProfile: Sendable, Hashable {
    /// The device families with a profile.
    public enum Kind: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
        /// Tasmota firmware: `cmnd/<topic>/POWER<n>`, confirmed on `stat/<topic>/RESULT`,
        /// `tele/<topic>/LWT`, `tele/<topic>/STATE` and `tele/<topic>/SENSOR`.
        case tasmota
        /// A device of zigbee2mqtt: `<base>/<name>` JSON, commands on `<base>/<name>/set`,
        /// `<base>/<name>/availability`, `<base>/<name>/get` to ask for the state.
        case zigbee2mqtt
        /// A Shelly of the second generation (and later) over MQTT: JSON-RPC requests on
        /// `<id>/rpc`, replies on `<source>/rpc`, status on `<id>/status/<component>`, `<id>/online`.
        case shellyGen2 = "shelly_gen2"

        /// The configuration name: `tasmota`, `zigbee2mqtt`, `shelly_gen2`.
        public var description: String { rawValue }
    }

    /// One topic the profile derived, with what it is for (`commands`, `replies`, ...).
    public struct Topic: Sendable, Hashable {
        /// What the topic is for, in a few words.
        public var role: String
        /// The topic (or, for `FullTopic`, the pattern the topics follow).
        public var topic: String

        /// Creates a topic entry.
        public init(role: String, topic: String) {
            self.role = role
            self.topic = topic
        }
    }

    /// The names the profile's topics were made from, as the device itself knows them: what
    /// a peer that speaks the device's convention (the simulator) needs to answer like it.
    public enum Identity: Sendable, Hashable {
        /// Tasmota's Topic and FullTopic.
        case tasmota(topic: String, fullTopic: String)
        /// zigbee2mqtt's base topic and the device's friendly name.
        case zigbee2mqtt(baseTopic: String, friendlyName: String)
        /// The Shelly's topic prefix and the source the bridge names in its requests.
        case shellyGen2(topicPrefix: String, rpcSource: String)
    }

    /// The device family.
    public var kind: Kind
    /// The topics the profile derived, in the order `explain` shows them.
    public var topics: [Topic]
    /// What the topics were made from; `nil` for a record made without it.
    public var identity: Identity?

    /// Creates a profile record.
    public init(kind: Kind, topics: [Topic] = [], identity: Identity? = nil) {
        self.kind = kind
        self.topics = topics
        self.identity = identity
    }

    /// A Tasmota topic: `fullTopic` with `%prefix%` and `%topic%` filled in, then the command
    /// (`cmnd/boiler_board/POWER1` for prefix `cmnd`, command `POWER1`).
    public static func tasmotaTopic(fullTopic: String, topic: String, prefix: String, command: String) -> String {
        var full = fullTopic.components(separatedBy: "%prefix%").joined(separator: prefix)
            .components(separatedBy: "%topic%").joined(separator: topic)
        if !full.hasSuffix("/") { full += "/" }
        return full + command
    }
}

/// A message the bridge publishes to make a device report its state now (a device's `refresh`):
/// on start and after every reconnection, once the subscriptions are in place, so that values
/// that are not retained come back without waiting for the device's next report. Never retained.
public struct RefreshMessage: Sendable, Hashable {
    /// Where the request is published (a topic name).
    public var topic: String
    /// The request; may be empty (a Tasmota query).
    public var payload: String

    /// Creates a refresh message.
    public init(topic: String, payload: String = "") {
        self.topic = topic
        self.payload = payload
    }
}

/// A second place a point's value arrives besides its state topic, added by profiles: a Tasmota
/// relay reports on `stat/<topic>/RESULT` (its state topic) and on `stat/<topic>/POWER<n>`; a
/// Shelly's status comes on `<id>/status/<component>` and, asked by the refresh, in the reply
/// to `<Component>.GetStatus`.
public struct StateSource: Sendable, Hashable {
    /// The topic (a topic name, not a filter).
    public var topic: String
    /// How the value is encoded there.
    public var payload: PayloadFormat
    /// Only messages whose JSON has this text at this path carry the value (a reply to the
    /// bridge's own status request, by its id); `nil`: every message does.
    public var match: Match?

    /// A JSON field that must hold a given text.
    public struct Match: Sendable, Hashable {
        /// Where the text is.
        public var path: JSONPath
        /// The text it must be.
        public var value: String

        /// Creates a match.
        public init(path: JSONPath, value: String) {
            self.path = path
            self.value = value
        }

        /// Whether `payload` is a JSON document with the text (or number) ``value`` at ``path``.
        public func matches(_ payload: [UInt8]) -> Bool {
            guard let document = try? JSONParser.parse(payload), case .success(let found) = document.value(at: path)
            else { return false }
            switch found {
            case .string(let text), .number(let text): return text == value
            default: return false
            }
        }
    }

    /// Creates a state source.
    public init(topic: String, payload: PayloadFormat, match: Match? = nil) {
        self.topic = topic
        self.payload = payload
        self.match = match
    }
}

extension DeviceConfiguration {
    /// What the device's profile expanded to, one line each, for `explain` and `registers`:
    /// the derived topics, the availability and the refresh messages. Empty without a profile.
    public var profileSummary: [String] {
        guard let profile else { return [] }
        var lines = ["device \(name): profile \(profile.kind)"]
        for topic in profile.topics { lines.append("  \(topic.role): \(topic.topic)") }
        if let availability {
            lines.append(
                "  availability: \(availability.topic) (online \(availability.onlineWords.joined(separator: "/")), offline \(availability.offlineWords.joined(separator: "/"))\(availability.path.map { ", JSON at \($0) or plain" } ?? ""))"
            )
        }
        for message in refresh {
            lines.append("  refresh: \(message.topic) \(message.payload.isEmpty ? "(empty payload)" : message.payload)")
        }
        return lines
    }
}

extension PointConfiguration {
    /// Where the point's value comes from and where its commands go, one line each (what a
    /// profile derived, for `explain`).
    public var topicSummary: [String] {
        func format(_ payload: PayloadFormat) -> String {
            var text = payload.name
            if let path = payload.jsonPath { text += " at \(path)" }
            if type.isBoolean || payload.encoding == .boolean {
                text +=
                    ", words \(payload.trueWords.joined(separator: "/")) and \(payload.falseWords.joined(separator: "/"))"
            }
            if payload.ignoresAbsentPath { text += ", documents without it ignored" }
            return text
        }
        var lines: [String] = []
        if let stateTopic { lines.append("  state: \(stateTopic) (\(format(payload)))") }
        for source in additionalStates {
            let only = source.match.map { ", only where \($0.path) is \($0.value)" } ?? ""
            lines.append("  state also: \(source.topic) (\(format(source.payload))\(only))")
        }
        if let command {
            let how = command.template.map { "template \($0.text)" } ?? format(command.payload ?? payload)
            lines.append(
                "  commands: \(command.topic) (\(how)), ack \(command.ack.mode)\(command.ack.responseTopic.map { " on \($0)" } ?? ""), \(command.retain ? "retained" : "not retained")"
            )
        }
        return lines
    }
}
