import Foundation
import MQTTTestSupport
import ModbusCore
import Mosquitto
import Testing

/// Two bridge programs on one broker, as a redundant pair that a SCADA master polls
/// (docs/scaling.md): each instance holds only its cache, rebuilt from the broker, so when one
/// dies the master moves to the other and reads and writes go on.
@Suite("A redundant pair of bridges, end to end")
struct RedundantPairTests {
    /// One instance's configuration: its own client id, status topic and Modbus port; the same
    /// topic map as its partner.
    static func yaml(instance: String, brokerPort: Int, modbusPort: Int) -> String {
        """
        broker:
          host: 127.0.0.1
          port: \(brokerPort)
          client_id: e2e-pair-\(instance)
          status_topic: e2e/pair/bridge-\(instance)/status
          keepalive: 5s
          reconnect: { min_delay: 50ms, max_delay: 200ms, multiplier: 2 }
          connect_timeout: 2s
        modbus:
          host: 127.0.0.1
          port: \(modbusPort)
          shutdown_grace_period: 1s
        units:
          - id: 1
            points:
              - { name: temperature, area: input_register, address: 0, type: int16, scale: 10,
                  state_topic: e2e/pair/temperature, max_age: 1h }
              - { name: setpoint, area: holding_register, address: 0, type: int16, state_topic: e2e/pair/setpoint,
                  command_topic: e2e/pair/setpoint/set, ack: { mode: mqtt5, timeout: 3s }, max_age: 1h }

        """
    }

    @Test("Kill one instance: its will says offline, and a master that moves to the other reads and writes on")
    func failover() async throws {
        try await withTestBroker { broker in
            let observer = try await connectedClient(broker)
            let observed = MessageCollector(observer)
            try await observer.subscribeForTest("e2e/pair/#")

            let portA = try freeLoopbackPort()
            let portB = try freeLoopbackPort()
            let configA = try ServiceProcessTests.configurationFile(
                Self.yaml(instance: "a", brokerPort: broker.port, modbusPort: portA)
            )
            let configB = try ServiceProcessTests.configurationFile(
                Self.yaml(instance: "b", brokerPort: broker.port, modbusPort: portB)
            )
            // The device: the simulator, answering commands with MQTT 5 responses and publishing
            // the applied value (retained).
            let device = try BridgeProcess(["simulate", "--config", configA, "--interval", "0"])
            let bridgeA = try BridgeProcess(["run", "--config", configA])
            let bridgeB = try BridgeProcess(["run", "--config", configB])
            var masterOnB: PymodbusClient?
            let masterOnA = try PymodbusClient.start(port: portA)
            do {
                for instance in ["a", "b"] {
                    try await observed.waitForMessage(on: "e2e/pair/bridge-\(instance)/status", timeout: .seconds(20)) {
                        $0.payloadString == "online"
                    }
                }

                // Normal operation on A: a value, an acknowledged write, the write read back.
                _ = try await poll("A to serve the temperature") {
                    try await masterOnA.read(.inputRegister, 0).value
                }
                #expect(try await masterOnA.write(.holdingRegister, 0, [42], single: true) == .ok(true))
                _ = try await poll("A to read the setpoint back as 42") {
                    try await masterOnA.read(.holdingRegister, 0).value == [42] ? true : nil
                }

                // A dies without a word: the broker publishes its will, B stays online.
                bridgeA.send(SIGKILL)
                _ = try await bridgeA.waitForExit()
                try await observed.waitForMessage(on: "e2e/pair/bridge-a/status", timeout: .seconds(20)) {
                    $0.payloadString == "offline"
                }
                #expect(
                    observed.messages.last { $0.topic == "e2e/pair/bridge-b/status" }?.payloadString == "online",
                    "B's status is untouched"
                )
                let refused = try? await masterOnA.read(.holdingRegister, 0)
                #expect(refused?.value == nil, "nothing answers on A's port any more")

                // The master moves to B, which saw the same device: the value written through A,
                // then its own acknowledged write.
                let master = try PymodbusClient.start(port: portB)
                masterOnB = master
                _ = try await poll("B to read the setpoint written through A") {
                    try await master.read(.holdingRegister, 0).value == [42] ? true : nil
                }
                #expect(try await master.read(.inputRegister, 0).value != nil, "B serves the temperature")
                #expect(try await master.write(.holdingRegister, 0, [43], single: true) == .ok(true))
                _ = try await poll("B to read its own write back as 43") {
                    try await master.read(.holdingRegister, 0).value == [43] ? true : nil
                }
                #expect(bridgeB.output.contains("critical") == false, "\(bridgeB.output)")
            } catch {
                Issue.record("A: \(bridgeA.output)\nB: \(bridgeB.output)\ndevice: \(device.output)")
                await masterOnA.close()
                await masterOnB?.close()
                await bridgeA.cleanUp()
                await bridgeB.cleanUp()
                await device.cleanUp()
                throw error
            }
            await masterOnA.close()
            await masterOnB?.close()
            bridgeB.send(SIGTERM)
            #expect(try await bridgeB.waitForExit() == 0, "B stops gracefully")
            await bridgeA.cleanUp()
            await bridgeB.cleanUp()
            await device.cleanUp()
        }
    }
}
