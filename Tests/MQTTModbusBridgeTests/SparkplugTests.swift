import Foundation
import MQTTTestSupport
import Testing

@testable import MQTTModbusBridge
@testable import MQTTModbusBridgeConfiguration
@testable import SparkplugB

/// The Sparkplug B codec against bytes encoded by hand from the payload definition (field
/// number and wire type of each field), the value conversions, the node sessions, and the
/// configuration. No broker: SparkplugEndToEndTests covers the wire.
@Suite("Sparkplug B")
struct SparkplugTests {
    // MARK: Codec

    /// timestamp 1, one metric {name "a", alias 5, datatype Int32, int_value 0xFFFFFFFF}, seq 0.
    static let int32Payload: [UInt8] = [
        0x08, 0x01,  // 1: timestamp = 1 (varint)
        0x12, 0x0D,  // 2: metrics, 13 bytes
        0x0A, 0x01, 0x61,  //   1: name "a"
        0x10, 0x05,  //   2: alias 5
        0x20, 0x03,  //   4: datatype 3 (Int32)
        0x50, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F,  //   10: int_value 0xFFFFFFFF (varint)
        0x18, 0x00,  // 3: seq = 0
    ]

    @Test("A hand-encoded payload decodes, and encoding gives the same bytes")
    func codecRoundTrip() throws {
        let payload = try SparkplugPayload.decode(Self.int32Payload)
        #expect(payload.timestamp == 1)
        #expect(payload.seq == 0)
        #expect(payload.metrics.count == 1)
        let metric = try #require(payload.metrics.first)
        #expect(metric.name == "a")
        #expect(metric.alias == 5)
        #expect(metric.knownDatatype == .int32)
        #expect(metric.value == .int(0xFFFF_FFFF))
        #expect(try metric.value?.pointValue(as: .int32) == .integer(-1))
        #expect(payload.encoded() == Self.int32Payload)
    }

    @Test("Every scalar value field decodes from its wire form")
    func scalarFields() throws {
        // One metric per field, named by alias only (as DATA messages are).
        let bytes: [UInt8] =
            [0x18, 0x07]  // seq 7
            + metric([0x10, 0x01, 0x58, 0x80, 0x01])  // alias 1, long_value 128
            + metric([0x10, 0x02, 0x65, 0x00, 0x00, 0xAC, 0x41])  // alias 2, float_value 21.5
            + metric([0x10, 0x03, 0x69, 0x00, 0x00, 0x00, 0x00, 0x00, 0x80, 0x35, 0x40])  // double 21.5
            + metric([0x10, 0x04, 0x70, 0x01])  // alias 4, boolean_value true
            + metric([0x10, 0x05, 0x7A, 0x02, 0x68, 0x69])  // alias 5, string_value "hi"
            + metric([0x10, 0x06, 0x38, 0x01])  // alias 6, is_null
        let payload = try SparkplugPayload.decode(bytes)
        #expect(payload.seq == 7)
        #expect(payload.metrics.map(\.alias) == [1, 2, 3, 4, 5, 6])
        #expect(
            payload.metrics.map(\.value) == [
                .long(128), .float(21.5), .double(21.5), .boolean(true), .string("hi"), nil,
            ]
        )
        #expect(payload.metrics[5].isNull)
        #expect(payload.metrics.allSatisfy { $0.name == nil })
    }

    @Test("The Quality property: 192 is good, 0 and 500 are not; bdSeq is read from its metric")
    func qualityAndBdSeq() throws {
        func quality(_ code: UInt8) -> [UInt8] {
            // 9: properties { 1: keys "Quality", 2: values { 1: type Int32, 3: int_value code } }
            let value: [UInt8] = [0x08, 0x03, 0x18] + varint(UInt64(code))
            let set: [UInt8] = [0x0A, 0x07] + Array("Quality".utf8) + [0x12, UInt8(value.count)] + value
            return [0x4A, UInt8(set.count)] + set
        }
        let good = try SparkplugPayload.decode(metric([0x10, 0x01, 0x50, 0x05] + quality(192)))
        #expect(good.metrics[0].quality == .good)
        let bad = try SparkplugPayload.decode(metric([0x10, 0x01, 0x50, 0x05] + quality(0)))
        #expect(bad.metrics[0].quality != .good)
        // 500 (stale) as a varint is two bytes: build it with the helper.
        let staleValue: [UInt8] = [0x08, 0x03, 0x18] + varint(500)
        let staleSet: [UInt8] = [0x0A, 0x07] + Array("Quality".utf8) + [0x12, UInt8(staleValue.count)] + staleValue
        let stale = try SparkplugPayload.decode(metric([0x10, 0x01, 0x4A, UInt8(staleSet.count)] + staleSet))
        #expect(stale.metrics[0].quality != .good)

        // NDEATH: a bdSeq metric { name "bdSeq", datatype UInt64, long_value 3 }.
        let death = try SparkplugPayload.decode(
            metric([0x0A, 0x05] + Array("bdSeq".utf8) + [0x20, 0x08, 0x58, 0x03])
        )
        #expect(death.bdSeq == 3)
    }

    @Test("Malformed payloads are refused, never a crash")
    func malformedPayloads() {
        #expect(throws: SparkplugDecodingError.self) {
            try SparkplugPayload.decode(Array(Self.int32Payload.dropLast(3)))
        }
        #expect(throws: SparkplugDecodingError.self) { try SparkplugPayload.decode([0x12, 0x7F, 0x0A]) }
        #expect(throws: SparkplugDecodingError.self) { try SparkplugPayload.decode(Array("{\"online\":true}".utf8)) }
        // Random bytes and random corruptions of a good payload: decoded or refused, bounded.
        var random = SplitMix64(seed: 10)
        for round in 0..<2000 {
            var bytes: [UInt8]
            if round % 2 == 0 {
                bytes = (0..<Int.random(in: 0...64, using: &random)).map { _ in
                    UInt8.random(in: 0...255, using: &random)
                }
            } else {
                bytes = Self.int32Payload
                bytes[Int.random(in: 0..<bytes.count, using: &random)] = UInt8.random(in: 0...255, using: &random)
            }
            if let payload = try? SparkplugPayload.decode(bytes) {
                for metric in payload.metrics {
                    for datatype in SparkplugDataType.supported { _ = try? metric.value?.pointValue(as: datatype) }
                }
            }
        }
    }

    // MARK: Values

    @Test("Metric values become point values per datatype")
    func metricToPoint() throws {
        #expect(try SparkplugPayload.Value.int(0xFF).pointValue(as: .int8) == .integer(-1))
        #expect(try SparkplugPayload.Value.int(0xFFFF_FFFF).pointValue(as: .int8) == .integer(-1))
        #expect(try SparkplugPayload.Value.int(0xFFFF_8000).pointValue(as: .int16) == .integer(-32768))
        #expect(try SparkplugPayload.Value.int(65535).pointValue(as: .uint16) == .integer(65535))
        #expect(try SparkplugPayload.Value.long(4_000_000_000).pointValue(as: .uint32) == .integer(4_000_000_000))
        #expect(try SparkplugPayload.Value.long(UInt64.max).pointValue(as: .int64) == .integer(-1))
        #expect(try SparkplugPayload.Value.long(UInt64.max).pointValue(as: .uint64) == .unsigned(UInt64.max))
        #expect(
            try SparkplugPayload.Value.long(1_700_000_000_000).pointValue(as: .dateTime) == .integer(1_700_000_000_000)
        )
        #expect(try SparkplugPayload.Value.float(21.5).pointValue(as: .float) == .number(21.5))
        #expect(try SparkplugPayload.Value.double(-1.25).pointValue(as: .double) == .number(-1.25))
        #expect(try SparkplugPayload.Value.boolean(true).pointValue(as: .boolean) == .bool(true))
        #expect(try SparkplugPayload.Value.string("x").pointValue(as: .text) == .text("x"))
        #expect(throws: SparkplugValueError.self) { try SparkplugPayload.Value.string("1").pointValue(as: .int16) }
        #expect(throws: SparkplugValueError.self) { try SparkplugPayload.Value.int(1).pointValue(as: .float) }
        #expect(throws: SparkplugValueError.self) { try SparkplugPayload.Value.bytes([1]).pointValue(as: .bytes) }
    }

    @Test("Point values become command values, refused when they do not fit")
    func pointToMetric() throws {
        #expect(try SparkplugPayload.Value(.integer(-1), as: .int8) == .int(0xFFFF_FFFF))
        #expect(try SparkplugPayload.Value(.integer(-2), as: .int16) == .int(0xFFFF_FFFE))
        #expect(try SparkplugPayload.Value(.integer(255), as: .uint8) == .int(255))
        #expect(try SparkplugPayload.Value(.integer(-5), as: .int64) == .long(UInt64(bitPattern: -5)))
        #expect(try SparkplugPayload.Value(.unsigned(UInt64.max), as: .uint64) == .long(UInt64.max))
        #expect(try SparkplugPayload.Value(.number(42), as: .int32) == .int(42))
        #expect(try SparkplugPayload.Value(.number(21.5), as: .float) == .float(21.5))
        #expect(try SparkplugPayload.Value(.integer(3), as: .double) == .double(3))
        #expect(try SparkplugPayload.Value(.bool(true), as: .boolean) == .boolean(true))
        #expect(try SparkplugPayload.Value(.integer(0), as: .boolean) == .boolean(false))
        #expect(try SparkplugPayload.Value(.text("on"), as: .string) == .string("on"))
        #expect(throws: SparkplugValueError.self) { try SparkplugPayload.Value(.integer(128), as: .int8) }
        #expect(throws: SparkplugValueError.self) { try SparkplugPayload.Value(.integer(-1), as: .uint16) }
        #expect(throws: SparkplugValueError.self) { try SparkplugPayload.Value(.number(2.5), as: .int16) }
        #expect(throws: SparkplugValueError.self) { try SparkplugPayload.Value(.number(1e39), as: .float) }
        #expect(throws: SparkplugValueError.self) { try SparkplugPayload.Value(.integer(2), as: .boolean) }
        #expect(throws: SparkplugValueError.self) { try SparkplugPayload.Value(.text("1"), as: .int16) }
        #expect(throws: SparkplugValueError.self) { try SparkplugPayload.Value(.integer(1), as: .string) }
    }

    // MARK: Sessions

    static let node = SparkplugNodeKey(groupID: "plant", edgeNodeID: "line1")

    static func topic(_ type: SparkplugTopic.MessageType, _ device: String? = nil) -> SparkplugTopic {
        SparkplugTopic(node: node, messageType: type, deviceID: device)
    }

    static func nbirth(bdSeq: UInt64, seq: UInt64 = 0) -> SparkplugPayload {
        SparkplugPayload(
            seq: seq,
            metrics: [
                .init(name: "bdSeq", datatype: 8, value: .long(bdSeq)),
                .init(name: "Node Control/Rebirth", datatype: 11, value: .boolean(false)),
                .init(name: "Uptime", alias: 1, datatype: 4, value: .long(10)),
            ]
        )
    }

    @Test("Births give aliases; DATA by alias resolves; seq wraps from 255 to 0")
    func birthsAndData() {
        var sessions = SparkplugSessions()
        guard case .born(_, nil, let born) = sessions.receive(Self.topic(.nodeBirth), Self.nbirth(bdSeq: 0, seq: 254))
        else {
            Issue.record("NBIRTH not born")
            return
        }
        #expect(born.map(\.name) == ["bdSeq", "Node Control/Rebirth", "Uptime"])
        let dbirth = SparkplugPayload(
            seq: 255,
            metrics: [.init(name: "Temp", alias: 7, datatype: 9, value: .float(20))]
        )
        guard case .born(_, "press", _) = sessions.receive(Self.topic(.deviceBirth, "press"), dbirth) else {
            Issue.record("DBIRTH not born")
            return
        }
        let ddata = SparkplugPayload(seq: 0, metrics: [.init(alias: 7, value: .float(21))])
        guard case .data(_, "press", let values) = sessions.receive(Self.topic(.deviceData, "press"), ddata) else {
            Issue.record("DDATA not data")
            return
        }
        #expect(values.map(\.name) == ["Temp"])
        #expect(values.first?.datatype == .float)
        #expect(sessions.birthMetric(Self.node, device: "press", name: "Temp")?.alias == 7)
        let ndata = SparkplugPayload(seq: 1, metrics: [.init(alias: 1, value: .long(11))])
        guard case .data(_, nil, let nodeValues) = sessions.receive(Self.topic(.nodeData), ndata) else {
            Issue.record("NDATA not data")
            return
        }
        #expect(nodeValues.map(\.name) == ["Uptime"])
    }

    /// An NBIRTH whose `seq` (a uint64 on the wire) is 2^64 − 1 overflowed the next-seq
    /// arithmetic and trapped: any publisher on the Sparkplug namespace could stop the bridge.
    @Test("An NBIRTH with the largest seq does not trap; the next seq wraps as for 255")
    func nbirthWithTheLargestSeq() throws {
        // 3: seq = 2^64 − 1 (a ten-byte varint), as it arrives from the broker.
        let wire: [UInt8] = [0x18, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]
        let payload = try SparkplugPayload.decode(wire)
        #expect(payload.seq == UInt64.max)
        var sessions = SparkplugSessions()
        guard case .born = sessions.receive(Self.topic(.nodeBirth), payload) else {
            Issue.record("NBIRTH not born")
            return
        }
        #expect(sessions.isInStep(Self.node))
        guard case .data = sessions.receive(Self.topic(.nodeData), SparkplugPayload(seq: 0)) else {
            Issue.record("seq 0 after an NBIRTH with seq 2^64 − 1 (255 mod 256) not accepted")
            return
        }
    }

    @Test("A seq gap, an unknown alias, DATA before birth: out of step until the next NBIRTH")
    func outOfStep() {
        var sessions = SparkplugSessions()
        guard case .outOfStep = sessions.receive(Self.topic(.nodeData), SparkplugPayload(seq: 3)) else {
            Issue.record("DATA before NBIRTH accepted")
            return
        }
        _ = sessions.receive(Self.topic(.nodeBirth), Self.nbirth(bdSeq: 1))
        guard case .outOfStep(_, let reason) = sessions.receive(Self.topic(.nodeData), SparkplugPayload(seq: 2)) else {
            Issue.record("gap not seen")
            return
        }
        #expect(reason.contains("seq 2"))
        // Out of step: even the right seq does not count until the next NBIRTH.
        guard case .outOfStep = sessions.receive(Self.topic(.nodeData), SparkplugPayload(seq: 3)) else {
            Issue.record("accepted after a gap")
            return
        }
        _ = sessions.receive(Self.topic(.nodeBirth), Self.nbirth(bdSeq: 2))
        #expect(sessions.isInStep(Self.node))
        let unknown = SparkplugPayload(seq: 1, metrics: [.init(alias: 99, value: .long(1))])
        guard case .outOfStep = sessions.receive(Self.topic(.nodeData), unknown) else {
            Issue.record("unknown alias accepted")
            return
        }
        _ = sessions.receive(Self.topic(.nodeBirth), Self.nbirth(bdSeq: 3))
        guard case .outOfStep = sessions.receive(Self.topic(.deviceData, "press"), SparkplugPayload(seq: 1)) else {
            Issue.record("DDATA before DBIRTH accepted")
            return
        }
    }

    @Test("NDEATH counts only with the session's bdSeq; DDEATH ends the device")
    func deaths() {
        var sessions = SparkplugSessions()
        _ = sessions.receive(Self.topic(.nodeBirth), Self.nbirth(bdSeq: 5))
        _ = sessions.receive(Self.topic(.deviceBirth, "press"), SparkplugPayload(seq: 1, metrics: [.init(name: "T")]))
        guard
            case .deviceDied(_, "press") = sessions.receive(Self.topic(.deviceDeath, "press"), SparkplugPayload(seq: 2))
        else {
            Issue.record("DDEATH not seen")
            return
        }
        #expect(!sessions.isBorn(Self.node, device: "press"))
        let old = SparkplugPayload(metrics: [.init(name: "bdSeq", datatype: 8, value: .long(4))])
        guard case .ignored = sessions.receive(Self.topic(.nodeDeath), old) else {
            Issue.record("an earlier session's NDEATH counted")
            return
        }
        #expect(sessions.isInStep(Self.node))
        let current = SparkplugPayload(metrics: [.init(name: "bdSeq", datatype: 8, value: .long(5))])
        guard case .nodeDied = sessions.receive(Self.topic(.nodeDeath), current) else {
            Issue.record("NDEATH not seen")
            return
        }
        #expect(!sessions.isInStep(Self.node))
    }

    @Test("Rebirth requests are rate-limited per node; one too soon is deferred, once")
    func rebirthRateLimit() {
        var sessions = SparkplugSessions()
        let start = ContinuousClock.now
        let other = SparkplugNodeKey(groupID: "plant", edgeNodeID: "line2")
        let interval = Duration.seconds(5)
        let answers = [
            sessions.rebirthDecision(Self.node, now: start, interval: interval),
            sessions.rebirthDecision(Self.node, now: start + .seconds(4), interval: interval),
            sessions.rebirthDecision(Self.node, now: start + .seconds(4), interval: interval),
            sessions.rebirthDecision(other, now: start + .seconds(4), interval: interval),
        ]
        #expect(answers == [.now, .after(.seconds(1)), .pending, .now])
        let due = sessions.deferredRebirthDue(Self.node, now: start + .seconds(5))
        let dueAgain = sessions.deferredRebirthDue(Self.node, now: start + .seconds(5))
        #expect(due && !dueAgain, "due once")
        // Deferred, but the node was born meanwhile: not needed.
        _ = sessions.rebirthDecision(other, now: start + .seconds(6), interval: interval)
        _ = sessions.receive(SparkplugTopic(node: other, messageType: .nodeBirth), Self.nbirth(bdSeq: 0))
        let needed = sessions.deferredRebirthDue(other, now: start + .seconds(9))
        #expect(!needed)
        let request = SparkplugPayload.rebirthRequest(timestamp: 9)
        #expect(request.metrics.first?.name == "Node Control/Rebirth")
        #expect(request.metrics.first?.value == .boolean(true))
    }

    @Test("Topics parse, and only Sparkplug edge node topics do")
    func topics() {
        #expect(SparkplugTopic(parsing: "spBv1.0/plant/DDATA/line1/press")?.deviceID == "press")
        #expect(SparkplugTopic(parsing: "spBv1.0/plant/NBIRTH/line1")?.messageType == .nodeBirth)
        #expect(SparkplugTopic(parsing: "spBv1.0/plant/NBIRTH/line1/press") == nil)
        #expect(SparkplugTopic(parsing: "spBv1.0/plant/DDATA/line1") == nil)
        #expect(SparkplugTopic(parsing: "spBv1.0/STATE/host") == nil)
        #expect(SparkplugTopic(parsing: "spAv1.0/plant/NDATA/line1") == nil)
    }

    // MARK: Configuration

    static let yaml = """
        sparkplug: { host_id: scada-bridge, rebirth_interval: 2s }
        devices:
          - name: line1
            sparkplug: { group_id: plant, edge_node_id: line1 }
          - name: press
            sparkplug: { group_id: plant, edge_node_id: line1, device_id: press }
        units:
          - id: 1
            device: press
            points:
              - { name: temp, area: input_register, address: 0, type: float32, metric: Inputs/Temperature }
              - { name: speed, area: holding_register, address: 0, type: int16, metric: Speed, datatype: Int16, ack: { timeout: 2s } }
              - { name: run, area: coil, address: 0, metric: Run }
              - { name: uptime, area: input_register, address: 2, type: int64, metric: Uptime, device: line1 }
        """

    @Test("Sparkplug devices and points load: DCMD for writable points, NCMD for node metrics")
    func configurationLoads() throws {
        let configuration = try BridgeConfiguration.parse(yaml: Self.yaml, file: "test.yaml")
        #expect(configuration.sparkplug.hostID == "scada-bridge")
        #expect(configuration.sparkplug.rebirthInterval == .seconds(2))
        #expect(configuration.sparkplug.stateTopic == "spBv1.0/STATE/scada-bridge")
        #expect(configuration.device(named: "press")?.sparkplug?.deviceID == "press")
        let temp = try #require(configuration.point(named: "temp"))
        #expect(temp.sparkplug == SparkplugMetric(name: "Inputs/Temperature"))
        #expect(temp.stateTopic == nil)
        #expect(temp.command == nil)
        let speed = try #require(configuration.point(named: "speed"))
        #expect(speed.sparkplug?.datatype == .int16)
        #expect(speed.command?.topic == "spBv1.0/plant/DCMD/line1/press")
        #expect(speed.command?.ack.mode == .stateEcho)
        #expect(speed.command?.ack.timeout == .seconds(2))
        #expect(speed.command?.qos == .atMostOnce)
        #expect(configuration.point(named: "run")?.command?.topic == "spBv1.0/plant/DCMD/line1/press")
        #expect(configuration.point(named: "uptime")?.device == "line1")
        // Death certificates watch the points: no freshness warning.
        #expect(configuration.freshnessWarnings.isEmpty)
        let routes = MessageRoutes(map: RegisterMap(configuration))
        #expect(routes.subscriptions.map(\.topic) == ["spBv1.0/plant/+/line1/#"])
    }

    @Test("Validation: ids, datatypes, keys that do not apply, a metric without a Sparkplug device")
    func configurationErrors() {
        let base = """
            devices:
              - name: press
                sparkplug: { group_id: plant, edge_node_id: line1, device_id: press }
            units:
              - id: 1
                device: press
                points:

            """
        expectSingleError(
            base
                + "      - { name: t, area: input_register, address: 0, type: int16, metric: T, datatype: String }  #!",
            "metric 'T' is String, which a point of type int16 cannot hold",
            fix: "string"
        )
        expectSingleError(
            base
                + "      - { name: t, area: input_register, address: 0, type: int16, metric: T, datatype: DataSet }  #!",
            "has no register form"
        )
        expectSingleError(
            base + "      - { name: t, area: input_register, address: 0, type: int16, metric: T, state_topic: a }  #!",
            "'state_topic' does not apply",
            fix: "remove state_topic"
        )
        expectSingleError(
            base
                + "      - { name: t, area: holding_register, address: 0, type: int16, metric: T, ack: { mode: mqtt5 } }  #!",
            "its ack mode is state_echo"
        )
        expectSingleError(
            base + "      - { name: t, area: input_register, address: 0, type: int16 }  #!",
            "needs 'metric'"
        )
        expectSingleError(
            """
            devices:
              - name: press
                sparkplug: { group_id: "pl/ant", edge_node_id: line1 }  #!
            units:
              - id: 1
                points:
                  - { name: t, area: input_register, address: 0, type: int16, state_topic: a, max_age: 1m }
            """,
            "is not a Sparkplug id"
        )
        expectSingleError(
            """
            units:
              - id: 1
                points:
                  - { name: t, area: input_register, address: 0, type: int16, state_topic: a, max_age: 1m, metric: T }  #!
            """,
            "is a key of Sparkplug points"
        )
        expectSingleError(
            """
            sparkplug: { rebirth_interval: 5s }  #!
            units:
              - id: 1
                points:
                  - { name: t, area: input_register, address: 0, type: int16, state_topic: a, max_age: 1m }
            """,
            "only applies to a host application"
        )
        expectSingleError(
            """
            devices:
              - name: a
                sparkplug: { group_id: plant, edge_node_id: line1 }
              - name: b
                sparkplug: { group_id: plant, edge_node_id: line1 }  #!
            units:
              - id: 1
                points:
                  - { name: t, area: input_register, address: 0, type: int16, state_topic: a, max_age: 1m }
            """,
            "is already the source of device 'a'"
        )
    }

    // MARK: Write batches

    @Test("Writes to metrics of one device are one batch; other points stay alone")
    func writeBatches() throws {
        let configuration = try BridgeConfiguration.parse(
            yaml: Self.yaml.replacingOccurrences(
                of: "devices:\n",
                with: "devices:\n  - { name: other, silence: 1m }\n"
            ).replacingOccurrences(
                of: "      - { name: run,",
                with: "      - { name: plain, area: holding_register, address: 1, type: int16, command_topic: x, "
                    + "ack: { mode: state_echo }, state_topic: y, max_age: 1m, device: other }\n      - { name: run,"
            ),
            file: "test.yaml"
        )
        let map = RegisterMap(configuration)
        let planner = WritePlanner(map: map, cache: PointCache(map: map))
        let planned = try planner.plan(unit: 1, area: .holdingRegister, address: 0, values: [5, 6])
        let batches = BridgeWritePath.sparkplugBatches(planned, map)
        #expect(batches.count == 2)
        #expect(batches.map { $0.map { map.points[$0.point].name } } == [["speed"], ["plain"]])
    }
}

/// A payload holding one metric with these encoded fields (field 2, length-delimited).
private func metric(_ fields: [UInt8]) -> [UInt8] {
    [0x12] + varint(UInt64(fields.count)) + fields
}

/// A protobuf varint.
private func varint(_ value: UInt64) -> [UInt8] {
    var value = value
    var bytes: [UInt8] = []
    repeat {
        var byte = UInt8(value & 0x7F)
        value >>= 7
        if value != 0 { byte |= 0x80 }
        bytes.append(byte)
    } while value != 0
    return bytes
}
