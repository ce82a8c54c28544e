import CoreMetrics
import Logging
import Synchronization

/// Counts one kind of event (a connection denied by the address allow-list, refused or evicted
/// at the connection limit, a failed TLS handshake, a request the client's role may not make)
/// and logs it at a bounded rate: the first at once, then none until an interval has passed; the
/// first event after that is logged with how many came since the last line. A port scan, a flood
/// of connection attempts or a misconfigured master retrying in a loop cannot flood the log (or
/// spend the event loop's time writing it). The count of a burst that nothing follows is not
/// logged; the counter has every event.
final class RateLimitedEventLog: Sendable {
    private struct State {
        var lastLog: ContinuousClock.Instant?
        var suppressed = 0
    }
    private let counter: Counter
    private let logInterval: Duration
    private let level: Logger.Level
    private let message: String
    /// The metadata key that carries how many events the line stands for besides its own.
    private let suppressedKey: String
    private let state = Mutex(State())

    init(
        counter: Counter,
        logInterval: Duration,
        level: Logger.Level = .warning,
        message: String,
        suppressedKey: String = "also_since_last_line"
    ) {
        self.counter = counter
        self.logInterval = logInterval
        self.level = level
        self.message = message
        self.suppressedKey = suppressedKey
    }

    func record(
        peer: String,
        logger: Logger,
        metadata: Logger.Metadata = [:],
        now: ContinuousClock.Instant = .now
    ) {
        counter.increment()
        let suppressed = state.withLock { state -> Int? in
            if let last = state.lastLog, now - last < logInterval {
                state.suppressed += 1
                return nil
            }
            defer {
                state.lastLog = now
                state.suppressed = 0
            }
            return state.suppressed
        }
        guard let suppressed else { return }
        var lineMetadata = metadata
        lineMetadata["peer"] = "\(peer)"
        if suppressed > 0 { lineMetadata[suppressedKey] = "\(suppressed)" }
        logger.log(level: level, "\(message)", metadata: lineMetadata)
    }
}
