import Foundation
import MQTTTestSupport
import ModbusCore
import Mosquitto
import Testing

/// The bridge program with `modbus.tls`: the TLS listener beside the plain one, roles from
/// client certificates, and the certificate renewed on SIGHUP, as an operator does it: the
/// files are replaced and the process signalled while a master stays connected.
@Suite("Modbus/TCP Security end to end")
struct ModbusSecurityEndToEndTests {
    static let clientID = "e2e-tls-\(UUID().uuidString.prefix(8))"

    static func yaml(brokerPort: Int, modbusPort: Int, tlsPort: Int, roles: String) -> String {
        """
        broker:
          host: 127.0.0.1
          port: \(brokerPort)
          client_id: \(clientID)
          status_topic: \(statusTopic)
          reconnect: { min_delay: 50ms, max_delay: 200ms, multiplier: 2 }
        modbus:
          host: 127.0.0.1
          port: \(modbusPort)
          shutdown_grace_period: 1s
          tls:
            port: \(tlsPort)
            certificate: server.crt
            key: server.key
            ca: ca.crt
            roles:
        \(roles)
        defaults:
          max_age: 1h
        units:
          - id: 1
            points:
              - { name: setpoint, area: holding_register, address: 0, type: uint16, state_topic: e2e/tls/setpoint, command_topic: e2e/tls/setpoint/set, ack: { mode: state_echo, timeout: 2s } }
        """
    }

    static let roles = """
              operator: { read: all, write: all }
              viewer: { read: all }
        """

    /// The viewer is gone from the role map.
    static let rolesWithoutViewer = """
              operator: { read: all, write: all }
        """

    @Test(
        "plain and TLS side by side; a viewer's write is 01 and counted; SIGHUP puts a renewed certificate in force for new connections while an open one goes on; a bad key is refused and the old certificate stays; a role map change applies"
    )
    func tlsListenerAndReload() async throws {
        let pki = try await ModbusTestPKI.shared.value
        try await withTestBroker { broker in
            let publisher = try await connectedClient(broker)
            let observed = MessageCollector(publisher)
            try await publisher.subscribeForTest(statusTopic)
            let (modbusPort, tlsPort, statusPort) = (
                try freeLoopbackPort(), try freeLoopbackPort(), try freeLoopbackPort()
            )
            let config = try ServiceProcessTests.configurationFile(
                Self.yaml(brokerPort: broker.port, modbusPort: modbusPort, tlsPort: tlsPort, roles: Self.roles)
            )
            let directory = URL(fileURLWithPath: config).deletingLastPathComponent()
            func install(certificate: String, key: String) throws {
                for (source, name) in [(certificate, "server.crt"), (key, "server.key"), (pki.caFile, "ca.crt")] {
                    let target = directory.appendingPathComponent(name)
                    try? FileManager.default.removeItem(at: target)
                    try FileManager.default.copyItem(atPath: source, toPath: target.path)
                }
            }
            try install(certificate: pki.serverA.certificate, key: pki.serverA.key)
            try await publisher.publishForTest("e2e/tls/setpoint", "321", qos: .atLeastOnce, retain: true)

            let bridge = try BridgeProcess(["run", "--config", config, "--status-listen", "127.0.0.1:\(statusPort)"])
            let modbus = try PymodbusClient.start(port: modbusPort)
            let proceed = directory.appendingPathComponent("proceed").path
            func tlsClient(
                _ role: String,
                _ requests: [ModbusTLSTestClient.Request],
                waitFor: String? = nil
            ) async throws -> ModbusTLSTestClient.Result {
                try await ModbusTLSTestClient.run(
                    port: tlsPort,
                    ca: pki.caFile,
                    identity: pki.client(role: role),
                    requests: requests,
                    waitFor: waitFor
                )
            }
            do {
                try await observed.waitForMessage(on: statusTopic, timeout: .seconds(20)) {
                    $0.payloadString == "online"
                }
                _ = try await poll("the plain listener to serve the retained value", timeout: .seconds(20)) {
                    try await modbus.read(.holdingRegister, 0).value == [321] ? true : nil
                }
                let operatorRead = try await tlsClient("operator", [.readHolding(0)])
                #expect(operatorRead.replies == [[0x03, 2, 0x01, 0x41]], "the same register image: \(operatorRead)")
                #expect(operatorRead.serverCommonName == "modbus-server-a")
                let viewer = try await tlsClient("viewer", [.readHolding(0), .writeHolding(0, 5)])
                #expect(viewer.replies == [[0x03, 2, 0x01, 0x41], [0x86, 1]], "\(viewer)")
                let metrics = try #require(try await httpGet("http://127.0.0.1:\(statusPort)/metrics"))
                #expect(metrics.body.contains("modbus_server_role_denials_total 1"), "\(metrics.body)")
                let noCertificate = try await ModbusTLSTestClient.run(
                    port: tlsPort,
                    ca: pki.caFile,
                    identity: nil,
                    requests: [.readHolding(0)]
                )
                #expect(noCertificate.refused, "\(noCertificate)")
                _ = try await poll("the handshake failure to be counted") {
                    let scrape = try await httpGet("http://127.0.0.1:\(statusPort)/metrics")
                    return scrape?.body.contains("modbus_server_tls_handshake_failures_total 1") == true ? true : nil
                }

                // A master that stays connected across the renewal.
                async let held = tlsClient("operator", [.readHolding(0), .readHolding(0)], waitFor: proceed)
                _ = try await poll("the held connection's first request", timeout: .seconds(20)) {
                    let connections = try await ReloadEndToEndTests.connections(statusPort)
                    // pymodbus's plain connection and the held TLS one, each past its first request.
                    return connections.count >= 2 && connections.allSatisfy { $0.requests >= 1 } ? true : nil
                }

                // The renewed certificate, under the same file names.
                try install(certificate: pki.serverB.certificate, key: pki.serverB.key)
                bridge.send(SIGHUP)
                _ = try await poll("the reload to be logged", timeout: .seconds(20)) {
                    bridge.output.contains("configuration reloaded") ? true : nil
                }
                let renewed = try await tlsClient("operator", [.readHolding(0)])
                #expect(renewed.serverCommonName == "modbus-server-b", "\(renewed)")
                #expect(renewed.replies == [[0x03, 2, 0x01, 0x41]])
                _ = FileManager.default.createFile(atPath: proceed, contents: nil)
                let open = try await held
                #expect(open.serverCommonName == "modbus-server-a", "\(open)")
                #expect(open.replies.count == 2 && open.error == nil, "the open connection went on: \(open)")

                // A key that does not belong to the certificate: refused, the last one stays.
                try install(certificate: pki.serverA.certificate, key: pki.serverB.key)
                bridge.send(SIGHUP)
                _ = try await poll("the bad key to be refused", timeout: .seconds(20)) {
                    bridge.output.contains("the certificate, key and role map in force are kept") ? true : nil
                }
                #expect(
                    bridge.output.contains("does the key belong to the certificate?")
                        && bridge.output.contains("configuration not reloaded"),
                    "\(bridge.output)"
                )
                let stillB = try await tlsClient("viewer", [.readHolding(0)])
                #expect(stillB.serverCommonName == "modbus-server-b" && stillB.replies.count == 1, "\(stillB)")

                // Good files again, and the viewer removed from the role map.
                try install(certificate: pki.serverB.certificate, key: pki.serverB.key)
                try Self.yaml(
                    brokerPort: broker.port,
                    modbusPort: modbusPort,
                    tlsPort: tlsPort,
                    roles: Self.rolesWithoutViewer
                ).write(toFile: config, atomically: true, encoding: .utf8)
                let reloads = bridge.output.components(separatedBy: "configuration reloaded").count
                bridge.send(SIGHUP)
                _ = try await poll("the second reload to be logged", timeout: .seconds(20)) {
                    bridge.output.components(separatedBy: "configuration reloaded").count > reloads ? true : nil
                }
                let revoked = try await tlsClient("viewer", [.readHolding(0)])
                #expect(revoked.replies == [[0x83, 1]], "\(revoked)")
                #expect(try await modbus.read(.holdingRegister, 0) == .ok([321]), "the plain listener is unaffected")

                bridge.send(SIGTERM)
                #expect(try await bridge.waitForExit() == 0, "\(bridge.output)")
            } catch {
                Issue.record("bridge output:\n\(bridge.output)")
                _ = FileManager.default.createFile(atPath: proceed, contents: nil)
                await modbus.close()
                await bridge.cleanUp()
                await publisher.disconnect()
                throw error
            }
            await modbus.close()
            await bridge.cleanUp()
            await publisher.disconnect()
        }
    }
}
