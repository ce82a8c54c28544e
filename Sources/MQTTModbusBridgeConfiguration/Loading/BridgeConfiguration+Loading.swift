import Foundation

extension BridgeConfiguration {
    /// Reads and validates a configuration file.
    ///
    /// The only function of this module that does I/O. Relative paths in the file
    /// (`password_file`, the TLS files) are resolved against the file's directory.
    ///
    /// - Throws: every problem found, each with its line (a file that cannot be read gives one
    ///   error without a line).
    public static func load(path: String) throws(ConfigurationErrors) -> BridgeConfiguration {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            let reason = (error as NSError).localizedFailureReason ?? (error as NSError).localizedDescription
            throw ConfigurationErrors([
                ConfigurationError(
                    file: path,
                    line: 0,
                    column: 0,
                    message: "cannot read the configuration file: \(reason)",
                    fix: "check the path and the file's permissions"
                )
            ])
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ConfigurationErrors([
                ConfigurationError(
                    file: path,
                    line: 0,
                    column: 0,
                    message: "the configuration file is not UTF-8 text",
                    fix: "save it as UTF-8"
                )
            ])
        }
        let directory = URL(fileURLWithPath: path).deletingLastPathComponent().path
        return try ConfigurationLoader(file: path, baseDirectory: directory).load(yaml: text)
    }

    /// Parses and validates a configuration from YAML text; no I/O.
    ///
    /// - Parameters:
    ///   - yaml: the document.
    ///   - file: the name used in error messages (`file:line:column: error: ...`).
    /// - Throws: every problem found, each with its line and column and, where there is one,
    ///   the fix.
    public static func parse(yaml: String, file: String = "<config>") throws(ConfigurationErrors) -> BridgeConfiguration
    {
        try ConfigurationLoader(file: file, baseDirectory: nil).load(yaml: yaml)
    }
}
