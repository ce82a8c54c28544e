import Foundation
import MQTTTestSupport
import ModbusCore
import Mosquitto
import Testing

@testable import MQTTModbusBridge

/// Acknowledgements do not wait behind, and are not dropped for, a flood of telemetry
/// (docs/design.md §4.9). No timing is asserted: the latencies are printed, and measured properly
/// by Benchmarks/ack-under-flood.
@Suite("Acknowledgements under a telemetry flood, end to end")
struct AckUnderFloodTests {
    static let floodTopics = 1_000
    static let floodMessages = 200_000
    static let quietWrites = 100
    /// Bounds the writes made while the flood runs (each takes about a millisecond).
    static let maxFloodWrites = 20_000

    /// 1,000 telemetry points and one MQTT 5 setpoint; a receive buffer of 1,000 messages, so
    /// that the flood overflows it and the ack path has to hold its own.
    static func yaml(port: Int) -> String {
        let telemetry = (0..<floodTopics).map { index in
            "      - { name: t\(index), area: input_register, address: \(index), type: int16, state_topic: flood/\(index) }"
        }
        return baseYAML(brokerPort: port).replacingOccurrences(
            of: "\nmodbus:",
            with: "\n  message_buffer: 1000\nmodbus:"
        )
            + """

            units:
              - id: 1
                points:
                  - { name: sp, area: holding_register, address: 0, type: int16, command_topic: e2e/dev/sp/set,
                      ack: { mode: mqtt5, timeout: 5s } }

            """ + telemetry.joined(separator: "\n") + "\n"
    }

    @Test(
        "200,000 QoS 0 telemetry messages over 1,000 topics while a master writes an MQTT 5 point: every write succeeds"
    )
    func writesSucceedUnderFlood() async throws {
        // The test client watches only the bridge and the device: it must not drink the flood.
        try await withBridge(Self.yaml, observing: [statusTopic, "e2e/dev/#"]) { harness in
            // The test device: answers every command with an empty (successful) MQTT 5 response.
            let device = try await connectedClient(harness.broker)
            try await device.subscribeForTest("e2e/dev/sp/set")
            let answering = Task {
                for await command in device.messages {
                    guard let topic = command.properties.responseTopic else { continue }
                    try? await device.publish(
                        topic: topic,
                        payload: [],
                        qos: .atLeastOnce,
                        properties: MQTTProperties(correlationData: command.properties.correlationData)
                    )
                }
            }
            defer { answering.cancel() }
            let modbus = harness.modbus

            func timedWrite(_ index: Int) async throws -> (ModbusReply<Bool>, Duration) {
                let started = ContinuousClock.now
                let reply = try await modbus.write(
                    .holdingRegister,
                    0,
                    [UInt16(index % 2 == 0 ? 100 : 200)],
                    single: true
                )
                return (reply, ContinuousClock.now - started)
            }

            var quiet: [Duration] = []
            for index in 0..<Self.quietWrites {
                let (reply, latency) = try await timedWrite(index)
                #expect(reply == .ok(true), "quiet write \(index)")
                quiet.append(latency)
            }

            // The flood comes from a process of its own (Python/mqtt_flood.py, raw MQTT 3.1.1), as
            // fast as the broker takes it.
            let script = try #require(
                Bundle.module.url(forResource: "mqtt_flood", withExtension: "py", subdirectory: "Python")
            )
            let floodEnded = TestLock(false)
            let port = harness.broker.port
            let flood = Task { () -> String in
                defer { floodEnded.withLock { $0 = true } }
                return try await runCommand(
                    TestPython.url.path,
                    [script.path, "\(port)", "\(Self.floodMessages)", "\(Self.floodTopics)", "flood"]
                )
            }
            var flooded: [Duration] = []
            var failures: [String] = []
            while flooded.count < Self.maxFloodWrites {
                let (reply, latency) = try await timedWrite(flooded.count)
                if reply != .ok(true) { failures.append("write \(flooded.count): \(reply)") }
                flooded.append(latency)
                if floodEnded.withLock({ $0 }) { break }
            }
            let floodReport = try await flood.valueCancellingOnExit().trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(
                failures.isEmpty,
                "every write during the flood succeeds (no false timeouts): \(failures.prefix(5))"
            )
            #expect(flooded.count > 1, "writes were made while the flood ran")
            #expect(harness.bridge.acks.droppedMessageCount == 0, "no ack dropped")

            func percentile(_ values: [Duration], _ fraction: Double) -> String {
                let sorted = values.sorted()
                let value = sorted[min(sorted.count - 1, Int(Double(sorted.count) * fraction))]
                return String(
                    format: "%.2f ms",
                    Double(value.components.attoseconds) / 1e15 + Double(value.components.seconds) * 1e3
                )
            }
            print(
                """
                ack-under-flood: write latency through pymodbus's helper (its pipe included), \
                quiet: p50 \(percentile(quiet, 0.5)), p99 \(percentile(quiet, 0.99)) (\(quiet.count) writes); \
                under the flood: p50 \(percentile(flooded, 0.5)), p99 \(percentile(flooded, 0.99)) \
                (\(flooded.count) writes while the publisher ran: \(floodReport), over \(Self.floodTopics) topics); \
                telemetry dropped by the bridge's buffer: \
                \(harness.bridge.client.droppedMessageCount), acks dropped: \(harness.bridge.acks.droppedMessageCount), \
                the ack path held reading back \(harness.bridge.acks.heldBackCount) times
                """
            )
        }
    }
}
