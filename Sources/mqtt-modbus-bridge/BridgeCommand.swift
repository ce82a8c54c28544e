import ArgumentParser
import Foundation
import Logging
import MQTTModbusBridgeConfiguration

/// `mqtt-modbus-bridge`: the command-line program. Subcommands only; the logic lives in the
/// configuration, runtime, status and simulator modules.
@main
struct BridgeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mqtt-modbus-bridge",
        abstract: "Serve MQTT data to a SCADA master over Modbus TCP.",
        discussion: """
            Reads a topic-map configuration (see examples/CONFIGURATION.md), keeps the latest value of \
            every point from MQTT, answers Modbus reads from it, and turns Modbus writes into MQTT \
            commands that succeed only when the device acknowledges them.
            """,
        version: BridgeVersion.current,
        subcommands: [Run.self, Validate.self, Explain.self, Registers.self, Simulate.self, ImportHA.self]
    )
}

/// Options every subcommand shares.
struct LoggingOptions: ParsableArguments {
    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error or critical.")
    var logLevel: Logger.Level = .info

    @Flag(name: .long, help: "Log the hex of every Modbus frame (the modbus.wire logger at debug level).")
    var wireLog = false

    /// Sets up swift-log once for the process.
    func bootstrap() {
        let level = logLevel
        let wire = wireLog
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = label.hasSuffix("wire") ? (wire ? .debug : .info) : level
            return handler
        }
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}

/// Overrides of the configuration's broker address, for containers and quick tests.
struct BrokerOverride: ParsableArguments {
    @Option(help: "Connect to this broker host instead of the configuration's broker.host.")
    var brokerHost: String?

    @Option(help: "Connect to this broker port instead of the configuration's broker.port.")
    var brokerPort: Int?

    func apply(to configuration: inout BridgeConfiguration) {
        if let brokerHost { configuration.broker.host = brokerHost }
        if let brokerPort { configuration.broker.port = brokerPort }
    }
}

/// Overrides of the configuration's Modbus listener, for containers and quick tests (several
/// bridges on one machine, each on its own port).
struct ModbusOverride: ParsableArguments {
    @Option(help: "Listen on this address instead of the configuration's modbus.host (e.g. 127.0.0.1).")
    var modbusHost: String?

    @Option(help: "Listen on this TCP port instead of the configuration's modbus.port.")
    var modbusPort: Int?

    func apply(to configuration: inout BridgeConfiguration) {
        if let modbusHost { configuration.modbus.host = modbusHost }
        if let modbusPort { configuration.modbus.port = modbusPort }
    }
}

/// Loads a configuration, or prints every error (file:line:column) and fails.
func loadConfiguration(_ path: String) throws -> BridgeConfiguration {
    do {
        let configuration = try BridgeConfiguration.load(path: path)
        for warning in configuration.warnings + configuration.freshnessWarnings {
            FileHandle.standardError.write(Data("\(warning)\n".utf8))
        }
        return configuration
    } catch {
        FileHandle.standardError.write(Data("\(error)\n".utf8))
        throw ExitCode(2)
    }
}

enum BridgeVersion {
    static let current = "0.1.0"
}
