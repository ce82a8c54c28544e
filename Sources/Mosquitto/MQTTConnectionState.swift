/// The connection state of an ``MQTTClient``.
///
/// A lost connection goes `.connected` → `.disconnected(reason:)` (with the
/// error) → `.connecting` → `.connected` (or back to `.disconnected` with the
/// attempt's error, then `.connecting` again after the backoff delay).
public enum MQTTConnectionState: Sendable, Hashable, CustomStringConvertible {
    /// Not connected. `reason` is `nil` before the first ``MQTTClient/connect()``
    /// and after ``MQTTClient/disconnect(publishingWill:)``; otherwise it is why
    /// the connection or the last attempt failed, and a reconnection is
    /// scheduled (unless the failed attempt was the initial one and
    /// ``MQTTReconnectPolicy/retryInitialConnect`` is off).
    case disconnected(reason: MQTTError?)
    /// A connection attempt is in progress (TCP, TLS, CONNECT/CONNACK, and the
    /// restoration of subscriptions).
    case connecting
    /// Connected, subscriptions restored; publish/subscribe are accepted.
    case connected

    /// True in the `.connected` state.
    public var isConnected: Bool {
        if case .connected = self { return true }
        return false
    }

    /// `connected`, `connecting`, `disconnected` or `disconnected(<error>)`.
    public var description: String {
        switch self {
        case .connected: return "connected"
        case .connecting: return "connecting"
        case .disconnected(reason: nil): return "disconnected"
        case .disconnected(reason: let error?): return "disconnected(\(error))"
        }
    }
}

/// An asynchronous sequence of connection states: the state current when the
/// sequence was created, then every change.
///
/// Each sequence has its own small buffer that keeps the newest states, so a
/// slow observer may miss intermediate states but always ends on the current
/// one. The sequence finishes when the client is deallocated.
public struct MQTTConnectionStateSequence: AsyncSequence, Sendable {
    /// The element type.
    public typealias Element = MQTTConnectionState
    /// Never fails.
    public typealias Failure = Never

    let stream: AsyncStream<MQTTConnectionState>

    /// Creates the iterator.
    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(base: self.stream.makeAsyncIterator())
    }

    /// Iterator over connection states.
    public struct AsyncIterator: AsyncIteratorProtocol {
        var base: AsyncStream<MQTTConnectionState>.AsyncIterator

        /// The next state, or `nil` once the client is gone or the task is
        /// cancelled.
        public mutating func next() async -> MQTTConnectionState? {
            await self.base.next()
        }

        /// The next state, or `nil` once the client is gone or the task is
        /// cancelled.
        public mutating func next(isolation actor: isolated (any Actor)?) async -> MQTTConnectionState? {
            await self.base.next(isolation: actor)
        }
    }
}

/// The messages a client receives, in the order the broker sent them, across
/// all its subscriptions and across reconnections.
///
/// Iterate it from one task. Messages wait in a bounded buffer
/// (``MQTTConfiguration/messageBufferCapacity``) until the consumer takes them;
/// when the consumer is slower than the broker and the buffer is full, the
/// oldest buffered message is dropped, counted in
/// ``MQTTClient/droppedMessageCount`` and reported by a warning log — never
/// silently. The sequence finishes when the client is deallocated. Messages
/// on the filters of a ``MQTTMessageRoute`` go to that route's sequence instead.
public struct MQTTMessageSequence: AsyncSequence, Sendable {
    /// The element type.
    public typealias Element = MQTTMessage
    /// Never fails; connection problems are reported by the connection state.
    public typealias Failure = Never

    let buffer: MessageBuffer
    /// A ``MQTTMessageRoute/OverflowPolicy/holdBack`` route's free places: each message taken
    /// gives one back.
    let slots: HoldBackSlots?

    init(buffer: MessageBuffer, slots: HoldBackSlots? = nil) {
        self.buffer = buffer
        self.slots = slots
    }

    /// Creates the iterator.
    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(buffer: self.buffer, slots: self.slots)
    }

    /// Iterator over received messages.
    public struct AsyncIterator: AsyncIteratorProtocol {
        let buffer: MessageBuffer
        let slots: HoldBackSlots?

        /// The next message, or `nil` once the client is gone or the task is
        /// cancelled.
        public mutating func next() async -> MQTTMessage? {
            let message = await self.buffer.next(isolation: nil)
            if message != nil { self.slots?.release() }
            return message
        }

        /// The next message, or `nil` once the client is gone or the task is
        /// cancelled.
        public mutating func next(isolation actor: isolated (any Actor)?) async -> MQTTMessage? {
            let message = await self.buffer.next(isolation: actor)
            if message != nil { self.slots?.release() }
            return message
        }
    }
}
