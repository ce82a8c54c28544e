import Logging

/// An MQTT client over libmosquitto.
///
/// ```swift
/// let client = try MQTTClient(configuration: MQTTConfiguration(host: "broker", clientID: "gateway-1"))
/// try await client.connect()
/// try await client.subscribe("plant/+/temp", qos: .atLeastOnce)
/// Task {
///     for await message in client.messages { handle(message) }
/// }
/// try await client.publish(topic: "plant/boiler/sp/set", payload: Array("21.5".utf8), qos: .atLeastOnce)
/// ```
///
/// **Threads.** Each connection session has a dedicated loop thread (not a
/// Swift concurrency thread) that runs libmosquitto's blocking connect and its
/// network loop; received messages and state changes are produced there and
/// handed to the async sequences. The methods below may be called from any
/// task; they never block a cooperative thread on I/O.
///
/// **Connection lifecycle.** ``connect()`` returns once the broker accepted
/// the connection; by default it throws the first attempt's error. Afterwards
/// the client reconnects by itself with bounded exponential backoff
/// (``MQTTReconnectPolicy``) and restores every subscription on each new
/// connection before reporting ``MQTTConnectionState/connected`` again.
///
/// **Operations while disconnected** fail at once with
/// ``MQTTError/Code/notConnected``; nothing is queued for later. Operations in
/// flight when the connection drops fail with
/// ``MQTTError/Code/connectionLost``. Every operation has a time limit, so
/// none can hang.
public final class MQTTClient: Sendable {
    private let core: ClientCore

    /// Every message received on any subscription, in order, across
    /// reconnections. See ``MQTTMessageSequence`` for the buffering policy.
    public let messages: MQTTMessageSequence

    /// Creates a client. Nothing is sent until ``connect()``.
    ///
    /// - Parameters:
    ///   - configuration: broker address, credentials, TLS, will, timeouts.
    ///   - logger: receives connection events, dropped-message warnings and
    ///     (at trace level) libmosquitto's own log.
    /// - Throws: ``MQTTError`` if the configuration is unusable (for example a
    ///   missing CA file).
    public init(configuration: MQTTConfiguration, logger: Logger = Logger(label: "mqtt")) throws {
        self.core = try ClientCore(configuration: configuration, logger: logger)
        self.messages = MQTTMessageSequence(buffer: self.core.messages)
    }

    deinit {
        self.core.shutdown()
    }

    /// The configuration the client was created with.
    public var configuration: MQTTConfiguration {
        self.core.configuration
    }

    /// The libmosquitto version in use, such as `2.0.11`.
    public static var libraryVersion: String {
        MosquittoLibrary.version
    }

    /// The current connection state.
    public var state: MQTTConnectionState {
        self.core.currentState
    }

    /// Calls waiting for the broker's acknowledgement: QoS 1/2 publishes, subscribes and
    /// unsubscribes (for tests and diagnostics).
    var pendingOperationCount: Int {
        self.core.pendingOperationCount
    }

    /// The current state followed by every change, for as many observers as
    /// needed (each call returns an independent sequence).
    public func connectionStates() -> MQTTConnectionStateSequence {
        MQTTConnectionStateSequence(stream: self.core.connectionStates())
    }

    /// How many subscriptions the client keeps, and how many the broker has acknowledged on
    /// the current connection: use it to tell "connected" from "connected and subscribed"
    /// (after a reconnection the client reports ``MQTTConnectionState/connected`` once every
    /// restored subscription was answered, but a refused or unanswered one is not in force).
    public var subscriptionCounts: MQTTSubscriptionCounts {
        self.core.subscriptionCounts
    }

    /// Messages dropped because the consumer of ``messages`` fell behind by
    /// more than ``MQTTConfiguration/messageBufferCapacity`` messages (or had
    /// stopped consuming). Monotonic over the client's lifetime. A route's own
    /// drops are counted by the route (``MQTTMessageRoute/droppedMessageCount``).
    public var droppedMessageCount: Int {
        self.core.droppedMessageCount
    }

    /// The number of the latest broker connection that has ended (0 while none has), in the
    /// numbering of ``MQTTMessage/connection``. It is updated before the loss is reported to
    /// ``connectionStates()``, so an observer that sees `.disconnected` can tell the messages
    /// still buffered from before the loss (`connection <= lastEndedConnection`) from those
    /// of a newer connection.
    public var lastEndedConnection: UInt64 {
        self.core.lastEndedConnection
    }

    /// Delivers the messages whose topics match `filters` on a sequence of their own, with a
    /// buffer of `capacity` messages and its own overflow policy, instead of on ``messages``.
    ///
    /// Create routes before connecting, so that no message on their filters reaches
    /// ``messages`` first. When the filters of several routes match a topic, the route created
    /// first receives the message. A route subscribes to nothing: subscribe to its filters (or
    /// wider ones) as usual.
    ///
    /// - Throws: ``MQTTError/Code/invalidArgument`` for a capacity below 1 or a filter that is
    ///   not a valid topic filter.
    public func routeMessages(
        matching filters: [String],
        capacity: Int,
        whenFull policy: MQTTMessageRoute.OverflowPolicy = .dropOldest
    ) throws(MQTTError) -> MQTTMessageRoute {
        guard capacity > 0 else {
            throw MQTTError(code: .invalidArgument, reason: "a route's capacity must be positive")
        }
        let parsed = try MessageRouter.parse(filters)
        return MQTTMessageRoute(
            sink: self.core.router.open(parsed, capacity: capacity, policy: policy),
            router: self.core.router
        )
    }

    /// Connects to the broker and returns when the connection is established
    /// (CONNACK accepted and remembered subscriptions restored).
    ///
    /// The attempt is limited by ``MQTTConfiguration/connectTimeout``. Unless
    /// ``MQTTReconnectPolicy/retryInitialConnect`` is set, a failed first
    /// attempt throws (for example ``MQTTError/Code/notAuthorized`` for a bad
    /// password or ``MQTTError/Code/tls`` for an untrusted server certificate)
    /// and leaves the client disconnected. Cancelling the calling task stops
    /// the attempt.
    ///
    /// - Throws: ``MQTTError``, or `CancellationError`.
    public func connect() async throws {
        try await self.core.connect()
    }

    /// Closes the connection with a DISCONNECT packet and stops reconnecting.
    ///
    /// Operations still pending fail with ``MQTTError/Code/disconnected``. The
    /// subscriptions are remembered and restored by the next ``connect()``.
    ///
    /// - Parameter publishingWill: MQTT 5 only: ask the broker to publish the
    ///   will anyway (DISCONNECT reason code 0x04). Ignored, with a warning,
    ///   over MQTT 3.1.1.
    public func disconnect(publishingWill: Bool = false) async {
        await self.core.disconnect(publishingWill: publishingWill)
    }

    /// Subscribes to a topic filter and returns the QoS the broker granted,
    /// once the SUBACK arrives.
    ///
    /// The subscription is remembered and restored after every reconnection.
    ///
    /// - Parameters:
    ///   - filter: topic filter, wildcards `+` and `#` allowed.
    ///   - qos: the maximum QoS to receive messages with.
    ///   - options: MQTT 5 subscription options.
    ///   - timeout: time limit; ``MQTTConfiguration/operationTimeout`` if `nil`.
    /// - Throws: ``MQTTError/Code/subscriptionRejected`` when the broker
    ///   refuses, ``MQTTError/Code/notConnected``,
    ///   ``MQTTError/Code/connectionLost``, ``MQTTError/Code/timeout``,
    ///   ``MQTTError/Code/invalidArgument`` for a malformed filter, or
    ///   `CancellationError`.
    @discardableResult
    public func subscribe(
        _ filter: String,
        qos: MQTTQoS = .atLeastOnce,
        options: MQTTSubscriptionOptions = MQTTSubscriptionOptions(),
        timeout: Duration? = nil
    ) async throws -> MQTTQoS {
        try await self.core.subscribe(filter, qos: qos, options: options, timeout: timeout)
    }

    /// Subscribes to many topic filters at once and returns, once every SUBACK has arrived, the
    /// outcome of each filter, in the order given.
    ///
    /// The filters go in as few SUBSCRIBE packets as fit (up to 1,000 filters and 64 KiB of them
    /// per packet), all in flight together: a broker answers 10,000 filters in a few round trips
    /// instead of 10,000. Each filter stands on its own: the broker may grant some and refuse
    /// others of one packet; a granted filter is remembered and restored after every
    /// reconnection, as with ``subscribe(_:qos:options:timeout:)``. A packet that fails as a
    /// whole (not connected, connection lost, no SUBACK in time) fails each of its filters with
    /// that error, and a malformed filter fails alone, without being sent.
    ///
    /// - Parameters:
    ///   - filters: topic filters, wildcards `+` and `#` allowed.
    ///   - qos: the maximum QoS to receive messages with, for every filter.
    ///   - options: MQTT 5 subscription options, for every filter.
    ///   - timeout: time limit per packet; ``MQTTConfiguration/operationTimeout`` if `nil`.
    /// - Returns: per filter, the QoS granted, or the error: ``MQTTError/Code/subscriptionRejected``
    ///   (refused by the broker), ``MQTTError/Code/invalidArgument`` (malformed),
    ///   ``MQTTError/Code/notConnected``, ``MQTTError/Code/connectionLost``,
    ///   ``MQTTError/Code/timeout``.
    /// - Throws: ``MQTTError/Code/notSupported`` for options over MQTT 3.1.1, or
    ///   `CancellationError`.
    public func subscribe(
        _ filters: [String],
        qos: MQTTQoS = .atLeastOnce,
        options: MQTTSubscriptionOptions = MQTTSubscriptionOptions(),
        timeout: Duration? = nil
    ) async throws -> [Result<MQTTQoS, MQTTError>] {
        try await self.core.subscribe(filters, qos: qos, options: options, timeout: timeout)
    }

    /// Unsubscribes from a topic filter and returns when the UNSUBACK arrives.
    ///
    /// Once the request is sent the filter is no longer restored on
    /// reconnection, even if this call then fails. Messages already on their
    /// way may still arrive afterwards.
    ///
    /// - Throws: ``MQTTError`` (`notConnected`, `connectionLost`, `timeout`,
    ///   `invalidArgument`) or `CancellationError`.
    public func unsubscribe(_ filter: String, timeout: Duration? = nil) async throws {
        try await self.core.unsubscribe(filter, timeout: timeout)
    }

    /// Publishes a message.
    ///
    /// - QoS 0 completes as soon as libmosquitto has queued the message for
    ///   sending.
    /// - QoS 1 completes on the broker's PUBACK, QoS 2 on its PUBCOMP. An
    ///   MQTT 5 failure reason code (0x80 or above) throws
    ///   ``MQTTError/Code/publishRejected``.
    ///
    /// While the client is not connected the call throws
    /// ``MQTTError/Code/notConnected`` at once and nothing is queued. If the
    /// connection drops before the acknowledgement, the call throws
    /// ``MQTTError/Code/connectionLost``: the broker may or may not have the
    /// message, and libmosquitto retransmits unacknowledged QoS 1/2 messages
    /// after reconnecting (MQTT's at-least-once rule), so it may still be
    /// delivered. With no acknowledgement before `timeout` the call throws
    /// ``MQTTError/Code/timeout`` (same caveat).
    ///
    /// - Parameters:
    ///   - topic: topic name (no wildcards).
    ///   - payload: the bytes to send.
    ///   - qos: quality of service.
    ///   - retain: ask the broker to retain the message for future subscribers.
    ///   - properties: MQTT 5 properties (response topic, correlation data,
    ///     user properties, content type...); must be empty over MQTT 3.1.1.
    ///   - timeout: time limit for QoS 1/2;
    ///     ``MQTTConfiguration/operationTimeout`` if `nil`.
    public func publish(
        topic: String,
        payload: [UInt8],
        qos: MQTTQoS = .atMostOnce,
        retain: Bool = false,
        properties: MQTTProperties = MQTTProperties(),
        timeout: Duration? = nil
    ) async throws {
        try await self.core.publish(
            topic: topic,
            payload: payload,
            qos: qos,
            retain: retain,
            properties: properties,
            timeout: timeout
        )
    }
}
