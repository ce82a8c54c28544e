import NIOConcurrencyHelpers

/// The ack timeouts of the writes waiting, kept in one list: which are due, and when to look
/// again.
///
/// Pure: the clock is passed in. ``AckDeadlines`` runs it.
struct AckDeadlineList {
    struct Entry {
        var deadline: ContinuousClock.Instant
        var promise: AckPromise
    }

    private(set) var entries: [Entry] = []

    var isEmpty: Bool { entries.isEmpty }

    mutating func add(_ promise: AckPromise, deadline: ContinuousClock.Instant) {
        entries.append(Entry(deadline: deadline, promise: promise))
    }

    /// Removes the writes that have ended (acknowledged, refused, failed) and those whose
    /// deadline has passed; returns the latter, to be timed out, and when to look next: at the
    /// earliest remaining deadline but no later than `resolution` from `now` (a write added
    /// meanwhile may have an earlier deadline than every one here), or `nil` when none remain.
    mutating func sweep(
        now: ContinuousClock.Instant,
        resolution: Duration
    ) -> (due: [AckPromise], next: ContinuousClock.Instant?) {
        var due: [AckPromise] = []
        var earliest: ContinuousClock.Instant?
        entries.removeAll { entry in
            if entry.promise.isSettled { return true }
            if entry.deadline <= now {
                due.append(entry.promise)
                return true
            }
            earliest = min(earliest ?? entry.deadline, entry.deadline)
            return false
        }
        return (due, earliest.map { min($0, now + resolution) })
    }
}

/// Times out the writes waiting for an acknowledgement with one task for all of them.
///
/// A sleeping task per write (what this replaces) cost a task, a Dispatch timer and a wake of
/// Dispatch's timer thread for every write, acknowledged or not (docs/benchmarks.md,
/// "Acknowledged writes": 16 masters got 3–4 % more writes through without it, against the raw
/// reference of the same runs). Here one task runs
/// only while writes are waiting, looks at least every ``resolution``, and times a write out never before
/// its deadline and at most about ``resolution`` after it.
final class AckDeadlines: Sendable {
    /// How late past its deadline a write may be timed out.
    static let resolution: Duration = .milliseconds(10)

    /// The process's one sweeper: every ack promise's timeout goes here.
    static let shared = AckDeadlines()

    private struct State {
        var list = AckDeadlineList()
        var sweeping = false
    }
    private let state = NIOLockedValueBox(State())

    /// Times `promise` out at `deadline` unless it is settled before.
    func add(_ promise: AckPromise, deadline: ContinuousClock.Instant) {
        let startSweeper = state.withLockedValue { state -> Bool in
            state.list.add(promise, deadline: deadline)
            guard !state.sweeping else { return false }
            state.sweeping = true
            return true
        }
        if startSweeper { Task { await self.sweep() } }
    }

    private func sweep() async {
        while true {
            let now = ContinuousClock.now
            let (due, next) = state.withLockedValue { state in
                let swept = state.list.sweep(now: now, resolution: Self.resolution)
                // Decided under the lock, so an `add` after this either sees the sweeper
                // running or starts a new one.
                if swept.next == nil { state.sweeping = false }
                return swept
            }
            for promise in due { promise.fulfil(.timedOut) }
            guard let next else { return }
            // Not cancellable: the task is the process's and ends when nothing waits.
            try? await Task.sleep(until: next, clock: .continuous)
        }
    }
}
