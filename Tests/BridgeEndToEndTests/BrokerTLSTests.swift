import Foundation
import MQTTTestSupport
import ModbusCore
import Mosquitto
import Testing

@testable import MQTTModbusBridge

/// TLS to the broker checks the certificate by default, end to end through `mqtt-modbus-bridge
/// run`: a broker whose certificate the configured CA did not sign, or that names another host,
/// is refused at the handshake, the bridge stops with the reason and never says it is online.
@Suite("TLS to the broker: certificate and host name checked by default")
struct BrokerTLSTests {
    enum Broker: String, CaseIterable, Sendable {
        /// Signed by a CA the bridge does not trust.
        case untrustedCertificate
        /// Signed by the trusted CA, for broker.example.net, while the bridge connects to 127.0.0.1.
        case otherHost
    }

    @Test(
        "a broker certificate from an unknown CA, or for another host, stops the bridge with a TLS verification error; nothing is published",
        arguments: Broker.allCases
    )
    func refused(broker kind: Broker) async throws {
        let pki = try await TestPKI.shared.value
        let options = TestBrokerOptions(
            tls: TestBrokerOptions.TLS(
                caFile: pki.caFile,
                certificateFile: kind == .untrustedCertificate
                    ? pki.untrustedServerCertificate : pki.otherHostServerCertificate,
                privateKeyFile: kind == .untrustedCertificate ? pki.untrustedServerKey : pki.otherHostServerKey
            )
        )
        try await withTestBroker(options) { broker in
            let trusting = { (configuration: inout MQTTConfiguration) in
                // The observer trusts whatever the broker shows: it must see what the bridge publishes.
                configuration.tls = MQTTTLSConfiguration(
                    caFile: kind == .untrustedCertificate ? pki.untrustedCAFile : pki.caFile,
                    verifyHostname: false
                )
            }
            let observer = try await connectedClient(broker, configure: trusting)
            let observed = MessageCollector(observer)
            try await observer.subscribeForTest("#")
            let config = try ServiceProcessTests.configurationFile(
                ServiceProcessTests.yaml(
                    brokerPort: broker.port,
                    modbusPort: try freeLoopbackPort(),
                    brokerSection: "  tls: { ca_file: \(pki.caFile) }"
                )
            )
            let bridge = try BridgeProcess(["run", "--config", config])
            do {
                let status = try await bridge.waitForExit(timeout: .seconds(30))
                #expect(status != 0, "\(bridge.output)")
                let output = bridge.output
                #expect(output.contains("certificate verify failed"), "\(output)")
                if kind == .otherHost {
                    #expect(
                        output.lowercased().contains("hostname") || output.lowercased().contains("host name"),
                        "the reason names the host name: \(output)"
                    )
                }
                // A barrier: anything the bridge published arrived before the observer's own message.
                try await observer.publishForTest("e2e/tls/barrier", "1", qos: .atLeastOnce)
                _ = try await observed.waitForMessage(on: "e2e/tls/barrier")
                #expect(!observed.elements.contains { $0.topic == statusTopic }, "the bridge said nothing")
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

    @Test("the same broker for another host is accepted with verify_hostname: false (the check is what refused it)")
    func hostNameCheckCanBeTurnedOff() async throws {
        let pki = try await TestPKI.shared.value
        let options = TestBrokerOptions(
            tls: TestBrokerOptions.TLS(
                caFile: pki.caFile,
                certificateFile: pki.otherHostServerCertificate,
                privateKeyFile: pki.otherHostServerKey
            )
        )
        try await withTestBroker(options) { broker in
            let observer = try await connectedClient(broker) {
                $0.tls = MQTTTLSConfiguration(caFile: pki.caFile, verifyHostname: false)
            }
            let observed = MessageCollector(observer)
            try await observer.subscribeForTest(statusTopic)
            let config = try ServiceProcessTests.configurationFile(
                ServiceProcessTests.yaml(
                    brokerPort: broker.port,
                    modbusPort: try freeLoopbackPort(),
                    brokerSection: "  tls: { ca_file: \(pki.caFile), verify_hostname: false }"
                )
            )
            let bridge = try BridgeProcess(["run", "--config", config])
            do {
                try await observed.waitForMessage(on: statusTopic, timeout: .seconds(20)) {
                    $0.payloadString == "online"
                }
                #expect(bridge.output.contains("verify_hostname"), "the warning is logged: \(bridge.output)")
                bridge.send(SIGTERM)
                #expect(try await bridge.waitForExit() == 0)
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
