import Foundation
import Mosquitto

public struct TimeoutError: Error, CustomStringConvertible {
    /// What was awaited.
    public var what: String
    /// The time limit that passed.
    public var limit: Duration
    /// A timeout while waiting for `what`.
    public init(what: String, limit: Duration) {
        self.what = what
        self.limit = limit
    }

    /// `timed out after … waiting for …`.
    public var description: String { "timed out after \(self.limit) waiting for \(self.what)" }
}

/// Runs `body`, cancelling it and throwing ``TimeoutError`` if it takes longer
/// than `limit`. Every await in the tests goes through this, so no test can
/// hang — provided `body` ends when cancelled (a task group waits for its
/// children), which is why every waiter here has a cancellation handler.
public func withTimeout<T: Sendable>(
    _ limit: Duration,
    _ what: String = "operation",
    _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    try await withThrowingTaskGroup(of: T.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: limit)
            throw TimeoutError(what: what, limit: limit)
        }
        defer { group.cancelAll() }
        return try await group.next()!
    }
}

extension Task where Failure == any Error {
    /// The task's result; cancelling the caller (a timeout) cancels the task.
    public func valueCancellingOnExit() async throws -> Success {
        try await withTaskCancellationHandler {
            try await self.value
        } onCancel: {
            self.cancel()
        }
    }
}

extension Task where Failure == Never {
    /// The task's result; cancelling the caller (a timeout) cancels the task.
    public func valueCancellingOnExit() async -> Success {
        await withTaskCancellationHandler {
            await self.value
        } onCancel: {
            self.cancel()
        }
    }
}

/// Measures how long `body` takes.
public func measure<T>(_ body: () async throws -> T) async rethrows -> (T, Duration) {
    let start = ContinuousClock.now
    let result = try await body()
    return (result, ContinuousClock.now - start)
}

/// Consumes an async sequence in a background task and lets tests wait until what has arrived
/// satisfies a predicate, without cancelling the sequence. ``MessageCollector`` (a client's
/// messages) and ``StateRecorder`` (its connection states) are this recorder.
public final class AsyncRecorder<Element: Sendable>: Sendable {
    private struct Waiter {
        let predicate: @Sendable ([Element]) -> Bool
        let continuation: CheckedContinuation<[Element], any Error>
    }

    private struct State {
        var elements: [Element] = []
        var waiters: [UInt64: Waiter] = [:]
        var nextID: UInt64 = 0
    }

    private let state = TestLock(State())
    private let task = TestLock<Task<Void, Never>?>(nil)

    /// Starts recording `sequence` (its only consumer from now on).
    public init<S: AsyncSequence & Sendable>(recording sequence: S) where S.Element == Element, S.Failure == Never {
        let task = Task { [weak self] in
            for await element in sequence {
                guard let self else { return }
                self.receive(element)
            }
        }
        self.task.withLock { $0 = task }
    }

    deinit {
        self.task.withLock { $0?.cancel() }
    }

    private func receive(_ element: Element) {
        let ready = self.state.withLock { state -> [(CheckedContinuation<[Element], any Error>, [Element])] in
            state.elements.append(element)
            var ready: [(CheckedContinuation<[Element], any Error>, [Element])] = []
            for (id, waiter) in state.waiters where waiter.predicate(state.elements) {
                state.waiters[id] = nil
                ready.append((waiter.continuation, state.elements))
            }
            return ready
        }
        for (continuation, elements) in ready { continuation.resume(returning: elements) }
    }

    /// Everything recorded so far.
    public var elements: [Element] {
        self.state.withLock { $0.elements }
    }

    /// How many elements were recorded so far: pass it as `after` to wait only for later ones.
    public var count: Int {
        self.state.withLock { $0.elements.count }
    }

    /// Waits until what was recorded so far satisfies `predicate`; returns it.
    @discardableResult
    public func waitUntil(
        _ what: String,
        timeout: Duration = .seconds(10),
        _ predicate: @escaping @Sendable ([Element]) -> Bool
    ) async throws -> [Element] {
        let id = self.state.withLock { state -> UInt64 in
            state.nextID += 1
            return state.nextID
        }
        return try await withTimeout(timeout, what) {
            try await withTaskCancellationHandler {
                try await withCheckedThrowingContinuation { continuation in
                    let ready = self.state.withLock { state -> Result<[Element], any Error>? in
                        if predicate(state.elements) { return .success(state.elements) }
                        // Cancelled before the waiter was registered: the handler already ran.
                        if Task.isCancelled { return .failure(CancellationError()) }
                        state.waiters[id] = Waiter(predicate: predicate, continuation: continuation)
                        return nil
                    }
                    if let ready { continuation.resume(with: ready) }
                }
            } onCancel: {
                let waiter = self.state.withLock { $0.waiters.removeValue(forKey: id) }
                waiter?.continuation.resume(throwing: CancellationError())
            }
        }
    }
}

/// Consumes a client's messages in a background task and lets tests wait for them (by count or
/// by content).
public typealias MessageCollector = AsyncRecorder<MQTTMessage>

extension AsyncRecorder where Element == MQTTMessage {
    /// Starts collecting the messages of `client` (the only consumer of `client.messages` from
    /// now on).
    public convenience init(_ client: MQTTClient) {
        self.init(recording: client.messages)
    }

    /// Every message received so far.
    public var messages: [MQTTMessage] { elements }

    /// Waits until at least `count` messages have arrived; returns all of them.
    @discardableResult
    public func waitForCount(_ count: Int, timeout: Duration = .seconds(10)) async throws -> [MQTTMessage] {
        try await self.waitUntil("\(count) messages (have \(self.count))", timeout: timeout) { $0.count >= count }
    }

    /// Waits for the first message received after the first `after` messages
    /// on `topic` that satisfies `predicate`, and returns it.
    @discardableResult
    public func waitForMessage(
        on topic: String,
        after: Int = 0,
        timeout: Duration = .seconds(10),
        where predicate: @escaping @Sendable (MQTTMessage) -> Bool = { _ in true }
    ) async throws -> MQTTMessage {
        let matches: @Sendable (MQTTMessage) -> Bool = { $0.topic == topic && predicate($0) }
        let messages = try await self.waitUntil("a message on \(topic)", timeout: timeout) {
            $0.dropFirst(after).contains(where: matches)
        }
        return messages.dropFirst(after).first(where: matches)!
    }
}

/// Records every connection state a client goes through.
public typealias StateRecorder = AsyncRecorder<MQTTConnectionState>

extension AsyncRecorder where Element == MQTTConnectionState {
    /// Starts recording the connection states of `client`.
    public convenience init(_ client: MQTTClient) {
        self.init(recording: client.connectionStates())
    }

    /// Every state recorded so far.
    public var states: [MQTTConnectionState] { elements }
}

extension Array where Element == MQTTConnectionState {
    /// True if `pattern` occurs in order (not necessarily adjacent) after index `start`.
    public func containsSubsequence(from start: Int = 0, _ pattern: [(MQTTConnectionState) -> Bool]) -> Bool {
        var next = 0
        for state in self.dropFirst(start) where next < pattern.count {
            if pattern[next](state) { next += 1 }
        }
        return next == pattern.count
    }
}

extension MQTTConnectionState {
    /// Disconnected because of an error (not a requested disconnect).
    public var isDisconnectedWithError: Bool {
        if case .disconnected(reason: .some) = self { return true }
        return false
    }

    /// Connecting (or reconnecting).
    public var isConnecting: Bool {
        if case .connecting = self { return true }
        return false
    }
}

/// Runs a command to completion (off the cooperative pool: the termination
/// handler resumes us) and returns its combined output.
@discardableResult
public func runCommand(_ executable: String, _ arguments: [String], in directory: URL? = nil) async throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    if let directory { process.currentDirectoryURL = directory }
    let output = FileManager.default.temporaryDirectory.appendingPathComponent("cmd-\(UUID().uuidString).log")
    _ = FileManager.default.createFile(atPath: output.path, contents: nil)
    let handle = try FileHandle(forWritingTo: output)
    defer {
        try? handle.close()
        try? FileManager.default.removeItem(at: output)
    }
    process.standardOutput = handle
    process.standardError = handle
    process.standardInput = FileHandle.nullDevice
    let box = ProcessBox(process)
    let status: Int32 = try await withTimeout(.seconds(30), "\(executable) \(arguments.joined(separator: " "))") {
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                box.process.terminationHandler = { process in
                    continuation.resume(returning: process.terminationStatus)
                }
                do {
                    try runWithDefaultSignalMask(box.process)
                } catch {
                    box.process.terminationHandler = nil
                    continuation.resume(throwing: error)
                }
            }
        } onCancel: {
            // The termination handler then resumes the continuation.
            if box.process.isRunning { box.process.terminate() }
        }
    }
    let text = (try? String(contentsOf: output, encoding: .utf8)) ?? ""
    guard status == 0 else {
        throw TestBroker.BrokerError(
            description: "\(executable) \(arguments.joined(separator: " ")) failed (\(status)):\n\(text)"
        )
    }
    return text
}

/// `Process` is not `Sendable`; this box is only touched by one task at a time
/// (set up, run, then read after termination).
private final class ProcessBox: @unchecked Sendable {
    let process: Process

    init(_ process: Process) {
        self.process = process
    }
}
