import Foundation
import MQTTTestSupport
import ModbusCore

/// What a Modbus request got back: a normal reply, or an exception code.
enum ModbusReply<Value: Sendable & Equatable>: Sendable, Equatable, CustomStringConvertible {
    case ok(Value)
    case exception(ModbusExceptionCode)

    var value: Value? {
        if case .ok(let value) = self { return value }
        return nil
    }

    var exceptionCode: ModbusExceptionCode? {
        if case .exception(let code) = self { return code }
        return nil
    }

    var description: String {
        switch self {
        case .ok(let value): "ok(\(value))"
        case .exception(let code): "exception \(code)"
        }
    }
}

/// A value pymodbus read and decoded itself (see `Python/modbus_helper.py`): the raw registers,
/// and the value as text (exact decimal for unscaled integers, Python's float repr otherwise).
struct DecodedValue: Sendable, Equatable {
    var registers: [UInt16]
    var text: String
}

/// pymodbus's Modbus TCP client in a long-lived Python process, driven by JSON lines, so each
/// request costs a pipe round trip rather than a Python start-up.
///
/// Requests name a connection; each connection is its own `ModbusTcpClient` (and Python thread),
/// so a write the bridge holds on one connection does not block requests on another. Every
/// request is bounded in time. Use ``withPymodbus(port:_:)`` so the process always ends.
final class PymodbusClient: Sendable {
    struct HelperError: Error, CustomStringConvertible {
        var description: String
    }

    private struct Request: Encodable {
        var id: Int
        var op: String
        var conn: String
        var unit: Int
        var area: String
        var address: Int
        var count: Int?
        var values: [Int]?
        var single: Bool?
        var type: String?
        var order: String?
        var scale: Double?
        var offset: Double?
        var length: Int?
        var andMask: Int?
        var orMask: Int?
        var readAddress: Int?
        var readCount: Int?

        enum CodingKeys: String, CodingKey {
            case id, op, conn, unit, area, address, count, values, single, type, order, scale, offset, length
            case andMask = "and_mask"
            case orMask = "or_mask"
            case readAddress = "read_address"
            case readCount = "read_count"
        }
    }

    private struct Reply: Decodable, Sendable {
        var id: Int?
        var values: [Int]?
        var exception: Int?
        var ok: Bool?
        var error: String?
        var registers: [Int]?
        var value: String?
    }

    private struct State {
        var nextID = 0
        var waiters: [Int: CheckedContinuation<Reply, any Error>] = [:]
        var exited = false
        var stderr = ""
    }

    private let process: ProcessHandle
    private let input: FileHandle
    private let state = TestLock(State())
    /// Serialises writes to the helper's input, so request lines never interleave.
    private let writing = TestLock(())
    private let exit = TestLock<(done: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

    private init(process: ProcessHandle, input: FileHandle) {
        self.process = process
        self.input = input
    }

    /// Starts the helper against `127.0.0.1:port`.
    static func start(port: Int) throws -> PymodbusClient {
        guard let script = Bundle.module.url(forResource: "modbus_helper", withExtension: "py", subdirectory: "Python")
        else {
            throw HelperError(description: "modbus_helper.py is missing from the test bundle")
        }
        let process = Process()
        // The python3 on PATH: the one pymodbus was installed for (Tests/setup.sh).
        process.executableURL = TestPython.url
        process.arguments = ["-u", script.path, "\(port)"]
        let stdin = Pipe()
        let stdout = Pipe()
        let stderr = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = stderr
        let client = PymodbusClient(process: ProcessHandle(process), input: stdin.fileHandleForWriting)
        process.terminationHandler = { _ in client.processExited() }
        try runWithDefaultSignalMask(process)
        client.drain(stdout.fileHandleForReading) { client.receive(line: $0) }
        client.drain(stderr.fileHandleForReading) { line in client.state.withLock { $0.stderr += line + "\n" } }
        return client
    }

    /// Waits until Python has loaded pymodbus (start-up takes a while on a loaded machine, and
    /// tests with short time windows must not spend them there).
    func ping() async throws {
        _ = try await send(Request(id: 0, op: "ping", conn: "", unit: 0, area: "", address: 0), timeout: .seconds(30))
    }

    /// Reads `count` values (registers, or 0/1 for bits).
    func read(
        _ area: ModbusArea,
        _ address: Int,
        count: Int = 1,
        unit: Int = 1,
        connection: String = "main"
    ) async throws -> ModbusReply<[UInt16]> {
        let reply = try await send(
            Request(
                id: 0,
                op: "read",
                conn: connection,
                unit: unit,
                area: Self.name(area),
                address: address,
                count: count
            )
        )
        if let code = reply.exception { return .exception(ModbusExceptionCode(rawValue: UInt8(code))) }
        guard let values = reply.values else { throw HelperError(description: "read answered without values") }
        return .ok(values.map { UInt16($0) })
    }

    /// Writes values: `single` uses FC5/FC6 (one value), otherwise FC15/FC16.
    func write(
        _ area: ModbusArea,
        _ address: Int,
        _ values: [UInt16],
        single: Bool = false,
        unit: Int = 1,
        connection: String = "main"
    ) async throws -> ModbusReply<Bool> {
        let reply = try await send(
            Request(
                id: 0,
                op: "write",
                conn: connection,
                unit: unit,
                area: Self.name(area),
                address: address,
                values: values.map(Int.init),
                single: single
            )
        )
        if let code = reply.exception { return .exception(ModbusExceptionCode(rawValue: UInt8(code))) }
        return .ok(reply.ok == true)
    }

    /// FC22 mask write register: result = (current AND andMask) OR (orMask AND NOT andMask).
    func maskWrite(
        _ address: Int,
        and andMask: UInt16,
        or orMask: UInt16,
        unit: Int = 1,
        connection: String = "main"
    ) async throws -> ModbusReply<Bool> {
        let reply = try await send(
            Request(
                id: 0,
                op: "mask_write",
                conn: connection,
                unit: unit,
                area: "holding_register",
                address: address,
                andMask: Int(andMask),
                orMask: Int(orMask)
            )
        )
        if let code = reply.exception { return .exception(ModbusExceptionCode(rawValue: UInt8(code))) }
        return .ok(reply.ok == true)
    }

    /// FC23 read/write multiple registers: writes `values` at `address`, then reads.
    func readWrite(
        write address: Int,
        _ values: [UInt16],
        read readAddress: Int,
        count readCount: Int,
        unit: Int = 1,
        connection: String = "main"
    ) async throws -> ModbusReply<[UInt16]> {
        let reply = try await send(
            Request(
                id: 0,
                op: "readwrite",
                conn: connection,
                unit: unit,
                area: "holding_register",
                address: address,
                values: values.map(Int.init),
                readAddress: readAddress,
                readCount: readCount
            )
        )
        if let code = reply.exception { return .exception(ModbusExceptionCode(rawValue: UInt8(code))) }
        guard let values = reply.values else { throw HelperError(description: "readwrite answered without values") }
        return .ok(values.map { UInt16($0) })
    }

    /// Reads a point's registers and decodes them in Python, independently of the bridge.
    func decode(
        _ area: ModbusArea,
        _ address: Int,
        type: String,
        order: String = "ABCD",
        scale: Double = 1,
        offset: Double = 0,
        length: Int? = nil,
        unit: Int = 1,
        connection: String = "main"
    ) async throws -> ModbusReply<DecodedValue> {
        let reply = try await send(
            Request(
                id: 0,
                op: "decode",
                conn: connection,
                unit: unit,
                area: Self.name(area),
                address: address,
                type: type,
                order: order,
                scale: scale,
                offset: offset,
                length: length
            )
        )
        if let code = reply.exception { return .exception(ModbusExceptionCode(rawValue: UInt8(code))) }
        guard let registers = reply.registers, let text = reply.value else {
            throw HelperError(description: "decode answered without a value")
        }
        return .ok(DecodedValue(registers: registers.map { UInt16($0) }, text: text))
    }

    private func send(_ request: Request, timeout: Duration = .seconds(10)) async throws -> Reply {
        let id = state.withLock { state -> Int in
            state.nextID += 1
            return state.nextID
        }
        var request = request
        request.id = id
        var line = try JSONEncoder().encode(request)
        line.append(UInt8(ascii: "\n"))
        let data = line
        let reply = try await withTimeout(timeout, "pymodbus \(request.op) \(request.area) \(request.address)") {
            try await withTaskCancellationHandler {
                try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Reply, any Error>) in
                    let failure = self.state.withLock { state -> (any Error)? in
                        if Task.isCancelled { return CancellationError() }
                        if state.exited {
                            return HelperError(description: "the pymodbus helper exited:\n\(state.stderr)")
                        }
                        state.waiters[id] = continuation
                        return nil
                    }
                    if let failure { return continuation.resume(throwing: failure) }
                    do {
                        try self.writing.withLock { _ in try self.input.write(contentsOf: data) }
                    } catch {
                        self.state.withLock { $0.waiters.removeValue(forKey: id) }?.resume(throwing: error)
                    }
                }
            } onCancel: {
                self.state.withLock { $0.waiters.removeValue(forKey: id) }?.resume(throwing: CancellationError())
            }
        }
        if let error = reply.error {
            throw HelperError(
                description:
                    "pymodbus \(request.op) \(request.area) \(request.address) on connection '\(request.conn)': \(error)"
            )
        }
        return reply
    }

    private func receive(line: String) {
        guard let reply = try? JSONDecoder().decode(Reply.self, from: Data(line.utf8)), let id = reply.id else {
            state.withLock { $0.stderr += "unexpected output: \(line)\n" }
            return
        }
        state.withLock { $0.waiters.removeValue(forKey: id) }?.resume(returning: reply)
    }

    private func processExited() {
        let (waiters, log) = state.withLock { state in
            state.exited = true
            defer { state.waiters = [:] }
            return (Array(state.waiters.values), state.stderr)
        }
        for waiter in waiters {
            waiter.resume(throwing: HelperError(description: "the pymodbus helper exited:\n\(log)"))
        }
        let exitWaiters = exit.withLock { state in
            state.done = true
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in exitWaiters { waiter.resume() }
    }

    /// Ends the helper: closes its input (it exits at end of input), and kills it if it has
    /// not exited within 5 s.
    func close() async {
        try? input.close()
        do {
            try await withTimeout(.seconds(5), "pymodbus helper exit") {
                await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                    let done = self.exit.withLock { state in
                        if !state.done { state.waiters.append(continuation) }
                        return state.done
                    }
                    if done { continuation.resume() }
                }
            }
        } catch {
            process.kill()
        }
    }

    /// Reads lines from `handle` on a plain thread until end of file.
    private func drain(_ handle: FileHandle, _ line: @escaping @Sendable (String) -> Void) {
        let thread = Thread {
            var pending = Data()
            while true {
                let chunk = handle.availableData
                if chunk.isEmpty { break }
                pending.append(chunk)
                while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                    line(String(decoding: pending[pending.startIndex..<newline], as: UTF8.self))
                    pending.removeSubrange(pending.startIndex...newline)
                }
            }
            try? handle.close()
        }
        thread.start()
    }

    private static func name(_ area: ModbusArea) -> String {
        switch area {
        case .coil: "coil"
        case .discreteInput: "discrete_input"
        case .holdingRegister: "holding_register"
        case .inputRegister: "input_register"
        }
    }
}

/// `Process` is not `Sendable`; this box only signals it.
private final class ProcessHandle: @unchecked Sendable {
    private let process: Process

    init(_ process: Process) {
        self.process = process
    }

    func kill() {
        if process.isRunning { process.terminate() }
    }
}

/// Runs `body` with a pymodbus client connected to `port` (answering a first request), and
/// always ends the helper process.
func withPymodbus(port: Int, _ body: (PymodbusClient) async throws -> Void) async throws {
    let modbus = try PymodbusClient.start(port: port)
    do {
        try await modbus.ping()
        try await body(modbus)
    } catch {
        await modbus.close()
        throw error
    }
    await modbus.close()
}
