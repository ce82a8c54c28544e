import Foundation
import MQTTModbusBridge
import MQTTTestSupport
import ModbusCore
import Mosquitto
import Testing

/// Sparkplug B through a real mosquitto: the test plays the edge node with payloads encoded by
/// hand (``HandEncodedSparkplug``), the bridge is a host application, pymodbus is the master.
@Suite("Sparkplug B, end to end")
struct SparkplugEndToEndTests {
    static func yaml(_ port: Int) -> String {
        baseYAML(brokerPort: port) + """

            sparkplug: { host_id: e2e-host, rebirth_interval: 300ms }
            devices:
              - name: edge
                sparkplug: { group_id: e2e, edge_node_id: edge1 }
              - name: press
                sparkplug: { group_id: e2e, edge_node_id: edge1, device_id: press }
            units:
              - id: 1
                device: press
                points:
                  - { name: i8, area: input_register, address: 0, type: int16, metric: I8 }
                  - { name: i16, area: input_register, address: 1, type: int16, metric: I16 }
                  - { name: i32, area: input_register, address: 2, type: int32, metric: I32 }
                  - { name: i64, area: input_register, address: 4, type: int64, metric: I64 }
                  - { name: u8, area: input_register, address: 8, type: uint16, metric: U8 }
                  - { name: u16, area: input_register, address: 9, type: uint16, metric: U16 }
                  - { name: u32, area: input_register, address: 10, type: uint32, metric: U32 }
                  - { name: u64, area: input_register, address: 12, type: uint64, metric: U64 }
                  - { name: f32, area: input_register, address: 16, type: float32, metric: F }
                  - { name: f64, area: input_register, address: 18, type: float64, metric: D }
                  - { name: text, area: input_register, address: 22, type: string, length: 4, metric: S }
                  - { name: stamp, area: input_register, address: 26, type: int64, metric: DT }
                  - { name: ok, area: discrete_input, address: 0, metric: B }
                  - { name: setpoint, area: holding_register, address: 0, type: int16, scale: 10, metric: Setpoint,
                      ack: { timeout: 1500ms } }
                  - { name: speed, area: holding_register, address: 1, type: uint16, metric: Speed,
                      ack: { timeout: 1500ms } }
                  - { name: run, area: coil, address: 0, metric: Run, ack: { timeout: 1500ms } }
                  - { name: uptime, area: input_register, address: 30, type: int64, metric: Uptime, device: edge }
            """
    }

    typealias M = HandEncodedSparkplug.Metric

    /// The press's birth: every datatype, each metric with an alias.
    static let pressBirth: [M] = [
        M(name: "I8", alias: 1, datatype: 1, value: .int(UInt32(bitPattern: -5))),
        M(name: "I16", alias: 2, datatype: 2, value: .int(UInt32(bitPattern: -300))),
        M(name: "I32", alias: 3, datatype: 3, value: .int(UInt32(bitPattern: -70000))),
        M(name: "I64", alias: 4, datatype: 4, value: .long(UInt64(bitPattern: -2))),
        M(name: "U8", alias: 5, datatype: 5, value: .int(200)),
        M(name: "U16", alias: 6, datatype: 6, value: .int(60000)),
        M(name: "U32", alias: 7, datatype: 7, value: .int(4_000_000_000)),
        M(name: "U64", alias: 8, datatype: 8, value: .long((1 << 63) + 5)),
        M(name: "F", alias: 9, datatype: 9, value: .float(21.5)),
        M(name: "D", alias: 10, datatype: 10, value: .double(-1.25)),
        M(name: "S", alias: 11, datatype: 12, value: .string("abc")),
        M(name: "DT", alias: 12, datatype: 13, value: .long(1_700_000_000_000)),
        M(name: "B", alias: 13, datatype: 11, value: .boolean(true)),
        M(name: "Setpoint", alias: 14, datatype: 9, value: .float(20)),
        M(name: "Speed", alias: 15, datatype: 6, value: .int(100)),
        M(name: "Run", alias: 16, datatype: 11, value: .boolean(false)),
    ]

    /// Births the node (Uptime alias 100) and the press, and waits until the bridge serves them.
    static func bornNode(_ harness: BridgeHarness, bdSeq: UInt64 = 0) async throws -> TestEdgeNode {
        var node = TestEdgeNode(harness.mqtt, group: "e2e", node: "edge1")
        try await node.birth(bdSeq: bdSeq, [M(name: "Uptime", alias: 100, datatype: 4, value: .long(7))])
        try await node.deviceBirth("press", pressBirth)
        try await harness.awaitRead(.holdingRegister, 0) { $0 == [200] }
        return node
    }

    @Test("Births with aliases, then DATA by alias: the right registers for every datatype")
    func birthsAndDataByAlias() async throws {
        try await withBridge(Self.yaml) { harness in
            var node = try await Self.bornNode(harness)
            try await harness.awaitRead(.inputRegister, 0, count: 31) { words in
                words[0] == 0xFFFB && words[1] == 0xFED4 && Array(words[2...3]) == [0xFFFE, 0xEE90]
                    && Array(words[4...7]) == [0xFFFF, 0xFFFF, 0xFFFF, 0xFFFE] && words[8] == 200 && words[9] == 60000
                    && Array(words[10...11]) == [0xEE6B, 0x2800] && Array(words[12...15]) == [0x8000, 0, 0, 5]
                    && Array(words[16...17]) == [0x41AC, 0] && Array(words[18...21]) == [0xBFF4, 0, 0, 0]
                    && Array(words[22...25]) == [0x6162, 0x6300, 0, 0]
                    && Array(words[26...29]) == [0, 0x018B, 0xCFE5, 0x6800]
            }
            try await harness.awaitRead(.inputRegister, 30, count: 4) { $0 == [0, 0, 0, 7] }
            try await harness.awaitRead(.discreteInput, 0) { $0 == [1] }

            // DATA names the metrics by alias only; an Int8 sent without sign extension too.
            try await node.deviceData(
                "press",
                [
                    M(alias: 1, value: .int(0xFA)), M(alias: 2, value: .int(1234)),
                    M(alias: 7, value: .int(7)), M(alias: 9, value: .float(-2)),
                    M(alias: 11, value: .string("hi")), M(alias: 13, value: .boolean(false)),
                ]
            )
            try await harness.awaitRead(.inputRegister, 0, count: 2) { $0 == [0xFFFA, 1234] }
            try await harness.awaitRead(.inputRegister, 10, count: 2) { $0 == [0, 7] }
            try await harness.awaitRead(.inputRegister, 16, count: 2) { $0 == [0xC000, 0] }
            try await harness.awaitRead(.inputRegister, 22, count: 4) { $0 == [0x6869, 0, 0, 0] }
            try await harness.awaitRead(.discreteInput, 0) { $0 == [0] }
            try await node.nodeData([M(alias: 100, value: .long(8))])
            try await harness.awaitRead(.inputRegister, 30, count: 4) { $0 == [0, 0, 0, 8] }

            // A bad quality makes the point missing, not its old value.
            try await node.deviceData("press", [M(alias: 6, value: .int(1), quality: 0)])
            #expect(try await harness.awaitReadException(.inputRegister, 9) == .gatewayTargetDeviceFailedToRespond)

            // The host's STATE is retained and says online.
            let state = try await harness.messages.waitForMessage(on: "spBv1.0/STATE/e2e-host")
            #expect(state.payloadString.contains("\"online\":true"))
        }
    }

    @Test("A seq gap: a rebirth NCMD (not retained), points stale; the new birth restores them")
    func seqGapRequestsRebirth() async throws {
        try await withBridge(Self.yaml) { harness in
            var node = try await Self.bornNode(harness)
            let mark = harness.messages.count
            node.skip(2)
            try await node.deviceData("press", [M(alias: 6, value: .int(1))])
            let request = try await harness.messages.waitForMessage(on: "spBv1.0/e2e/NCMD/edge1", after: mark)
            #expect(request.retain == false)
            let decoded = try #require(HandEncodedSparkplug.decode(request.payload))
            #expect(decoded.metrics.map(\.name) == ["Node Control/Rebirth"])
            #expect(decoded.metrics.first?.value == .boolean(true))
            #expect(decoded.metrics.first?.datatype == 11)
            #expect(try await harness.modbus.read(.inputRegister, 9) == .exception(.gatewayTargetDeviceFailedToRespond))

            // The node answers the request with its births: values again.
            node = try await Self.bornNode(harness, bdSeq: 1)
            try await harness.awaitRead(.inputRegister, 9) { $0 == [60000] }

            // An alias no birth gave asks again (the rate limit allows it after 300 ms).
            let second = harness.messages.count
            try await node.deviceData("press", [M(alias: 77, value: .int(1))])
            try await harness.messages.waitForMessage(on: "spBv1.0/e2e/NCMD/edge1", after: second)
            #expect(try await harness.modbus.read(.inputRegister, 9) == .exception(.gatewayTargetDeviceFailedToRespond))
        }
    }

    @Test("NDEATH with the birth's bdSeq: missing at once; an earlier session's NDEATH is ignored; DDEATH")
    func deaths() async throws {
        try await withBridge(Self.yaml) { harness in
            var node = try await Self.bornNode(harness, bdSeq: 4)
            try await node.death(bdSeq: 3)
            // Ordered behind the death: once this value is served, the death was handled.
            try await node.deviceData("press", [M(alias: 6, value: .int(61000))])
            try await harness.awaitRead(.inputRegister, 9) { $0 == [61000] }
            try await harness.awaitRead(.inputRegister, 30, count: 4) { $0 == [0, 0, 0, 7] }

            try await node.death(bdSeq: 4)
            #expect(try await harness.awaitReadException(.inputRegister, 9) == .gatewayTargetDeviceFailedToRespond)
            #expect(
                try await harness.modbus.read(.inputRegister, 30, count: 4)
                    == .exception(.gatewayTargetDeviceFailedToRespond)
            )
            #expect(
                try await harness.modbus.write(.holdingRegister, 1, [5], single: true)
                    == .exception(.gatewayTargetDeviceFailedToRespond)
            )

            node = try await Self.bornNode(harness, bdSeq: 5)
            try await node.deviceDeath("press")
            #expect(try await harness.awaitReadException(.inputRegister, 9) == .gatewayTargetDeviceFailedToRespond)
            try await harness.awaitRead(.inputRegister, 30, count: 4) { $0 == [0, 0, 0, 7] }
        }
    }

    @Test("A Modbus write is a DCMD typed as in the birth, by alias; success on the confirming DDATA")
    func writeConfirmed() async throws {
        try await withBridge(Self.yaml) { harness in
            var node = try await Self.bornNode(harness)
            let mark = harness.messages.count
            async let reply = harness.modbus.write(.holdingRegister, 0, [215, 1500])
            let command = try await harness.messages.waitForMessage(on: "spBv1.0/e2e/DCMD/edge1/press", after: mark)
            #expect(command.retain == false)
            let decoded = try #require(HandEncodedSparkplug.decode(command.payload))
            #expect(decoded.timestamp != nil)
            // One DCMD for both metrics of the one Modbus request.
            #expect(decoded.metrics.map(\.alias) == [14, 15])
            #expect(decoded.metrics.map(\.datatype) == [9, 6])
            #expect(decoded.metrics.map(\.value) == [.float(21.5), .int(1500)])
            #expect(decoded.metrics.allSatisfy { $0.timestamp != nil && $0.name == nil })
            try await node.deviceData("press", [M(alias: 14, value: .float(21.5)), M(alias: 15, value: .int(1500))])
            #expect(try await reply == .ok(true))
            try await harness.awaitRead(.holdingRegister, 0, count: 2) { $0 == [215, 1500] }

            // A coil: a Boolean metric.
            let coilMark = harness.messages.count
            async let coilReply = harness.modbus.write(.coil, 0, [1], single: true)
            let coilCommand = try await harness.messages.waitForMessage(
                on: "spBv1.0/e2e/DCMD/edge1/press",
                after: coilMark
            )
            #expect(HandEncodedSparkplug.decode(coilCommand.payload)?.metrics.map(\.value) == [.boolean(true)])
            try await node.deviceData("press", [M(alias: 16, value: .boolean(true))])
            #expect(try await coilReply == .ok(true))
        }
    }

    @Test("A write the node never confirms answers 0B; so does one it confirms with another value")
    func writeNeverConfirmed() async throws {
        try await withBridge(Self.yaml) { harness in
            var node = try await Self.bornNode(harness)
            let mark = harness.messages.count
            async let reply = harness.modbus.write(.holdingRegister, 1, [42], single: true)
            try await harness.messages.waitForMessage(on: "spBv1.0/e2e/DCMD/edge1/press", after: mark)
            try await node.deviceData("press", [M(alias: 15, value: .int(41))])
            #expect(try await reply == .exception(.gatewayTargetDeviceFailedToRespond))
            try await harness.awaitRead(.holdingRegister, 1) { $0 == [41] }
        }
    }
}
