/// One problem found in a configuration file, with the place it was found and what to do about it.
///
/// Printed (``description``) in the format compilers use, so editors and CI logs link to the line:
///
/// ```text
/// bridge.yaml:42:7: error: unknown key 'stat_topic' in point 'boiler_temperature' (fix: did you mean 'state_topic'?)
/// ```
public struct ConfigurationError: Error, Sendable, Hashable, CustomStringConvertible {
    /// How serious a problem is.
    public enum Severity: String, Sendable, Hashable {
        /// The configuration cannot be used; loading fails.
        case error
        /// The configuration works but probably not as intended; loading succeeds and the problem is
        /// listed in ``BridgeConfiguration/warnings``.
        case warning
    }

    /// The file name as given to the loader (the path for ``BridgeConfiguration/load(path:)``).
    public var file: String
    /// The 1-based line of the offending YAML node; 0 when the problem concerns the whole file
    /// (for example, it cannot be read).
    public var line: Int
    /// The 1-based column of the offending YAML node (counted in Unicode scalars); 0 with ``line`` 0.
    public var column: Int
    /// What is wrong.
    public var message: String
    /// What to do about it, when there is a clear answer.
    public var fix: String?
    /// Error or warning.
    public var severity: Severity

    /// Creates a diagnostic.
    public init(file: String, line: Int, column: Int, message: String, fix: String? = nil, severity: Severity = .error)
    {
        self.file = file
        self.line = line
        self.column = column
        self.message = message
        self.fix = fix
        self.severity = severity
    }

    /// `file:line:column: error: message (fix: ...)`; the position is left out when ``line`` is 0.
    public var description: String {
        var text = line > 0 ? "\(file):\(line):\(column): " : "\(file): "
        text += "\(severity.rawValue): \(message)"
        if let fix { text += " (fix: \(fix))" }
        return text
    }
}

/// Every error found in a configuration, thrown by ``BridgeConfiguration/parse(yaml:file:)`` and
/// ``BridgeConfiguration/load(path:)``.
///
/// The loader does not stop at the first problem: it reports everything it can find in one pass,
/// sorted by line, so a user fixes a file in one round.
public struct ConfigurationErrors: Error, Sendable, Hashable, CustomStringConvertible {
    /// The errors, sorted by line and column. Never empty when thrown.
    public var errors: [ConfigurationError]

    /// Wraps a list of errors.
    public init(_ errors: [ConfigurationError]) {
        self.errors = errors
    }

    /// One error per line, each as `file:line:column: error: message (fix: ...)`.
    public var description: String {
        errors.map(\.description).joined(separator: "\n")
    }
}
