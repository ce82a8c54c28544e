import Foundation
import MQTTTestSupport
import ModbusCore
import Mosquitto
import Prometheus
import Testing

@testable import MQTTModbusBridge

/// The metrics after a scripted run (reads, writes that succeed, are refused and time out, bad
/// payloads, stray acks) against the table in docs/operations-observability.md, and a run with a
/// password and a TLS client key whose debug log and metrics must not contain either.
@Suite("Observability: every documented series after a scripted run; no secret in logs or metrics")
struct ObservabilityTests {
    static func yaml(brokerPort: Int) -> String {
        baseYAML(brokerPort: brokerPort) + """

            units:
              - id: 1
                points:
                  - { name: fresh, area: holding_register, address: 0, type: uint16, state_topic: m/fresh }
                  - { name: missing, area: holding_register, address: 1, type: uint16, state_topic: m/missing }
                  - { name: aging, area: holding_register, address: 2, type: uint16, state_topic: m/aging, max_age: 300ms }
                  - { name: setpoint, area: holding_register, address: 10, type: uint16, command_topic: m/sp/set,
                      ack: { mode: mqtt5, timeout: 500ms } }
            """
    }

    /// The repository's root, found from this file.
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    /// The series of the metrics table in docs/operations-observability.md (its first column).
    static func documentedSeries() throws -> Set<String> {
        let text = try String(
            contentsOf: root.appendingPathComponent("docs/operations-observability.md"),
            encoding: .utf8
        )
        var names: Set<String> = []
        for line in text.split(separator: "\n") where line.hasPrefix("| `") {
            let cell = line.dropFirst(3).prefix { $0 != "`" }
            if cell.hasPrefix("bridge_") || cell.hasPrefix("modbus_server_") { names.insert(String(cell)) }
        }
        return names
    }

    /// A Prometheus text exposition as `series → value` (`name{labels}` exactly as emitted), the
    /// metric names with their types, and every label name used.
    static func parse(_ text: String) -> (values: [String: Double], types: [String: String], labels: Set<String>) {
        var values: [String: Double] = [:]
        var types: [String: String] = [:]
        var labels: Set<String> = []
        for line in text.split(separator: "\n") {
            if line.hasPrefix("# TYPE ") {
                let parts = line.split(separator: " ")
                if parts.count == 4 { types[String(parts[2])] = String(parts[3]) }
                continue
            }
            guard !line.hasPrefix("#"), let space = line.lastIndex(of: " ") else { continue }
            let series = String(line[..<space])
            values[series] = Double(line[line.index(after: space)...])
            if let open = series.firstIndex(of: "{") {
                for pair in series[series.index(after: open)..<series.index(before: series.endIndex)]
                    .split(separator: ",")
                {
                    labels.insert(String(pair.prefix { $0 != "=" }))
                }
            }
        }
        return (values, types, labels)
    }

    @Test("after reads, writes (ok, refused, timed out, not mapped) and bad payloads, each series has its value")
    func scriptedRun() async throws {
        let registry = PrometheusCollectorRegistry()
        try await withBridge(Self.yaml, registry: registry) { harness in
            let bridge = harness.bridge
            // States: two good ones, then one that cannot be decoded (the point keeps 5).
            try await harness.publish("m/fresh", "5", retain: false)
            try await harness.publish("m/aging", "7", retain: false)
            try await harness.publish("m/fresh", "not a number", retain: false)
            _ = try await poll("the states to be applied") {
                bridge.cache.isFresh(point: 0) && bridge.cache.isFresh(point: 2) && bridge.payloadDecodeFailures == 1
                    ? true : nil
            }

            // Reads: 3 of a value, 2 of a missing one (0B), 1 of an unmapped address (02).
            for _ in 0..<3 { #expect(try await harness.modbus.read(.holdingRegister, 0) == .ok([5])) }
            for _ in 0..<2 {
                #expect(
                    try await harness.modbus.read(.holdingRegister, 1)
                        == .exception(.gatewayTargetDeviceFailedToRespond)
                )
            }
            #expect(try await harness.modbus.read(.holdingRegister, 100) == .exception(.illegalDataAddress))

            // Writes, the test client playing the device.
            let modbus = harness.modbus
            func write(_ value: UInt16) -> Task<ModbusReply<Bool>, any Error> {
                Task { try await modbus.write(.holdingRegister, 10, [value], single: true) }
            }
            func command(after mark: Int) async throws -> (topic: String, correlation: [UInt8]) {
                let command = try await harness.messages.waitForMessage(on: "m/sp/set", after: mark)
                return (
                    try #require(command.properties.responseTopic),
                    try #require(command.properties.correlationData)
                )
            }
            func answer(_ to: (topic: String, correlation: [UInt8]), _ payload: String) async throws {
                try await harness.publish(
                    to.topic,
                    payload,
                    retain: false,
                    properties: MQTTProperties(correlationData: to.correlation)
                )
            }
            // Acknowledged, then acknowledged again (a duplicate).
            var mark = harness.messages.count
            let accepted = write(1)
            let first = try await command(after: mark)
            try await answer(first, #"{"ok": true}"#)
            #expect(try await accepted.value == .ok(true))
            try await answer(first, #"{"ok": true}"#)
            // Refused by the device: 04.
            mark = harness.messages.count
            let refused = write(2)
            try await answer(try await command(after: mark), #"{"ok": false}"#)
            #expect(try await refused.value == .exception(.serverDeviceFailure))
            // Not answered within 500 ms: 0B; the answer that comes afterwards is late.
            mark = harness.messages.count
            let unanswered = write(3)
            let third = try await command(after: mark)
            #expect(try await unanswered.value == .exception(.gatewayTargetDeviceFailedToRespond))
            try await answer(third, #"{"ok": true}"#)
            // Two responses that belong to no command of this bridge.
            try await answer((first.topic, Array("another-bridge-1".utf8)), #"{"ok": true}"#)
            try await harness.publish(first.topic, #"{"ok": true}"#, retain: false)
            // A write to a read-only point is refused before anything is published: 02.
            #expect(try await modbus.write(.holdingRegister, 0, [9], single: true) == .exception(.illegalDataAddress))
            // Answered by the Modbus server itself, before any handler: a unit that is not
            // configured (0B), counted under unit "other".
            #expect(
                try await modbus.read(.holdingRegister, 0, unit: 9) == .exception(.gatewayTargetDeviceFailedToRespond)
            )
            #expect(
                try await modbus.write(.holdingRegister, 0, [1], single: true, unit: 200)
                    == .exception(.gatewayTargetDeviceFailedToRespond)
            )

            var expected: [String: Double] = [
                "bridge_mqtt_messages_received_total": 9,  // 3 states, 6 acknowledgements
                "bridge_mqtt_messages_decoded_total": 2,
                "bridge_payload_decode_failures_total": 1,
                "bridge_mqtt_messages_dropped_total": 0,
                "bridge_mqtt_messages_from_lost_connection_total": 0,
                "bridge_late_acks_total": 1,
                "bridge_duplicate_acks_total": 1,
                "bridge_unmatched_acks_total": 2,
                "bridge_mqtt_connections_total": 1,
                "bridge_mqtt_reconnects_total": 0,
                "bridge_mqtt_connected": 1,
                "bridge_mqtt_subscriptions_acknowledged": 4,  // 3 state topics, 1 response topic
                "bridge_mqtt_subscriptions_pending": 0,
                "bridge_modbus_listening": 1,
                "bridge_ready": 1,
                "bridge_modbus_connections_open": 1,
                "bridge_points_stale": 1,  // aging, max_age 300 ms
                "bridge_points_missing": 1,  // missing (the setpoint has its written value)
                "bridge_writes_in_flight": 0,
                #"bridge_write_ack_latency_seconds_count{mode="mqtt5"}"#: 2,  // the device answered twice
                #"bridge_write_ack_latency_seconds_count{mode="state_echo"}"#: 0,
                "modbus_server_connection_setup_failures_total": 0,
                "modbus_server_connections_refused_total": 0,
                "modbus_server_connections_evicted_total": 0,
                "modbus_server_connections_denied_total": 0,
                "modbus_server_framing_errors_total": 0,
            ]
            for (outcome, count) in [
                "ok": 1.0, "exception_02": 1, "exception_04": 1, "exception_0A": 0, "exception_0B": 1,
            ] {
                expected[#"bridge_modbus_writes_total{outcome="\#(outcome)"}"#] = count
            }
            let requests: [(function: Int, outcome: String, count: Double)] = [
                (3, "ok", 3), (3, "exception_0B", 2), (3, "exception_02", 1), (3, "exception_04", 0),
                (6, "ok", 1), (6, "exception_04", 1), (6, "exception_0B", 1), (6, "exception_02", 1),
                (16, "ok", 0), (1, "ok", 0),
            ]
            expected[#"bridge_modbus_requests_total{function="3",unit="other",outcome="exception_0B"}"#] = 1
            expected[#"bridge_modbus_requests_total{function="6",unit="other",outcome="exception_0B"}"#] = 1
            expected[#"bridge_modbus_requests_total{function="other",unit="1",outcome="exception_01"}"#] = 0
            expected[#"bridge_modbus_requests_total{function="8",unit="1",outcome="ok"}"#] = 0
            for request in requests {
                expected[
                    #"bridge_modbus_requests_total{function="\#(request.function)",unit="1",outcome="\#(request.outcome)"}"#
                ] = request.count
            }

            // Gauges are sampled every second: wait until every value is there.
            let expectation = expected
            let scrape: String
            do {
                scrape = try await poll("every series to have its expected value", timeout: .seconds(10)) {
                    let text = registry.emitToString()
                    let values = Self.parse(text).values
                    return expectation.allSatisfy { values[$0.key] == $0.value } ? text : nil
                }
            } catch {
                let values = Self.parse(registry.emitToString()).values
                let wrong = expected.filter { values[$0.key] != $0.value }.map {
                    "\($0.key): expected \($0.value), got \(values[$0.key].map { "\($0)" } ?? "nothing")"
                }
                Issue.record("series without their expected value:\n\(wrong.sorted().joined(separator: "\n"))")
                throw error
            }
            let parsed = Self.parse(scrape)
            // Every series is in the documentation's table, and everything the table lists exists.
            // The TLS listener's series exist only with modbus.tls; ModbusSecurityEndToEndTests
            // checks them.
            let tlsOnly: Set = ["modbus_server_tls_handshake_failures_total", "modbus_server_role_denials_total"]
            let documented = try Self.documentedSeries().subtracting(tlsOnly)
            #expect(
                Set(parsed.types.keys) == documented,
                "emitted vs documented: \(parsed.types.keys.sorted()), \(documented.sorted())"
            )
            let checked = Set(
                expected.keys.map { $0.prefix { $0 != "{" }.replacingOccurrences(of: "_count", with: "") }
            )
            #expect(
                documented.isSubset(of: checked),
                "series the test does not check: \(documented.subtracting(checked))"
            )
            // Cardinality: labels come from small fixed sets; no topic, point or device.
            #expect(parsed.labels.isSubset(of: ["function", "unit", "outcome", "mode", "le"]), "\(parsed.labels)")
            for name in ["m/fresh", "setpoint", "aging"] {
                #expect(!scrape.contains(name), "\(name) in the metrics")
            }
            // The histogram's buckets suit acknowledgements (the smallest is 250 µs).
            #expect(
                scrape.contains(#"bridge_write_ack_latency_seconds_bucket{mode="mqtt5",le="0.00025"}"#),
                "\(scrape)"
            )
        }
    }

    /// Where the bridge's broker password comes from in ``secretsStayOut(source:)``.
    enum PasswordSource: String, CaseIterable, Sendable {
        case literal, file, environment
    }

    @Test(
        "a run with a password (in the file, a password file, an environment variable) and a TLS client key: neither appears in its trace-level log, its metrics, its status page or its JSON",
        arguments: PasswordSource.allCases
    )
    func secretsStayOut(source: PasswordSource) async throws {
        let pki = try await TestPKI.shared.value
        let options = TestBrokerOptions(
            passwordFile: pki.passwordFile,
            tls: TestBrokerOptions.TLS(
                caFile: pki.caFile,
                certificateFile: pki.serverCertificate,
                privateKeyFile: pki.serverKey,
                requireClientCertificate: true
            )
        )
        let key = try String(contentsOfFile: pki.clientKey, encoding: .utf8)
        // The key's base64 lines: any of them in a log would be a leak of (part of) the key.
        let keyLines = key.split(separator: "\n").filter { !$0.hasPrefix("-----") && $0.count >= 16 }.map(String.init)
        #expect(keyLines.count >= 3, "the key file has a body")
        try await withTestBroker(options) { broker in
            let secure = { (configuration: inout MQTTConfiguration) in
                configuration.tls = MQTTTLSConfiguration(
                    caFile: pki.caFile,
                    certificateFile: pki.clientCertificate,
                    privateKeyFile: pki.clientKey
                )
                configuration.username = TestPKI.username
                configuration.password = TestPKI.password
            }
            let observer = try await connectedClient(broker, configure: secure)
            let observed = MessageCollector(observer)
            try await observer.subscribeForTest("#")

            let modbusPort = try freeLoopbackPort()
            let statusPort = try freeLoopbackPort()
            let passwordLine: String
            var environment: [String: String] = [:]
            switch source {
            case .literal:
                passwordLine = "password: \(TestPKI.password)"
            case .file:
                let file = FileManager.default.temporaryDirectory.appendingPathComponent(
                    "e2e-password-\(UUID().uuidString)"
                )
                try (TestPKI.password + "\n").write(to: file, atomically: true, encoding: .utf8)
                passwordLine = "password_file: \(file.path)"
            case .environment:
                passwordLine = "password_env: E2E_MQTT_PASSWORD"
                environment["E2E_MQTT_PASSWORD"] = TestPKI.password
            }
            let config = try ServiceProcessTests.configurationFile(
                ServiceProcessTests.yaml(
                    brokerPort: broker.port,
                    modbusPort: modbusPort,
                    brokerSection: """
                          username: \(TestPKI.username)
                          \(passwordLine)
                          tls: { ca_file: \(pki.caFile), cert_file: \(pki.clientCertificate), key_file: \(pki.clientKey) }
                        """
                )
            )
            let bridge = try BridgeProcess(
                [
                    "run", "--config", config, "--status-listen", "127.0.0.1:\(statusPort)", "--log-level", "trace",
                    "--wire-log",
                ],
                environment: environment
            )
            do {
                try await observed.waitForMessage(on: statusTopic, timeout: .seconds(20)) {
                    $0.payloadString == "online"
                }
                // Some traffic for the log: a value read, a write answered by the test client.
                try await observer.publishForTest("e2e/process/temperature", "21.5", qos: .atLeastOnce)
                try await withPymodbus(port: modbusPort) { modbus in
                    _ = try await poll("temperature to read 215") {
                        try await modbus.read(.inputRegister, 0).value == [215] ? true : nil
                    }
                    let mark = observed.count
                    let write = Task { try await modbus.write(.holdingRegister, 0, [7], single: true) }
                    let command = try await observed.waitForMessage(on: "e2e/process/sp/set", after: mark)
                    try await observer.publishForTest(
                        try #require(command.properties.responseTopic),
                        #"{"ok": true}"#,
                        properties: MQTTProperties(correlationData: command.properties.correlationData)
                    )
                    #expect(try await write.value == .ok(true))
                }
                let metrics = try #require(try await httpGet("http://127.0.0.1:\(statusPort)/metrics"))
                let ready = try #require(try await httpGet("http://127.0.0.1:\(statusPort)/ready"))
                let health = try #require(try await httpGet("http://127.0.0.1:\(statusPort)/health"))
                let page = try #require(try await httpGet("http://127.0.0.1:\(statusPort)/"))
                let points = try #require(try await httpGet("http://127.0.0.1:\(statusPort)/api/points"))
                #expect(ready.status == 200 && health.status == 200 && page.status == 200 && points.status == 200)
                bridge.send(SIGTERM)
                #expect(try await bridge.waitForExit() == 0)

                let log = bridge.output
                // The log is the debug log it claims to be: connection, commands, frames.
                #expect(
                    log.contains("debug") && log.contains("trace") && log.contains("command"),
                    "\(log.prefix(2000))"
                )
                for (name, text) in [
                    ("log", log), ("metrics", metrics.body), ("ready", ready.body), ("health", health.body),
                    ("status page", page.body), ("points JSON", points.body),
                ] {
                    #expect(!text.contains(TestPKI.password), "the password is in the \(name)")
                    #expect(!text.contains("PRIVATE KEY"), "a private key is in the \(name)")
                    for line in keyLines {
                        #expect(!text.contains(line), "a line of the client key is in the \(name)")
                    }
                }
            } catch {
                Issue.record("bridge output:\n\(bridge.output)")
                await bridge.cleanUp()
                await observer.disconnect()
                throw error
            }
            await bridge.cleanUp()
            await observer.disconnect()
        }
    }
}
