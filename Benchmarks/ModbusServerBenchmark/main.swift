// The server side of Benchmarks/modbus-throughput: our ModbusServer on one event-loop thread,
// serving constant register values through one of the three read-handler forms.
//
//     swift build -c release --scratch-path .build-bench --product ModbusServerBenchmark --static-swift-stdlib
//     .build-bench/release/ModbusServerBenchmark PORT sync-in-place|sync|async [GROUP]
//
// GROUP is where connections are served: a number N (a group of N threads; 1, the default, is
// what the reference figures use), `default` (no group passed: the server's own, one thread per
// CPU the process may use) or `nio-singleton` (NIO's shared group, one thread per core of the
// machine: the server's default before it read the affinity mask).
//
// Listens on 127.0.0.1:PORT. Every register (any area) reads as its own address modulo 65536,
// so every form serves the same values:
// - sync-in-place: appends the values to the reply frame (`ModbusReadValues`, no allocation);
// - sync: returns a new `[UInt16]` per request, on the event loop;
// - async: returns a new `[UInt16]` per request from an async closure, which the server runs
//   off the event loop (on Swift's global concurrent executor).
// Writes (FC5, FC6, FC15, FC16, ...) are accepted and discarded by a write handler of the same
// form (`.sync` for both synchronous forms, `.async` for async), so the FC16 scenario measures
// the server's write path, not a store. Runs until SIGINT or SIGTERM, then stops gracefully.

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

/// Accepts every write and keeps nothing: the registers stay constant.
enum DiscardingWrites {
    static func writeHandler(_ form: HandlerForm) -> ModbusWriteHandler {
        switch form {
        case .syncInPlace, .sync: .sync { _ in }
        case .async: .async { _ in }
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

/// Where the server's connections are served (the optional third argument).
enum GroupChoice {
    /// A group of this many threads, made here and shut down at the end.
    case threads(Int)
    /// None passed: the server's default.
    case serverDefault
    /// NIO's process-wide group.
    case nioSingleton

    init?(_ text: String) {
        switch text {
        case "default": self = .serverDefault
        case "nio-singleton": self = .nioSingleton
        default:
            guard let count = Int(text), count >= 1 else { return nil }
            self = .threads(count)
        }
    }
}

let arguments = Array(CommandLine.arguments.dropFirst())
guard (2...3).contains(arguments.count), let port = Int(arguments[0]), (1...65535).contains(port),
    let form = HandlerForm(rawValue: arguments[1]),
    let choice = arguments.count == 3 ? GroupChoice(arguments[2]) : .threads(1)
else {
    let forms = HandlerForm.allCases.map(\.rawValue).joined(separator: "|")
    StandardError.print("usage: ModbusServerBenchmark PORT \(forms) [THREADS|default|nio-singleton]")
    exit(2)
}

let ownGroup: MultiThreadedEventLoopGroup?
let group: MultiThreadedEventLoopGroup?
switch choice {
case .threads(let count):
    ownGroup = MultiThreadedEventLoopGroup(numberOfThreads: count)
    group = ownGroup
case .serverDefault:
    ownGroup = nil
    group = nil
case .nioSingleton:
    ownGroup = nil
    group = MultiThreadedEventLoopGroup.singleton
}
var logger = Logger(label: "modbus.server")
logger.logLevel = .info
var configuration = ModbusServerConfiguration(host: "127.0.0.1", port: port)
// Room for the 100- and 1,000-connection scenarios (the default is 32).
configuration.maxConnections = 1100
let server = ModbusServer(
    configuration: configuration,
    readHandler: ConstantRegisters.readHandler(form),
    writeHandler: DiscardingWrites.writeHandler(form),
    eventLoopGroup: group,
    logger: logger
)

try server.startBlocking()
print("ModbusServerBenchmark listening on 127.0.0.1:\(port) with the \(form.rawValue) read handler")

Termination.wait()
server.stopBlocking()
try ownGroup?.syncShutdownGracefully()
print("stopped")
