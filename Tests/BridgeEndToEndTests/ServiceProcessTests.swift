import Foundation
import MQTTTestSupport
import ModbusCore
import Mosquitto
import Testing

@testable import MQTTModbusBridge
@testable import MQTTModbusBridgeConfiguration

/// `mqtt-modbus-bridge run` as a separate process: TLS and a password to the broker, the status
/// endpoint, a crash (the broker publishes the last will), a broker that is down at start, and
/// SIGTERM.
@Suite("The run command as a process")
struct ServiceProcessTests {
    static func yaml(brokerPort: Int, modbusPort: Int, brokerSection extra: String = "") -> String {
        """
        broker:
          host: 127.0.0.1
          port: \(brokerPort)
          client_id: e2e-process-\(UUID().uuidString.prefix(8))
          status_topic: \(statusTopic)
          keepalive: 5s
          reconnect: { min_delay: 50ms, max_delay: 200ms, multiplier: 2 }
          connect_timeout: 2s
        \(extra)
        modbus:
          host: 127.0.0.1
          port: \(modbusPort)
          shutdown_grace_period: 1s
        units:
          - id: 1
            points:
              - { name: temperature, area: input_register, address: 0, type: int16, scale: 10, state_topic: e2e/process/temperature }
              - { name: sp, area: holding_register, address: 0, type: int16, state_topic: e2e/process/sp,
                  command_topic: e2e/process/sp/set, ack: { mode: mqtt5, timeout: 1s } }

        """
    }

    /// Writes `text` to a fresh temporary directory as `bridge.yaml` and returns its path.
    static func configurationFile(_ text: String) throws -> String {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "e2e-process-\(UUID().uuidString)"
        )
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let file = directory.appendingPathComponent("bridge.yaml")
        try text.write(to: file, atomically: true, encoding: .utf8)
        return file.path
    }

    @Test(
        "over TLS with a password: values served, /health and /metrics answer; a SIGKILL leaves the last will 'offline' retained"
    )
    func tlsStatusEndpointAndCrash() async throws {
        let pki = try await TestPKI.shared.value
        let options = TestBrokerOptions(
            passwordFile: pki.passwordFile,
            tls: TestBrokerOptions.TLS(
                caFile: pki.caFile,
                certificateFile: pki.serverCertificate,
                privateKeyFile: pki.serverKey
            )
        )
        try await withTestBroker(options) { broker in
            let secure = { (configuration: inout MQTTConfiguration) in
                configuration.tls = MQTTTLSConfiguration(caFile: pki.caFile)
                configuration.username = TestPKI.username
                configuration.password = TestPKI.password
            }
            let observer = try await connectedClient(broker, configure: secure)
            let observed = MessageCollector(observer)
            try await observer.subscribeForTest(statusTopic)

            let modbusPort = try freeLoopbackPort()
            let statusPort = try freeLoopbackPort()
            let config = try Self.configurationFile(
                Self.yaml(
                    brokerPort: broker.port,
                    modbusPort: modbusPort,
                    brokerSection: """
                          username: \(TestPKI.username)
                          password: \(TestPKI.password)
                          tls: { ca_file: \(pki.caFile) }
                        """
                )
            )
            let bridge = try BridgeProcess(["run", "--config", config, "--status-listen", "127.0.0.1:\(statusPort)"])
            let modbus = try PymodbusClient.start(port: modbusPort)
            do {
                try await observed.waitForMessage(on: statusTopic, timeout: .seconds(20)) {
                    $0.payloadString == "online"
                }

                // A value over the secured connection, read by pymodbus.
                try await observer.publishForTest("e2e/process/temperature", "21.5", qos: .atLeastOnce, retain: true)
                _ = try await poll("temperature to read 215") {
                    try await modbus.read(.inputRegister, 0).value == [215] ? true : nil
                }

                let health = try #require(
                    try await httpGet("http://127.0.0.1:\(statusPort)/health"),
                    "\(bridge.output)"
                )
                #expect(health.status == 200, "\(health.body)")
                #expect(
                    health.body.contains(#""status":"ok""#) && health.body.contains(#""mqtt":"connected""#),
                    "\(health.body)"
                )
                let metrics = try #require(try await httpGet("http://127.0.0.1:\(statusPort)/metrics"))
                #expect(metrics.status == 200)
                #expect(metrics.body.contains("bridge_mqtt_connected 1"), "\(metrics.body)")
                #expect(metrics.body.contains("bridge_mqtt_messages_received_total"), "\(metrics.body)")
                let unknown = try #require(try await httpGet("http://127.0.0.1:\(statusPort)/config"))
                #expect(unknown.status == 404)

                // A crash: no DISCONNECT, so the broker publishes the will the bridge registered.
                let mark = observed.count
                bridge.send(SIGKILL)
                _ = try await bridge.waitForExit()
                let will = try await observed.waitForMessage(on: statusTopic, after: mark, timeout: .seconds(10))
                #expect(will.payloadString == "offline")
                let late = try await connectedClient(broker, configure: secure)
                let lateMessages = MessageCollector(late)
                try await late.subscribeForTest(statusTopic)
                let retained = try await lateMessages.waitForMessage(on: statusTopic)
                #expect(retained.payloadString == "offline" && retained.retain)
                await late.disconnect()
            } catch {
                Issue.record("bridge output:\n\(bridge.output)")
                await modbus.close()
                await bridge.cleanUp()
                await observer.disconnect()
                throw error
            }
            await modbus.close()
            await bridge.cleanUp()
            await observer.disconnect()
        }
    }

    @Test(
        "a broker down at start: reads follow the missing-value policy, writes 0A, /health 200 but /ready 503; then the broker comes up, /ready 200 and values flow; SIGTERM exits 0"
    )
    func brokerDownAtStart() async throws {
        // Held until this test starts its broker there, so no other broker answers first.
        let refusingBroker = try RefusingLoopbackPort()
        defer { refusingBroker.release() }
        let brokerPort = refusingBroker.port
        let modbusPort = try freeLoopbackPort()
        let statusPort = try freeLoopbackPort()
        let config = try Self.configurationFile(Self.yaml(brokerPort: brokerPort, modbusPort: modbusPort))
        let bridge = try BridgeProcess(["run", "--config", config, "--status-listen", "127.0.0.1:\(statusPort)"])
        let modbus = try PymodbusClient.start(port: modbusPort)
        var broker: TestBroker?
        do {
            // The Modbus side serves at once, without the broker.
            let code = try await poll("a Modbus answer without a broker", timeout: .seconds(20)) {
                try? await modbus.read(.inputRegister, 0).exceptionCode
            }
            #expect(code == .gatewayTargetDeviceFailedToRespond, "a value never received: the default policy, 0B")
            #expect(
                try await modbus.write(.holdingRegister, 0, [5], single: true) == .exception(.gatewayPathUnavailable)
            )
            let degraded = try await poll("the status endpoint", timeout: .seconds(20)) {
                try await httpGet("http://127.0.0.1:\(statusPort)/health")
            }
            #expect(degraded.status == 200, "liveness: the process serves; \(degraded.body)")
            #expect(degraded.body.contains(#""status":"degraded""#), "\(degraded.body)")
            #expect(!degraded.body.contains(#""mqtt":"connected""#), "\(degraded.body)")
            let notReady = try #require(try await httpGet("http://127.0.0.1:\(statusPort)/ready"))
            #expect(notReady.status == 503, "\(notReady.body)")
            #expect(
                notReady.body.contains(#""failing":["broker_not_connected","subscriptions_pending"]"#)
                    && notReady.body.contains(#""pending":3}"#),
                "\(notReady.body)"
            )
            let metrics = try #require(try await httpGet("http://127.0.0.1:\(statusPort)/metrics"))
            #expect(metrics.body.contains("bridge_ready 0"), "\(metrics.body)")
            #expect(metrics.body.contains(#"bridge_modbus_writes_total{outcome="exception_0A"} 1"#), "\(metrics.body)")
            #expect(metrics.body.contains("bridge_mqtt_connected 0"), "\(metrics.body)")

            // The broker comes up on the configured port: the bridge connects by itself.
            refusingBroker.release()
            let started = try await TestBroker.start(port: brokerPort)
            broker = started
            let observer = try await connectedClient(started)
            let observed = MessageCollector(observer)
            try await observer.subscribeForTest(statusTopic)
            try await observed.waitForMessage(on: statusTopic, timeout: .seconds(20)) { $0.payloadString == "online" }
            try await observer.publishForTest("e2e/process/temperature", "-3.2", qos: .atLeastOnce, retain: true)
            _ = try await poll("temperature to read -32") {
                try await modbus.read(.inputRegister, 0).value == [UInt16(bitPattern: -32)] ? true : nil
            }
            let healthy = try #require(try await httpGet("http://127.0.0.1:\(statusPort)/health"))
            #expect(healthy.status == 200, "\(healthy.body)")
            let ready = try #require(try await httpGet("http://127.0.0.1:\(statusPort)/ready"))
            #expect(ready.status == 200, "online is announced after the subscriptions: \(ready.body)")

            // SIGTERM: graceful shutdown, exit status 0, "offline" published.
            let mark = observed.count
            bridge.send(SIGTERM)
            #expect(try await bridge.waitForExit() == 0, "\(bridge.output)")
            let offline = try await observed.waitForMessage(on: statusTopic, after: mark, timeout: .seconds(10))
            #expect(offline.payloadString == "offline")
            await observer.disconnect()
        } catch {
            Issue.record("bridge output:\n\(bridge.output)")
            await modbus.close()
            await bridge.cleanUp()
            await broker?.stop()
            throw error
        }
        await modbus.close()
        await bridge.cleanUp()
        await broker?.stop()
        broker?.removeDirectory()
    }
}
