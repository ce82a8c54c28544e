/// The MQTT rules for topic names (what is published to) and topic filters (what is subscribed
/// to), MQTT 5 §4.7 and MQTT 3.1.1 §4.7.
///
/// - Both: at least one character, at most 65535 bytes of UTF-8, no NUL. Control characters
///   (U+0001...U+001F, U+007F...U+009F) are refused too: brokers such as mosquitto reject them.
/// - Names: no wildcard (`+`, `#`) anywhere, and no leading `$` (reserved for the broker, such
///   as `$SYS`).
/// - Filters: `+` only as a whole level; `#` only as a whole level and only the last one.
///
/// Empty levels (`a//b`, a leading or trailing `/`) are legal; ``emptyLevelWarning(_:)`` reports
/// them because they are usually typing mistakes.
public enum MQTTTopicRules {
    /// The longest topic, in bytes of UTF-8.
    public static let maxLength = 65535

    /// Checks a topic name: a topic a message is published to.
    public static func validateName(_ topic: String) throws(MQTTTopicError) {
        try validateCommon(topic)
        if topic.contains("+") || topic.contains("#") {
            throw MQTTTopicError(
                topic: topic,
                reason: "wildcards ('+', '#') are not allowed in a topic that is published to"
            )
        }
        if topic.hasPrefix("$") {
            throw MQTTTopicError(topic: topic, reason: "topics starting with '$' are reserved for the broker")
        }
    }

    /// Checks a topic filter: a subscription, which may contain wildcards.
    public static func validateFilter(_ filter: String) throws(MQTTTopicError) {
        try validateCommon(filter)
        let levels = filter.split(separator: "/", omittingEmptySubsequences: false)
        for (index, level) in levels.enumerated() {
            if level.contains("#") {
                guard level == "#" else {
                    throw MQTTTopicError(topic: filter, reason: "'#' must occupy a whole level ('a/#', not 'a#')")
                }
                guard index == levels.count - 1 else {
                    throw MQTTTopicError(topic: filter, reason: "'#' must be the last level")
                }
            }
            if level.contains("+") && level != "+" {
                throw MQTTTopicError(topic: filter, reason: "'+' must occupy a whole level ('a/+/b', not 'a/b+')")
            }
        }
    }

    /// Whether a filter contains a wildcard.
    public static func isWildcardFilter(_ filter: String) -> Bool {
        filter.contains("+") || filter.contains("#")
    }

    /// Whether `topic` (a name) matches `filter`, with the MQTT rule that wildcards at the first
    /// level do not match topics starting with `$`.
    public static func filter(_ filter: String, matches topic: String) -> Bool {
        let filterLevels = filter.split(separator: "/", omittingEmptySubsequences: false)
        let topicLevels = topic.split(separator: "/", omittingEmptySubsequences: false)
        if topic.hasPrefix("$"), let first = filterLevels.first, first == "+" || first == "#" { return false }
        var index = 0
        while index < filterLevels.count {
            let level = filterLevels[index]
            if level == "#" { return true }
            guard index < topicLevels.count else { return false }
            if level != "+" && level != topicLevels[index] { return false }
            index += 1
        }
        return index == topicLevels.count
    }

    /// A warning text if the topic has empty levels, `nil` otherwise.
    public static func emptyLevelWarning(_ topic: String) -> String? {
        if topic.hasPrefix("/") { return "topic '\(topic)' starts with '/', which creates an empty first level" }
        if topic.hasSuffix("/") { return "topic '\(topic)' ends with '/', which creates an empty last level" }
        if topic.contains("//") { return "topic '\(topic)' contains '//', an empty level" }
        return nil
    }

    private static func validateCommon(_ topic: String) throws(MQTTTopicError) {
        if topic.isEmpty { throw MQTTTopicError(topic: topic, reason: "a topic cannot be empty") }
        if topic.utf8.count > maxLength {
            throw MQTTTopicError(
                topic: topic,
                reason: "a topic is at most \(maxLength) bytes of UTF-8; this one has \(topic.utf8.count)"
            )
        }
        for scalar in topic.unicodeScalars {
            if scalar.value == 0 { throw MQTTTopicError(topic: topic, reason: "a topic cannot contain NUL (U+0000)") }
            if scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value) {
                let code = String(scalar.value, radix: 16, uppercase: true)
                throw MQTTTopicError(
                    topic: topic,
                    reason:
                        "a topic cannot contain control characters (U+\(String(repeating: "0", count: 4 - code.count))\(code))"
                )
            }
        }
    }
}

/// A topic that breaks the MQTT rules.
public struct MQTTTopicError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The topic as written.
    public var topic: String
    /// Which rule it breaks.
    public var reason: String

    /// The reason.
    public var description: String { "invalid topic '\(topic)': \(reason)" }
}
