import Dispatch
import Logging
import Synchronization

/// The free places of a ``MQTTMessageRoute/OverflowPolicy/holdBack`` route's buffer: the loop
/// thread takes one per message it delivers, and waits when there is none; the consumer gives
/// one back per message it takes.
///
/// `@unchecked Sendable`: its stored properties are a semaphore and an atomic, both safe to use
/// from any thread.
final class HoldBackSlots: @unchecked Sendable {
    // Created at 0 and raised to the capacity: libdispatch refuses to release a semaphore whose
    // count is below the value it was created with, which a full buffer would be.
    private let semaphore = DispatchSemaphore(value: 0)
    private let ended = Atomic<Bool>(false)

    init(capacity: Int) {
        for _ in 0..<capacity { semaphore.signal() }
    }

    /// Takes a place, waiting for one when the buffer is full; `whileFull` runs before waiting.
    /// Returns at once once the consumer has gone (the message is then counted as dropped).
    func acquire(whileFull: () -> Void) {
        if ended.load(ordering: .acquiring) { return }
        if semaphore.wait(timeout: .now()) == .success { return }
        whileFull()
        semaphore.wait()
    }

    /// The consumer took a message.
    func release() {
        semaphore.signal()
    }

    /// Nobody will take messages any more: never wait again, and wake a waiting loop thread.
    func end() {
        ended.store(true, ordering: .releasing)
        semaphore.signal()
    }
}

/// One route's buffer: its stream, its overflow policy and its counters.
final class RouteSink: Sendable {
    /// Creation order: when the filters of several routes match a topic, the oldest route wins.
    let order: UInt64
    let capacity: Int
    let policy: MQTTMessageRoute.OverflowPolicy
    let buffer: MessageBuffer
    let slots: HoldBackSlots?
    let dropped = Atomic<Int>(0)
    let heldBack = Atomic<Int>(0)

    init(order: UInt64, capacity: Int, policy: MQTTMessageRoute.OverflowPolicy) {
        self.order = order
        self.capacity = capacity
        self.policy = policy
        let slots: HoldBackSlots?
        switch policy {
        case .dropOldest:
            slots = nil
            buffer = MessageBuffer(capacity: capacity, onTermination: nil)
        case .holdBack:
            // The places bound the buffer; the buffer itself never has to drop.
            slots = HoldBackSlots(capacity: capacity)
            buffer = MessageBuffer(capacity: nil, onTermination: { slots?.end() })
        }
        self.slots = slots
    }

    /// Hands a received message to the route's consumer (on the loop thread).
    func deliver(_ message: MQTTMessage, logger: Logger) {
        slots?.acquire {
            // The network loop stops here until the consumer takes a message: TCP and the
            // broker hold what follows, and nothing is dropped by this client.
            let total = heldBack.add(1, ordering: .relaxed).newValue
            if total == 1 || total % 1000 == 0 {
                logger.warning(
                    "MQTT route consumer is behind: reading from the broker waits for it",
                    metadata: ["times": "\(total)", "bufferCapacity": "\(capacity)", "topic": "\(message.topic)"]
                )
            }
        }
        switch buffer.yield(message) {
        case .enqueued:
            break
        case .dropped:
            let total = dropped.add(1, ordering: .relaxed).newValue
            if total == 1 || total % 1000 == 0 {
                logger.warning(
                    "MQTT route consumer is too slow: oldest buffered messages of the route dropped",
                    metadata: ["dropped": "\(total)", "bufferCapacity": "\(capacity)", "topic": "\(message.topic)"]
                )
            }
        case .terminated:
            let total = dropped.add(1, ordering: .relaxed).newValue
            if total == 1 || total % 1000 == 0 {
                logger.warning(
                    "MQTT message received after its route's sequence ended; dropped",
                    metadata: ["dropped": "\(total)", "topic": "\(message.topic)"]
                )
            }
        }
    }
}

/// Which route, if any, a received topic goes to. Consulted by the loop thread for every
/// message, so the common cases cost a hash lookup: no routes at all (one atomic load), or exact
/// topic names (one dictionary lookup); wildcard filters are matched one by one, without
/// allocating.
final class MessageRouter: Sendable {
    private struct Table: Sendable {
        /// Every open route with its filters, oldest first.
        var routes: [(sink: RouteSink, filters: [TopicFilter])] = []
        /// Topic name → the oldest route with exactly that filter.
        var exact: [String: RouteSink] = [:]
        /// Wildcard filters, in route order.
        var wildcards: [(filter: TopicFilter, sink: RouteSink)] = []

        mutating func rebuild() {
            exact = [:]
            wildcards = []
            for (sink, filters) in routes {
                for filter in filters {
                    if filter.isWildcard {
                        wildcards.append((filter, sink))
                    } else if exact[filter.text] == nil {
                        exact[filter.text] = sink
                    }
                }
            }
        }

        func sink(for topic: String) -> RouteSink? {
            let named = exact[topic]
            for (filter, sink) in wildcards {
                if let named, named.order <= sink.order { break }
                if filter.matches(topic) { return sink }
            }
            return named
        }
    }

    private let table = Locked(Table())
    private let hasRoutes = Atomic<Bool>(false)
    private let nextOrder = Atomic<UInt64>(0)

    /// Parses filters, or throws naming the first invalid one.
    static func parse(_ filters: [String]) throws(MQTTError) -> [TopicFilter] {
        var parsed: [TopicFilter] = []
        for filter in filters {
            guard let topicFilter = TopicFilter(filter) else {
                throw MQTTError(code: .invalidArgument, reason: "'\(filter)' is not a valid topic filter")
            }
            parsed.append(topicFilter)
        }
        return parsed
    }

    func open(_ filters: [TopicFilter], capacity: Int, policy: MQTTMessageRoute.OverflowPolicy) -> RouteSink {
        let sink = RouteSink(order: nextOrder.add(1, ordering: .relaxed).newValue, capacity: capacity, policy: policy)
        table.withLock { table in
            table.routes.append((sink, filters))
            table.rebuild()
        }
        hasRoutes.store(true, ordering: .releasing)
        return sink
    }

    func setFilters(_ filters: [TopicFilter], of sink: RouteSink) {
        table.withLock { table in
            guard let index = table.routes.firstIndex(where: { $0.sink === sink }) else { return }
            table.routes[index].filters = filters
            table.rebuild()
        }
    }

    func filters(of sink: RouteSink) -> [String] {
        table.withLock { table in
            table.routes.first { $0.sink === sink }?.filters.map(\.text) ?? []
        }
    }

    /// Stops routing to `sink`; returns false when it was closed already.
    @discardableResult
    func close(_ sink: RouteSink) -> Bool {
        table.withLock { table in
            guard let index = table.routes.firstIndex(where: { $0.sink === sink }) else { return false }
            table.routes.remove(at: index)
            table.rebuild()
            return true
        }
    }

    /// The route a message on `topic` goes to; nil for the client's main sequence.
    func sink(for topic: String) -> RouteSink? {
        guard hasRoutes.load(ordering: .acquiring) else { return nil }
        return table.withLock { $0.sink(for: topic) }
    }

    /// Every open route (to finish their sequences when the client goes away).
    func closeAll() -> [RouteSink] {
        table.withLock { table in
            let sinks = table.routes.map(\.sink)
            table.routes = []
            table.rebuild()
            return sinks
        }
    }
}
