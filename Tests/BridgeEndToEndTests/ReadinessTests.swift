import Foundation
import MQTTTestSupport
import ModbusCore
import Mosquitto
import Prometheus
import Testing

@testable import MQTTModbusBridge
@testable import MQTTModbusBridgeStatus

/// `GET /ready` against a real mosquitto with a 10,000-point configuration: not ready until the
/// broker acknowledged every subscription, and once ready, every message published reaches the
/// cache; the same after the broker is killed and restarted. Each test has its own broker.
@Suite("Readiness: /ready with 10,000 points and a real broker")
struct ReadinessTests {
    static let points = 10_000

    /// 10,000 holding registers, one per topic (`plant/<n>/value`, plain numbers, QoS 1).
    static func yaml(brokerPort: Int) -> String {
        baseYAML(brokerPort: brokerPort) + """
            units:
              - id: 1
                templates:
                  - for: { n: "0...\(points - 1)" }
                    name: "p{{n}}"
                    area: holding_register
                    address: "{{n}}"
                    type: uint16
                    qos: 1
                    state_topic: "plant/{{n}}/value"
            """
    }

    /// A broker without mosquitto's per-client queue limit (1,000 messages by default): the
    /// tests show that the bridge loses nothing once ready, and a flood faster than a subscriber
    /// drains it is dropped by a limited broker, whatever the subscriber (design.md §5.5).
    static let brokerOptions = TestBrokerOptions(maxQueuedMessages: 0)

    /// The bridge in-process (not yet running), its status endpoint (running), a test client.
    struct Setup: Sendable {
        let broker: TestBroker
        let bridge: MQTTModbusBridgeService
        let endpoint: StatusEndpoint
        let statusPort: Int
        let mqtt: MQTTClient

        /// `GET /ready`: the status and the JSON body.
        func ready() async throws -> (status: Int, body: String) {
            try #require(try await httpGet("http://127.0.0.1:\(statusPort)/ready"))
        }

        /// Publishes `value` (non-retained, QoS 1) on every point's topic, many at once.
        func flood(_ value: Int) async throws {
            let mqtt = self.mqtt
            try await withTimeout(.seconds(60), "publishing \(ReadinessTests.points) messages") {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for n in 0..<ReadinessTests.points {
                        if n >= 256 { try await group.next() }
                        group.addTask {
                            try await mqtt.publish(
                                topic: "plant/\(n)/value",
                                payload: Array("\(value + n % 1000)".utf8),
                                qos: .atLeastOnce
                            )
                        }
                    }
                    try await group.waitForAll()
                }
            }
        }

        /// Waits until every point has a value, then checks every register over Modbus.
        func expectEveryPoint(_ value: Int, modbus: PymodbusClient) async throws {
            let bridge = self.bridge
            _ = try await poll("every point to have a value", timeout: .seconds(30)) {
                bridge.cache.freshnessCounts().missing == 0 ? true : nil
            }
            var wrong: [Int] = []
            for start in stride(from: 0, to: ReadinessTests.points, by: 125) {
                let reply = try await modbus.read(.holdingRegister, start, count: 125)
                let values = try #require(reply.value, "registers \(start)…: \(reply)")
                for (offset, read) in values.enumerated() where Int(read) != value + (start + offset) % 1000 {
                    wrong.append(start + offset)
                }
            }
            #expect(wrong.isEmpty, "\(wrong.count) registers without the flood's value, first \(wrong.prefix(5))")
            #expect(bridge.client.droppedMessageCount == 0, "the bridge's message buffer dropped nothing")
        }
    }

    static func withSetup(_ body: (Setup) async throws -> Void) async throws {
        let broker = try await TestBroker.start(brokerOptions)
        var cleanups: [@Sendable () async -> Void] = [
            {
                await broker.stop()
                broker.removeDirectory()
            }
        ]
        do {
            let configuration = try BridgeConfiguration.parse(yaml: yaml(brokerPort: broker.port), file: "ready.yaml")
            let bridge = try MQTTModbusBridgeService(
                configuration: configuration,
                logger: e2eLogger("e2e.bridge"),
                metricsFactory: PrometheusMetricsFactory(registry: PrometheusCollectorRegistry())
            )
            let endpoint = StatusEndpoint(
                host: "127.0.0.1",
                port: 0,
                registry: nil,
                logger: e2eLogger("e2e.http"),
                readiness: { bridge.readiness },
                health: { bridge.health }
            )
            let endpointRun = startService(endpoint, label: "e2e.http")
            cleanups.append { await endpointRun.stop() }
            let statusPort = try await poll("the status endpoint to listen") { endpoint.port }
            let mqtt = try await connectedClient(broker)
            cleanups.append { await mqtt.disconnect() }
            try await body(
                Setup(broker: broker, bridge: bridge, endpoint: endpoint, statusPort: statusPort, mqtt: mqtt)
            )
        } catch {
            for cleanup in cleanups.reversed() { await cleanup() }
            throw error
        }
        for cleanup in cleanups.reversed() { await cleanup() }
    }

    /// Polls the bridge's readiness (in-process, every millisecond) until `predicate` holds.
    static func awaitReadiness(
        _ bridge: MQTTModbusBridgeService,
        _ what: String,
        timeout: Duration = .seconds(30),
        _ predicate: @escaping @Sendable (BridgeReadiness) -> Bool
    ) async throws -> BridgeReadiness {
        try await withTimeout(timeout, what) {
            while true {
                let readiness = bridge.readiness
                if predicate(readiness) { return readiness }
                try await Task.sleep(for: .milliseconds(1))
            }
        }
    }

    @Test("/ready is 503 (with the pending count) until every subscription is acknowledged, then 200")
    func notReadyUntilSubscribed() async throws {
        try await Self.withSetup { setup in
            let before = try await setup.ready()
            #expect(before.status == 503)
            #expect(
                before.body.contains(
                    #""failing":["broker_not_connected","subscriptions_pending","modbus_not_listening"]"#
                ),
                "\(before.body)"
            )
            let health = try #require(try await httpGet("http://127.0.0.1:\(setup.statusPort)/health"))
            #expect(health.status == 200, "liveness: the process serves, whatever the broker")

            let bridgeRun = startService(setup.bridge, label: "e2e.bridge")
            do {
                let start = ContinuousClock.now
                // Catch the window between the connection and the last SUBACK, and hold it open:
                // a frozen broker answers nothing, so what /ready says there is what it says
                // while the subscriptions are on their way.
                let window = try await Self.awaitReadiness(setup.bridge, "the bridge to be connected") {
                    $0.brokerConnected
                }
                setup.broker.pause()
                let during = try await setup.ready()
                // SUBACKs already on their way when the broker froze have been read by now.
                let paused = setup.bridge.readiness
                setup.broker.resume()
                #expect(window.subscriptionsPending > 0, "\(window)")
                #expect(during.status == 503, "\(during.body)")
                #expect(during.body.contains(#""failing":["subscriptions_pending"]"#), "\(during.body)")
                // The body's count was taken first; SUBACKs already in the socket buffer may have
                // been read since, so it is at least the pending count now.
                let body = try #require(
                    try JSONSerialization.jsonObject(with: Data(during.body.utf8)) as? [String: Any]
                )
                let counts = try #require(body["subscriptions"] as? [String: Int])
                #expect(paused.subscriptionsPending > 0, "\(paused)")
                #expect(
                    counts["pending"].map { $0 >= paused.subscriptionsPending } == true
                        && counts["pending"].map { $0 + (counts["acknowledged"] ?? 0) } == Self.points,
                    "the body gives the pending count: \(during.body), \(paused)"
                )

                let ready = try await poll("/ready to answer 200", timeout: .seconds(30)) {
                    let answer = try await setup.ready()
                    return answer.status == 200 ? answer : nil
                }
                let elapsed = ContinuousClock.now - start
                #expect(
                    ready.body.trimmingCharacters(in: .newlines)
                        == #"{"status":"ready","failing":[],"broker_connected":true,"subscriptions":{"configured":10000,"acknowledged":10000,"pending":0},"modbus_listening":true}"#
                )
                #expect(setup.bridge.client.subscriptionCounts.acknowledged == Self.points)
                if ProcessInfo.processInfo.environment["E2E_REPORT_TIMING"] != nil {
                    print("time to ready with \(Self.points) points (broker paused once): \(elapsed)")
                }
            } catch {
                setup.broker.resume()
                await bridgeRun.stop()
                throw error
            }
            await bridgeRun.stop()
        }
    }

    @Test("once /ready is 200, a flood of one message per point reaches the cache: all 10,000, none dropped")
    func floodAfterReady() async throws {
        try await Self.withSetup { setup in
            let bridgeRun = startService(setup.bridge, label: "e2e.bridge")
            do {
                let start = ContinuousClock.now
                _ = try await Self.awaitReadiness(setup.bridge, "the bridge to be ready") { $0.isReady }
                let elapsed = ContinuousClock.now - start
                #expect(try await setup.ready().status == 200)
                try await withPymodbus(port: try #require(setup.bridge.modbusPort)) { modbus in
                    #expect(
                        try await modbus.read(.holdingRegister, 0).exceptionCode == .gatewayTargetDeviceFailedToRespond
                    )
                    try await setup.flood(1000)
                    try await setup.expectEveryPoint(1000, modbus: modbus)
                }
                if ProcessInfo.processInfo.environment["E2E_REPORT_TIMING"] != nil {
                    print("time to ready with \(Self.points) points: \(elapsed)")
                }
            } catch {
                await bridgeRun.stop()
                throw error
            }
            await bridgeRun.stop()
        }
    }

    @Test("broker killed: 503 within the keepalive; restarted: 200 only once the re-subscriptions are acknowledged")
    func brokerLossAndReturn() async throws {
        try await Self.withSetup { setup in
            let bridgeRun = startService(setup.bridge, label: "e2e.bridge")
            do {
                _ = try await Self.awaitReadiness(setup.bridge, "the bridge to be ready") { $0.isReady }
                #expect(try await setup.ready().status == 200)

                await setup.broker.kill()
                let killed = ContinuousClock.now
                // The keepalive of the test configuration is 5 s.
                let lost = try await poll("/ready to answer 503", timeout: .seconds(5)) {
                    let answer = try await setup.ready()
                    return answer.status == 503 ? answer : nil
                }
                #expect(ContinuousClock.now - killed < .seconds(5))
                #expect(lost.body.contains(#""broker_not_connected""#), "\(lost.body)")

                try await setup.broker.restart()
                // Every observation before the client restored all 10,000 subscriptions is
                // not ready; the first ready one has every subscription acknowledged.
                let back = try await Self.awaitReadiness(setup.bridge, "the bridge to be ready again") {
                    $0.isReady || $0.brokerConnected
                }
                #expect(back.subscriptionsAcknowledged == Self.points, "connected means re-subscribed: \(back)")
                #expect(try await setup.ready().status == 200)
                // Proof from the broker's side: the subscriptions route every topic again.
                try await withTimeout(.seconds(15), "the test client to reconnect") {
                    for await state in setup.mqtt.connectionStates() where state == .connected { return }
                }
                try await withPymodbus(port: try #require(setup.bridge.modbusPort)) { modbus in
                    try await setup.flood(2000)
                    try await setup.expectEveryPoint(2000, modbus: modbus)
                }
            } catch {
                await bridgeRun.stop()
                throw error
            }
            await bridgeRun.stop()
        }
    }
}
