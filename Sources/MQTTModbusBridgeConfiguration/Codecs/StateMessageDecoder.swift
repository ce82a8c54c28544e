/// Reads a point's value from a message on one of its topics: its state topic, or one of the
/// ``PointConfiguration/additionalStates`` a profile added, each with its own format.
///
/// `nil` means the message is not about the point (a document without the point's path when the
/// format says ``PayloadFormat/ignoresAbsentPath``, or a reply that is not to the bridge's own
/// status request): neither a value nor a decoding failure.
public struct StateMessageDecoder: Sendable {
    /// The point.
    public let point: PointConfiguration

    /// A decoder for a point.
    public init(point: PointConfiguration) {
        self.point = point
    }

    /// The value a message on `topic` carries for the point, or `nil` if it carries none.
    public func decode(topic: String, payload: [UInt8]) throws(PayloadDecodingError) -> PointValue? {
        if let source = point.additionalStates.first(where: { $0.topic == topic }),
            point.stateTopic.map({ !MQTTTopicRules.filter($0, matches: topic) }) ?? true
        {
            if let match = source.match, !match.matches(payload) { return nil }
            return try decode(payload, format: source.payload)
        }
        return try decode(payload, format: point.payload)
    }

    private func decode(_ payload: [UInt8], format: PayloadFormat) throws(PayloadDecodingError) -> PointValue? {
        do {
            return try PayloadDecoder(format: format, type: point.type).decode(payload)
        } catch  where error.kind == .pathNotFound && format.ignoresAbsentPath {
            return nil
        }
    }
}
