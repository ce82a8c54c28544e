import Foundation

/// A value behind an `NSLock`, for the test helpers.
///
/// Not `Synchronization.Mutex`: on Linux it is invisible to ThreadSanitizer
/// (raw futex calls), which would make `swift test --sanitize=thread` report
/// every protected access as a race. `NSLock` is a `pthread_mutex_t`, which
/// TSan understands.
public final class TestLock<Value: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value

    /// A lock around `value`.
    public init(_ value: Value) {
        self.value = value
    }

    /// Runs `body` with exclusive access to the value.
    public func withLock<Result>(_ body: (inout Value) throws -> Result) rethrows -> Result {
        self.lock.lock()
        defer { self.lock.unlock() }
        return try body(&self.value)
    }
}
