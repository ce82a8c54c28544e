/// Number rendering shared by payloads and messages.
enum NumberFormatting {
    /// Integral values below 2^53 without a fractional part (`21`), others in Swift's shortest
    /// round-trip form (`21.5`, `1e-05`, `1.5e+300`). Both forms are valid JSON numbers.
    static func shortest(_ value: Double) -> String {
        if value == 0 { return "0" }
        if value.rounded(.towardZero) == value, value.magnitude < 9_007_199_254_740_992 {
            return String(Int64(value))
        }
        return value.description
    }

    /// The same for a single-precision value: the shortest text that reads back as that `Float`
    /// (`21.3`, not `21.299999237060547`).
    static func shortest(_ value: Float) -> String {
        if value == 0 { return "0" }
        if value.rounded(.towardZero) == value, value.magnitude < 16_777_216 {
            return String(Int64(value))
        }
        return value.description
    }
}
