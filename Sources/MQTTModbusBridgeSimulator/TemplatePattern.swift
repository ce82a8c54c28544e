import Foundation
import MQTTModbusBridgeConfiguration

/// A command template read backwards: its literal text with holes where the placeholders were,
/// matched against a command to find the value (and the correlation id) the bridge put there.
///
/// The pattern is the template rendered by the bridge's own ``CommandEncoder`` with marker
/// values, so placeholders are escaped and quoted exactly as in real commands; `{{point}}` and
/// `{{unit}}` render as the literal text they always are.
struct TemplatePattern: Sendable, Hashable {
    enum Hole: Sendable, Hashable {
        case value
        case correlationID
        case timestamp
    }

    enum Piece: Sendable, Hashable {
        case literal(String)
        case hole(Hole)
    }

    /// What a command's holes held.
    struct Fields: Sendable, Hashable {
        var value: String?
        var correlationID: String?
    }

    let pieces: [Piece]

    private static let valueMarker = "SIMVALUE7d1f0c"
    private static let idMarker = "SIMID7d1f0c"
    /// `{{timestamp}}` of the Unix epoch, the format the encoder renders.
    private static let epochText = "1970-01-01T00:00:00.000Z"

    /// The pattern of `template` as the bridge renders it for `point`; `nil` if it cannot be
    /// rendered.
    init?(_ template: CommandTemplate, point: PointConfiguration) {
        // A string point renders the marker unchanged: as text in plain formats, as a JSON
        // string literal in the json format (where `{{value}}` is a JSON literal).
        var marking = point
        marking.type = .string(length: PointType.maxStringLength)
        let isJSON = point.payload.jsonPath != nil
        if !isJSON { marking.payload.encoding = .plain }
        marking.command?.template = template
        guard
            let bytes = try? CommandEncoder(point: marking).encode(
                .text(Self.valueMarker),
                correlationID: Self.idMarker,
                timestamp: Date(timeIntervalSince1970: 0)
            ),
            let rendered = String(validating: bytes, as: UTF8.self)
        else { return nil }
        let holes: [(String, Hole)] = [
            (isJSON ? "\"\(Self.valueMarker)\"" : Self.valueMarker, .value),
            (Self.idMarker, .correlationID),
            (Self.epochText, .timestamp),
        ]
        var pieces: [Piece] = []
        var rest = Substring(rendered)
        while !rest.isEmpty {
            let next = holes.compactMap { marker, hole in rest.range(of: marker).map { ($0, hole) } }
                .min { $0.0.lowerBound < $1.0.lowerBound }
            guard let (range, hole) = next else {
                pieces.append(.literal(String(rest)))
                break
            }
            if range.lowerBound > rest.startIndex { pieces.append(.literal(String(rest[..<range.lowerBound]))) }
            pieces.append(.hole(hole))
            rest = rest[range.upperBound...]
        }
        self.pieces = pieces
    }

    /// The holes' contents if `text` has the template's shape, else `nil`. Each hole takes the
    /// shortest text up to the next literal (the last one takes the rest).
    func match(_ text: String) -> Fields? {
        var fields = Fields()
        var rest = Substring(text)
        var index = pieces.startIndex
        while index < pieces.endIndex {
            switch pieces[index] {
            case .literal(let literal):
                guard rest.hasPrefix(literal) else { return nil }
                rest = rest.dropFirst(literal.count)
            case .hole(let hole):
                let captured: Substring
                if index + 1 == pieces.endIndex {
                    captured = rest
                    rest = rest[rest.endIndex...]
                } else if case .literal(let literal) = pieces[index + 1], let end = rest.range(of: literal) {
                    captured = rest[..<end.lowerBound]
                    rest = rest[end.lowerBound...]
                } else {
                    return nil  // two holes side by side cannot be told apart
                }
                switch hole {
                case .value: fields.value = String(captured)
                case .correlationID: fields.correlationID = String(captured)
                case .timestamp: break
                }
            }
            index += 1
        }
        return rest.isEmpty ? fields : nil
    }
}
