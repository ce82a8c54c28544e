import Dispatch

extension Duration {
    var wholeSeconds: Int64 {
        self.components.seconds
    }

    var wholeMilliseconds: Int64 {
        let (seconds, attoseconds) = self.components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }

    var dispatchInterval: DispatchTimeInterval {
        let (seconds, attoseconds) = self.components
        let nanoseconds = seconds * 1_000_000_000 + attoseconds / 1_000_000_000
        return .nanoseconds(Int(max(nanoseconds, 0)))
    }
}
