import Yams

/// A value of a template variable.
enum TemplateVariable: Equatable, CustomStringConvertible {
    case integer(Int)
    case text(String)

    var description: String {
        switch self {
        case .integer(let value): String(value)
        case .text(let value): value
        }
    }
}

/// One point produced by a template: the point's YAML with placeholders filled in.
struct TemplateInstance {
    var node: Node
    /// `template instance n=3`, appended to messages about this instance.
    var description: String
}

/// A problem with a `{{ ... }}` placeholder.
struct TemplateError: Error {
    var message: String
    var fix: String?
}

/// Templates: one entry that stands for many similar points.
///
/// ```yaml
/// templates:
///   - for: { n: "1...3" }                 # or n: [1, 2, 3]; several variables give every combination
///     name: "pump_{{n}}_running"
///     area: discrete_input
///     address: "{{ 100 + n }}"            # + - * / % and parentheses on whole numbers
///     state_topic: "plant/pump/{{n}}/running"
/// ```
///
/// Every text value of the entry may use `{{ expression }}`; `index` is the 0-based number of
/// the instance. Placeholders of `command_template` that are the command's own (`{{value}}`,
/// `{{correlation_id}}`, ...) are left for the command.
extension ConfigurationLoader {
    static let maxTemplateInstances = 10_000
    static let reservedTemplateNames: Set<String> = Set(CommandTemplate.Placeholder.allCases.map(\.rawValue)).union([
        "index"
    ])

    func expandTemplate(_ node: Node, fallback: Mark?) -> [TemplateInstance] {
        guard case .mapping(let mapping) = node else {
            diagnostics.error(
                "a template must be a mapping (a point with a 'for' key), found \(node.shapeDescription)",
                at: node.mark ?? fallback
            )
            return []
        }
        guard let forPair = mapping.first(where: { $0.key.scalarText == "for" }) else {
            diagnostics.error(
                "a template is missing 'for'",
                at: node.mark,
                fix: "add for: { n: [1, 2, 3] } (or n: \"1...8\") and use {{n}} in the values"
            )
            return []
        }
        let forEntry = Entry(key: "for", keyNode: forPair.key, value: forPair.value)
        guard let variables = parseTemplateVariables(forEntry) else { return [] }
        let bodyPairs = mapping.filter { $0.key.scalarText != "for" }.map { ($0.key, $0.value) }
        let body = Node.mapping(Node.Mapping(bodyPairs, mapping.tag, mapping.style, mapping.mark))

        var combinations: [[(String, TemplateVariable)]] = [[]]
        for (name, values) in variables {
            combinations = combinations.flatMap { prefix in values.map { prefix + [(name, $0)] } }
        }
        var instances: [TemplateInstance] = []
        for (index, combination) in combinations.enumerated() {
            var scope = Dictionary(uniqueKeysWithValues: combination)
            scope["index"] = .integer(index)
            let label = "template instance " + combination.map { "\($0.0)=\($0.1)" }.joined(separator: ", ")
            diagnostics.instanceSuffix = label
            defer { diagnostics.instanceSuffix = nil }
            let errorsBefore = diagnostics.errorCount
            let expanded = substitute(body, scope: scope, key: nil)
            if diagnostics.errorCount == errorsBefore {
                instances.append(TemplateInstance(node: expanded, description: label))
            }
        }
        return instances
    }

    /// `for: { n: [1, 2], side: "a...b" }` as an ordered list of variables and their values.
    func parseTemplateVariables(_ entry: Entry) -> [(String, [TemplateVariable])]? {
        guard case .mapping(let mapping) = entry.value, !mapping.isEmpty else {
            diagnostics.error(
                "'for' must map variable names to values, e.g. for: { n: [1, 2, 3] }, found \(entry.value.shapeDescription)",
                at: entry.mark
            )
            return nil
        }
        var variables: [(String, [TemplateVariable])] = []
        var total = 1
        for (keyNode, valueNode) in mapping {
            guard let name = keyNode.scalarText, Self.isIdentifier(name) else {
                diagnostics.error(
                    "template variable names are words of letters, digits and _, found \(keyNode.shapeDescription)",
                    at: keyNode.mark
                )
                return nil
            }
            if Self.reservedTemplateNames.contains(name) {
                diagnostics.error(
                    "'\(name)' cannot be a template variable: the name is reserved",
                    at: keyNode.mark,
                    fix: "rename it; reserved are \(Self.reservedTemplateNames.sorted().joined(separator: ", "))"
                )
                return nil
            }
            var values: [TemplateVariable] = []
            switch valueNode {
            case .sequence(let sequence):
                for item in sequence {
                    guard let text = item.scalarText, !item.isNullScalar else {
                        diagnostics.error(
                            "values of template variable '\(name)' must be numbers or words, found \(item.shapeDescription)",
                            at: item.mark
                        )
                        return nil
                    }
                    if item.isPlainScalar, let integer = YAMLReader.parseInteger(text) {
                        values.append(.integer(integer))
                    } else {
                        values.append(.text(text))
                    }
                }
            case .scalar:
                guard let text = valueNode.scalarText, let range = Self.parseRange(text) else {
                    diagnostics.error(
                        "template variable '\(name)' must be a list or a range like \"1...8\", found \(valueNode.shapeDescription)",
                        at: valueNode.mark,
                        fix: "write \(name): [1, 2, 3] or \(name): \"1...8\""
                    )
                    return nil
                }
                if range.count > Self.maxTemplateInstances {
                    diagnostics.error(
                        "template range \(text) has more than \(Self.maxTemplateInstances) values",
                        at: valueNode.mark
                    )
                    return nil
                }
                values = range.map { .integer($0) }
            default:
                diagnostics.error(
                    "template variable '\(name)' must be a list or a range like \"1...8\", found \(valueNode.shapeDescription)",
                    at: valueNode.mark
                )
                return nil
            }
            if values.isEmpty {
                diagnostics.error("template variable '\(name)' has no values", at: valueNode.mark)
                return nil
            }
            total *= values.count
            if total > Self.maxTemplateInstances {
                diagnostics.error(
                    "the template makes more than \(Self.maxTemplateInstances) points",
                    at: entry.mark,
                    fix: "split it into several templates"
                )
                return nil
            }
            variables.append((name, values))
        }
        return variables
    }

    static func parseRange(_ text: String) -> ClosedRange<Int>? {
        let parts = text.split(separator: "...", omittingEmptySubsequences: false)
        guard parts.count == 2, let low = YAMLReader.parseInteger(String(parts[0])),
            let high = YAMLReader.parseInteger(String(parts[1])), low <= high
        else {
            return nil
        }
        return low...high
    }

    static func isIdentifier(_ text: String) -> Bool {
        guard let first = text.unicodeScalars.first, first == "_" || first.properties.isAlphabetic else { return false }
        return text.unicodeScalars.allSatisfy { $0 == "_" || $0.properties.isAlphabetic || ("0"..."9").contains($0) }
    }

    /// A copy of `node` with the placeholders of every text value filled in.
    func substitute(_ node: Node, scope: [String: TemplateVariable], key: String?) -> Node {
        switch node {
        case .scalar(var scalar):
            guard scalar.string.contains("{{") else { return node }
            do {
                scalar.string = try Self.fill(
                    scalar.string,
                    scope: scope,
                    keepCommandPlaceholders: key == "command_template"
                )
                return .scalar(scalar)
            } catch {
                diagnostics.error(error.message, at: node.mark, fix: error.fix)
                return node
            }
        case .mapping(let mapping):
            let pairs = mapping.map { pair in (pair.key, substitute(pair.value, scope: scope, key: pair.key.scalarText))
            }
            return .mapping(Node.Mapping(pairs, mapping.tag, mapping.style, mapping.mark))
        case .sequence(let sequence):
            return .sequence(
                Node.Sequence(
                    sequence.map { substitute($0, scope: scope, key: key) },
                    sequence.tag,
                    sequence.style,
                    sequence.mark
                )
            )
        case .alias:
            return node
        }
    }

    /// Fills the `{{ expression }}` fields of `text`.
    static func fill(
        _ text: String,
        scope: [String: TemplateVariable],
        keepCommandPlaceholders: Bool
    ) throws(TemplateError) -> String {
        var out = ""
        var rest = Substring(text)
        while let open = rest.range(of: "{{") {
            out += rest[..<open.lowerBound]
            guard let close = rest[open.upperBound...].range(of: "}}") else {
                throw TemplateError(message: "'{{' without a closing '}}'", fix: "close the placeholder: {{ n }}")
            }
            let expression = String(rest[open.upperBound..<close.lowerBound].trimmingWhitespace())
            if keepCommandPlaceholders, CommandTemplate.Placeholder(rawValue: expression) != nil {
                out += rest[open.lowerBound..<close.upperBound]
            } else {
                out += try evaluate(expression, scope: scope).description
            }
            rest = rest[close.upperBound...]
        }
        out += rest
        return out
    }

    /// Evaluates `n`, `100 + 2 * n`, `(n - 1) / 4`: whole numbers, + - * / % and parentheses;
    /// a text variable only on its own.
    static func evaluate(
        _ expression: String,
        scope: [String: TemplateVariable]
    ) throws(TemplateError) -> TemplateVariable {
        if expression.isEmpty {
            throw TemplateError(message: "empty placeholder '{{}}'", fix: "write a variable or an expression: {{ n }}")
        }
        if case .text(let value)? = scope[expression] { return .text(value) }
        var parser = ExpressionParser(text: expression, scope: scope)
        let value = try parser.parseExpression()
        guard parser.atEnd else { throw parser.failure("unexpected '\(parser.remaining)'") }
        return .integer(value)
    }
}

/// Recursive-descent evaluation of template arithmetic, with overflow and division checks.
struct ExpressionParser {
    let text: String
    let scope: [String: TemplateVariable]
    private var characters: [Character]
    private var position = 0

    init(text: String, scope: [String: TemplateVariable]) {
        self.text = text
        self.scope = scope
        self.characters = Array(text)
    }

    var atEnd: Bool {
        var index = position
        while index < characters.count, characters[index].isWhitespace { index += 1 }
        return index == characters.count
    }

    var remaining: String { String(characters[position...]).trimmingWhitespace().description }

    func failure(_ reason: String) -> TemplateError {
        let known = scope.keys.sorted().joined(separator: ", ")
        return TemplateError(
            message: "placeholder '{{\(text)}}': \(reason)",
            fix: "variables here: \(known); operators + - * / % and parentheses"
        )
    }

    private mutating func skipSpaces() {
        while position < characters.count, characters[position].isWhitespace { position += 1 }
    }

    mutating func parseExpression() throws(TemplateError) -> Int {
        var value = try parseTerm()
        while true {
            skipSpaces()
            guard position < characters.count, characters[position] == "+" || characters[position] == "-" else {
                return value
            }
            let op = characters[position]
            position += 1
            let rhs = try parseTerm()
            let (result, overflow) =
                op == "+" ? value.addingReportingOverflow(rhs) : value.subtractingReportingOverflow(rhs)
            if overflow { throw failure("the result overflows") }
            value = result
        }
    }

    private mutating func parseTerm() throws(TemplateError) -> Int {
        var value = try parseFactor()
        while true {
            skipSpaces()
            guard position < characters.count, "*/%".contains(characters[position]) else { return value }
            let op = characters[position]
            position += 1
            let rhs = try parseFactor()
            switch op {
            case "*":
                let (result, overflow) = value.multipliedReportingOverflow(by: rhs)
                if overflow { throw failure("the result overflows") }
                value = result
            default:
                if rhs == 0 { throw failure("division by zero") }
                let (result, overflow) =
                    op == "/"
                    ? value.dividedReportingOverflow(by: rhs) : value.remainderReportingOverflow(dividingBy: rhs)
                if overflow { throw failure("the result overflows") }
                value = result
            }
        }
    }

    private mutating func parseFactor() throws(TemplateError) -> Int {
        skipSpaces()
        guard position < characters.count else { throw failure("the expression ends too early") }
        let character = characters[position]
        if character == "-" {
            position += 1
            let value = try parseFactor()
            if value == Int.min { throw failure("the result overflows") }
            return -value
        }
        if character == "(" {
            position += 1
            let value = try parseExpression()
            skipSpaces()
            guard position < characters.count, characters[position] == ")" else { throw failure("missing ')'") }
            position += 1
            return value
        }
        if character.isNumber {
            var digits = ""
            while position < characters.count, characters[position].isNumber || characters[position].isLetter {
                digits.append(characters[position])
                position += 1
            }
            guard let value = YAMLReader.parseInteger(digits) else {
                throw failure("'\(digits)' is not a whole number")
            }
            return value
        }
        if character.isLetter || character == "_" {
            var name = ""
            while position < characters.count,
                characters[position].isLetter || characters[position].isNumber || characters[position] == "_"
            {
                name.append(characters[position])
                position += 1
            }
            switch scope[name] {
            case .integer(let value)?: return value
            case .text?: throw failure("'\(name)' is text and cannot be used in arithmetic")
            case nil:
                if CommandTemplate.Placeholder(rawValue: name) != nil {
                    throw failure("{{\(name)}} is a command placeholder; it is only filled in command_template")
                }
                throw failure("unknown variable '\(name)'")
            }
        }
        throw failure("unexpected '\(character)'")
    }
}
