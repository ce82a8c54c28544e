// The reference design's minimal example: a dictionary-backed store served over Modbus TCP,
// with reads and writes.
//
//     swift run DictionaryStoreExample [port]        (default port 5020)
//     mbpoll -m tcp -p 5020 -t 4 -r 1 -c 3 127.0.0.1  (reads holding registers 0...2)
//
// Stop with Ctrl-C (SIGINT) or SIGTERM: the server finishes in-flight requests, then exits.

import Logging
import ModbusTCPServer
import ServiceLifecycle
import Synchronization

/// Your data store, whatever shape suits the application. Handlers run on several threads at
/// once (one per event loop), so it is protected by a mutex.
final class DictionaryStore: Sendable {
    private let areas = Mutex<[ModbusArea: [UInt16: UInt16]]>([
        .holdingRegister: [0: 100, 1: 200, 2: 300],
        .inputRegister: [0: 11, 1: 22],
        .coil: [0: 1, 1: 0],
        .discreteInput: [0: 1],
    ])

    func read(_ request: ModbusReadRequest) throws -> [UInt16] {
        try areas.withLock { areas in
            let area = areas[request.area] ?? [:]
            return try (0..<request.count).map { offset in
                let address = request.address + UInt16(offset)
                guard let value = area[address] else {
                    throw ModbusException(.illegalDataAddress, "no \(request.area) at \(address)")
                }
                return value
            }
        }
    }

    func write(_ request: ModbusWriteRequest) throws {
        try areas.withLock { areas in
            // Only addresses that exist can be written: all of them or none.
            for offset in request.values.indices where areas[request.area]?[request.address + UInt16(offset)] == nil {
                throw ModbusException(.illegalDataAddress, "no \(request.area) at \(request.address + UInt16(offset))")
            }
            for (offset, value) in request.values.enumerated() {
                areas[request.area]![request.address + UInt16(offset)] = value
            }
        }
    }
}

LoggingSystem.bootstrap { label in
    var handler = StreamLogHandler.standardError(label: label)
    handler.logLevel = .info
    return handler
}

let port = CommandLine.arguments.dropFirst().first.flatMap(Int.init) ?? 5020
let store = DictionaryStore()
let server = ModbusServer(
    configuration: ModbusServerConfiguration(host: "0.0.0.0", port: port),
    readHandler: .sync { try store.read($0) },
    writeHandler: .sync { try store.write($0) }
)

let logger = Logger(label: "example")
let services = ServiceGroup(services: [server], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
try await services.run()
