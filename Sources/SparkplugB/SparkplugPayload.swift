import Foundation
import MQTTModbusBridgeConfiguration
import SwiftProtobuf

/// A Sparkplug B payload as the bridge uses it: the payload's sequence number and timestamp,
/// and its scalar metrics with their names, aliases, datatypes, values and quality.
///
/// ``decode(_:)`` and ``encoded()`` go through the protobuf types generated from
/// `sparkplug_b.proto`; everything the bridge does not map (data sets, templates, metadata,
/// property sets other than the quality) is read over, never refused, so that an edge node
/// that also publishes such metrics still serves its scalar ones.
public struct SparkplugPayload: Sendable, Hashable {
    /// Milliseconds since 1970-01-01 UTC when the message was sent.
    public var timestamp: UInt64?
    /// The message's sequence number (0...255 for edge node messages).
    public var seq: UInt64?
    /// The metrics, in the message's order.
    public var metrics: [Metric]

    /// Creates a payload.
    public init(timestamp: UInt64? = nil, seq: UInt64? = nil, metrics: [Metric] = []) {
        self.timestamp = timestamp
        self.seq = seq
        self.metrics = metrics
    }

    /// A metric's value as it travels: the protobuf field it is carried in.
    public enum Value: Sendable, Hashable {
        /// `int_value` (Int8, Int16, Int32, UInt8, UInt16, UInt32).
        case int(UInt32)
        /// `long_value` (Int64, UInt64, DateTime).
        case long(UInt64)
        /// `float_value`.
        case float(Float)
        /// `double_value`.
        case double(Double)
        /// `boolean_value`.
        case boolean(Bool)
        /// `string_value` (String, Text, UUID).
        case string(String)
        /// `bytes_value` (Bytes, File).
        case bytes([UInt8])
        /// A data set, a template or an extension: nothing a register can hold.
        case unsupported
    }

    /// What a metric's quality property says of its value.
    public enum Quality: Sendable, Hashable {
        /// Good, or no quality property at all.
        case good
        /// Bad, stale or uncertain: the value must not be served as live.
        case notGood(String)
    }

    /// One metric.
    public struct Metric: Sendable, Hashable {
        /// The name; births carry it, data messages may carry only the alias.
        public var name: String?
        /// The alias a birth tied to the name.
        public var alias: UInt64?
        /// Milliseconds since 1970-01-01 UTC when the value was taken.
        public var timestamp: UInt64?
        /// The datatype number (``SparkplugDataType``); births carry it.
        public var datatype: UInt32?
        /// The value is null (`is_null`): there is none.
        public var isNull: Bool
        /// Historical data, which must not update a live value.
        public var isHistorical: Bool
        /// The value; `nil` when the message carries none.
        public var value: Value?
        /// The `Quality` property.
        public var quality: Quality

        /// Creates a metric.
        public init(
            name: String? = nil,
            alias: UInt64? = nil,
            timestamp: UInt64? = nil,
            datatype: UInt32? = nil,
            isNull: Bool = false,
            isHistorical: Bool = false,
            value: Value? = nil,
            quality: Quality = .good
        ) {
            self.name = name
            self.alias = alias
            self.timestamp = timestamp
            self.datatype = datatype
            self.isNull = isNull
            self.isHistorical = isHistorical
            self.value = value
            self.quality = quality
        }

        /// The datatype, when the metric names a known one.
        public var knownDatatype: SparkplugDataType? { datatype.flatMap(SparkplugDataType.init(rawValue:)) }
    }

    /// The property that carries a metric's quality, in the convention of OPC-derived hosts: 192
    /// (0xC0) and the rest of 192...255 are good, anything else (0 bad, 500 stale, 64 uncertain)
    /// is not.
    public static let qualityProperty = "Quality"

    /// The name of the metric that carries the birth/death sequence number.
    public static let bdSeqMetric = "bdSeq"
    /// The name of the node control metric that asks an edge node for a new birth sequence.
    public static let rebirthMetric = "Node Control/Rebirth"

    /// The value of the `bdSeq` metric, when the payload has one.
    public var bdSeq: UInt64? {
        guard let metric = metrics.first(where: { $0.name == Self.bdSeqMetric }) else { return nil }
        switch metric.value {
        case .long(let value)?: return value
        case .int(let value)?: return UInt64(value)
        default: return nil
        }
    }
}

/// A payload that is not a Sparkplug B protobuf message.
public struct SparkplugDecodingError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What is wrong.
    public var reason: String

    /// Creates an error.
    public init(_ reason: String) { self.reason = reason }

    /// The reason.
    public var description: String { reason }
}

extension SparkplugPayload {
    /// The most bytes a payload may have: a Sparkplug message of that size is not a sensor's
    /// data, and decoding it would hold the message loop.
    public static let maxPayloadSize = 4 * 1024 * 1024

    /// Decodes a payload. Throws ``SparkplugDecodingError`` for anything that is not a
    /// well-formed protobuf message of this shape (truncated, wrong wire types, nested beyond
    /// the decoder's depth limit, or larger than ``maxPayloadSize``).
    public static func decode(_ bytes: [UInt8]) throws(SparkplugDecodingError) -> SparkplugPayload {
        guard bytes.count <= maxPayloadSize else {
            throw SparkplugDecodingError("payload of \(bytes.count) bytes is larger than \(maxPayloadSize)")
        }
        let message: SparkplugProtoPayload
        do {
            message = try SparkplugProtoPayload(serializedBytes: bytes)
        } catch {
            throw SparkplugDecodingError("not a Sparkplug B payload: \(error)")
        }
        return SparkplugPayload(
            timestamp: message.hasTimestamp ? message.timestamp : nil,
            seq: message.hasSeq ? message.seq : nil,
            metrics: message.metrics.map(Metric.init(message:))
        )
    }

    /// The payload's protobuf bytes.
    public func encoded() -> [UInt8] {
        var message = SparkplugProtoPayload()
        if let timestamp { message.timestamp = timestamp }
        if let seq { message.seq = seq }
        message.metrics = metrics.map(\.message)
        // Serializing a message built from these fields cannot fail: it has no required fields
        // and no Any to resolve.
        return (try? message.serializedBytes()) ?? []
    }
}

extension SparkplugPayload.Metric {
    init(message: SparkplugProtoPayload.Metric) {
        self.init(
            name: message.hasName ? message.name : nil,
            alias: message.hasAlias ? message.alias : nil,
            timestamp: message.hasTimestamp ? message.timestamp : nil,
            datatype: message.hasDatatype ? message.datatype : nil,
            isNull: message.isNull,
            isHistorical: message.isHistorical,
            value: message.value.map(SparkplugPayload.Value.init(message:)),
            quality: message.hasProperties ? SparkplugPayload.Quality(properties: message.properties) : .good
        )
    }

    var message: SparkplugProtoPayload.Metric {
        var message = SparkplugProtoPayload.Metric()
        if let name { message.name = name }
        if let alias { message.alias = alias }
        if let timestamp { message.timestamp = timestamp }
        if let datatype { message.datatype = datatype }
        if isNull { message.isNull = true }
        if isHistorical { message.isHistorical = true }
        switch value {
        case .int(let value)?: message.intValue = value
        case .long(let value)?: message.longValue = value
        case .float(let value)?: message.floatValue = value
        case .double(let value)?: message.doubleValue = value
        case .boolean(let value)?: message.booleanValue = value
        case .string(let value)?: message.stringValue = value
        case .bytes(let value)?: message.bytesValue = Data(value)
        case .unsupported?, nil: break
        }
        if case .notGood(let text) = quality {
            var properties = SparkplugProtoPayload.PropertySet()
            properties.keys = [SparkplugPayload.qualityProperty]
            var property = SparkplugProtoPayload.PropertyValue()
            property.type = SparkplugDataType.string.rawValue
            property.stringValue = text
            properties.values = [property]
            message.properties = properties
        }
        return message
    }
}

extension SparkplugPayload.Value {
    init(message: SparkplugProtoPayload.Metric.OneOf_Value) {
        switch message {
        case .intValue(let value): self = .int(value)
        case .longValue(let value): self = .long(value)
        case .floatValue(let value): self = .float(value)
        case .doubleValue(let value): self = .double(value)
        case .booleanValue(let value): self = .boolean(value)
        case .stringValue(let value): self = .string(value)
        case .bytesValue(let value): self = .bytes(Array(value))
        case .datasetValue, .templateValue: self = .unsupported
        }
    }
}

extension SparkplugPayload.Quality {
    /// The `Quality` property of a metric's properties (compared without case); good when
    /// there is none. A number is good in 192...255; a text is good when it is "good".
    init(properties: SparkplugProtoPayload.PropertySet) {
        self = .good
        for (index, key) in properties.keys.enumerated()
        where key.lowercased() == SparkplugPayload.qualityProperty.lowercased() && index < properties.values.count {
            let property = properties.values[index]
            if property.isNull { continue }
            switch property.value {
            case .intValue(let code)?:
                if !(192...255).contains(code) { self = .notGood("quality \(Int32(bitPattern: code))") }
            case .longValue(let code)?:
                if !(192...255).contains(code) { self = .notGood("quality \(Int64(bitPattern: code))") }
            case .stringValue(let text)?:
                if text.lowercased() != "good" { self = .notGood("quality \(text)") }
            default:
                break
            }
        }
    }
}
