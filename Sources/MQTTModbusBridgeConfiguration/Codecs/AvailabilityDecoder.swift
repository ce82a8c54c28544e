import Foundation

extension AvailabilitySettings {
    /// What an availability message says: `true` online, `false` offline, `nil` when the payload
    /// is neither (the device's state is then left as it was).
    public func isOnline(payload: [UInt8]) -> Bool? {
        var word: String?
        if let path, let document = try? JSONParser.parse(payload), case .success(let value) = document.value(at: path)
        {
            switch value {
            case .string(let text): word = text
            case .bool(let flag): word = flag ? "true" : "false"
            case .number(let number): word = number
            default: word = nil
            }
        }
        let text = (word ?? String(decoding: payload, as: UTF8.self)).trimmingCharacters(in: .whitespacesAndNewlines)
            .lowercased()
        if onlineWords.contains(where: { $0.lowercased() == text }) { return true }
        if offlineWords.contains(where: { $0.lowercased() == text }) { return false }
        return nil
    }
}
