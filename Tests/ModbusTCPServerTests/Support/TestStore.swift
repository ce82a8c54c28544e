import CoreMetrics
import Logging
import ModbusTCPServer
import Synchronization

/// A complete 65536-address image of every area, for tests. Reads and writes outside the
/// `limit` (exclusive) of an area throw illegal data address, so tests can probe both sides.
final class TestStore: Sendable {
    private let areas: Mutex<[ModbusArea: [UInt16]]>
    let limit: Int
    let writes = Mutex<[ModbusWriteRequest]>([])

    init(limit: Int = 1000) {
        self.limit = limit
        var areas: [ModbusArea: [UInt16]] = [:]
        for area in ModbusArea.allCases {
            areas[area] = (0..<limit).map { area.isBitArea ? UInt16($0 % 3 == 0 ? 1 : 0) : UInt16($0) }
        }
        self.areas = Mutex(areas)
    }

    func read(_ request: ModbusReadRequest) throws -> [UInt16] {
        guard Int(request.address) + request.count <= limit else {
            throw ModbusException(.illegalDataAddress, "beyond the test store")
        }
        return areas.withLock { Array($0[request.area]![Int(request.address)..<Int(request.address) + request.count]) }
    }

    func write(_ request: ModbusWriteRequest) throws {
        guard Int(request.address) + request.values.count <= limit else {
            throw ModbusException(.illegalDataAddress, "beyond the test store")
        }
        areas.withLock { areas in
            for (offset, value) in request.values.enumerated() {
                areas[request.area]![Int(request.address) + offset] = value
            }
        }
        writes.withLock { $0.append(request) }
    }

    func value(_ area: ModbusArea, _ address: Int) -> UInt16 {
        areas.withLock { $0[area]![address] }
    }

    func set(_ area: ModbusArea, _ address: Int, _ value: UInt16) {
        areas.withLock { $0[area]![address] = value }
    }
}

/// Starts a server on an ephemeral loopback port, runs `body`, and always stops the server.
extension ModbusServerConfiguration {
    /// A test server on 127.0.0.1 and a free port, changed by `change`.
    static func loopback(_ change: (inout Self) -> Void = { _ in }) -> Self {
        var configuration = ModbusServerConfiguration(host: "127.0.0.1", port: 0)
        change(&configuration)
        return configuration
    }
}

func withServer<T>(
    _ configuration: ModbusServerConfiguration = .loopback(),
    read: ModbusReadHandler,
    write: ModbusWriteHandler?,
    logger: Logger = Logger(label: "test.modbus.server"),
    wireLogger: Logger = Logger(label: "test.modbus.wire"),
    observer: ModbusRequestObserver? = nil,
    metrics: (any MetricsFactory)? = nil,
    _ body: (ModbusServer, Int) async throws -> T
) async throws -> T {
    let server = ModbusServer(
        configuration: configuration,
        readHandler: read,
        writeHandler: write,
        logger: logger,
        wireLogger: wireLogger,
        requestObserver: observer,
        metricsFactory: metrics ?? MetricsSystem.factory
    )
    try await server.start()
    do {
        let result = try await body(server, server.port!)
        await server.stop()
        return result
    } catch {
        await server.stop()
        throw error
    }
}

/// The three handler forms over one store, so every rule can be checked through each path.
enum HandlerForm: String, CaseIterable, Sendable, CustomStringConvertible {
    case sync, syncInPlace, async
    var description: String { rawValue }

    func read(_ store: TestStore) -> ModbusReadHandler {
        switch self {
        case .sync: .sync { try store.read($0) }
        case .syncInPlace: .syncInPlace { request, values in values.append(contentsOf: try store.read(request)) }
        case .async:
            .async { request in
                await Task.yield()
                return try store.read(request)
            }
        }
    }

    func write(_ store: TestStore) -> ModbusWriteHandler {
        switch self {
        case .sync, .syncInPlace: .sync { try store.write($0) }
        case .async:
            .async { request in
                await Task.yield()
                try store.write(request)
            }
        }
    }
}

/// Collects log records, to check what the server logs.
final class LogCapture: Sendable {
    struct Record: Sendable {
        var level: Logger.Level
        var label: String
        var message: String
        var metadata: [String: String]
    }
    let records = Mutex<[Record]>([])

    func logger(_ label: String) -> Logger {
        var logger = Logger(label: label) { label in Handler(label: label, capture: self) }
        logger.logLevel = .trace
        return logger
    }

    func messages(at level: Logger.Level? = nil) -> [Record] {
        records.withLock { $0.filter { level == nil || $0.level == level } }
    }

    struct Handler: LogHandler {
        let label: String
        let capture: LogCapture
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            var merged = metadata.mapValues { "\($0)" }
            for (key, value) in event.metadata ?? [:] { merged[key] = "\(value)" }
            let record = Record(level: event.level, label: label, message: "\(event.message)", metadata: merged)
            capture.records.withLock { $0.append(record) }
        }
    }
}
