/// How a point's MQTT messages encode its value: state messages the bridge receives and, by
/// default, the commands it publishes.
public struct PayloadFormat: Sendable, Hashable {
    /// The shape of the payload.
    public enum Encoding: Sendable, Hashable {
        /// The payload is the value itself: a number (`21.5`, `-3`, `0x1F`) for numeric points,
        /// the text for string points, one of the true/false words for `bool` and `bit` points.
        case plain
        /// The payload is a JSON document and the value is found at `path`.
        case json(path: JSONPath)
        /// The payload is one of the true or false words (case-insensitive). On a numeric point
        /// true is 1 and false is 0.
        case boolean
    }

    /// The shape of the payload.
    public var encoding: Encoding
    /// Words accepted as true (compared case-insensitively, surrounding white space ignored).
    /// The first one is the word the bridge publishes for true.
    public var trueWords: [String]
    /// Words accepted as false. The first one is the word the bridge publishes for false.
    public var falseWords: [String]
    /// `json` only: a document without the path is not about this point and is passed over,
    /// neither a value nor a decoding failure (`if_absent: ignore`). Tasmota's
    /// `stat/<topic>/RESULT` carries the answer to every command, `{"POWER":"ON"}` or
    /// `{"Dimmer":40}`: a relay's point takes only the documents with its key.
    public var ignoresAbsentPath = false

    /// `true`, `on`, `1`: the default true words.
    public static let defaultTrueWords = ["true", "on", "1"]
    /// `false`, `off`, `0`: the default false words.
    public static let defaultFalseWords = ["false", "off", "0"]

    /// Creates a format.
    public init(
        encoding: Encoding,
        trueWords: [String] = Self.defaultTrueWords,
        falseWords: [String] = Self.defaultFalseWords
    ) {
        self.encoding = encoding
        self.trueWords = trueWords
        self.falseWords = falseWords
    }

    /// Plain payloads with the default words.
    public static let plain = PayloadFormat(encoding: .plain)

    /// The configuration name of the encoding: `plain`, `json` or `boolean`.
    public var name: String {
        switch encoding {
        case .plain: "plain"
        case .json: "json"
        case .boolean: "boolean"
        }
    }

    /// Whether the format lists its own true and false words rather than the defaults: a
    /// device that names its states (`ON`/`OFF`) is sent those names, in JSON too (see
    /// ``CommandEncoder``).
    public var hasOwnWords: Bool {
        trueWords != Self.defaultTrueWords || falseWords != Self.defaultFalseWords
    }

    /// The JSON path, for the `json` encoding.
    public var jsonPath: JSONPath? {
        if case .json(let path) = encoding { return path }
        return nil
    }

    /// The truth value a word stands for, or `nil` if it is neither a true nor a false word.
    public func truthValue(of word: some StringProtocol) -> Bool? {
        let folded = word.trimmingWhitespace().lowercased()
        if trueWords.contains(where: { $0.lowercased() == folded }) { return true }
        if falseWords.contains(where: { $0.lowercased() == folded }) { return false }
        return nil
    }
}

/// The location of a value inside a JSON document: keys separated by dots, array indices in
/// brackets.
///
/// `data.value`, `readings[0].temperature`, `[2]`, `$` (the whole document). A key that contains
/// a dot or a bracket is written in quotes inside brackets: `["room.1"].value`. A leading `$` or
/// `$.` is allowed and means the same as without it.
public struct JSONPath: Sendable, Hashable, CustomStringConvertible {
    /// One step of a path.
    public enum Component: Sendable, Hashable {
        /// A member of an object, by key.
        case key(String)
        /// An element of an array, by 0-based index.
        case index(Int)
    }

    /// The steps from the document's root; empty for the whole document (`$`).
    public var components: [Component]

    /// Creates a path from its steps.
    public init(_ components: [Component]) {
        self.components = components
    }

    /// Parses a path such as `a.b[0].c`.
    public init(parsing text: String) throws(JSONPathSyntaxError) {
        var components: [Component] = []
        var chars = Array(text.unicodeScalars)[...]
        if chars.first == "$" {
            chars = chars.dropFirst()
            if chars.first == "." { chars = chars.dropFirst() }
            if chars.isEmpty {
                self.components = []
                return
            }
        }
        if chars.isEmpty {
            throw JSONPathSyntaxError(path: text, reason: "the path is empty; use '$' for the whole document")
        }
        var expectKey = true  // at the start, or after a dot
        while let char = chars.first {
            if char == "[" {
                chars = chars.dropFirst()
                if let quote = chars.first, quote == "\"" || quote == "'" {
                    chars = chars.dropFirst()
                    // The key ends at the quote that closes the bracket, so it may contain the
                    // quote character itself (`["say "hi"."]`).
                    guard
                        let end = chars.indices.first(where: { chars[$0] == quote && chars[($0 + 1)...].first == "]" })
                    else {
                        throw JSONPathSyntaxError(
                            path: text,
                            reason: chars.contains(quote)
                                ? "expected ']' after a quoted key" : "unterminated quoted key"
                        )
                    }
                    let key = String(String.UnicodeScalarView(chars[..<end]))
                    chars = chars[end...].dropFirst(2)
                    components.append(.key(key))
                } else {
                    guard let end = chars.firstIndex(of: "]") else {
                        throw JSONPathSyntaxError(path: text, reason: "missing ']'")
                    }
                    let digits = String(String.UnicodeScalarView(chars[..<end]))
                    guard !digits.isEmpty, digits.unicodeScalars.allSatisfy({ ("0"..."9").contains($0) }),
                        let index = Int(digits)
                    else {
                        throw JSONPathSyntaxError(
                            path: text,
                            reason: "'[\(digits)]' is not an array index; indices are whole numbers from 0"
                        )
                    }
                    chars = chars[end...].dropFirst()
                    components.append(.index(index))
                }
                expectKey = false
            } else if char == "." {
                if expectKey {
                    throw JSONPathSyntaxError(path: text, reason: "empty key (two dots, or a dot at the start)")
                }
                chars = chars.dropFirst()
                expectKey = true
                if chars.isEmpty { throw JSONPathSyntaxError(path: text, reason: "the path ends with a dot") }
            } else if char == "]" {
                throw JSONPathSyntaxError(path: text, reason: "unexpected ']'")
            } else {
                if !expectKey { throw JSONPathSyntaxError(path: text, reason: "a key must follow a dot") }
                let end = chars.firstIndex(where: { $0 == "." || $0 == "[" || $0 == "]" }) ?? chars.endIndex
                components.append(.key(String(String.UnicodeScalarView(chars[..<end]))))
                chars = chars[end...]
                expectKey = false
            }
        }
        self.components = components
    }

    /// Whether the path names the whole document.
    public var isRoot: Bool { components.isEmpty }

    /// The path in the syntax ``init(parsing:)`` reads. A key that holds both `"]` and `']` has
    /// no such form (neither quote can close it); a path read from a file never holds one.
    public var description: String {
        if components.isEmpty { return "$" }
        var text = ""
        for component in components {
            switch component {
            case .key(let key):
                // Scalars, not characters: the parser reads scalars, and "[" followed by a
                // combining mark is one character that is not "[" (found by fuzzing).
                let scalars = key.unicodeScalars
                if scalars.isEmpty || scalars.contains(where: { $0 == "." || $0 == "[" || $0 == "]" || $0 == "$" }) {
                    // A key that holds `"]` is quoted with ' instead.
                    let quote = zip(scalars, scalars.dropFirst()).contains { $0 == "\"" && $1 == "]" } ? "'" : "\""
                    text += "[\(quote)\(key)\(quote)]"
                } else {
                    if !text.isEmpty { text += "." }
                    text += key
                }
            case .index(let index):
                text += "[\(index)]"
            }
        }
        return text
    }
}

/// A JSON path that cannot be parsed.
public struct JSONPathSyntaxError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The path as written.
    public var path: String
    /// What is wrong with it.
    public var reason: String

    /// `invalid JSON path 'a..b': empty key ...`
    public var description: String { "invalid JSON path '\(path)': \(reason)" }
}

extension StringProtocol {
    /// The text without leading and trailing white space (spaces, tabs, new lines).
    func trimmingWhitespace() -> Substring {
        let scalars = Substring(self).unicodeScalars
        guard let first = scalars.firstIndex(where: { !$0.properties.isWhitespace }) else { return Substring() }
        let last = scalars.lastIndex(where: { !$0.properties.isWhitespace })!
        return Substring(scalars[first...last])
    }
}
