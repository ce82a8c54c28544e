import ArgumentParser
import Foundation
import MQTTModbusBridgeConfiguration

/// `validate`: check configurations without starting anything.
struct Validate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "Check configuration files; print every error with file, line and fix; exit non-zero if any is invalid."
    )

    @Argument(help: "Configuration files (YAML).")
    var files: [String]

    func run() throws {
        var failed = false
        for file in files {
            do {
                let configuration = try BridgeConfiguration.load(path: file)
                for warning in configuration.warnings + configuration.freshnessWarnings { print(warning) }
                let writable = configuration.points.filter(\.isWritable).count
                print(
                    "\(file): OK — \(configuration.units.count) unit(s), \(configuration.points.count) point(s), \(writable) writable"
                )
            } catch {
                failed = true
                print(error)
                print("\(file): \(error.errors.filter { $0.severity == .error }.count) error(s)")
            }
        }
        if failed { throw ExitCode(1) }
    }
}
