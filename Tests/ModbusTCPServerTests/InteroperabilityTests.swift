import Foundation
import MQTTTestSupport
import ModbusTCPServer
import Testing

/// Independent Modbus clients against a callback-backed store: pymodbus (Python) and mbpoll
/// (built on libmodbus, C). Each reads and writes every area.
@Suite("Interoperability with independent clients")
struct InteroperabilityTests {
    @Test("pymodbus's client reads and writes every area", arguments: HandlerForm.allCases)
    func pymodbus(form: HandlerForm) async throws {
        let store = TestStore()
        let script = try #require(
            Bundle.module.url(forResource: "pymodbus_client", withExtension: "py", subdirectory: "Interop")
        )
        try await withServer(read: form.read(store), write: form.write(store)) { _, port in
            let result = try await ExternalProcess.run(TestPython.path, [script.path, "\(port)"])
            #expect(result.status == 0, "pymodbus checks:\n\(result.output)")
            #expect(result.output.contains("0 failure(s)"))
        }
        #expect(store.value(.holdingRegister, 100) == 0xBEEF, "pymodbus's write reached the store")
    }

    @Test("mbpoll (libmodbus) reads every area", arguments: HandlerForm.allCases)
    func mbpollReads(form: HandlerForm) async throws {
        let store = TestStore()
        try await withServer(read: form.read(store), write: form.write(store)) { _, port in
            // -0: addresses are 0-based; -1: poll once; -t: 0 coils, 1 discrete inputs, 3 input registers, 4 holding registers.
            let holding = try await mbpoll(port, ["-t", "4", "-r", "10", "-c", "3"])
            #expect(holding == [10: 10, 11: 11, 12: 12])
            let input = try await mbpoll(port, ["-t", "3", "-r", "500", "-c", "125"])
            #expect(input.count == 125 && input[624] == 624)
            let coils = try await mbpoll(port, ["-t", "0", "-r", "0", "-c", "7"])
            #expect(coils == [0: 1, 1: 0, 2: 0, 3: 1, 4: 0, 5: 0, 6: 1])
            let discrete = try await mbpoll(port, ["-t", "1", "-r", "8", "-c", "4"])
            #expect(discrete == [8: 0, 9: 1, 10: 0, 11: 0])
        }
    }

    @Test("mbpoll (libmodbus) writes coils and holding registers", arguments: HandlerForm.allCases)
    func mbpollWrites(form: HandlerForm) async throws {
        let store = TestStore()
        try await withServer(read: form.read(store), write: form.write(store)) { _, port in
            _ = try await mbpoll(port, ["-t", "4", "-r", "20"], values: ["4242"])
            _ = try await mbpoll(port, ["-t", "4", "-r", "30"], values: ["1", "2", "3"])
            _ = try await mbpoll(port, ["-t", "0", "-r", "40"], values: ["1"])
            _ = try await mbpoll(port, ["-t", "0", "-r", "41"], values: ["0", "1", "1"])
            #expect(try await mbpoll(port, ["-t", "4", "-r", "20", "-c", "1"]) == [20: 4242])
        }
        #expect(store.value(.holdingRegister, 20) == 4242)
        #expect((30...32).map { store.value(.holdingRegister, $0) } == [1, 2, 3])
        #expect((40...43).map { store.value(.coil, $0) } == [1, 0, 1, 1])
        let functions = store.writes.withLock { $0.map(\.functionCode) }
        #expect(functions == [.writeSingleRegister, .writeMultipleRegisters, .writeSingleCoil, .writeMultipleCoils])
    }

    @Test("mbpoll (libmodbus) sees the exception a handler throws")
    func mbpollException() async throws {
        let store = TestStore()
        try await withServer(read: .sync { try store.read($0) }, write: nil) { _, port in
            let result = try await ExternalProcess.run(
                "mbpoll",
                ["-m", "tcp", "-p", "\(port)", "-0", "-1", "-o", "8", "-t", "4", "-r", "999", "-c", "2", "127.0.0.1"]
            )
            #expect(result.output.contains("Illegal data address"), "\(result.output)")
            let write = try await ExternalProcess.run(
                "mbpoll",
                ["-m", "tcp", "-p", "\(port)", "-0", "-1", "-o", "8", "-t", "4", "-r", "1", "127.0.0.1", "5"]
            )
            #expect(write.output.contains("Illegal function"), "no write handler: 01. \(write.output)")
        }
    }

    /// Runs mbpoll once and returns address → value from its output.
    private func mbpoll(_ port: Int, _ arguments: [String], values: [String] = []) async throws -> [Int: Int] {
        let result = try await ExternalProcess.run(
            "mbpoll",
            ["-m", "tcp", "-p", "\(port)", "-a", "1", "-0", "-1", "-o", "8"] + arguments + ["127.0.0.1"] + values
        )
        try #require(result.status == 0, "mbpoll failed:\n\(result.output)")
        var parsed: [Int: Int] = [:]
        for line in result.output.split(separator: "\n") where line.hasPrefix("[") {
            let parts = line.dropFirst().split(separator: "]")
            guard parts.count == 2, let address = Int(parts[0]),
                let value = Int(parts[1].trimmingCharacters(in: .whitespaces.union(.init(charactersIn: ":"))))
            else { continue }
            parsed[address] = value
        }
        return parsed
    }
}
