import Foundation
import MQTTTestSupport
import Mosquitto

/// A Sparkplug B payload written and read field by field with the protobuf wire format, from
/// the field numbers of the payload definition: an implementation that shares nothing with the
/// bridge's codec (neither its .proto nor the generated code), so that the end-to-end tests
/// check the bridge against the format rather than against itself.
enum HandEncodedSparkplug {
    enum Value: Equatable {
        case int(UInt32)
        case long(UInt64)
        case float(Float)
        case double(Double)
        case boolean(Bool)
        case string(String)
    }

    struct Metric {
        var name: String?
        var alias: UInt64?
        var datatype: UInt32?
        var value: Value?
        /// The `Quality` property (an Int32), when set.
        var quality: UInt32?
    }

    /// Payload fields: 1 timestamp, 2 metrics, 3 seq.
    static func payload(seq: UInt64?, metrics: [Metric], timestamp: UInt64 = 1_700_000_000_000) -> [UInt8] {
        var bytes = varintField(1, timestamp)
        for metric in metrics { bytes += lengthField(2, encode(metric)) }
        if let seq { bytes += varintField(3, seq) }
        return bytes
    }

    /// Metric fields: 1 name, 2 alias, 3 timestamp, 4 datatype, 9 properties, 10...15 the value.
    static func encode(_ metric: Metric) -> [UInt8] {
        var bytes: [UInt8] = []
        if let name = metric.name { bytes += lengthField(1, Array(name.utf8)) }
        if let alias = metric.alias { bytes += varintField(2, alias) }
        bytes += varintField(3, 1_700_000_000_000)
        if let datatype = metric.datatype { bytes += varintField(4, UInt64(datatype)) }
        if let quality = metric.quality {
            // PropertySet { 1: keys ["Quality"], 2: values [{ 1: type 3 (Int32), 3: int_value }] }
            let value = varintField(1, 3) + varintField(3, UInt64(quality))
            bytes += lengthField(9, lengthField(1, Array("Quality".utf8)) + lengthField(2, value))
        }
        switch metric.value {
        case .int(let value)?: bytes += varintField(10, UInt64(value))
        case .long(let value)?: bytes += varintField(11, value)
        case .float(let value)?: bytes += tag(12, 5) + littleEndian(UInt64(value.bitPattern), 4)
        case .double(let value)?: bytes += tag(13, 1) + littleEndian(value.bitPattern, 8)
        case .boolean(let value)?: bytes += varintField(14, value ? 1 : 0)
        case .string(let value)?: bytes += lengthField(15, Array(value.utf8))
        case nil: break
        }
        return bytes
    }

    /// A decoded command metric.
    struct Decoded: Equatable {
        var name: String?
        var alias: UInt64?
        var timestamp: UInt64?
        var datatype: UInt64?
        var value: Value?
    }

    /// The metrics of a payload (and whether it has a timestamp); `nil` when it is malformed.
    static func decode(_ bytes: [UInt8]) -> (timestamp: UInt64?, metrics: [Decoded])? {
        guard let fields = fields(bytes) else { return nil }
        var timestamp: UInt64?
        var metrics: [Decoded] = []
        for field in fields {
            switch (field.number, field.content) {
            case (1, .varint(let value)): timestamp = value
            case (2, .bytes(let body)):
                guard let inner = Self.fields(body) else { return nil }
                var metric = Decoded()
                for part in inner {
                    switch (part.number, part.content) {
                    case (1, .bytes(let text)): metric.name = String(decoding: text, as: UTF8.self)
                    case (2, .varint(let value)): metric.alias = value
                    case (3, .varint(let value)): metric.timestamp = value
                    case (4, .varint(let value)): metric.datatype = value
                    case (10, .varint(let value)): metric.value = .int(UInt32(truncatingIfNeeded: value))
                    case (11, .varint(let value)): metric.value = .long(value)
                    case (12, .fixed(let value)):
                        metric.value = .float(Float(bitPattern: UInt32(truncatingIfNeeded: value)))
                    case (13, .fixed(let value)): metric.value = .double(Double(bitPattern: value))
                    case (14, .varint(let value)): metric.value = .boolean(value != 0)
                    case (15, .bytes(let text)): metric.value = .string(String(decoding: text, as: UTF8.self))
                    default: break
                    }
                }
                metrics.append(metric)
            default: break
            }
        }
        return (timestamp, metrics)
    }

    enum Content {
        case varint(UInt64)
        case fixed(UInt64)
        case bytes([UInt8])
    }

    static func fields(_ bytes: [UInt8]) -> [(number: Int, content: Content)]? {
        var index = 0
        func readVarint() -> UInt64? {
            var value: UInt64 = 0
            var shift: UInt64 = 0
            while index < bytes.count, shift < 64 {
                let byte = bytes[index]
                index += 1
                value |= UInt64(byte & 0x7F) << shift
                if byte & 0x80 == 0 { return value }
                shift += 7
            }
            return nil
        }
        var fields: [(number: Int, content: Content)] = []
        while index < bytes.count {
            guard let key = readVarint() else { return nil }
            let number = Int(key >> 3)
            switch key & 7 {
            case 0:
                guard let value = readVarint() else { return nil }
                fields.append((number, .varint(value)))
            case 1, 5:
                let size = key & 7 == 1 ? 8 : 4
                guard index + size <= bytes.count else { return nil }
                let value = (0..<size).reduce(UInt64(0)) { $0 | UInt64(bytes[index + $1]) << (8 * UInt64($1)) }
                index += size
                fields.append((number, .fixed(value)))
            case 2:
                guard let length = readVarint(), index + Int(length) <= bytes.count else { return nil }
                fields.append((number, .bytes(Array(bytes[index..<(index + Int(length))]))))
                index += Int(length)
            default:
                return nil
            }
        }
        return fields
    }

    static func tag(_ number: Int, _ wireType: UInt64) -> [UInt8] { varint(UInt64(number) << 3 | wireType) }
    static func varintField(_ number: Int, _ value: UInt64) -> [UInt8] { tag(number, 0) + varint(value) }
    static func lengthField(_ number: Int, _ body: [UInt8]) -> [UInt8] {
        tag(number, 2) + varint(UInt64(body.count)) + body
    }
    static func littleEndian(_ value: UInt64, _ size: Int) -> [UInt8] {
        (0..<size).map { UInt8(truncatingIfNeeded: value >> (8 * UInt64($0))) }
    }
    static func varint(_ value: UInt64) -> [UInt8] {
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
}

/// An edge node played by a test: publishes births, data and deaths with the test's MQTT
/// client, keeping the `seq` a real node keeps.
struct TestEdgeNode {
    let client: MQTTClient
    let group: String
    let node: String
    var seq: UInt64 = 0
    var bdSeq: UInt64 = 0

    init(_ client: MQTTClient, group: String, node: String) {
        self.client = client
        self.group = group
        self.node = node
    }

    func topic(_ type: String, _ device: String? = nil) -> String {
        "spBv1.0/\(group)/\(type)/\(node)" + (device.map { "/\($0)" } ?? "")
    }

    private mutating func nextSeq() -> UInt64 {
        seq = (seq + 1) % 256
        return seq
    }

    func send(_ topic: String, _ payload: [UInt8]) async throws {
        try await withTimeout(.seconds(10), "publish to \(topic)") {
            try await client.publish(topic: topic, payload: payload, qos: .atLeastOnce, retain: false)
        }
    }

    /// NBIRTH with `bdSeq`, seq 0, `Node Control/Rebirth = false`, and `metrics`.
    mutating func birth(bdSeq: UInt64, _ metrics: [HandEncodedSparkplug.Metric] = []) async throws {
        self.bdSeq = bdSeq
        seq = 0
        let control: [HandEncodedSparkplug.Metric] = [
            .init(name: "bdSeq", datatype: 8, value: .long(bdSeq)),
            .init(name: "Node Control/Rebirth", datatype: 11, value: .boolean(false)),
        ]
        try await send(topic("NBIRTH"), HandEncodedSparkplug.payload(seq: 0, metrics: control + metrics))
    }

    mutating func deviceBirth(_ device: String, _ metrics: [HandEncodedSparkplug.Metric]) async throws {
        try await send(topic("DBIRTH", device), HandEncodedSparkplug.payload(seq: nextSeq(), metrics: metrics))
    }

    mutating func deviceData(_ device: String, _ metrics: [HandEncodedSparkplug.Metric]) async throws {
        try await send(topic("DDATA", device), HandEncodedSparkplug.payload(seq: nextSeq(), metrics: metrics))
    }

    mutating func nodeData(_ metrics: [HandEncodedSparkplug.Metric]) async throws {
        try await send(topic("NDATA"), HandEncodedSparkplug.payload(seq: nextSeq(), metrics: metrics))
    }

    mutating func deviceDeath(_ device: String) async throws {
        try await send(topic("DDEATH", device), HandEncodedSparkplug.payload(seq: nextSeq(), metrics: []))
    }

    /// What the broker delivers as the node's will: NDEATH with a bdSeq and no seq.
    func death(bdSeq: UInt64) async throws {
        try await send(
            topic("NDEATH"),
            HandEncodedSparkplug.payload(seq: nil, metrics: [.init(name: "bdSeq", datatype: 8, value: .long(bdSeq))])
        )
    }

    /// Skips `count` sequence numbers, as when messages were lost.
    mutating func skip(_ count: UInt64) { seq = (seq + count) % 256 }
}
