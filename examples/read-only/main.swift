// A read-only Modbus server in a plain synchronous program: no async code, no write handler
// (every write function code is answered 01, illegal function).
//
//     swift run ReadOnlyExample [port]               (default port 5021)
//     mbpoll -m tcp -p 5021 -t 3 -r 1 -c 2 127.0.0.1  (reads input registers 0 and 1)
//
// Input register 0 counts seconds since start, input register 1 is this process's id modulo
// 65536, discrete input 0 is on. Stop with Ctrl-C.

import Dispatch
import Foundation
import ModbusTCPServer

let started = Date()
let port = CommandLine.arguments.dropFirst().first.flatMap(Int.init) ?? 5021

let server = ModbusServer(
    configuration: ModbusServerConfiguration(host: "0.0.0.0", port: port),
    // Runs on an event-loop thread: only immutable or thread-safe data may be touched here.
    readHandler: .sync { request in
        let registers: [UInt16: UInt16] = [
            0: UInt16(truncatingIfNeeded: Int(Date().timeIntervalSince(started))),
            1: UInt16(truncatingIfNeeded: Int(ProcessInfo.processInfo.processIdentifier)),
        ]
        return try (0..<request.count).map { offset in
            let address = Int(request.address) + offset
            switch request.area {
            case .inputRegister:
                guard let value = registers[UInt16(address)] else { throw ModbusException.illegalDataAddress }
                return value
            case .discreteInput where address == 0:
                return 1
            default:
                throw ModbusException.illegalDataAddress
            }
        }
    }
)
// No writeHandler: FC5, FC6, FC15, FC16, FC22 and FC23 all answer 01.

try server.startBlocking()
print("read-only Modbus server listening on port \(server.port ?? port); Ctrl-C stops it")

// Wait for SIGINT or SIGTERM, then stop gracefully.
waitForTerminationSignal()
server.stopBlocking()
print("stopped")

/// Blocks until SIGINT or SIGTERM. A function of its own, not top-level code: top-level code
/// belongs to the main actor in Swift 6, and a signal handler closure written there would trap
/// when Dispatch runs it on another thread.
nonisolated func waitForTerminationSignal() {
    let received = DispatchSemaphore(value: 0)
    var sources: [any DispatchSourceSignal] = []
    for signalNumber in [SIGINT, SIGTERM] {
        signal(signalNumber, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: .global())
        source.setEventHandler { received.signal() }
        source.resume()
        sources.append(source)
    }
    received.wait()
    for source in sources { source.cancel() }
}
