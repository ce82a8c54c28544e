/// A topic filter split into levels once, so that matching a received topic against it costs no
/// allocation: the loop thread matches every received message against the routes' filters.
struct TopicFilter: Sendable, Hashable {
    enum Level: Sendable, Hashable {
        case name([UInt8])
        /// `+`: exactly one level.
        case single
        /// `#`: this level and every level below it, or none.
        case multi
    }

    let text: String
    let levels: [Level]

    /// Whether the filter has a wildcard (otherwise it matches exactly one topic name: itself).
    var isWildcard: Bool { levels.contains { !Self.isName($0) } }

    /// Parses `filter`; nil when it is not a valid MQTT topic filter (empty, `+` or `#` sharing a
    /// level with other characters, `#` anywhere but last, or a NUL character).
    init?(_ filter: String) {
        guard !filter.isEmpty, !filter.utf8.contains(0) else { return nil }
        var levels: [Level] = []
        let parts = filter.utf8.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false)
        for (index, part) in parts.enumerated() {
            if part.elementsEqual("+".utf8) {
                levels.append(.single)
            } else if part.elementsEqual("#".utf8) {
                guard index == parts.count - 1 else { return nil }
                levels.append(.multi)
            } else {
                guard !part.contains(UInt8(ascii: "+")), !part.contains(UInt8(ascii: "#")) else { return nil }
                levels.append(.name(Array(part)))
            }
        }
        self.text = filter
        self.levels = levels
    }

    private static func isName(_ level: Level) -> Bool {
        if case .name = level { return true }
        return false
    }

    /// Whether `topic` (a topic name, as received) matches. A wildcard in the first level does
    /// not match a topic beginning with `$` (MQTT 5 §4.7.2).
    func matches(_ topic: String) -> Bool {
        var topic = topic
        return topic.withUTF8 { matches(bytes: $0) }
    }

    private func matches(bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        if let first = levels.first, !Self.isName(first), bytes.first == UInt8(ascii: "$") { return false }
        var position = 0
        for (index, level) in levels.enumerated() {
            // The topic has no level left: only a trailing `#` matches ("a/#" matches "a").
            if position > bytes.count { return level == .multi && index == levels.count - 1 }
            var end = position
            while end < bytes.count && bytes[end] != UInt8(ascii: "/") { end += 1 }
            switch level {
            case .multi:
                return true
            case .single:
                break
            case .name(let name):
                guard name.count == end - position else { return false }
                for offset in 0..<name.count where name[offset] != bytes[position + offset] { return false }
            }
            position = end + 1
        }
        // Every level of the filter matched; so must every level of the topic.
        return position > bytes.count
    }
}
