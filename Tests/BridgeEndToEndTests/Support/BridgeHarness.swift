import Foundation
import Logging
import MQTTModbusBridge
import MQTTModbusBridgeSimulator
import MQTTTestSupport
import ModbusCore
import Mosquitto
import Prometheus
import ServiceLifecycle
import Testing

/// The log level of the bridge and the simulator under test; `E2E_LOG_LEVEL=debug` shows them.
let e2eLogLevel =
    ProcessInfo.processInfo.environment["E2E_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .critical

func e2eLogger(_ label: String) -> Logger {
    var logger = Logger(label: label)
    logger.logLevel = e2eLogLevel
    return logger
}

/// The status topic every test configuration uses.
let statusTopic = "e2e/bridge/status"

/// The `broker:` and `modbus:` sections of a test configuration: the test broker's port, fast
/// reconnection, the Modbus listener on an ephemeral loopback port, a short shutdown grace
/// period. `extraModbus` lines are added to the `modbus:` section (indented by the caller).
func baseYAML(brokerPort: Int, protocolVersion: String = "mqtt5", extraModbus: String = "") -> String {
    """
    broker:
      host: 127.0.0.1
      port: \(brokerPort)
      client_id: e2e-bridge-\(UUID().uuidString.prefix(8))
      protocol: \(protocolVersion)
      status_topic: \(statusTopic)
      keepalive: 5s
      reconnect: { min_delay: 50ms, max_delay: 200ms, multiplier: 2 }
      connect_timeout: 2s
      operation_timeout: 2s
    modbus:
      host: 127.0.0.1
      port: 0
      shutdown_grace_period: 1s
    \(extraModbus)
    """
}

/// A real mosquitto on a free loopback port, the bridge in-process (run by a `ServiceGroup`, as
/// the CLI runs it), optionally the ``DeviceSimulator``, a test MQTT client subscribed to `#`
/// (it sees every command, ack and status message, and plays the device where a test needs
/// precise control), and pymodbus as the independent Modbus client.
///
/// Build it with ``withBridge(_:simulator:_:)``, which always stops everything.
struct BridgeHarness: Sendable {
    let broker: TestBroker
    let configuration: BridgeConfiguration
    let bridge: MQTTModbusBridgeService
    /// The test's MQTT client: subscribed to `#`.
    let mqtt: MQTTClient
    /// Every message `mqtt` received.
    let messages: MessageCollector
    let modbus: PymodbusClient
    let modbusPort: Int

    /// Publishes `text` (retained by default, as devices publish state) and waits for the broker's PUBACK.
    func publish(
        _ topic: String,
        _ text: String,
        retain: Bool = true,
        properties: MQTTProperties = MQTTProperties()
    ) async throws {
        try await mqtt.publishForTest(topic, text, qos: .atLeastOnce, retain: retain, properties: properties)
    }

    /// Polls a Modbus read (bounded) until it succeeds with values satisfying `predicate`.
    ///
    /// The bridge announces nothing when it has applied a state message, so this is the one place
    /// where the tests poll: 10 ms apart, for at most `timeout`.
    @discardableResult
    func awaitRead(
        _ area: ModbusArea,
        _ address: Int,
        count: Int = 1,
        unit: Int = 1,
        timeout: Duration = .seconds(10),
        until predicate: @escaping @Sendable ([UInt16]) -> Bool = { _ in true }
    ) async throws -> [UInt16] {
        let modbus = self.modbus
        let last = TestLock<ModbusReply<[UInt16]>?>(nil)
        do {
            return try await poll("\(area) \(address)×\(count) of unit \(unit) to read as expected", timeout: timeout) {
                let reply = try await modbus.read(area, address, count: count, unit: unit)
                last.withLock { $0 = reply }
                guard let values = reply.value, predicate(values) else { return nil }
                return values
            }
        } catch let error as TimeoutError {
            throw TimeoutError(
                what: "\(error.what) (last reply: \(last.withLock { $0.map { "\($0)" } } ?? "none"))",
                limit: error.limit
            )
        }
    }

    /// Polls a Modbus read (bounded) until it answers an exception; returns the code.
    @discardableResult
    func awaitReadException(
        _ area: ModbusArea,
        _ address: Int,
        count: Int = 1,
        unit: Int = 1,
        timeout: Duration = .seconds(10)
    ) async throws -> ModbusExceptionCode {
        let modbus = self.modbus
        return try await poll("\(area) \(address) of unit \(unit) to answer an exception", timeout: timeout) {
            try await modbus.read(area, address, count: count, unit: unit).exceptionCode
        }
    }
}

/// Calls `attempt` every 10 ms until it returns a value, for at most `timeout` (generous: other
/// tests share the machine, and a loaded run can stall a few seconds).
func poll<T: Sendable>(
    _ what: String,
    timeout: Duration = .seconds(10),
    _ attempt: @escaping @Sendable () async throws -> T?
) async throws -> T {
    try await withTimeout(timeout, what) {
        while true {
            if let value = try await attempt() { return value }
            try await Task.sleep(for: .milliseconds(10))
        }
    }
}

/// Starts a broker, the bridge for the configuration `yaml(brokerPort)` returns, the simulator
/// (when `simulator` options are given), the test client and pymodbus; runs `body`; then stops
/// everything, whether `body` succeeded or not.
///
/// The test client observes `filters` (`#` by default; a test that floods the broker observes
/// less, and must include the status topic).
///
/// When `body` starts, the bridge has published "online" (it is connected and subscribed) and,
/// with a simulator, the simulator has published the initial state of every point. With a
/// `registry`, the bridge's metrics go there (through a Prometheus factory of their own, so tests
/// in one process do not share counters); otherwise to the bootstrapped backend.
func withBridge(
    _ yaml: (Int) -> String,
    simulator simulatorOptions: DeviceSimulator.Options? = nil,
    registry: PrometheusCollectorRegistry? = nil,
    logger: Logger? = nil,
    observing filters: [String] = ["#"],
    _ body: (BridgeHarness) async throws -> Void
) async throws {
    let broker = try await TestBroker.start()
    var cleanups: [@Sendable () async -> Void] = [
        {
            await broker.stop()
            broker.removeDirectory()
        }
    ]
    func cleanUp() async {
        for cleanup in cleanups.reversed() { await cleanup() }
    }
    do {
        let text = yaml(broker.port)
        let configuration: BridgeConfiguration
        do {
            configuration = try BridgeConfiguration.parse(yaml: text, file: "e2e.yaml")
        } catch {
            throw TestBroker.BrokerError(description: "the test configuration is invalid:\n\(error)\n\(text)")
        }

        let mqtt = try await connectedClient(broker)
        cleanups.append { await mqtt.disconnect() }
        let messages = MessageCollector(mqtt)
        for filter in filters { try await mqtt.subscribeForTest(filter) }

        let bridge: MQTTModbusBridgeService
        if let registry {
            var factory = PrometheusMetricsFactory(registry: registry)
            factory.durationHistogramBuckets[MQTTModbusBridgeService.ackLatencyHistogram] =
                MQTTModbusBridgeService.ackLatencyBuckets
            bridge = try MQTTModbusBridgeService(
                configuration: configuration,
                logger: logger ?? e2eLogger("e2e.bridge"),
                metricsFactory: factory
            )
        } else {
            bridge = try MQTTModbusBridgeService(
                configuration: configuration,
                logger: logger ?? e2eLogger("e2e.bridge")
            )
        }
        let bridgeRun = startService(bridge, label: "e2e.bridge")
        cleanups.append { await bridgeRun.stop() }
        try await messages.waitForMessage(on: statusTopic) { $0.payloadString == "online" }
        let modbusPort = try #require(bridge.modbusPort, "the bridge listens once it is online")

        if let simulatorOptions {
            let simulator = try DeviceSimulator(
                configuration: configuration,
                options: simulatorOptions,
                logger: e2eLogger("e2e.simulator")
            )
            let simulatorRun = startService(simulator, label: "e2e.simulator")
            cleanups.append { await simulatorRun.stop() }
            // The simulator publishes every state topic once, retained, when it starts.
            let stateTopics = Set(
                configuration.points.compactMap(\.stateTopic).filter { !MQTTTopicRules.isWildcardFilter($0) }
            )
            try await messages.waitUntil("the simulator's initial states") { received in
                stateTopics.isSubset(of: Set(received.map(\.topic)))
            }
        }

        let modbus = try PymodbusClient.start(port: modbusPort)
        cleanups.append { await modbus.close() }
        try await modbus.ping()

        try await body(
            BridgeHarness(
                broker: broker,
                configuration: configuration,
                bridge: bridge,
                mqtt: mqtt,
                messages: messages,
                modbus: modbus,
                modbusPort: modbusPort
            )
        )
    } catch {
        await cleanUp()
        throw error
    }
    await cleanUp()
}

/// A service running in its own `ServiceGroup`, as `mqtt-modbus-bridge run` runs it.
struct RunningService: Sendable {
    let group: ServiceGroup
    let task: Task<Void, any Error>

    /// Graceful shutdown (what SIGTERM does), bounded: cancelled after 10 s.
    func stop() async {
        await group.triggerGracefulShutdown()
        _ = try? await withTimeout(.seconds(10), "graceful shutdown") { try await task.valueCancellingOnExit() }
    }
}

func startService(_ service: some Service, label: String) -> RunningService {
    let group = ServiceGroup(
        configuration: ServiceGroupConfiguration(services: [.init(service: service)], logger: e2eLogger(label))
    )
    let task = Task { try await group.run() }
    return RunningService(group: group, task: task)
}
