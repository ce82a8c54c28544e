import Logging

/// A swift-log handler that records what a client logs, and lets a test wait
/// for a line (an event) instead of sleeping.
public final class CapturedLogs: Sendable {
    private struct State {
        var lines: [String] = []
        var waiters: [UInt64: (text: String, continuation: CheckedContinuation<Void, any Error>)] = [:]
        var nextID: UInt64 = 0
    }

    private let state = TestLock(State())
    /// The lowest level recorded.
    public let level: Logger.Level

    /// Records lines at `level` and above.
    public init(level: Logger.Level = .info) {
        self.level = level
    }

    /// Every line recorded so far (`level: message [key=value, …]`).
    public var messages: [String] {
        self.state.withLock { $0.lines }
    }

    /// A logger whose lines are recorded here.
    public var logger: Logger {
        Logger(label: "captured") { _ in Handler(owner: self, logLevel: self.level) }
    }

    fileprivate func append(_ line: String) {
        let ready = self.state.withLock { state -> [CheckedContinuation<Void, any Error>] in
            state.lines.append(line)
            var ready: [CheckedContinuation<Void, any Error>] = []
            for (id, waiter) in state.waiters where line.contains(waiter.text) {
                state.waiters[id] = nil
                ready.append(waiter.continuation)
            }
            return ready
        }
        for continuation in ready { continuation.resume() }
    }

    /// Waits until a logged line contains `text`.
    public func waitForLine(containing text: String, timeout: Duration = .seconds(10)) async throws {
        let id = self.state.withLock { state -> UInt64 in
            state.nextID += 1
            return state.nextID
        }
        try await withTimeout(timeout, "log line containing \"\(text)\"") {
            try await withTaskCancellationHandler {
                try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                    let found = self.state.withLock { state -> Bool in
                        if state.lines.contains(where: { $0.contains(text) }) { return true }
                        state.waiters[id] = (text, continuation)
                        return false
                    }
                    if found { continuation.resume() }
                }
            } onCancel: {
                let waiter = self.state.withLock { $0.waiters.removeValue(forKey: id) }
                waiter?.continuation.resume(throwing: CancellationError())
            }
        }
    }

    private struct Handler: LogHandler {
        let owner: CapturedLogs
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level

        init(owner: CapturedLogs, logLevel: Logger.Level) {
            self.owner = owner
            self.logLevel = logLevel
        }

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { self.metadata[key] }
            set { self.metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            // The metadata after the message, so a test can look for a value the log carries.
            let metadata = self.metadata.merging(event.metadata ?? [:]) { $1 }
            let suffix =
                metadata.isEmpty
                ? "" : " [" + metadata.keys.sorted().map { "\($0)=\(metadata[$0]!)" }.joined(separator: ", ") + "]"
            self.owner.append("\(event.level): \(event.message)\(suffix)")
        }
    }
}
