import ArgumentParser
import Logging
import MQTTModbusBridgeConfiguration
import MQTTModbusBridgeSimulator
import ServiceLifecycle

/// `simulate`: devices for a configuration, for demos and tests.
struct Simulate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "Simulate the devices of a configuration: publish telemetry and answer commands in each ack mode; devices with a profile speak their convention (Tasmota, zigbee2mqtt, Shelly Gen2 RPC)."
    )

    @Option(name: .shortAndLong, help: "The topic-map configuration file (YAML).")
    var config: String

    @Option(help: "Seconds between telemetry updates of read-only points; 0 publishes initial values only.")
    var interval: Double = 1

    @Option(help: "Seconds to wait before applying and acknowledging a command.")
    var ackDelay: Double = 0

    @Flag(
        help:
            "Refuse every command with a negative acknowledgement (Tasmota and zigbee2mqtt devices, which have none, report the unchanged state)."
    )
    var refuse = false

    @Flag(help: "Ignore every command: no state change, no acknowledgement (the bridge times out).")
    var ignore = false

    @Option(name: .customLong("refuse-point"), help: "Refuse commands of this point (repeatable).")
    var refusedPoints: [String] = []

    @Option(name: .customLong("ignore-point"), help: "Ignore commands of this point (repeatable).")
    var ignoredPoints: [String] = []

    @Option(
        help:
            "The Modbus exception code negative acknowledgements name (e.g. 6); default none (the bridge answers 04). Not for profile devices."
    )
    var refuseCode: UInt8?

    @Option(help: "Sparkplug edge nodes: skip one seq every N DATA messages (the bridge sees a gap).")
    var sparkplugSeqGap: Int?

    @Option(help: "Sparkplug edge nodes: name an alias no birth gave every N DATA messages.")
    var sparkplugUnknownAlias: Int?

    @Flag(help: "Sparkplug edge nodes: apply commands but never report the new values (writes time out).")
    var sparkplugNeverConfirm = false

    @OptionGroup var broker: BrokerOverride

    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        if refuse && ignore { throw ValidationError("--refuse and --ignore exclude each other") }
        if interval < 0 || ackDelay < 0 { throw ValidationError("--interval and --ack-delay must not be negative") }
        if (sparkplugSeqGap ?? 1) < 1 || (sparkplugUnknownAlias ?? 1) < 1 {
            throw ValidationError("--sparkplug-seq-gap and --sparkplug-unknown-alias take a count of at least 1")
        }
    }

    func run() async throws {
        logging.bootstrap()
        var configuration = try loadConfiguration(config)
        broker.apply(to: &configuration)
        for name in refusedPoints + ignoredPoints where configuration.point(named: name) == nil {
            throw ValidationError("no point named '\(name)' in \(config)")
        }
        let refusal = DeviceSimulator.AckBehaviour.refuse(reason: "refused by the simulator", code: refuseCode)
        var options = DeviceSimulator.Options()
        options.telemetryInterval = interval > 0 ? .milliseconds(Int(interval * 1000)) : nil
        options.ackDelay = .milliseconds(Int(ackDelay * 1000))
        options.behaviour = refuse ? refusal : ignore ? .ignore : .acknowledge
        for name in refusedPoints { options.perPoint[name] = refusal }
        for name in ignoredPoints { options.perPoint[name] = .ignore }
        let logger = Logger(label: "simulator")
        let simulator = try DeviceSimulator(configuration: configuration, options: options, logger: logger)
        var sparkplugOptions = SparkplugEdgeNodeSimulator.Options()
        sparkplugOptions.telemetryInterval = options.telemetryInterval
        sparkplugOptions.seqGapEvery = sparkplugSeqGap
        sparkplugOptions.unknownAliasEvery = sparkplugUnknownAlias
        sparkplugOptions.neverConfirm = sparkplugNeverConfirm
        // One MQTT connection per edge node: each has its own death certificate as its will.
        let nodes = try SparkplugEdgeNodeSimulator.nodes(of: configuration, options: sparkplugOptions, logger: logger)
        let group = ServiceGroup(
            configuration: .init(
                services: [.init(service: simulator)] + nodes.map { .init(service: $0) },
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger
            )
        )
        try await group.run()
    }
}
