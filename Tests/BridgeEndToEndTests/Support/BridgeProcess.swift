import Foundation
import MQTTTestSupport
import Testing

/// `mqtt-modbus-bridge run` (or another subcommand) as a child process, as an integrator runs it:
/// for what cannot be shown in-process (a crash that leaves the last will to the broker, signal
/// handling, the status endpoint as the program wires it).
///
/// `@unchecked Sendable`: `process` is only kept alive here (its termination handler must
/// outlive the launch), never touched after `init`; the rest is locked or immutable.
final class BridgeProcess: @unchecked Sendable {
    private let process: Process
    private let outputFile: URL
    private let exit = TestLock<(status: Int32?, waiters: [UUID: CheckedContinuation<Int32, Never>])>((nil, [:]))
    let pid: Int32

    /// Starts the executable with `arguments` (and `environment` added to the test's own); its
    /// output goes to a file read by ``output``.
    init(_ arguments: [String], environment: [String: String] = [:]) throws {
        let process = Process()
        process.executableURL = try ValidateCommandTests.executable()
        process.arguments = arguments
        if !environment.isEmpty {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
        }
        outputFile = FileManager.default.temporaryDirectory.appendingPathComponent(
            "e2e-bridge-\(UUID().uuidString).log"
        )
        _ = FileManager.default.createFile(atPath: outputFile.path, contents: nil)
        let handle = try FileHandle(forWritingTo: outputFile)
        process.standardOutput = handle
        process.standardError = handle
        process.standardInput = FileHandle.nullDevice
        let exit = self.exit
        process.terminationHandler = { process in
            try? handle.close()
            let code = process.terminationStatus
            let waiters = exit.withLock { state -> [CheckedContinuation<Int32, Never>] in
                state.status = code
                defer { state.waiters = [:] }
                return Array(state.waiters.values)
            }
            for waiter in waiters { waiter.resume(returning: code) }
        }
        try runWithDefaultSignalMask(process)
        pid = process.processIdentifier
        self.process = process
    }

    /// What the program printed so far.
    var output: String { (try? String(contentsOf: outputFile, encoding: .utf8)) ?? "" }

    /// Sends `signal` (SIGTERM: graceful shutdown; SIGKILL: a crash).
    func send(_ signal: Int32) {
        if exit.withLock({ $0.status }) == nil { kill(pid, signal) }
    }

    /// Waits (bounded) for the process to end and returns its exit status.
    func waitForExit(timeout: Duration = .seconds(15)) async throws -> Int32 {
        try await withTimeout(timeout, "mqtt-modbus-bridge (pid \(pid)) to exit") {
            let id = UUID()
            // Cancellable, or the timeout could not end the wait: a task group waits for its
            // children, and a continuation nobody resumes never ends.
            let status = await withTaskCancellationHandler {
                await withCheckedContinuation { continuation in
                    let known = self.exit.withLock { state -> Int32? in
                        if let status = state.status { return status }
                        if Task.isCancelled { return Int32.min }
                        state.waiters[id] = continuation
                        return nil
                    }
                    if let known { continuation.resume(returning: known) }
                }
            } onCancel: {
                let waiter = self.exit.withLock { $0.waiters.removeValue(forKey: id) }
                waiter?.resume(returning: Int32.min)
            }
            if status == Int32.min { throw CancellationError() }
            return status
        }
    }

    /// Kills the process if it still runs and removes its output file.
    func cleanUp() async {
        send(SIGKILL)
        _ = try? await waitForExit(timeout: .seconds(10))
        try? FileManager.default.removeItem(at: outputFile)
    }
}

/// An HTTP GET by Python's urllib, an HTTP client independent of the bridge's: the status code
/// and body, or `nil` when nothing accepts the connection.
func httpGet(_ url: String) async throws -> (status: Int, body: String)? {
    let script = """
        import sys, urllib.request, urllib.error
        try:
            with urllib.request.urlopen(sys.argv[1], timeout=5) as response:
                status, body = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, body = error.code, error.read()
        except (urllib.error.URLError, ConnectionError):
            print("unreachable"); sys.exit(0)
        print(status); sys.stdout.write(body.decode())
        """
    let result = try await runProgram(TestPython.url, ["-c", script, url])
    guard result.status == 0 else {
        throw TestBroker.BrokerError(description: "python3 urllib failed: \(result.output)")
    }
    let firstLine = result.output.prefix { $0 != "\n" }
    guard let status = Int(firstLine) else { return nil }
    return (status, String(result.output.dropFirst(firstLine.count + 1)))
}
