import Foundation
import MQTTModbusBridge
import MQTTModbusBridgeSimulator
import MQTTTestSupport
import ModbusCore
import Mosquitto
import Testing

/// The simulator's Sparkplug edge node against the bridge: births, DATA by alias, writes
/// confirmed by DDATA, and its fault switches (a seq gap, never confirming).
@Suite("Sparkplug edge node simulator, end to end")
struct SparkplugSimulatorTests {
    static func yaml(_ port: Int) -> String {
        baseYAML(brokerPort: port) + """

            sparkplug: { host_id: e2e-host, rebirth_interval: 200ms }
            devices:
              - name: edge
                sparkplug: { group_id: sim, edge_node_id: edge1 }
              - name: press
                sparkplug: { group_id: sim, edge_node_id: edge1, device_id: press }
            units:
              - id: 1
                device: press
                points:
                  - { name: temp, area: input_register, address: 0, type: float32, metric: Temp }
                  - { name: count, area: input_register, address: 2, type: uint32, metric: Count }
                  - { name: setpoint, area: holding_register, address: 0, type: int16, scale: 10, metric: Setpoint,
                      ack: { timeout: 1s } }
                  - { name: speed, area: holding_register, address: 1, type: uint16, metric: Speed, ack: { timeout: 1s } }
                  - { name: uptime, area: input_register, address: 10, type: int64, metric: Uptime, device: edge }
            """
    }

    func withNode(
        _ harness: BridgeHarness,
        _ configure: (inout SparkplugEdgeNodeSimulator.Options) -> Void = { _ in },
        _ body: () async throws -> Void
    ) async throws {
        var options = SparkplugEdgeNodeSimulator.Options()
        options.telemetryInterval = .milliseconds(100)
        configure(&options)
        let nodes = try SparkplugEdgeNodeSimulator.nodes(of: harness.configuration, options: options)
        #expect(nodes.map(\.node.edgeNodeID) == ["edge1"])
        let running = nodes.map { startService($0, label: "e2e.sparkplug") }
        do {
            try await body()
        } catch {
            for service in running { await service.stop() }
            throw error
        }
        for service in running { await service.stop() }
    }

    @Test("Births, DATA by alias with seq wrapping past 255, a write confirmed by DDATA, NDEATH on stop")
    func playsAnEdgeNode() async throws {
        try await withBridge(Self.yaml) { harness in
            try await withNode(harness, { $0.telemetryInterval = .milliseconds(20) }) {
                try await harness.awaitRead(.inputRegister, 10, count: 4)
                // Telemetry changes the count: DATA by alias reaches the registers.
                let first = try await harness.awaitRead(.inputRegister, 2, count: 2)
                try await harness.awaitRead(.inputRegister, 2, count: 2) { $0 != first }
                let mark = harness.messages.count
                #expect(try await harness.modbus.write(.holdingRegister, 0, [215, 7]) == .ok(true))
                let commands = harness.messages.messages.dropFirst(mark).filter {
                    $0.topic == "spBv1.0/sim/DCMD/edge1/press"
                }
                #expect(commands.count == 1, "one DCMD for both metrics")
                try await harness.awaitRead(.holdingRegister, 0, count: 2) { $0 == [215, 7] }
                // Telemetry every 20 ms: seq passes 255 within about 5 s; run until it wrapped
                // and check that no gap was seen (no rebirth asked) and the values still come.
                let wrapped = harness.messages.count
                _ = try await harness.messages.waitUntil("seq to wrap", timeout: .seconds(30)) { messages in
                    messages.dropFirst(wrapped).filter { $0.topic.hasPrefix("spBv1.0/sim/DDATA/") }.count >= 260
                }
                #expect(!harness.messages.messages.dropFirst(wrapped).contains { $0.topic == "spBv1.0/sim/NCMD/edge1" })
                try await harness.awaitRead(.inputRegister, 0, count: 2)
            }
            // Its graceful stop ends with an NDEATH: missing at once.
            #expect(try await harness.awaitReadException(.inputRegister, 0) == .gatewayTargetDeviceFailedToRespond)
        }
    }

    @Test("Fault switches: a seq gap brings a rebirth request and new births; never confirming gives 0B")
    func faults() async throws {
        try await withBridge(Self.yaml) { harness in
            try await withNode(harness, { $0.seqGapEvery = 5 }) {
                let mark = harness.messages.count
                try await harness.messages.waitForMessage(on: "spBv1.0/sim/NCMD/edge1", after: mark)
                try await harness.messages.waitForMessage(on: "spBv1.0/sim/NBIRTH/edge1", after: mark)
                try await harness.awaitRead(.inputRegister, 0, count: 2)
            }
        }
        try await withBridge(Self.yaml) { harness in
            try await withNode(harness, { $0.neverConfirm = true }) {
                try await harness.awaitRead(.holdingRegister, 1)
                #expect(
                    try await harness.modbus.write(.holdingRegister, 1, [9], single: true)
                        == .exception(.gatewayTargetDeviceFailedToRespond)
                )
            }
        }
    }
}
