import NIOCore
import Synchronization

/// What the rest of the server knows of one open connection.
final class ModbusConnectionRecord: Sendable {
    let channel: any Channel
    /// The peer's address, as logged.
    let peer: String
    /// `NIODeadline.uptimeNanoseconds` when the connection was accepted.
    let acceptedAt: UInt64
    /// Requests received, added once per read (not per frame) to keep the hot path to one
    /// relaxed atomic add per socket read.
    private let requestCount = Atomic<Int>(0)
    /// `NIODeadline.uptimeNanoseconds` of the last request, for choosing which idle connection
    /// to close. Relaxed atomics: an approximate order is all the limit policy needs.
    private let lastActivity: Atomic<UInt64>
    /// Whether a request is waiting for an asynchronous handler.
    private let busy = Atomic<Bool>(false)

    init(channel: any Channel, peer: String) {
        self.channel = channel
        self.peer = peer
        let now = NIODeadline.now().uptimeNanoseconds
        self.acceptedAt = now
        self.lastActivity = Atomic(now)
    }

    /// Counts `count` requests received, the last of them at `now`.
    func requestsReceived(_ count: Int, at now: NIODeadline) {
        requestCount.add(count, ordering: .relaxed)
        touch(now)
    }

    var requests: Int { requestCount.load(ordering: .relaxed) }

    /// What a status page shows of this connection.
    func snapshot(now: UInt64) -> ModbusConnectionSnapshot {
        let requests = self.requests
        let last = lastActivityNanoseconds
        return ModbusConnectionSnapshot(
            peer: peer,
            connectedFor: .nanoseconds(Int64(now &- min(now, acceptedAt))),
            requests: requests,
            sinceLastRequest: requests == 0 ? nil : .nanoseconds(Int64(now &- min(now, last)))
        )
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
                let victim = connections.values.filter({ !$0.isBusy }).min(by: Self.evictedBefore)
            else { return .rejected }
            connections[ObjectIdentifier(victim)] = nil
            connections[ObjectIdentifier(record)] = record
            return .admittedAfterEvicting(victim)
        }
    }

    /// The order in which idle connections make room: first those that never sent a request
    /// (a flood of silent connections then evicts its own, not a master that polls every few
    /// milliseconds but happens to be between two requests), then the one whose last request
    /// is oldest; among equals, the oldest activity.
    static func evictedBefore(_ first: ModbusConnectionRecord, _ second: ModbusConnectionRecord) -> Bool {
        let (firstUsed, secondUsed) = (first.requests > 0, second.requests > 0)
        if firstUsed != secondUsed { return !firstUsed }
        return first.lastActivityNanoseconds < second.lastActivityNanoseconds
    }

    func remove(_ record: ModbusConnectionRecord) {
        _ = connections.withLock { $0.removeValue(forKey: ObjectIdentifier(record)) }
    }

    var count: Int { connections.withLock { $0.count } }

    var all: [ModbusConnectionRecord] { connections.withLock { Array($0.values) } }
}

/// One open Modbus TCP connection, as ``ModbusServer/connections`` reports it.
public struct ModbusConnectionSnapshot: Sendable, Hashable {
    /// The master's address and port.
    public var peer: String
    /// How long the connection has been open.
    public var connectedFor: Duration
    /// Requests received on it (answered or not).
    public var requests: Int
    /// Time since the last request; `nil` before the first.
    public var sinceLastRequest: Duration?

    public init(peer: String, connectedFor: Duration, requests: Int, sinceLastRequest: Duration?) {
        self.peer = peer
        self.connectedFor = connectedFor
        self.requests = requests
        self.sinceLastRequest = sinceLastRequest
    }
}
