import ArgumentParser
import Logging
import MQTTModbusBridge
import MQTTModbusBridgeStatus
import Metrics
import Prometheus
import ServiceLifecycle

/// `run`: the bridge service.
struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the bridge until SIGINT or SIGTERM (graceful shutdown); SIGHUP reloads the configuration file."
    )

    @Option(name: .shortAndLong, help: "The topic-map configuration file (YAML).")
    var config: String

    @OptionGroup var broker: BrokerOverride

    @OptionGroup var modbus: ModbusOverride

    @Option(
        name: .customLong("status-listen"),
        help: ArgumentHelp(
            "Serve the read-only status listener on this address: the status page (GET /), /api/points, /api/connections, /health (liveness), /ready (readiness) and /metrics (Prometheus), e.g. 127.0.0.1:9102, or 0.0.0.0:9102 in a container; off by default.",
            valueName: "host:port"
        )
    )
    var statusListen: ListenAddress?

    @OptionGroup var logging: LoggingOptions

    func run() async throws {
        logging.bootstrap()
        var configuration = try loadConfiguration(config)
        broker.apply(to: &configuration)
        modbus.apply(to: &configuration)
        let logger = Logger(label: "bridge")
        // Before the bridge exists: its counters are created against the bootstrapped backend.
        let registry = statusListen.map { _ in PrometheusCollectorRegistry() }
        if let registry {
            var factory = PrometheusMetricsFactory(registry: registry)
            // Acknowledgements take well under a millisecond on a LAN, up to the ack timeout.
            factory.durationHistogramBuckets[MQTTModbusBridgeService.ackLatencyHistogram] =
                MQTTModbusBridgeService.ackLatencyBuckets
            MetricsSystem.bootstrap(factory)
        }
        let bridge = try MQTTModbusBridgeService(configuration: configuration, logger: logger)
        let (broker, modbus) = (self.broker, self.modbus)
        let reloader = ReloadOnHangup(
            path: config,
            overrides: { configuration in
                broker.apply(to: &configuration)
                modbus.apply(to: &configuration)
            },
            bridge: bridge,
            logger: logger.component("reload")
        )
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [
            .init(service: bridge), .init(service: reloader),
        ]
        if let statusListen {
            let endpoint = StatusEndpoint(
                host: statusListen.host,
                port: statusListen.port,
                registry: registry,
                logger: logger.component("http"),
                status: { bridge.statusSnapshot() },
                readiness: { bridge.readiness },
                health: { bridge.health }
            )
            services.append(.init(service: endpoint))
        }
        let group = ServiceGroup(
            configuration: .init(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        )
        try await group.run()
    }
}
