import MQTTModbusBridgeConfiguration
import ModbusCore
import NIOConcurrencyHelpers

/// A write's outcome, fulfilled once by whichever comes first: the ack, the timeout, or the
/// connection loss.
final class AckPromise: Sendable {
    private struct State {
        var outcome: WriteOutcome?
        var waiter: CheckedContinuation<WriteOutcome, Never>?
    }
    private let state = NIOLockedValueBox(State())
    /// How to read the ack message (fields for success, error text and code).
    let settings: AckSettings

    init(settings: AckSettings) { self.settings = settings }

    /// Sets the outcome if none is set yet; returns whether this call set it.
    @discardableResult
    func fulfil(_ outcome: WriteOutcome) -> Bool {
        let waiter = state.withLockedValue { state -> CheckedContinuation<WriteOutcome, Never>?? in
            guard state.outcome == nil else { return .none }
            state.outcome = outcome
            defer { state.waiter = nil }
            return .some(state.waiter)
        }
        guard case .some(let continuation) = waiter else { return false }
        continuation?.resume(returning: outcome)
        return true
    }

    /// Whether the outcome is known.
    var isSettled: Bool { state.withLockedValue { $0.outcome != nil } }

    /// Waits for the outcome, or returns it at once if it is already known; after `timeout`
    /// (and at most ``AckDeadlines/resolution`` later) it is ``WriteOutcome/timedOut``.
    func outcome(timeout: Duration) async -> WriteOutcome {
        if let known = state.withLockedValue({ $0.outcome }) { return known }
        AckDeadlines.shared.add(self, deadline: .now + timeout)
        return await withCheckedContinuation { continuation in
            let known = state.withLockedValue { state -> WriteOutcome? in
                if let outcome = state.outcome { return outcome }
                state.waiter = continuation
                return nil
            }
            if let known { continuation.resume(returning: known) }
        }
    }
}

/// The writes waiting for an acknowledgement, by correlation data (MQTT 5), correlation id
/// (JSON payload) or point (state echo).
///
/// A promise is registered before its command is published, so an ack that arrives before the
/// publish call returns is not missed; it is removed when the write ends, so a late ack finds
/// nothing and changes nothing.
///
/// The keys of the last ``endedCapacity`` writes are kept after they end, with whether they were
/// answered, so that an ack nobody waits for can be told apart (``classify(_:)``): late (its
/// write ended unanswered: timed out, or the broker connection was lost), duplicate (its write
/// was answered already) or unmatched (no write of this bridge, or too long ago to tell).
final class AckTracker: Sendable {
    enum Key: Hashable, Sendable {
        case correlationData([UInt8])
        case correlationID(String)
    }

    /// What an ack that finds no waiting write was.
    enum StrayAck: Hashable, Sendable {
        /// Its write ended without an answer (timed out, or failed when the broker was lost).
        case late
        /// Its write was answered already.
        case duplicate
        /// No write of this bridge that is remembered.
        case unmatched
    }

    /// How many ended writes are remembered for ``classify(_:)``: enough for the writes of the
    /// longest ack timeout at thousands of writes per second, and a bounded amount of memory.
    static let endedCapacity = 4096

    struct EchoExpectation: Sendable {
        var id: Int
        var value: PointValue
        var point: PointConfiguration
        var promise: AckPromise
    }

    private struct State {
        var byKey: [Key: AckPromise] = [:]
        /// Keyed by point name, which a reload does not change (an index can).
        var echoes: [String: [EchoExpectation]] = [:]
        var nextEchoID = 0
        /// Ended writes: whether each was answered; ``endedOrder`` is the ring that bounds it.
        var ended: [Key: Bool] = [:]
        var endedOrder: [Key] = []
        var endedNext = 0

        mutating func noteEnded(_ key: Key, answered: Bool) {
            if ended.updateValue(answered, forKey: key) != nil { return }
            if endedOrder.count < AckTracker.endedCapacity {
                endedOrder.append(key)
            } else {
                ended[endedOrder[endedNext]] = nil
                endedOrder[endedNext] = key
                endedNext = (endedNext + 1) % AckTracker.endedCapacity
            }
        }
    }
    private let state = NIOLockedValueBox(State())

    func register(_ key: Key, settings: AckSettings) -> AckPromise {
        let promise = AckPromise(settings: settings)
        state.withLockedValue { $0.byKey[key] = promise }
        return promise
    }

    /// The write of `key` ended (answered or not); a later ack for it is late.
    func remove(_ key: Key) {
        state.withLockedValue { state in
            if state.byKey.removeValue(forKey: key) != nil { state.noteEnded(key, answered: false) }
        }
    }

    /// The promise waiting for `key`, removed from the tracker; `nil` for a stray ack (see
    /// ``classify(_:)``).
    func take(_ key: Key) -> AckPromise? {
        state.withLockedValue { state in
            guard let promise = state.byKey.removeValue(forKey: key) else { return nil }
            state.noteEnded(key, answered: true)
            return promise
        }
    }

    /// What an ack for `key` that found no waiting write was.
    func classify(_ key: Key) -> StrayAck {
        switch state.withLockedValue({ $0.ended[key] }) {
        case true?: .duplicate
        case false?: .late
        case nil: .unmatched
        }
    }

    func registerEcho(
        of point: PointConfiguration,
        value: PointValue,
        settings: AckSettings
    ) -> (id: Int, promise: AckPromise) {
        let promise = AckPromise(settings: settings)
        let id = state.withLockedValue { state in
            state.nextEchoID += 1
            state.echoes[point.name, default: []].append(
                EchoExpectation(id: state.nextEchoID, value: value, point: point, promise: promise)
            )
            return state.nextEchoID
        }
        return (id, promise)
    }

    func removeEcho(point: String, id: Int) {
        state.withLockedValue { state in
            state.echoes[point]?.removeAll { $0.id == id }
            if state.echoes[point]?.isEmpty == true { state.echoes[point] = nil }
        }
    }

    /// A new state value of `point`: acknowledges every echo write it matches.
    func offerState(point: String, value: PointValue) {
        let matched = state.withLockedValue { state -> [AckPromise] in
            // Most messages arrive with no echo write waiting: no hashing of the name then.
            guard !state.echoes.isEmpty, let waiting = state.echoes[point], !waiting.isEmpty else { return [] }
            let (hits, rest) = waiting.partitioned { $0.point.stateEchoConfirms(reported: value, written: $0.value) }
            state.echoes[point] = rest.isEmpty ? nil : rest
            return hits.map(\.promise)
        }
        for promise in matched { promise.fulfil(.acknowledged) }
    }

    /// Fails every waiting write (the broker connection is gone).
    func failAll(_ outcome: WriteOutcome) {
        let promises = state.withLockedValue { state -> [AckPromise] in
            let all = Array(state.byKey.values) + state.echoes.values.flatMap { $0.map(\.promise) }
            for key in state.byKey.keys { state.noteEnded(key, answered: false) }
            state.byKey = [:]
            state.echoes = [:]
            return all
        }
        for promise in promises { promise.fulfil(outcome) }
    }

    var pendingCount: Int {
        state.withLockedValue { $0.byKey.count + $0.echoes.values.reduce(0) { $0 + $1.count } }
    }
}

extension Array {
    fileprivate func partitioned(by belongsInFirst: (Element) -> Bool) -> ([Element], [Element]) {
        var first: [Element] = []
        var second: [Element] = []
        for element in self {
            if belongsInFirst(element) { first.append(element) } else { second.append(element) }
        }
        return (first, second)
    }
}
