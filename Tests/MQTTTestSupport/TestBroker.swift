import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// What the generated `mosquitto.conf` contains beyond the fixed basics.
public struct TestBrokerOptions: Sendable {
    /// TLS listener settings; `nil` for plain TCP.
    public struct TLS: Sendable {
        /// CA that signed the client certificates (and that clients trust).
        public var caFile: String
        /// The broker's certificate.
        public var certificateFile: String
        /// The broker's private key.
        public var privateKeyFile: String
        /// Refuse clients without a certificate signed by ``caFile``.
        public var requireClientCertificate = false

        /// TLS listener settings.
        public init(
            caFile: String,
            certificateFile: String,
            privateKeyFile: String,
            requireClientCertificate: Bool = false
        ) {
            self.caFile = caFile
            self.certificateFile = certificateFile
            self.privateKeyFile = privateKeyFile
            self.requireClientCertificate = requireClientCertificate
        }
    }

    /// `mosquitto_passwd` file; when set, anonymous clients are refused.
    public var passwordFile: String?
    /// TLS listener settings; `nil` for plain TCP.
    public var tls: TLS?
    /// `max_queued_messages`; 0 means no limit. `nil` keeps mosquitto's default.
    public var maxQueuedMessages: Int?
    /// Extra raw configuration lines.
    public var extraLines: [String] = []

    /// Broker options; every parameter defaults to a plain anonymous listener.
    public init(passwordFile: String? = nil, tls: TLS? = nil, maxQueuedMessages: Int? = nil, extraLines: [String] = [])
    {
        self.passwordFile = passwordFile
        self.tls = tls
        self.maxQueuedMessages = maxQueuedMessages
        self.extraLines = extraLines
    }
}

/// A real mosquitto broker on a free loopback port, with a generated
/// configuration in its own temporary directory.
///
/// Readiness is detected from the broker's own log ("... running"), never by
/// sleeping. The port survives ``restart()`` so clients can reconnect to it.
/// Use ``withTestBroker(_:_:)`` so the broker is stopped even when a test fails.
public final class TestBroker: Sendable {
    /// The mosquitto binary (Debian package `mosquitto`).
    public static let executable = "/usr/sbin/mosquitto"

    /// The loopback port the broker listens on (kept across restarts).
    public let port: Int
    /// The broker's temporary directory (configuration file).
    public let directory: URL
    /// What the configuration contains.
    public let options: TestBrokerOptions
    private let state = TestLock(State())

    private struct State {
        var process: Process?
        var generation = 0
        var log: [String] = []
        var logWaiters: [UInt64: LogWaiter] = [:]
        var nextWaiterID: UInt64 = 0
        var exitWaiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
        var running = false
    }

    private struct LogWaiter {
        let text: String
        let fromLine: Int
        let continuation: CheckedContinuation<Void, any Error>
    }

    /// A broker that could not be started, or exited.
    public struct BrokerError: Error, CustomStringConvertible {
        /// What happened, with the broker log where useful.
        public var description: String

        /// An error with this text.
        public init(description: String) {
            self.description = description
        }
    }

    private init(port: Int, directory: URL, options: TestBrokerOptions) {
        self.port = port
        self.directory = directory
        self.options = options
    }

    /// Starts a broker, retrying on another port if the chosen one was taken
    /// between probing and binding.
    ///
    /// - Parameter port: a fixed port (for a client that already waits on it);
    ///   by default a free one is chosen.
    public static func start(
        _ options: TestBrokerOptions = TestBrokerOptions(),
        port: Int? = nil
    ) async throws -> TestBroker {
        var lastError: (any Error)?
        for _ in 0..<(port == nil ? 3 : 1) {
            let directory = FileManager.default.temporaryDirectory
                .appendingPathComponent("mqtt-test-broker-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            let broker = TestBroker(port: try port ?? freeLoopbackPort(), directory: directory, options: options)
            do {
                try await broker.launch()
                return broker
            } catch {
                lastError = error
                await broker.stop()
            }
        }
        throw lastError ?? BrokerError(description: "could not start mosquitto")
    }

    /// The generated `mosquitto.conf`.
    public var configurationText: String {
        var lines = [
            "listener \(self.port) 127.0.0.1"
        ]
        if let tls = self.options.tls {
            lines += [
                "cafile \(tls.caFile)",
                "certfile \(tls.certificateFile)",
                "keyfile \(tls.privateKeyFile)",
                "require_certificate \(tls.requireClientCertificate)",
            ]
        }
        if let passwordFile = self.options.passwordFile {
            lines += ["allow_anonymous false", "password_file \(passwordFile)"]
        } else {
            lines += ["allow_anonymous true"]
        }
        lines += [
            // Without it a QoS 1 round trip waits for delayed ACKs (docs/design.md §6).
            "set_tcp_nodelay true",
            "persistence false",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
        ]
        if let maxQueued = self.options.maxQueuedMessages {
            lines.append("max_queued_messages \(maxQueued)")
        }
        if getuid() == 0 {
            // mosquitto started as root switches to user "mosquitto", which
            // cannot read the generated files; stay who we are.
            lines.append("user root")
        }
        lines += self.options.extraLines
        return lines.joined(separator: "\n") + "\n"
    }

    private func launch() async throws {
        let configFile = self.directory.appendingPathComponent("mosquitto.conf")
        try self.configurationText.write(to: configFile, atomically: true, encoding: .utf8)

        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.executable)
        process.arguments = ["-c", configFile.path]
        let pipe = Pipe()
        process.standardError = pipe
        process.standardOutput = pipe
        process.standardInput = FileHandle.nullDevice

        let (generation, fromLine) = self.state.withLock { state -> (Int, Int) in
            state.generation += 1
            state.process = process
            state.running = true
            state.log.append("--- launch \(state.generation) ---")
            return (state.generation, state.log.count)
        }
        process.terminationHandler = { [self] _ in
            self.processExited(generation: generation)
        }
        try runWithDefaultSignalMask(process)
        // A plain thread drains the pipe with blocking reads until EOF, so the
        // broker never blocks on a full pipe and every line is kept.
        let reader = pipe.fileHandleForReading
        let thread = Thread { [self] in
            var pending = Data()
            while true {
                let chunk = reader.availableData
                if chunk.isEmpty { break }
                pending.append(chunk)
                while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                    let line = String(decoding: pending[pending.startIndex..<newline], as: UTF8.self)
                    pending.removeSubrange(pending.startIndex...newline)
                    self.appendLog(line)
                }
            }
            try? reader.close()
        }
        thread.name = "test-broker-log"
        thread.start()

        try await self.waitForLog(containing: " running", fromLine: fromLine, timeout: .seconds(10))
    }

    private func appendLog(_ line: String) {
        let ready = self.state.withLock { state -> [CheckedContinuation<Void, any Error>] in
            state.log.append(line)
            var ready: [CheckedContinuation<Void, any Error>] = []
            for (id, waiter) in state.logWaiters where line.contains(waiter.text) {
                state.logWaiters[id] = nil
                ready.append(waiter.continuation)
            }
            return ready
        }
        for continuation in ready { continuation.resume() }
    }

    private func processExited(generation: Int) {
        let (waiters, exitWaiters) = self.state.withLock {
            state -> ([CheckedContinuation<Void, any Error>], [CheckedContinuation<Void, Never>]) in
            guard state.generation == generation else { return ([], []) }
            state.running = false
            state.process = nil
            let waiters = state.logWaiters.values.map(\.continuation)
            state.logWaiters = [:]
            let exitWaiters = Array(state.exitWaiters.values)
            state.exitWaiters = [:]
            return (waiters, exitWaiters)
        }
        let log = self.logText
        for waiter in waiters {
            waiter.resume(throwing: BrokerError(description: "mosquitto exited; log:\n\(log)"))
        }
        for waiter in exitWaiters { waiter.resume() }
    }

    /// Everything the broker logged, across restarts.
    public var logLines: [String] {
        self.state.withLock { $0.log }
    }

    /// ``logLines`` joined with new lines.
    public var logText: String {
        self.logLines.joined(separator: "\n")
    }

    /// Waits until a log line (logged after `fromLine`) contains `text`.
    public func waitForLog(containing text: String, fromLine: Int = 0, timeout: Duration) async throws {
        let id = self.state.withLock { state -> UInt64 in
            state.nextWaiterID += 1
            return state.nextWaiterID
        }
        try await withTimeout(timeout, "broker log line containing \"\(text)\"") {
            try await withTaskCancellationHandler {
                try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                    let outcome = self.state.withLock { state -> Result<Bool, BrokerError> in
                        if Task.isCancelled { return .failure(BrokerError(description: "cancelled")) }
                        if state.log.dropFirst(fromLine).contains(where: { $0.contains(text) }) {
                            return .success(true)
                        }
                        guard state.running else {
                            return .failure(BrokerError(description: "mosquitto is not running"))
                        }
                        state.logWaiters[id] = LogWaiter(text: text, fromLine: fromLine, continuation: continuation)
                        return .success(false)
                    }
                    switch outcome {
                    case .success(true): continuation.resume()
                    case .success(false): break
                    case .failure(let error): continuation.resume(throwing: error)
                    }
                }
            } onCancel: {
                let waiter = self.state.withLock { $0.logWaiters.removeValue(forKey: id) }
                waiter?.continuation.resume(throwing: CancellationError())
            }
        }
    }

    /// Number of log lines so far; pass to ``waitForLog(containing:fromLine:timeout:)``
    /// to wait only for lines logged after this point.
    public var logLineCount: Int {
        self.state.withLock { $0.log.count }
    }

    private func signal(_ signal: Int32) -> Bool {
        self.state.withLock { state in
            guard state.running, let process = state.process else { return false }
            sendSignal(process.processIdentifier, signal)
            return true
        }
    }

    private func waitForExit(timeout: Duration) async -> Bool {
        let id = self.state.withLock { state -> UInt64 in
            state.nextWaiterID += 1
            return state.nextWaiterID
        }
        do {
            try await withTimeout(timeout, "mosquitto exit") {
                await withTaskCancellationHandler {
                    await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                        let running = self.state.withLock { state -> Bool in
                            guard state.running, !Task.isCancelled else { return false }
                            state.exitWaiters[id] = continuation
                            return true
                        }
                        if !running { continuation.resume() }
                    }
                } onCancel: {
                    let waiter = self.state.withLock { $0.exitWaiters.removeValue(forKey: id) }
                    waiter?.resume()
                }
            }
            return !self.isRunning
        } catch {
            return false
        }
    }

    /// Graceful stop: SIGTERM, then SIGKILL if it has not exited within 5 s.
    public func stop() async {
        if self.signal(SIGCONT), self.signal(SIGTERM) {
            if await self.waitForExit(timeout: .seconds(5)) { return }
        }
        await self.kill()
    }

    /// Abrupt stop (SIGKILL), as if the broker machine died.
    public func kill() async {
        if self.signal(SIGKILL) {
            _ = await self.waitForExit(timeout: .seconds(10))
        }
    }

    /// Freezes the broker (SIGSTOP): connections stay open but nothing is answered.
    public func pause() {
        _ = self.signal(SIGSTOP)
    }

    /// Resumes a paused broker (SIGCONT).
    public func resume() {
        _ = self.signal(SIGCONT)
    }

    /// Starts the broker again on the same port with the same configuration.
    public func restart() async throws {
        await self.stop()
        try await self.launch()
    }

    /// Whether the broker process is running.
    public var isRunning: Bool {
        self.state.withLock { $0.running }
    }

    /// Removes the temporary directory (after the broker stopped).
    public func removeDirectory() {
        try? FileManager.default.removeItem(at: self.directory)
    }
}

/// Runs `body` with a fresh broker and always stops it afterwards.
public func withTestBroker<T: Sendable>(
    _ options: TestBrokerOptions = TestBrokerOptions(),
    _ body: (TestBroker) async throws -> T
) async throws -> T {
    let broker = try await TestBroker.start(options)
    do {
        let result = try await body(broker)
        await broker.stop()
        broker.removeDirectory()
        return result
    } catch {
        await broker.stop()
        broker.removeDirectory()
        throw error
    }
}

/// A loopback TCP port that was free a moment ago (bind to port 0, read the
/// port the kernel chose, close).
public func freeLoopbackPort() throws -> Int {
    let (descriptor, port) = try bindLoopbackSocket()
    close(descriptor)
    return port
}

/// A TCP socket bound to 127.0.0.1 on a port the kernel chose, not listening,
/// and the port.
private func bindLoopbackSocket() throws -> (descriptor: Int32, port: Int) {
    let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard descriptor >= 0 else { throw TestBroker.BrokerError(description: "socket() failed") }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = 0
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let bound = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
        }
    }
    guard bound == 0 else {
        close(descriptor)
        throw TestBroker.BrokerError(description: "bind() failed")
    }
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let named = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            getsockname(descriptor, $0, &length)
        }
    }
    guard named == 0 else {
        close(descriptor)
        throw TestBroker.BrokerError(description: "getsockname() failed")
    }
    return (descriptor, Int(UInt16(bigEndian: address.sin_port)))
}

private func sendSignal(_ pid: Int32, _ signal: Int32) {
    _ = kill(pid, signal)
}

/// Starts `process` with no signals blocked and none of the test process's
/// descriptors.
///
/// A child inherits the spawning thread's signal mask, and Dispatch's worker
/// threads (where Swift tasks run) block SIGTERM, SIGINT and SIGHUP. mosquitto
/// would then never see the SIGTERM of a graceful stop.
///
/// A child also inherits every descriptor not marked close-on-exec, and SwiftNIO
/// does not mark its sockets so on Linux: a broker started while a parallel test's
/// Modbus server is running would hold that server's connections open after the
/// server closes them. Every descriptor above stderr is marked close-on-exec
/// first (the child's own stdio is set up by dup2, which clears the flag).
///
/// Spawns are serialised: Foundation's `Process.run()` hands each child one end of
/// a socket pair and learns of the child's exit when that end closes. A sweep that
/// ran during another thread's `run()` would mark that end close-on-exec, the
/// child would drop it at exec, and Foundation would then block in `waitpid` on a
/// child still running, so no other child's exit would be noticed any more (their
/// termination handlers never run and tests waiting for them hang).
public func runWithDefaultSignalMask(_ process: Process) throws {
    spawnLock.lock()
    defer { spawnLock.unlock() }
    markDescriptorsCloseOnExec()
    var empty = sigset_t()
    var saved = sigset_t()
    sigemptyset(&empty)
    pthread_sigmask(SIG_SETMASK, &empty, &saved)
    defer { pthread_sigmask(SIG_SETMASK, &saved, nil) }
    try process.run()
}

/// Held while a child is started (see `runWithDefaultSignalMask`).
private let spawnLock = NSLock()

/// Marks every open descriptor above stderr close-on-exec, so that children started
/// afterwards inherit none of them. Only `runWithDefaultSignalMask` calls it, under
/// `spawnLock`.
func markDescriptorsCloseOnExec() {
    guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") else { return }
    for entry in entries {
        guard let descriptor = Int32(entry), descriptor > 2 else { continue }
        let flags = fcntl(descriptor, F_GETFD)
        if flags >= 0 { _ = fcntl(descriptor, F_SETFD, flags | FD_CLOEXEC) }
    }
}

/// A loopback TCP port that refuses connections for as long as this value is
/// kept: a socket is bound to it and never listens.
///
/// A port from ``freeLoopbackPort()`` is only free until someone binds it, and
/// tests run in parallel start brokers on ports chosen the same way; a test
/// that needs "nobody listens here" must hold the port, or a broker of another
/// test may answer on it. mosquitto cannot bind over the held socket because
/// this socket does not set `SO_REUSEADDR`.
public final class RefusingLoopbackPort: Sendable {
    /// The port number; connecting to it is refused until ``release()``.
    public let port: Int
    private let descriptor: Mutex<Int32>

    public init() throws {
        let (descriptor, port) = try bindLoopbackSocket()
        self.port = port
        self.descriptor = Mutex(descriptor)
    }

    /// Closes the socket, so that a server of the test itself can bind the
    /// port (the port may then be taken by anyone).
    public func release() {
        self.descriptor.withLock { descriptor in
            if descriptor >= 0 { close(descriptor) }
            descriptor = -1
        }
    }

    deinit { self.release() }
}
