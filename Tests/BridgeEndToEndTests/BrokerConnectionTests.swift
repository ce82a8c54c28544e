import Foundation
import Logging
import MQTTModbusBridgeBroker
import MQTTModbusBridgeSimulator
import MQTTTestSupport
import ModbusCore
import Mosquitto
import Testing

@testable import MQTTModbusBridge
@testable import MQTTModbusBridgeConfiguration

/// The broker going away and coming back, and the bridge's status topic.
@Suite("Broker loss, reconnection and the status topic")
struct BrokerConnectionTests {
    static func yaml(port: Int) -> String {
        baseYAML(brokerPort: port) + """

            units:
              - id: 1
                points:
                  - { name: temperature, area: input_register, address: 0, type: int16, state_topic: e2e/broker/temperature }
                  - { name: level, area: input_register, address: 1, type: int16, state_topic: e2e/broker/level,
                      on_missing: { value: -1 } }
                  - { name: sp, area: holding_register, address: 0, type: int16, state_topic: e2e/broker/sp,
                      command_topic: e2e/broker/sp/set, ack: { mode: mqtt5, timeout: 1s } }

            """
    }

    /// Acknowledges the next command on `e2e/broker/sp/set` after `mark`, as the device.
    static func acknowledgeNextCommand(after mark: Int, harness: BridgeHarness) async throws {
        let command = try await harness.messages.waitForMessage(on: "e2e/broker/sp/set", after: mark)
        let topic = try #require(command.properties.responseTopic)
        try await harness.publish(
            topic,
            "",
            retain: false,
            properties: MQTTProperties(correlationData: command.properties.correlationData)
        )
    }

    @Test(
        "broker killed: writes 0A, reads follow the missing-value policy; restarted: the bridge reconnects and serves fresh values"
    )
    func brokerKilledAndRestarted() async throws {
        try await withBridge(Self.yaml) { harness in
            let modbus = harness.modbus
            try await harness.publish("e2e/broker/temperature", "25")
            try await harness.publish("e2e/broker/level", "5")
            try await harness.awaitRead(.inputRegister, 0, count: 2) { $0 == [25, 5] }
            let mark = harness.messages.count
            async let write = modbus.write(.holdingRegister, 0, [123], single: true)
            try await Self.acknowledgeNextCommand(after: mark, harness: harness)
            #expect(try await write == .ok(true))

            let bridgeStates = StateRecorder(harness.bridge.client)
            await harness.broker.kill()
            try await bridgeStates.waitUntil("the bridge notices the broker is gone") { $0.last?.isConnected == false }
            // The cache is invalidated when the bridge handles the loss; reads then follow each policy.
            #expect(try await harness.awaitReadException(.inputRegister, 0) == .gatewayTargetDeviceFailedToRespond)
            #expect(try await modbus.read(.inputRegister, 1) == .ok([0xFFFF]), "the substitute value -1")
            #expect(try await modbus.read(.holdingRegister, 0) == .exception(.gatewayTargetDeviceFailedToRespond))
            // 0A, not 0B: nothing was published to wait for.
            #expect(
                try await modbus.write(.holdingRegister, 0, [124], single: true) == .exception(.gatewayPathUnavailable)
            )

            // The broker comes back empty (no persistence): the bridge reconnects by itself, says
            // "online" again and takes fresh values.
            let restartMark = harness.messages.count
            try await harness.broker.restart()
            try await harness.messages.waitForMessage(on: statusTopic, after: restartMark, timeout: .seconds(10)) {
                $0.payloadString == "online"
            }
            try await harness.publish("e2e/broker/temperature", "26")
            try await harness.awaitRead(.inputRegister, 0) { $0 == [26] }
            #expect(
                try await modbus.read(.inputRegister, 1) == .ok([0xFFFF]),
                "not received since the loss: still the substitute"
            )

            let writeMark = harness.messages.count
            async let again = modbus.write(.holdingRegister, 0, [125], single: true)
            try await Self.acknowledgeNextCommand(after: writeMark, harness: harness)
            #expect(try await again == .ok(true))
            #expect(try await modbus.read(.holdingRegister, 0) == .ok([125]))
        }
    }

    @Test(
        "status: 'online' retained while connected; the last will 'offline' when the connection dies; 'online' again after"
    )
    func statusAndLastWill() async throws {
        try await withBridge(Self.yaml) { harness in
            // A late subscriber gets the retained status.
            let observer = try await connectedClient(harness.broker)
            let observed = MessageCollector(observer)
            try await observer.subscribeForTest(statusTopic)
            let retained = try await observed.waitForMessage(on: statusTopic)
            #expect(retained.payloadString == "online")
            #expect(retained.retain, "delivered as a retained message")

            // The will the bridge registers with the broker.
            let will = try #require(try MQTTConfiguration(bridgeBroker: harness.configuration.broker).will)
            #expect(
                will.topic == statusTopic && will.payload == Array("offline".utf8) && will.retain
                    && will.qos == .atLeastOnce
            )

            // The broker publishes the will when the bridge's connection ends without DISCONNECT.
            // In-process we cannot freeze or kill the bridge alone, so a client taking over the
            // bridge's client id makes the broker drop the bridge's connection (session takeover),
            // which publishes the will exactly as a dead connection would.
            let mark = observed.count
            var impostorConfiguration = testConfiguration(
                harness.broker,
                clientID: harness.configuration.broker.clientID
            )
            impostorConfiguration.reconnect = MQTTReconnectPolicy(
                initialDelay: .seconds(30),
                maximumDelay: .seconds(30)
            )
            let impostor = try MQTTClient(configuration: impostorConfiguration, logger: testLogger)
            try await withTimeout(.seconds(10), "impostor connects") { try await impostor.connect() }
            let offline = try await observed.waitForMessage(on: statusTopic, after: mark) {
                $0.payloadString != "online"
            }
            #expect(offline.payloadString == "offline")
            await impostor.disconnect()

            // The bridge reconnects by itself and announces itself again.
            try await observed.waitForMessage(on: statusTopic, after: mark, timeout: .seconds(10)) {
                $0.payloadString == "online"
            }
            try await harness.publish("e2e/broker/temperature", "30")
            try await harness.awaitRead(.inputRegister, 0) { $0 == [30] }
            await observer.disconnect()
        }
    }

    @Test(
        "stopping the bridge (graceful shutdown or cancellation) leaves 'offline' retained",
        arguments: ["graceful", "cancelled"]
    )
    func offlineAfterStop(how: String) async throws {
        try await withTestBroker { broker in
            let configuration = try BridgeConfiguration.parse(yaml: Self.yaml(port: broker.port))
            let observer = try await connectedClient(broker)
            let observed = MessageCollector(observer)
            try await observer.subscribeForTest(statusTopic)
            let bridge = try MQTTModbusBridgeService(configuration: configuration, logger: e2eLogger("e2e.bridge"))
            let running = startService(bridge, label: "e2e.bridge")
            do {
                try await observed.waitForMessage(on: statusTopic) { $0.payloadString == "online" }
                let mark = observed.count
                if how == "graceful" {
                    await running.stop()
                } else {
                    running.task.cancel()
                    _ = try? await withTimeout(.seconds(10), "the bridge ends when cancelled") {
                        try await running.task.valueCancellingOnExit()
                    }
                }
                try await observed.waitForMessage(on: statusTopic, after: mark, timeout: .seconds(5)) {
                    $0.payloadString == "offline"
                }

                // Retained for whoever asks next.
                let late = try await connectedClient(broker)
                let lateMessages = MessageCollector(late)
                try await late.subscribeForTest(statusTopic)
                let status = try await lateMessages.waitForMessage(on: statusTopic)
                #expect(status.payloadString == "offline" && status.retain)
                await late.disconnect()
            } catch {
                await running.stop()
                await observer.disconnect()
                throw error
            }
            await running.stop()
            await observer.disconnect()
        }
    }

    @Test("the device simulator ends on graceful shutdown (SIGTERM of `simulate`), not only on cancellation")
    func simulatorGracefulShutdown() async throws {
        try await withTestBroker { broker in
            let configuration = try BridgeConfiguration.parse(yaml: Self.yaml(port: broker.port))
            let observer = try await connectedClient(broker)
            let observed = MessageCollector(observer)
            try await observer.subscribeForTest("e2e/broker/#")
            var options = DeviceSimulator.Options()
            options.telemetryInterval = nil
            let simulator = try DeviceSimulator(
                configuration: configuration,
                options: options,
                logger: e2eLogger("e2e.simulator")
            )
            let running = startService(simulator, label: "e2e.simulator")
            do {
                // Running: it has published its initial states.
                try await observed.waitForMessage(on: "e2e/broker/sp")
                await running.group.triggerGracefulShutdown()
                // Before the fix it never ended (its message loop outlived the disconnect).
                try await withTimeout(.seconds(8), "the simulator to end after graceful shutdown") {
                    try await running.task.valueCancellingOnExit()
                }
            } catch {
                await running.stop()
                await observer.disconnect()
                throw error
            }
            await observer.disconnect()
        }
    }
}
