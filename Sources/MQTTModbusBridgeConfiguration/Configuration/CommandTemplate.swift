/// A command payload template: text with `{{placeholder}}` fields filled in for each command.
///
/// | placeholder | replaced by |
/// |---|---|
/// | `{{value}}` | the value, rendered for the point's payload format (a JSON literal for `json`) |
/// | `{{correlation_id}}` | the command's correlation id |
/// | `{{point}}` | the point's name |
/// | `{{unit}}` | the unit id |
/// | `{{timestamp}}` | the time of the command, ISO 8601 UTC with milliseconds |
///
/// White space inside the braces is allowed (`{{ value }}`). With the `json` payload format,
/// text placeholders are JSON-escaped (write them inside quotes: `"{{correlation_id}}"`).
public struct CommandTemplate: Sendable, Hashable, CustomStringConvertible {
    /// A field of a template.
    public enum Placeholder: String, Sendable, Hashable, CaseIterable {
        /// `{{value}}`.
        case value
        /// `{{correlation_id}}`.
        case correlationID = "correlation_id"
        /// `{{point}}`.
        case point
        /// `{{unit}}`.
        case unit
        /// `{{timestamp}}`.
        case timestamp
    }

    /// A piece of a parsed template.
    enum Segment: Sendable, Hashable {
        case literal(String)
        case placeholder(Placeholder)
    }

    /// The template as written.
    public let text: String
    let segments: [Segment]

    /// Parses a template.
    public init(parsing text: String) throws(CommandTemplateSyntaxError) {
        self.text = text
        var segments: [Segment] = []
        var rest = Substring(text)
        while let open = rest.range(of: "{{") {
            if open.lowerBound > rest.startIndex { segments.append(.literal(String(rest[..<open.lowerBound]))) }
            guard let close = rest[open.upperBound...].range(of: "}}") else {
                throw CommandTemplateSyntaxError(template: text, reason: "'{{' without a closing '}}'")
            }
            let name = rest[open.upperBound..<close.lowerBound].trimmingWhitespace()
            guard let placeholder = Placeholder(rawValue: String(name)) else {
                let known = Placeholder.allCases.map { "{{\($0.rawValue)}}" }.joined(separator: ", ")
                throw CommandTemplateSyntaxError(
                    template: text,
                    reason: "unknown placeholder '{{\(name)}}'; known: \(known)",
                    unknownName: String(name)
                )
            }
            segments.append(.placeholder(placeholder))
            rest = rest[close.upperBound...]
        }
        if !rest.isEmpty { segments.append(.literal(String(rest))) }
        self.segments = segments
    }

    /// The placeholders the template uses.
    public var placeholders: Set<Placeholder> {
        Set(segments.compactMap { if case .placeholder(let p) = $0 { p } else { nil } })
    }

    /// The template as written.
    public var description: String { text }
}

/// A command template that cannot be parsed.
public struct CommandTemplateSyntaxError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The template as written.
    public var template: String
    /// What is wrong.
    public var reason: String
    /// The name of an unknown placeholder, if that is the problem.
    public var unknownName: String?

    /// The reason.
    public var description: String { "invalid command template: \(reason)" }
}
