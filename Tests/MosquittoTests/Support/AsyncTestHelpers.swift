import Foundation
import Mosquitto

struct TimeoutError: Error, CustomStringConvertible {
    var what: String
    var limit: Duration
    var description: String { "timed out after \(self.limit) waiting for \(self.what)" }
}

/// Runs `body`, cancelling it and throwing ``TimeoutError`` if it takes longer
/// than `limit`. Every await in the tests goes through this, so no test can
/// hang — provided `body` ends when cancelled (a task group waits for its
/// children), which is why every waiter here has a cancellation handler.
func withTimeout<T: Sendable>(
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
    func valueCancellingOnExit() async throws -> Success {
        try await withTaskCancellationHandler { try await self.value } onCancel: { self.cancel() }
    }
}

extension Task where Failure == Never {
    /// The task's result; cancelling the caller (a timeout) cancels the task.
    func valueCancellingOnExit() async -> Success {
        await withTaskCancellationHandler { await self.value } onCancel: { self.cancel() }
    }
}

/// Measures how long `body` takes.
func measure<T>(_ body: () async throws -> T) async rethrows -> (T, Duration) {
    let start = ContinuousClock.now
    let result = try await body()
    return (result, ContinuousClock.now - start)
}

/// Consumes a client's messages in a background task and lets tests wait for
/// them by count, without cancelling the client's message sequence.
final class MessageCollector: Sendable {
    private struct State {
        var messages: [MQTTMessage] = []
        var waiters: [UInt64: (count: Int, continuation: CheckedContinuation<[MQTTMessage], any Error>)] = [:]
        var nextID: UInt64 = 0
    }

    private let state = TestLock(State())
    private let task = TestLock<Task<Void, Never>?>(nil)

    init(_ client: MQTTClient) {
        let messages = client.messages
        let task = Task { [weak self] in
            for await message in messages {
                guard let self else { return }
                self.receive(message)
            }
        }
        self.task.withLock { $0 = task }
    }

    deinit {
        self.task.withLock { $0?.cancel() }
    }

    private func receive(_ message: MQTTMessage) {
        let ready = self.state.withLock { state -> [(CheckedContinuation<[MQTTMessage], any Error>, [MQTTMessage])] in
            state.messages.append(message)
            var ready: [(CheckedContinuation<[MQTTMessage], any Error>, [MQTTMessage])] = []
            for (id, waiter) in state.waiters where state.messages.count >= waiter.count {
                state.waiters[id] = nil
                ready.append((waiter.continuation, state.messages))
            }
            return ready
        }
        for (continuation, messages) in ready { continuation.resume(returning: messages) }
    }

    /// Everything received so far.
    var messages: [MQTTMessage] {
        self.state.withLock { $0.messages }
    }

    /// Waits until at least `count` messages have arrived; returns all of them.
    @discardableResult
    func waitForCount(_ count: Int, timeout: Duration = .seconds(10)) async throws -> [MQTTMessage] {
        let id = self.state.withLock { state -> UInt64 in
            state.nextID += 1
            return state.nextID
        }
        return try await withTimeout(timeout, "\(count) messages (have \(self.messages.count))") {
            try await withTaskCancellationHandler {
                try await withCheckedThrowingContinuation { continuation in
                    let ready = self.state.withLock { state -> [MQTTMessage]? in
                        if state.messages.count >= count { return state.messages }
                        state.waiters[id] = (count, continuation)
                        return nil
                    }
                    if let ready { continuation.resume(returning: ready) }
                }
            } onCancel: {
                let waiter = self.state.withLock { $0.waiters.removeValue(forKey: id) }
                waiter?.continuation.resume(throwing: CancellationError())
            }
        }
    }
}

/// Records every connection state a client goes through.
final class StateRecorder: Sendable {
    private struct State {
        var states: [MQTTConnectionState] = []
        var waiters: [UInt64: (predicate: @Sendable ([MQTTConnectionState]) -> Bool, continuation: CheckedContinuation<[MQTTConnectionState], any Error>)] = [:]
        var nextID: UInt64 = 0
    }

    private let state = TestLock(State())
    private let task = TestLock<Task<Void, Never>?>(nil)

    init(_ client: MQTTClient) {
        let states = client.connectionStates()
        let task = Task { [weak self] in
            for await newState in states {
                guard let self else { return }
                self.receive(newState)
            }
        }
        self.task.withLock { $0 = task }
    }

    deinit {
        self.task.withLock { $0?.cancel() }
    }

    private func receive(_ newState: MQTTConnectionState) {
        let ready = self.state.withLock {
            state -> [(CheckedContinuation<[MQTTConnectionState], any Error>, [MQTTConnectionState])] in
            state.states.append(newState)
            var ready: [(CheckedContinuation<[MQTTConnectionState], any Error>, [MQTTConnectionState])] = []
            for (id, waiter) in state.waiters where waiter.predicate(state.states) {
                state.waiters[id] = nil
                ready.append((waiter.continuation, state.states))
            }
            return ready
        }
        for (continuation, states) in ready { continuation.resume(returning: states) }
    }

    var states: [MQTTConnectionState] {
        self.state.withLock { $0.states }
    }

    /// Waits until the recorded history satisfies `predicate`.
    @discardableResult
    func waitUntil(
        _ what: String, timeout: Duration = .seconds(10),
        _ predicate: @escaping @Sendable ([MQTTConnectionState]) -> Bool
    ) async throws -> [MQTTConnectionState] {
        let id = self.state.withLock { state -> UInt64 in
            state.nextID += 1
            return state.nextID
        }
        return try await withTimeout(timeout, what) {
            try await withTaskCancellationHandler {
                try await withCheckedThrowingContinuation { continuation in
                    let ready = self.state.withLock { state -> [MQTTConnectionState]? in
                        if predicate(state.states) { return state.states }
                        state.waiters[id] = (predicate, continuation)
                        return nil
                    }
                    if let ready { continuation.resume(returning: ready) }
                }
            } onCancel: {
                let waiter = self.state.withLock { $0.waiters.removeValue(forKey: id) }
                waiter?.continuation.resume(throwing: CancellationError())
            }
        }
    }
}

extension Array where Element == MQTTConnectionState {
    /// True if `pattern` occurs in order (not necessarily adjacent) after index `start`.
    func containsSubsequence(from start: Int = 0, _ pattern: [(MQTTConnectionState) -> Bool]) -> Bool {
        var next = 0
        for state in self.dropFirst(start) where next < pattern.count {
            if pattern[next](state) { next += 1 }
        }
        return next == pattern.count
    }
}

extension MQTTConnectionState {
    var isDisconnectedWithError: Bool {
        if case .disconnected(reason: .some) = self { return true }
        return false
    }

    var isConnecting: Bool {
        if case .connecting = self { return true }
        return false
    }
}

/// Runs a command to completion (off the cooperative pool: the termination
/// handler resumes us) and returns its combined output.
@discardableResult
func runCommand(_ executable: String, _ arguments: [String], in directory: URL? = nil) async throws -> String {
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
                    try box.process.run()
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
            description: "\(executable) \(arguments.joined(separator: " ")) failed (\(status)):\n\(text)")
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
