import NIOCore
import Synchronization

/// What the rest of the server knows of one open connection.
final class ModbusConnectionRecord: Sendable {
    let channel: any Channel
    /// `NIODeadline.uptimeNanoseconds` of the last request, for choosing which idle connection
    /// to close. Relaxed atomics: an approximate order is all the limit policy needs.
    private let lastActivity: Atomic<UInt64>
    /// Whether a request is waiting for an asynchronous handler.
    private let busy = Atomic<Bool>(false)

    init(channel: any Channel) {
        self.channel = channel
        self.lastActivity = Atomic(NIODeadline.now().uptimeNanoseconds)
    }

    func touch(_ now: NIODeadline) { lastActivity.store(now.uptimeNanoseconds, ordering: .relaxed) }
    func setBusy(_ value: Bool) { busy.store(value, ordering: .relaxed) }
    var isBusy: Bool { busy.load(ordering: .relaxed) }
    var lastActivityNanoseconds: UInt64 { lastActivity.load(ordering: .relaxed) }
}

/// The server's open connections, for the connection limit, the count and shutdown.
final class ModbusConnectionRegistry: Sendable {
    private let connections = Mutex<[ObjectIdentifier: ModbusConnectionRecord]>([:])

    enum Admission {
        case admitted
        case admittedAfterEvicting(ModbusConnectionRecord)
        case rejected
    }

    /// Adds a connection if the limit allows, evicting the oldest idle one under
    /// ``ModbusConnectionLimitPolicy/closeOldestIdle``.
    func admit(_ record: ModbusConnectionRecord, limit: Int, policy: ModbusConnectionLimitPolicy) -> Admission {
        connections.withLock { connections in
            if connections.count < limit {
                connections[ObjectIdentifier(record)] = record
                return .admitted
            }
            guard policy == .closeOldestIdle,
                let victim = connections.values.filter({ !$0.isBusy }).min(by: {
                    $0.lastActivityNanoseconds < $1.lastActivityNanoseconds
                })
            else { return .rejected }
            connections[ObjectIdentifier(victim)] = nil
            connections[ObjectIdentifier(record)] = record
            return .admittedAfterEvicting(victim)
        }
    }

    func remove(_ record: ModbusConnectionRecord) {
        _ = connections.withLock { $0.removeValue(forKey: ObjectIdentifier(record)) }
    }

    var count: Int { connections.withLock { $0.count } }

    var all: [ModbusConnectionRecord] { connections.withLock { Array($0.values) } }
}
