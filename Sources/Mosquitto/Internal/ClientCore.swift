import CMosquitto
import Dispatch
import Foundation
import Logging
import Synchronization

/// The `struct mosquitto *` of one client.
///
/// `@unchecked Sendable` because libmosquitto itself makes the calls we share
/// between threads safe: with `mosquitto_threaded_set(true)`, `publish`,
/// `subscribe`, `unsubscribe` and `disconnect` only queue a packet under the
/// library's own mutexes and wake the loop thread; everything else (connect,
/// the network loop, destroy) is only ever called from the loop thread or
/// when no loop thread exists.
struct MosquittoHandle: @unchecked Sendable {
    let pointer: OpaquePointer
}

/// Owns the libmosquitto handle and the loop thread, and executes what the
/// client's state machine decides.
///
/// The session logic (reconnection, backoff, restored subscriptions, pending
/// operations and their deadlines) is in ``ClientStateMachine``, a value with no
/// I/O. This class turns libmosquitto's callbacks and the application's calls
/// into its transitions, and carries out the actions they return: the
/// libmosquitto calls, resuming the waiting tasks, telling the observers.
///
/// Thread model:
/// - One loop thread per connection session (started by `connect()`, ended by
///   `disconnect()`) runs `mosquitto_connect` (blocking DNS/TCP) and
///   `mosquitto_loop`; every libmosquitto callback runs on it and finds this
///   object through the C userdata pointer.
/// - Public methods run on the caller's task. They take the state lock and make
///   at most one non-blocking libmosquitto call (queueing a packet) inside it.
///
/// Lock order: `state` → libmosquitto's internal mutexes → `libraryLog`. The
/// loop thread calls back into us holding only libmosquitto's
/// `callback_mutex` (and `current_out_packet_mutex` for a QoS 0 publish),
/// neither of which a queueing call takes, so holding `state` across
/// `mosquitto_publish` cannot deadlock (checked against libmosquitto 2.0.11's
/// sources). Holding it is what closes the race between learning a message id
/// and its acknowledgement arriving on the loop thread.
final class ClientCore: Sendable {
    typealias StateMachine = ClientStateMachine<Waiter>

    /// Everything behind the state lock.
    struct State: Sendable {
        var machine: StateMachine
        /// The `connectionStates()` sequences the machine's state changes go to.
        var observers: [UInt64: AsyncStream<MQTTConnectionState>.Continuation] = [:]
    }

    let configuration: MQTTConfiguration
    let logger: Logger
    let handle: MosquittoHandle
    /// The main sequence's messages (those no route takes).
    let messages: MessageBuffer
    let state: Locked<State>
    /// Error lines libmosquitto logged during the current connection attempt:
    /// the only place OpenSSL's reason for a TLS failure appears. A separate
    /// lock because libmosquitto logs from inside calls made under `state`.
    let libraryLog = Locked<[String]>([])
    let droppedMessages = Atomic<Int>(0)
    /// Broker connections accepted so far (CONNACK success): the number received messages are
    /// stamped with. Written on the loop thread only.
    let acceptedConnections = Atomic<UInt64>(0)
    /// The number of the latest accepted connection that has ended, stored before the loss is
    /// reported to `connectionStates()`.
    let endedConnections = Atomic<UInt64>(0)
    /// Sends the messages of some topics to routes of their own (``MQTTMessageRoute``).
    let router = MessageRouter()
    let tokens = Atomic<UInt64>(0)
    /// Wakes the loop thread from a backoff wait.
    let wakeup = DispatchSemaphore(value: 0)

    /// How long a closing loop thread waits for DISCONNECT to be written.
    static let disconnectFlushTime: Duration = .seconds(1)

    init(configuration: MQTTConfiguration, logger: Logger) throws(MQTTError) {
        try MosquittoLibrary.initialize()
        try Self.validate(configuration)
        guard let pointer = mosquitto_new(configuration.clientID, configuration.cleanSession, nil) else {
            let errorNumber = errno
            throw MQTTError(
                code: errorNumber == EINVAL ? .invalidArgument : .library,
                reason: "mosquitto_new failed: \(MosquittoResult.systemErrorText(errorNumber))"
            )
        }
        do {
            try Self.apply(configuration, to: pointer)
        } catch {
            mosquitto_destroy(pointer)
            throw error
        }
        self.configuration = configuration
        self.logger = logger
        self.handle = MosquittoHandle(pointer: pointer)
        self.messages = MessageBuffer(capacity: configuration.messageBufferCapacity)
        self.state = Locked(State(machine: StateMachine(configuration: configuration)))
        // Unretained: the loop thread holds a strong reference while it runs,
        // and callbacks only happen inside calls made by this object.
        mosquitto_user_data_set(pointer, Unmanaged.passUnretained(self).toOpaque())
        MosquittoCallbacks.install(on: pointer)
    }

    deinit {
        mosquitto_destroy(self.handle.pointer)
    }

    // MARK: Configuration

    static func validate(_ configuration: MQTTConfiguration) throws(MQTTError) {
        guard (0...Int(UInt16.max)).contains(configuration.port) else {
            throw MQTTError(code: .invalidArgument, reason: "port \(configuration.port) is out of range")
        }
        let keepAlive = configuration.keepAlive.wholeSeconds
        guard keepAlive == 0 || (5...Int64(UInt16.max)).contains(keepAlive) else {
            throw MQTTError(code: .invalidArgument, reason: "keep-alive must be 0 or 5...65535 seconds")
        }
        guard configuration.messageBufferCapacity > 0 else {
            throw MQTTError(code: .invalidArgument, reason: "messageBufferCapacity must be positive")
        }
        guard (0...Int(UInt16.max)).contains(configuration.maxInflightMessages) else {
            throw MQTTError(code: .invalidArgument, reason: "maxInflightMessages must be 0...65535")
        }
        if configuration.clientID == nil && !configuration.cleanSession {
            throw MQTTError(
                code: .invalidArgument,
                reason: "a persistent session (cleanSession false) needs a clientID"
            )
        }
        if configuration.password != nil && configuration.username == nil {
            throw MQTTError(code: .invalidArgument, reason: "a password needs a username")
        }
        if configuration.protocolVersion == .v311 {
            if configuration.will.map({ !$0.properties.isEmpty }) == true {
                throw MQTTError(code: .notSupported, reason: "will properties need MQTT 5")
            }
        }
        if let tls = configuration.tls, tls.caFile == nil && tls.caDirectory == nil {
            throw MQTTError(code: .invalidArgument, reason: "TLS needs caFile or caDirectory")
        }
    }

    static func apply(_ configuration: MQTTConfiguration, to pointer: OpaquePointer) throws(MQTTError) {
        func check(_ rc: Int32, _ what: String) throws(MQTTError) {
            guard rc == MOSQ_ERR_SUCCESS.rawValue else {
                var error = MosquittoResult.error(rc)
                error.detail = [what, error.detail].compactMap { $0 }.joined(separator: ": ")
                throw error
            }
        }
        let version = configuration.protocolVersion == .v5 ? MQTT_PROTOCOL_V5 : MQTT_PROTOCOL_V311
        try check(mosquitto_int_option(pointer, MOSQ_OPT_PROTOCOL_VERSION, version), "protocol version")
        try check(mosquitto_int_option(pointer, MOSQ_OPT_TCP_NODELAY, configuration.tcpNoDelay ? 1 : 0), "TCP_NODELAY")
        try check(
            mosquitto_int_option(pointer, MOSQ_OPT_SEND_MAXIMUM, Int32(configuration.maxInflightMessages)),
            "max inflight messages"
        )
        // Declares that another thread runs the network loop: queueing calls
        // then never write to the socket themselves but wake the loop thread.
        try check(mosquitto_threaded_set(pointer, true), "threaded mode")
        if let username = configuration.username {
            try check(mosquitto_username_pw_set(pointer, username, configuration.password), "username/password")
        }
        if let will = configuration.will {
            var properties = try OutgoingProperties.message(will.properties)
            let rc = will.payload.withUnsafeBytes { bytes in
                mosquitto_will_set_v5(
                    pointer,
                    will.topic,
                    Int32(clamping: bytes.count),
                    bytes.baseAddress,
                    Int32(will.qos.rawValue),
                    will.retain,
                    properties.list
                )
            }
            // On success libmosquitto owns the property list; on failure we do.
            if rc != MOSQ_ERR_SUCCESS.rawValue { properties.free() }
            try check(rc, "will")
        }
        if let tls = configuration.tls {
            try check(
                mosquitto_tls_set(pointer, tls.caFile, tls.caDirectory, tls.certificateFile, tls.privateKeyFile, nil),
                "TLS certificates"
            )
            try check(
                mosquitto_tls_opts_set(pointer, tls.verifyServerCertificate ? 1 : 0, tls.tlsVersion, tls.ciphers),
                "TLS options"
            )
            try check(mosquitto_tls_insecure_set(pointer, !tls.verifyHostname), "TLS host name verification")
        }
    }

    // MARK: Tokens, observers

    func nextToken() -> UInt64 {
        self.tokens.add(1, ordering: .relaxed).newValue
    }

    var currentState: MQTTConnectionState {
        self.state.withLock { $0.machine.connectionState }
    }

    var pendingOperationCount: Int {
        self.state.withLock { $0.machine.pendingOperationCount }
    }

    var subscriptionCounts: MQTTSubscriptionCounts {
        self.state.withLock { state in
            MQTTSubscriptionCounts(
                remembered: state.machine.subscriptions.count,
                acknowledged: state.machine.acknowledgedFilters.count,
                pending: state.machine.pendingSubscribeCount
            )
        }
    }

    var droppedMessageCount: Int {
        self.droppedMessages.load(ordering: .relaxed)
    }

    var lastEndedConnection: UInt64 {
        self.endedConnections.load(ordering: .acquiring)
    }

    func connectionStates() -> AsyncStream<MQTTConnectionState> {
        let (stream, continuation) = AsyncStream.makeStream(
            of: MQTTConnectionState.self,
            bufferingPolicy: .bufferingNewest(32)
        )
        let token = self.nextToken()
        let closed = self.state.withLock { state -> Bool in
            continuation.yield(state.machine.connectionState)
            if state.machine.isClosed { return true }
            state.observers[token] = continuation
            return false
        }
        if closed { continuation.finish() }
        return stream
    }
}
