import Synchronization

/// The queue between the loop thread, which hands over every message received, and the task
/// that iterates an ``MQTTMessageSequence``.
///
/// It does what `AsyncStream` did here, at a fraction of the cost per message: `AsyncStream`'s
/// storage lives in the Concurrency library, unspecialized for `MQTTMessage`, and looked up
/// generic metadata about 20 times per message (about a sixth of the ingest path's instructions
/// in callgrind). This one is specialized, takes its lock once per message on each side, and a
/// consumer that finds messages waiting takes them without suspending.
///
/// Semantics, the same as the stream it replaces:
/// - bounded (`capacity`): when full, the oldest message is dropped for the new one
///   (``YieldResult/dropped``); unbounded when `capacity` is `nil`;
/// - ``finish()``: messages already buffered are still delivered, then `next()` returns `nil`;
/// - the waiting consumer's task cancelled: the buffer ends at once, what it held is discarded,
///   and later messages are refused (``YieldResult/terminated``);
/// - `onTermination` runs once, when the buffer finishes or its consumer is cancelled.
final class MessageBuffer: Sendable {
    /// What became of a message handed to ``yield(_:)``.
    enum YieldResult: Equatable {
        case enqueued
        /// Buffered, and the oldest message was dropped to make room.
        case dropped
        /// Refused: the buffer has ended.
        case terminated
    }

    private struct State {
        /// The messages, oldest first, from `head` on; the places before `head` are taken.
        var items: [MQTTMessage] = []
        var head = 0
        var waiters: [CheckedContinuation<MQTTMessage?, Never>] = []
        /// No more messages are accepted; buffered ones are still delivered.
        var finished = false

        var count: Int { items.count - head }

        mutating func popFirst() -> MQTTMessage? {
            guard head < items.count else { return nil }
            let message = items[head]
            head += 1
            if head == items.count {
                items.removeAll(keepingCapacity: true)
                head = 0
            } else if head >= 1024 && head * 2 >= items.count {
                // Amortized: the taken places are reclaimed once they are half of the array.
                items.removeFirst(head)
                head = 0
            }
            return message
        }
    }

    // A pthread mutex (Locked), not Synchronization.Mutex: the thread sanitizer sees it.
    private let state = Locked(State())
    private let capacity: Int?
    private let onTermination: (@Sendable () -> Void)?
    private let terminated = Atomic<Bool>(false)

    init(capacity: Int?, onTermination: (@Sendable () -> Void)? = nil) {
        precondition(capacity.map { $0 > 0 } ?? true, "a bounded message buffer holds at least one message")
        self.capacity = capacity
        self.onTermination = onTermination
    }

    /// Hands a message to the consumer: to a waiting `next()` at once, or into the buffer.
    func yield(_ message: MQTTMessage) -> YieldResult {
        enum Outcome {
            case resume(CheckedContinuation<MQTTMessage?, Never>)
            case result(YieldResult)
        }
        let outcome = state.withLock { state -> Outcome in
            if state.finished { return .result(.terminated) }
            if !state.waiters.isEmpty { return .resume(state.waiters.removeFirst()) }
            var result = YieldResult.enqueued
            if let capacity, state.count >= capacity {
                _ = state.popFirst()
                result = .dropped
            }
            state.items.append(message)
            return .result(result)
        }
        switch outcome {
        case .resume(let waiter):
            waiter.resume(returning: message)
            return .enqueued
        case .result(let result):
            return result
        }
    }

    /// Accepts no more messages; the consumer still gets the buffered ones, then `nil`.
    func finish() {
        let waiters = state.withLock { state -> [CheckedContinuation<MQTTMessage?, Never>] in
            state.finished = true
            // Waiters exist only while the buffer is empty: they get nothing more.
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume(returning: nil) }
        terminate()
    }

    /// The next message, waiting for one; `nil` once the buffer has finished and is empty, or
    /// when the calling task is cancelled (which ends the buffer).
    func next(isolation actor: isolated (any Actor)? = #isolation) async -> MQTTMessage? {
        // A cancelled consumer stops even while messages keep coming (a flood must not keep a
        // stopping task in its loop).
        if Task.isCancelled {
            cancel()
            return nil
        }
        // The common case under load: a message is waiting, and is taken without suspending.
        enum Taken {
            case message(MQTTMessage)
            case end
            case wait
        }
        let taken = state.withLock { state -> Taken in
            if let message = state.popFirst() { return .message(message) }
            return state.finished ? .end : .wait
        }
        switch taken {
        case .message(let message): return message
        case .end: return nil
        case .wait: break
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation(isolation: actor) {
                (continuation: CheckedContinuation<MQTTMessage?, Never>) in
                let immediate = state.withLock { state -> MQTTMessage?? in
                    // A message may have come, or the buffer ended, since the check above.
                    if let message = state.popFirst() { return .some(message) }
                    if state.finished || Task.isCancelled { return .some(nil) }
                    state.waiters.append(continuation)
                    return .none
                }
                if let immediate { continuation.resume(returning: immediate) }
            }
        } onCancel: {
            self.cancel()
        }
    }

    /// The consumer's task was cancelled: end now, discard what is buffered, wake every waiter.
    private func cancel() {
        let waiters = state.withLock { state -> [CheckedContinuation<MQTTMessage?, Never>] in
            state.finished = true
            state.items = []
            state.head = 0
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume(returning: nil) }
        terminate()
    }

    private func terminate() {
        guard !terminated.exchange(true, ordering: .acquiringAndReleasing) else { return }
        onTermination?()
    }
}
