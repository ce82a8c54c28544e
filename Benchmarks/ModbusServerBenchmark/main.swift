// The server side of Benchmarks/modbus-throughput: our ModbusServer on one event-loop thread,
// serving constant register values through one of the three read-handler forms.
//
//     swift build -c release --scratch-path .build-bench --product ModbusServerBenchmark
//     .build-bench/release/ModbusServerBenchmark PORT sync-in-place|sync|async
//
// Listens on 127.0.0.1:PORT. Every register (any area) reads as its own address modulo 65536,
// so every form serves the same values:
// - sync-in-place: appends the values to the reply frame (`ModbusReadValues`, no allocation);
// - sync: returns a new `[UInt16]` per request, on the event loop;
// - async: returns a new `[UInt16]` per request from an async closure, which the server runs
//   off the event loop (on Swift's global concurrent executor).
// No write handler: writes answer 01. Runs until SIGINT or SIGTERM, then stops gracefully.

import Dispatch
import Logging
import ModbusTCPServer
import NIOPosix

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

enum HandlerForm: String, CaseIterable {
    case syncInPlace = "sync-in-place"
    case sync
    case async
}

/// The constant data: register n holds n.
enum ConstantRegisters {
    static func values(for request: ModbusReadRequest) -> [UInt16] {
        (0..<request.count).map { UInt16(truncatingIfNeeded: Int(request.address) + $0) }
    }

    static func append(for request: ModbusReadRequest, to values: inout ModbusReadValues) {
        let start = Int(request.address)
        for offset in 0..<request.count {
            values.append(UInt16(truncatingIfNeeded: start + offset))
        }
    }

    static func readHandler(_ form: HandlerForm) -> ModbusReadHandler {
        switch form {
        case .syncInPlace:
            .syncInPlace { request, values in append(for: request, to: &values) }
        case .sync:
            .sync { request in values(for: request) }
        case .async:
            .async { request in values(for: request) }
        }
    }
}

/// Blocks until SIGINT or SIGTERM.
///
/// A nonisolated function on purpose: a closure written in top-level code is main-actor isolated
/// in Swift 6, and a signal handler that runs on a Dispatch queue would trap on the isolation check.
enum Termination {
    static func wait() {
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
}

/// Writes a line to standard error without Foundation.
enum StandardError {
    static func print(_ line: String) {
        var text = line + "\n"
        text.withUTF8 { bytes in _ = write(2, bytes.baseAddress, bytes.count) }
    }
}

let arguments = Array(CommandLine.arguments.dropFirst())
guard arguments.count == 2, let port = Int(arguments[0]), (1...65535).contains(port),
    let form = HandlerForm(rawValue: arguments[1])
else {
    let forms = HandlerForm.allCases.map(\.rawValue).joined(separator: "|")
    StandardError.print("usage: ModbusServerBenchmark PORT \(forms)")
    exit(2)
}

// One thread for the server, as in the reference figures (the benchmark pins the process to
// one core as well).
let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
var logger = Logger(label: "modbus.server")
logger.logLevel = .info
let server = ModbusServer(
    configuration: ModbusServerConfiguration(host: "127.0.0.1", port: port),
    readHandler: ConstantRegisters.readHandler(form),
    eventLoopGroup: group,
    logger: logger
)

try server.startBlocking()
print("ModbusServerBenchmark listening on 127.0.0.1:\(port) with the \(form.rawValue) read handler")

Termination.wait()
server.stopBlocking()
try group.syncShutdownGracefully()
print("stopped")
