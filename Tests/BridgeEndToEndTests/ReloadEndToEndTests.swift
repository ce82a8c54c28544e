import Foundation
import MQTTTestSupport
import ModbusCore
import Mosquitto
import Testing

@testable import MQTTModbusBridge
@testable import MQTTModbusBridgeConfiguration

/// SIGHUP reloads the configuration of a running `mqtt-modbus-bridge run`, as an operator does
/// it: the file is edited and the process signalled while a SCADA master stays connected.
@Suite("Reload on SIGHUP")
struct ReloadEndToEndTests {
    /// One client id for every version of the file: a changed id would be refused.
    static let clientID = "e2e-reload-\(UUID().uuidString.prefix(8))"

    static func yaml(brokerPort: Int, modbusPort: Int, points: String) -> String {
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
        defaults:
          max_age: 1h
        units:
        \(points)
        """
    }

    static let before = """
          - id: 1
            points:
              - { name: temperature, area: input_register, address: 0, type: int16, scale: 10, state_topic: e2e/reload/temperature }
              - { name: humidity, area: input_register, address: 1, type: uint16, state_topic: e2e/reload/humidity }
        """

    /// Adds a point (pressure) and a unit (2, flow), removes humidity, changes the scale of
    /// temperature.
    static let after = """
          - id: 1
            points:
              - { name: temperature, area: input_register, address: 0, type: int16, scale: 100, state_topic: e2e/reload/temperature }
              - { name: pressure, area: input_register, address: 2, type: uint16, state_topic: e2e/reload/pressure }
          - id: 2
            points:
              - { name: flow, area: input_register, address: 0, type: uint16, state_topic: e2e/reload/flow }
        """

    @Test(
        "an open pymodbus connection keeps working across SIGHUPs: a point added, one removed, a scale changed, a unit added; an invalid file and a changed port are refused with their reasons, and the old map answers"
    )
    func reloadKeepsConnection() async throws {
        try await withTestBroker { broker in
            let publisher = try await connectedClient(broker)
            let observed = MessageCollector(publisher)
            try await publisher.subscribeForTest(statusTopic)
            let modbusPort = try freeLoopbackPort()
            let statusPort = try freeLoopbackPort()
            let config = try ServiceProcessTests.configurationFile(
                Self.yaml(brokerPort: broker.port, modbusPort: modbusPort, points: Self.before)
            )
            for (topic, value) in [
                ("temperature", "21.5"), ("humidity", "40"), ("pressure", "1013"), ("flow", "77"),
            ] {
                try await publisher.publishForTest("e2e/reload/\(topic)", value, qos: .atLeastOnce, retain: true)
            }
            let bridge = try BridgeProcess(["run", "--config", config, "--status-listen", "127.0.0.1:\(statusPort)"])
            let modbus = try PymodbusClient.start(port: modbusPort)
            do {
                try await observed.waitForMessage(on: statusTopic, timeout: .seconds(20)) {
                    $0.payloadString == "online"
                }
                _ = try await poll("temperature to read 215", timeout: .seconds(20)) {
                    try await modbus.read(.inputRegister, 0).value == [215] ? true : nil
                }
                #expect(try await modbus.read(.inputRegister, 1) == .ok([40]))
                #expect(try await modbus.read(.inputRegister, 2) == .exception(.illegalDataAddress))
                #expect(
                    try await modbus.read(.inputRegister, 0, unit: 2) == .exception(.gatewayTargetDeviceFailedToRespond)
                )
                let connectionsBefore = try await Self.connections(statusPort)
                #expect(connectionsBefore.count == 1, "\(connectionsBefore)")

                // A valid reload.
                try Self.yaml(brokerPort: broker.port, modbusPort: modbusPort, points: Self.after)
                    .write(toFile: config, atomically: true, encoding: .utf8)
                bridge.send(SIGHUP)
                _ = try await poll("the reload to be logged", timeout: .seconds(20)) {
                    bridge.output.contains("configuration reloaded") ? true : nil
                }
                #expect(
                    bridge.output.contains("points: 2 added, 1 removed, 1 changed, 0 unchanged")
                        && bridge.output.contains("units: 1 added, 0 removed"),
                    "\(bridge.output)"
                )
                #expect(
                    try await modbus.read(.inputRegister, 0) == .ok([2150]),
                    "the value is kept, re-encoded with the new scale"
                )
                #expect(try await modbus.read(.inputRegister, 1) == .exception(.illegalDataAddress), "removed")
                _ = try await poll("the new point's retained value") {
                    try await modbus.read(.inputRegister, 2).value == [1013] ? true : nil
                }
                _ = try await poll("the new unit's retained value") {
                    try await modbus.read(.inputRegister, 0, unit: 2).value == [77] ? true : nil
                }
                try await publisher.publishForTest("e2e/reload/pressure", "1020", qos: .atLeastOnce)
                _ = try await poll("a live value on the new subscription") {
                    try await modbus.read(.inputRegister, 2).value == [1020] ? true : nil
                }
                let ready = try await poll("/ready after the reload's subscriptions") {
                    let answer = try await httpGet("http://127.0.0.1:\(statusPort)/ready")
                    return answer?.status == 200 ? answer : nil
                }
                #expect(ready.body.contains(#""configured":3"#), "\(ready.body)")

                // An invalid file: refused with its errors, the running map answers on.
                let broken = Self.yaml(brokerPort: broker.port, modbusPort: modbusPort, points: Self.after)
                    .replacingOccurrences(
                        of: "type: uint16, state_topic: e2e/reload/pressure",
                        with: "type: uint17, state_topic: e2e/reload/pressure"
                    )
                    .replacingOccurrences(
                        of: "address: 0, type: uint16, state_topic: e2e/reload/flow",
                        with: "address: 70000, type: uint16, state_topic: e2e/reload/flow"
                    )
                try broken.write(toFile: config, atomically: true, encoding: .utf8)
                bridge.send(SIGHUP)
                _ = try await poll("the refusal to be logged", timeout: .seconds(20)) {
                    bridge.output.contains("the file has errors") ? true : nil
                }
                let output = bridge.output
                #expect(output.contains("uint17") && output.contains("70000"), "both errors are logged:\n\(output)")
                #expect(output.contains("\(config):"), "with the file and line:\n\(output)")
                #expect(try await modbus.read(.inputRegister, 0) == .ok([2150]))
                #expect(try await modbus.read(.inputRegister, 2) == .ok([1020]))

                // A setting that applies only at start: refused, saying so.
                let otherPort = try freeLoopbackPort()
                try Self.yaml(brokerPort: broker.port, modbusPort: otherPort, points: Self.before)
                    .write(toFile: config, atomically: true, encoding: .utf8)
                bridge.send(SIGHUP)
                _ = try await poll("the port change to be refused", timeout: .seconds(20)) {
                    bridge.output.contains("modbus.port changed") ? true : nil
                }
                #expect(
                    bridge.output.contains("restart the bridge to change it")
                        && bridge.output.contains("the running one is kept"),
                    "\(bridge.output)"
                )
                #expect(try await modbus.read(.inputRegister, 0) == .ok([2150]), "the map of the last good reload")
                #expect(try await modbus.read(.inputRegister, 1) == .exception(.illegalDataAddress))

                // The master's connection was never closed: the same one, older now.
                let connectionsAfter = try await Self.connections(statusPort)
                #expect(connectionsAfter.count == 1, "\(connectionsAfter)")
                #expect(connectionsAfter.first?.peer == connectionsBefore.first?.peer, "\(connectionsAfter)")
                #expect(
                    (connectionsAfter.first?.requests ?? 0) > (connectionsBefore.first?.requests ?? .max),
                    "\(connectionsBefore) → \(connectionsAfter)"
                )
                bridge.send(SIGTERM)
                #expect(try await bridge.waitForExit() == 0, "\(bridge.output)")
            } catch {
                Issue.record("bridge output:\n\(bridge.output)")
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

    struct Connection: Decodable, Sendable, CustomStringConvertible {
        var peer: String
        var requests: Int
        var description: String { "\(peer) (\(requests) requests)" }
    }

    /// The bridge's open Modbus connections, from its status API.
    static func connections(_ statusPort: Int) async throws -> [Connection] {
        let answer = try #require(try await httpGet("http://127.0.0.1:\(statusPort)/api/connections"))
        #expect(answer.status == 200, "\(answer.body)")
        struct Body: Decodable { var connections: [Connection] }
        if let body = try? JSONDecoder().decode(Body.self, from: Data(answer.body.utf8)) { return body.connections }
        return try JSONDecoder().decode([Connection].self, from: Data(answer.body.utf8))
    }
}
