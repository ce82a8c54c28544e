/// Messages whose topics match chosen filters, delivered on a sequence of their own, with a
/// buffer and an overflow policy of their own, instead of ``MQTTClient/messages``.
///
/// Use it for messages that must not wait behind, or be dropped for, a flood on other topics:
/// replies to requests, say, among telemetry. Each message goes to exactly one place, chosen by
/// its topic when it arrives, so the messages of one topic keep their order (only a change of
/// filters can put a message of a topic on the other side of one received just before).
///
/// ```swift
/// let replies = try client.routeMessages(matching: ["devices/+/reply"], capacity: 1024, whenFull: .holdBack)
/// Task { for await reply in replies.messages { handle(reply) } }
/// Task { for await telemetry in client.messages { ingest(telemetry) } }
/// ```
///
/// A route only sorts what the client receives; it subscribes to nothing. The route stays in
/// force until ``close()`` or until the client is deallocated.
public final class MQTTMessageRoute: Sendable {
    /// What happens when a message arrives and the route's buffer is full.
    public enum OverflowPolicy: Sendable, Hashable {
        /// The oldest buffered message of the route is dropped, counted in
        /// ``MQTTMessageRoute/droppedMessageCount`` and logged (like ``MQTTClient/messages``).
        case dropOldest
        /// Nothing is dropped: the client stops reading from the broker until the consumer has
        /// taken a message, so TCP and the broker hold what follows (messages on other topics
        /// included, and a broker may drop QoS 0 messages it cannot queue). Each wait is counted
        /// in ``MQTTMessageRoute/heldBackCount`` and logged. The consumer must keep iterating:
        /// while it does not, the client sends and receives nothing, not even keep-alive pings.
        case holdBack
    }

    /// The messages on the route's filters, in the order they arrived. Iterate it from one task.
    /// It finishes after ``close()`` (once the buffered messages are taken) or when the client
    /// is deallocated.
    public let messages: MQTTMessageSequence
    /// The most messages that wait in the route's buffer.
    public var capacity: Int { sink.capacity }
    /// What happens when the buffer is full.
    public var overflowPolicy: OverflowPolicy { sink.policy }

    private let sink: RouteSink
    private let router: MessageRouter

    init(sink: RouteSink, router: MessageRouter) {
        self.sink = sink
        self.router = router
        self.messages = MQTTMessageSequence(buffer: sink.buffer, slots: sink.slots)
    }

    /// The topic filters whose messages the route receives.
    public var filters: [String] { router.filters(of: sink) }

    /// Replaces the route's filters; messages received from now on are routed by the new ones.
    ///
    /// - Throws: ``MQTTError/Code/invalidArgument`` naming a filter that is not a valid topic
    ///   filter; the route then keeps its filters.
    public func setFilters(_ filters: [String]) throws(MQTTError) {
        router.setFilters(try MessageRouter.parse(filters), of: sink)
    }

    /// Messages of this route dropped because its consumer fell behind (``OverflowPolicy/dropOldest``)
    /// or had stopped consuming. Monotonic.
    public var droppedMessageCount: Int { sink.dropped.load(ordering: .relaxed) }

    /// How often the client had to wait for this route's consumer before it could read on
    /// (``OverflowPolicy/holdBack``). Monotonic.
    public var heldBackCount: Int { sink.heldBack.load(ordering: .relaxed) }

    /// Stops routing: messages on the route's filters go to ``MQTTClient/messages`` again, and
    /// ``messages`` finishes once the messages already buffered are taken.
    public func close() {
        if router.close(sink) { sink.buffer.finish() }
    }
}
