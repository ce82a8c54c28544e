/// Durations as written in configuration files: `250ms`, `5s`, `2m`, `1h`, combinations such as
/// `1m30s`, decimals such as `1.5s`, or a bare number of seconds (`30`, `0.5`).
///
/// Units: `ms` milliseconds, `s` seconds, `m` minutes, `h` hours. Negative durations, more than
/// nine decimals and values beyond 100 years are refused.
public enum DurationSyntax {
    /// The longest duration accepted: 100 years.
    public static let maximum: Duration = .seconds(100 * 365 * 24 * 3600)

    /// Parses a duration.
    public static func parse(_ text: String) throws(DurationSyntaxError) -> Duration {
        let trimmed = text.trimmingWhitespace()
        guard !trimmed.isEmpty else { throw DurationSyntaxError(text: text, reason: "it is empty") }
        var scalars = Array(trimmed.unicodeScalars)[...]
        var nanoseconds: Int128 = 0
        var components = 0
        while !scalars.isEmpty {
            let intDigits = scalars.prefix { ("0"..."9").contains($0) }
            scalars = scalars.dropFirst(intDigits.count)
            var fracDigits: ArraySlice<Unicode.Scalar> = []
            if scalars.first == "." {
                scalars = scalars.dropFirst()
                fracDigits = scalars.prefix { ("0"..."9").contains($0) }
                scalars = scalars.dropFirst(fracDigits.count)
                if fracDigits.isEmpty {
                    throw DurationSyntaxError(text: text, reason: "a decimal point must be followed by digits")
                }
            }
            if intDigits.isEmpty && fracDigits.isEmpty {
                if scalars.first == "-" {
                    throw DurationSyntaxError(text: text, reason: "durations cannot be negative")
                }
                throw DurationSyntaxError(text: text, reason: "expected a number")
            }
            if fracDigits.count > 9 { throw DurationSyntaxError(text: text, reason: "more than 9 decimals") }
            if intDigits.count > 18 { throw DurationSyntaxError(text: text, reason: "the number is too large") }
            let unitText = String(String.UnicodeScalarView(scalars.prefix { $0.properties.isAlphabetic }))
            scalars = scalars.dropFirst(unitText.unicodeScalars.count)
            let unit: Int128
            switch unitText {
            case "ms": unit = 1_000_000
            case "s": unit = 1_000_000_000
            case "m": unit = 60_000_000_000
            case "h": unit = 3_600_000_000_000
            case "":
                if !scalars.isEmpty {
                    throw DurationSyntaxError(
                        text: text,
                        reason:
                            "unexpected '\(String(String.UnicodeScalarView(scalars)))'; write durations like 250ms, 5s, 2m, 1h or 1m30s"
                    )
                }
                guard components == 0 else {
                    throw DurationSyntaxError(
                        text: text,
                        reason: "every part of a combined duration needs a unit (ms, s, m, h)"
                    )
                }
                unit = 1_000_000_000
            default:
                throw DurationSyntaxError(text: text, reason: "unknown unit '\(unitText)'; use ms, s, m or h")
            }
            let whole = Int128(String(String.UnicodeScalarView(intDigits))) ?? 0
            var fraction: Int128 = 0
            if !fracDigits.isEmpty {
                let digits = Int128(String(String.UnicodeScalarView(fracDigits)))!
                var scale: Int128 = 1
                for _ in 0..<fracDigits.count { scale *= 10 }
                fraction = (digits * unit + scale / 2) / scale
            }
            nanoseconds += whole * unit + fraction
            components += 1
            if nanoseconds > maximumNanoseconds {
                throw DurationSyntaxError(text: text, reason: "longer than 100 years")
            }
        }
        return .nanoseconds(Int64(nanoseconds))
    }

    /// Renders a duration the way ``parse(_:)`` reads it, with the largest units that represent
    /// it exactly: `250ms`, `5s`, `1m30s`, `2h`; `0s` for zero. Sub-millisecond parts are shown as
    /// decimal milliseconds.
    public static func format(_ duration: Duration) -> String {
        let (seconds, attoseconds) = duration.components
        var totalNanoseconds = Int128(seconds) * 1_000_000_000 + Int128(attoseconds / 1_000_000_000)
        if totalNanoseconds == 0 { return "0s" }
        var text = ""
        if totalNanoseconds < 0 {
            text = "-"
            totalNanoseconds = -totalNanoseconds
        }
        let units: [(Int128, String)] = [(3_600_000_000_000, "h"), (60_000_000_000, "m"), (1_000_000_000, "s")]
        for (size, name) in units where totalNanoseconds >= size {
            text += "\(totalNanoseconds / size)\(name)"
            totalNanoseconds %= size
        }
        if totalNanoseconds > 0 {
            let millis = totalNanoseconds / 1_000_000
            let rest = totalNanoseconds % 1_000_000
            if rest == 0 {
                text += "\(millis)ms"
            } else {
                var decimals = String(rest)
                decimals = String(repeating: "0", count: 6 - decimals.count) + decimals
                while decimals.hasSuffix("0") { decimals.removeLast() }
                text += "\(millis).\(decimals)ms"
            }
        }
        return text
    }

    static let maximumNanoseconds = Int128(100 * 365 * 24 * 3600) * 1_000_000_000
}

/// A duration that cannot be parsed.
public struct DurationSyntaxError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The text as written.
    public var text: String
    /// What is wrong.
    public var reason: String

    /// `'5 sec' is not a duration: unknown unit ...`
    public var description: String { "'\(text)' is not a duration: \(reason)" }
}
