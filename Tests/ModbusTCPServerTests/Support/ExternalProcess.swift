import Foundation
import MQTTTestSupport

/// Runs an external program (a Modbus client from another implementation) with a time limit.
enum ExternalProcess {
    struct Result: Sendable {
        var status: Int32
        var output: String
    }

    struct NotFound: Error, CustomStringConvertible {
        var program: String
        var description: String { "\(program) is not installed; .ci/run installs it (see README)" }
    }

    /// Finds `program` on PATH (a path with a slash is taken as it is).
    static func locate(_ program: String) throws -> String {
        if program.contains("/") {
            guard FileManager.default.isExecutableFile(atPath: program) else { throw NotFound(program: program) }
            return program
        }
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for directory in path.split(separator: ":") {
            let candidate = "\(directory)/\(program)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        throw NotFound(program: program)
    }

    /// Runs `program` and returns its exit status and combined output; it is killed after `timeout`.
    static func run(_ program: String, _ arguments: [String], timeout: Duration = .seconds(30)) async throws -> Result {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try locate(program))
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        let output = OutputCollector(pipe.fileHandleForReading)
        // The output is collected in the termination handler (a Foundation thread), never on the
        // cooperative pool: a child started at the same moment by another test may hold the
        // pipe open, so waiting for its end of file could take as long as that child lives.
        return try await withCheckedThrowingContinuation { continuation in
            process.terminationHandler = {
                continuation.resume(
                    returning: Result(status: $0.terminationStatus, output: output.finish(within: .seconds(2)))
                )
            }
            do { try runWithDefaultSignalMask(process) } catch {
                process.terminationHandler = nil
                continuation.resume(throwing: error)
                return
            }
            let killer = DispatchWorkItem { if process.isRunning { process.terminate() } }
            DispatchQueue.global().asyncAfter(
                deadline: .now() + .milliseconds(Int(timeout.components.seconds * 1000)),
                execute: killer
            )
        }
    }
}

/// Drains a pipe while the process runs, so a chatty program never blocks on a full pipe.
private final class OutputCollector: @unchecked Sendable {
    private let handle: FileHandle
    private let lock = NSLock()
    private var data = Data()
    private let done = DispatchSemaphore(value: 0)

    init(_ handle: FileHandle) {
        self.handle = handle
        Thread.detachNewThread { [self] in
            while true {
                let chunk = handle.availableData
                if chunk.isEmpty { break }
                lock.lock()
                data.append(chunk)
                lock.unlock()
            }
            done.signal()
        }
    }

    /// What the process wrote, once its pipe closes or `limit` has passed.
    func finish(within limit: Duration) -> String {
        _ = done.wait(timeout: .now() + .milliseconds(Int(limit.components.seconds * 1000)))
        lock.lock()
        defer { lock.unlock() }
        return String(decoding: data, as: UTF8.self)
    }
}
