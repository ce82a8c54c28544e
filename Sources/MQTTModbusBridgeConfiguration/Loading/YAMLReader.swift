import Yams

/// Collects the errors and warnings of one load, each with its position.
final class Diagnostics {
    let file: String
    private(set) var errors: [ConfigurationError] = []
    private(set) var warnings: [ConfigurationError] = []
    private var seen: Set<String> = []
    /// Appended to messages while a template instance is parsed ("in template instance n=3").
    var instanceSuffix: String?

    init(file: String) { self.file = file }

    func error(_ message: String, at mark: Mark?, fix: String? = nil) {
        add(message, line: mark?.line ?? 0, column: mark?.column ?? 0, fix: fix, severity: .error)
    }

    func error(_ message: String, line: Int, column: Int, fix: String? = nil) {
        add(message, line: line, column: column, fix: fix, severity: .error)
    }

    func warning(_ message: String, at mark: Mark?, fix: String? = nil) {
        add(message, line: mark?.line ?? 0, column: mark?.column ?? 0, fix: fix, severity: .warning)
    }

    private func add(_ message: String, line: Int, column: Int, fix: String?, severity: ConfigurationError.Severity) {
        // The same problem in every instance of a template is reported once.
        let key = "\(severity)|\(line)|\(column)|\(message)"
        if severity == .error { errorAttempts += 1 }
        guard seen.insert(key).inserted else { return }
        let text = instanceSuffix.map { "\(message) (\($0))" } ?? message
        let diagnostic = ConfigurationError(
            file: file,
            line: line,
            column: column,
            message: text,
            fix: fix,
            severity: severity
        )
        if severity == .error { errors.append(diagnostic) } else { warnings.append(diagnostic) }
    }

    /// Errors raised so far, duplicates included: compare before and after a step to learn
    /// whether it failed.
    var errorCount: Int { errorAttempts }
    private var errorAttempts = 0

    static func sorted(_ list: [ConfigurationError]) -> [ConfigurationError] {
        list.enumerated().sorted { a, b in
            (a.element.line, a.element.column, a.offset) < (b.element.line, b.element.column, b.offset)
        }.map(\.element)
    }
}

/// One `key: value` pair of a mapping.
struct Entry {
    let key: String
    let keyNode: Node
    let value: Node

    /// The value's position; the key's when the value is empty (libyaml puts an empty value
    /// wherever the next token starts) or a mapping or list (whose position is its first item).
    var mark: Mark? {
        switch value {
        case .mapping, .sequence: return keyNode.mark ?? value.mark
        default:
            if value.isNullScalar, value.scalar?.string.isEmpty == true { return keyNode.mark }
            return value.mark ?? keyNode.mark
        }
    }
}

/// A mapping whose keys were checked against the allowed ones.
struct MappingView {
    let node: Node
    /// What the mapping is, for messages: `broker`, `point 'x'`, `defaults.ack`.
    var context: String
    private(set) var entries: [String: Entry] = [:]
    private(set) var order: [String] = []
    /// Allowed keys suggested for unknown (misspelt) ones: a missing key that was suggested
    /// is not reported again as missing.
    var suggestedKeys: Set<String> = []

    var mark: Mark? { node.mark }

    subscript(key: String) -> Entry? { entries[key] }
    func has(_ key: String) -> Bool { entries[key] != nil }

    init(node: Node, context: String, entries: [Entry]) {
        self.node = node
        self.context = context
        for entry in entries where self.entries[entry.key] == nil {
            self.entries[entry.key] = entry
            order.append(entry.key)
        }
    }
}

/// A duration that may also be `none`.
enum OptionalDuration: Equatable {
    case none
    case duration(Duration)

    var value: Duration? {
        if case .duration(let duration) = self { return duration }
        return nil
    }
}

extension Node {
    /// A plain scalar that YAML reads as null: empty, `~`, `null`.
    var isNullScalar: Bool {
        guard case .scalar(let scalar) = self, scalar.style == .plain || scalar.style == .any else { return false }
        return ["", "~", "null", "Null", "NULL"].contains(scalar.string)
    }

    /// The text of a scalar, `nil` for mappings and sequences.
    var scalarText: String? {
        if case .scalar(let scalar) = self { return scalar.string }
        return nil
    }

    /// Whether a scalar was written without quotes.
    var isPlainScalar: Bool {
        guard case .scalar(let scalar) = self else { return false }
        return scalar.style == .plain || scalar.style == .any
    }

    /// `a mapping`, `a list`, `'text'`: for type errors.
    var shapeDescription: String {
        switch self {
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .alias: return "an alias"
        case .scalar(let scalar):
            if isNullScalar { return "nothing" }
            let text = scalar.string.count > 40 ? String(scalar.string.prefix(40)) + "…" : scalar.string
            return "'\(text)'"
        }
    }

    /// YAML reads an unquoted `{{ x }}` as a mapping whose only key is a mapping.
    var looksLikeUnquotedPlaceholder: Bool {
        guard case .mapping(let mapping) = self, mapping.count == 1, let first = mapping.first else { return false }
        if case .mapping = first.key { return true }
        return false
    }
}

/// Typed reading of YAML nodes with error collection.
struct YAMLReader {
    let diagnostics: Diagnostics

    // MARK: Structure

    /// Reads a mapping, reporting keys not in `allowed` (with the closest allowed key).
    func mapping(_ node: Node, context: String, allowed: [String], at fallback: Mark? = nil) -> MappingView? {
        guard case .mapping(let mapping) = node else {
            if node.isNullScalar {
                diagnostics.error(
                    "\(context) is empty; it must be a mapping of key: value pairs",
                    at: node.mark ?? fallback
                )
            } else {
                diagnostics.error(
                    "\(context) must be a mapping of key: value pairs, found \(node.shapeDescription)",
                    at: node.mark ?? fallback
                )
            }
            return nil
        }
        var explicit: [Entry] = []
        var merged: [Entry] = []
        var suggested: Set<String> = []
        for (keyNode, value) in mapping {
            guard let key = keyNode.scalarText, !key.isEmpty || !keyNode.isPlainScalar else {
                diagnostics.error(
                    "keys in \(context) must be plain words, found \(keyNode.shapeDescription)",
                    at: keyNode.mark
                )
                continue
            }
            if key == "<<" && keyNode.isPlainScalar {
                // YAML merge key: `<<: *anchor` or `<<: [*a, *b]`; explicit keys win.
                let sources: [Node]
                switch value {
                case .mapping: sources = [value]
                case .sequence(let sequence): sources = Array(sequence)
                default:
                    diagnostics.error(
                        "'<<' (merge) needs a mapping or a list of mappings, found \(value.shapeDescription)",
                        at: value.mark
                    )
                    continue
                }
                for source in sources {
                    guard let view = self.mapping(source, context: context, allowed: allowed, at: value.mark) else {
                        continue
                    }
                    for key in view.order { merged.append(view[key]!) }
                    suggested.formUnion(view.suggestedKeys)
                }
                continue
            }
            if !allowed.contains(key) {
                let suggestion = Self.closest(to: key, in: allowed)
                if let suggestion { suggested.insert(suggestion) }
                diagnostics.error(
                    "unknown key '\(key)' in \(context)",
                    at: keyNode.mark,
                    fix: suggestion.map { "did you mean '\($0)'?" }
                        ?? "allowed keys: \(allowed.joined(separator: ", "))"
                )
                continue
            }
            explicit.append(Entry(key: key, keyNode: keyNode, value: value))
        }
        var view = MappingView(node: node, context: context, entries: explicit + merged)
        view.suggestedKeys = suggested
        return view
    }

    /// The entry for `key`, or an error saying it is missing.
    func required(_ view: MappingView, _ key: String, fix: String? = nil) -> Entry? {
        if let entry = view[key] { return entry }
        if view.suggestedKeys.contains(key) { return nil }  // reported as a misspelling
        diagnostics.error("\(view.context) is missing '\(key)'", at: view.mark, fix: fix)
        return nil
    }

    /// The elements of a list.
    func sequence(_ entry: Entry) -> [Node]? {
        guard case .sequence(let sequence) = entry.value else {
            diagnostics.error(
                "'\(entry.key)' must be a list, found \(entry.value.shapeDescription)",
                at: entry.mark,
                fix: listFix(entry)
            )
            return nil
        }
        return Array(sequence)
    }

    private func listFix(_ entry: Entry) -> String? {
        if case .scalar = entry.value { return "write a YAML list: '\(entry.key): [a, b]' or one '- item' per line" }
        return nil
    }

    // MARK: Scalars

    /// The text of a scalar value; `nil` (with an error) for mappings, lists and empty values.
    func string(_ entry: Entry?, allowEmpty: Bool = false) -> String? {
        guard let entry else { return nil }
        guard case .scalar(let scalar) = entry.value else {
            scalarShapeError(entry, expected: "text")
            return nil
        }
        if entry.value.isNullScalar {
            if scalar.string.isEmpty {
                diagnostics.error(
                    "'\(entry.key)' has no value",
                    at: entry.mark,
                    fix: "give it a value or remove the key"
                )
            } else {
                diagnostics.error(
                    "'\(entry.key)' is \(scalar.string), which YAML reads as no value",
                    at: entry.mark,
                    fix: "give it a value or remove the key; write \"\(scalar.string)\" in quotes if that is the text"
                )
            }
            return nil
        }
        if !allowEmpty && scalar.string.isEmpty {
            diagnostics.error("'\(entry.key)' is empty", at: entry.mark, fix: "give it a value or remove the key")
            return nil
        }
        return scalar.string
    }

    func scalarShapeError(_ entry: Entry, expected: String) {
        if entry.value.looksLikeUnquotedPlaceholder {
            diagnostics.error(
                "'\(entry.key)' looks like an unquoted placeholder: YAML reads {{ ... }} as a mapping",
                at: entry.mark,
                fix: "quote it: \(entry.key): \"{{ ... }}\""
            )
        } else {
            diagnostics.error(
                "'\(entry.key)' must be \(expected), found \(entry.value.shapeDescription)",
                at: entry.mark
            )
        }
    }

    /// An integer in `range`: decimal, `0x` hexadecimal, `0o` octal or `0b` binary, `_` allowed
    /// between digits.
    func integer(_ entry: Entry?, in range: ClosedRange<Int>, fix: String? = nil) -> Int? {
        guard let entry, let text = string(entry) else { return nil }
        guard let value = Self.parseInteger(text) else {
            diagnostics.error("'\(entry.key)' must be a whole number, found '\(text)'", at: entry.mark, fix: fix)
            return nil
        }
        guard range.contains(value) else {
            diagnostics.error(
                "'\(entry.key)' must be in \(range.lowerBound)...\(range.upperBound), found \(text)",
                at: entry.mark,
                fix: fix
            )
            return nil
        }
        return value
    }

    /// A number; YAML's `.inf`, `-.inf` and `.nan` are read (and left to the caller to refuse).
    func number(_ entry: Entry?) -> Double? {
        guard let entry, let text = string(entry) else { return nil }
        guard let value = Self.parseNumber(text) else {
            diagnostics.error("'\(entry.key)' must be a number, found '\(text)'", at: entry.mark)
            return nil
        }
        return value
    }

    /// `true`/`false` (also `yes`/`no`, `on`/`off`), any case.
    func bool(_ entry: Entry?) -> Bool? {
        guard let entry, let text = string(entry) else { return nil }
        switch text.lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default:
            diagnostics.error("'\(entry.key)' must be true or false, found '\(text)'", at: entry.mark)
            return nil
        }
    }

    /// A duration (`250ms`, `5s`, `2m`, `1h`, `1m30s`, or seconds).
    func duration(_ entry: Entry?) -> Duration? {
        guard let entry, let text = string(entry) else { return nil }
        do {
            return try DurationSyntax.parse(text)
        } catch {
            diagnostics.error(
                "'\(entry.key)': \(error.description)",
                at: entry.mark,
                fix: "write durations like 250ms, 5s, 2m, 1h or 1m30s"
            )
            return nil
        }
    }

    /// A duration or `none`.
    func optionalDuration(_ entry: Entry?) -> OptionalDuration? {
        guard let entry else { return nil }
        if entry.value.isNullScalar || entry.value.scalarText?.lowercased() == "none" { return OptionalDuration.none }
        return duration(entry).map(OptionalDuration.duration)
    }

    /// One of a fixed set of words (case-insensitive), with the closest one suggested.
    func choice<T>(_ entry: Entry?, _ options: [(String, T)]) -> T? {
        guard let entry, let text = string(entry) else { return nil }
        if let match = options.first(where: { $0.0.lowercased() == text.lowercased() }) { return match.1 }
        let names = options.map(\.0)
        let suggestion = Self.closest(to: text, in: names)
        diagnostics.error(
            "'\(entry.key)' must be one of \(names.joined(separator: ", ")), found '\(text)'",
            at: entry.mark,
            fix: suggestion.map { "did you mean '\($0)'?" }
        )
        return nil
    }

    /// A list of non-empty words.
    func words(_ entry: Entry?) -> [String]? {
        guard let entry else { return nil }
        guard let nodes = sequence(entry) else { return nil }
        var result: [String] = []
        for node in nodes {
            guard let text = node.scalarText, !node.isNullScalar || !text.isEmpty, !text.trimmingWhitespace().isEmpty
            else {
                diagnostics.error(
                    "'\(entry.key)' must list non-empty words, found \(node.shapeDescription)",
                    at: node.mark ?? entry.mark
                )
                return nil
            }
            result.append(String(text.trimmingWhitespace()))
        }
        if result.isEmpty {
            diagnostics.error("'\(entry.key)' must list at least one word", at: entry.mark)
            return nil
        }
        return result
    }

    // MARK: Literals

    static func parseInteger(_ text: String) -> Int? {
        var body = Substring(text.trimmingWhitespace())
        var negative = false
        if body.first == "-" || body.first == "+" {
            negative = body.first == "-"
            body = body.dropFirst()
        }
        var radix = 10
        let lower = body.lowercased()
        if lower.hasPrefix("0x") {
            radix = 16
        } else if lower.hasPrefix("0o") {
            radix = 8
        } else if lower.hasPrefix("0b") {
            radix = 2
        }
        if radix != 10 { body = body.dropFirst(2) }
        guard !body.isEmpty, body.first != "_", body.last != "_" else { return nil }
        let digits = String(body.filter { $0 != "_" })
        guard let magnitude = Int(digits, radix: radix), !digits.hasPrefix("+"), !digits.hasPrefix("-") else {
            return nil
        }
        return negative ? -magnitude : magnitude
    }

    static func parseNumber(_ text: String) -> Double? {
        let trimmed = String(text.trimmingWhitespace())
        switch trimmed.lowercased() {
        case ".inf", "+.inf", "inf", "+inf", "infinity": return .infinity
        case "-.inf", "-inf", "-infinity": return -.infinity
        case ".nan", "nan": return .nan
        default: break
        }
        if let integer = parseInteger(trimmed) { return Double(integer) }
        switch try? NumberText.parse(Substring(trimmed.filter { $0 != "_" })) {
        case .integer(let value)?: return Double(value)
        case .unsigned(let value)?: return Double(value)
        case .number(let value)?: return value
        default: return nil
        }
    }

    // MARK: Suggestions

    /// The candidate closest to `word` by edit distance, if it is close enough to be a typo.
    static func closest(to word: String, in candidates: [String]) -> String? {
        var best: (String, Int)?
        for candidate in candidates {
            let distance = editDistance(word.lowercased(), candidate.lowercased())
            if best == nil || distance < best!.1 { best = (candidate, distance) }
        }
        guard let (candidate, distance) = best else { return nil }
        let limit = max(2, min(word.count, candidate.count) / 3)
        return distance <= limit && distance < word.count ? candidate : nil
    }

    /// Levenshtein distance (insertions, deletions, substitutions; adjacent swaps count 1).
    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a)
        let b = Array(b)
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var previousPrevious = [Int](repeating: 0, count: b.count + 1)
        var previous = Array(0...b.count)
        var current = [Int](repeating: 0, count: b.count + 1)
        for i in 1...a.count {
            current[0] = i
            for j in 1...b.count {
                let cost = a[i - 1] == b[j - 1] ? 0 : 1
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
                if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] {
                    current[j] = min(current[j], previousPrevious[j - 2] + 1)
                }
            }
            (previousPrevious, previous, current) = (previous, current, previousPrevious)
        }
        return previous[b.count]
    }
}
