import Logging
import MQTTModbusBridge
import MQTTModbusBridgeConfiguration
import ServiceLifecycle
import UnixSignals

/// Reloads the configuration file on every SIGHUP (`systemctl reload`, `kill -HUP`), as
/// daemons do: the file is read and checked again, the command line's overrides applied, and
/// the result handed to ``MQTTModbusBridgeService/reload(_:)``. A file with errors, or one
/// that changes a setting that applies only at start, is refused with every reason in the
/// log, and the running configuration stays in force.
struct ReloadOnHangup: Service {
    let path: String
    /// The `--broker-*` and `--modbus-*` overrides of the command line, applied to each reload
    /// as at start (otherwise they would read as a changed listener or broker).
    let overrides: @Sendable (inout BridgeConfiguration) -> Void
    let bridge: MQTTModbusBridgeService
    let logger: Logger

    func run() async throws {
        let hangups = await UnixSignalsSequence(trapping: .sighup)
        for await _ in hangups.cancelOnGracefulShutdown() {
            await reload()
        }
    }

    private func reload() async {
        logger.notice("SIGHUP: reloading the configuration", metadata: ["file": "\(path)"])
        var configuration: BridgeConfiguration
        do {
            configuration = try BridgeConfiguration.load(path: path)
        } catch {
            logger.error(
                "configuration not reloaded, the running one is kept: the file has errors\n\(error)",
                metadata: ["file": "\(path)"]
            )
            return
        }
        for warning in configuration.warnings + configuration.freshnessWarnings {
            logger.warning("\(warning)")
        }
        overrides(&configuration)
        do {
            _ = try await bridge.reload(configuration)
        } catch {
            logger.error("\(error)", metadata: ["file": "\(path)"])
        }
    }
}
