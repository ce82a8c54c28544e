import MQTTModbusBridgeConfiguration
import NIOConcurrencyHelpers

/// The last write of every writable point: what was written, how it ended and how long the
/// device took, for the status page. One entry per point, replaced by each write.
final class LastWriteLog: Sendable {
    struct Entry: Sendable, Hashable {
        var value: PointValue
        var outcome: WriteOutcome
        /// From the start of the write (planning) to its outcome.
        var latency: Duration
        var finishedAt: ContinuousClock.Instant
    }

    /// By point name, which a reload does not change.
    private let entries = NIOLockedValueBox<[String: Entry]>([:])

    func record(point: String, value: PointValue, outcome: WriteOutcome, startedAt start: ContinuousClock.Instant) {
        let now = ContinuousClock.now
        let entry = Entry(value: value, outcome: outcome, latency: start.duration(to: now), finishedAt: now)
        entries.withLockedValue { $0[point] = entry }
    }

    func last(of point: String) -> Entry? {
        entries.withLockedValue { $0[point] }
    }

    var all: [String: Entry] { entries.withLockedValue { $0 } }
}
