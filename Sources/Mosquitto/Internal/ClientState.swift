/// The mutable state of a client, kept behind one lock in ``ClientCore``.
///
/// Everything the loop thread and the callers share lives here, so every
/// transition (a CONNACK, a lost connection, a publish being registered) is
/// atomic with respect to the others; that is what makes "publish while
/// disconnected fails fast" and "a pending publish fails when the connection
/// drops" deterministic.
struct ClientState {
    /// What the application asked for between `connect()` and `disconnect()`.
    var session: Session?
    /// The loop thread that owns the libmosquitto network I/O, if one runs.
    /// It can outlive its session briefly while it sends DISCONNECT.
    var loop: LoopThread?
    /// The public state, mirrored to every observer.
    var publicState: MQTTConnectionState = .disconnected(reason: nil)
    var observers: [UInt64: AsyncStream<MQTTConnectionState>.Continuation] = [:]
    /// Subscriptions to restore on every (re)connection, in the order made.
    var subscriptions: [Subscription] = []
    /// QoS 1/2 publishes waiting for PUBACK/PUBCOMP, by message id.
    var pendingPublishes: [Int32: PendingOperation<Void>] = [:]
    /// QoS 0 publishes whose message id equals that of a pending QoS 1/2
    /// publish (message ids are 16-bit and libmosquitto numbers QoS 0 messages
    /// too, so they wrap quickly under load). libmosquitto reports both with
    /// the same callback; this count tells the QoS 0 report apart.
    var qos0IDCollisions: [Int32: Int] = [:]
    var pendingSubscribes: [Int32: PendingSubscribe] = [:]
    var pendingUnsubscribes: [Int32: PendingOperation<Void>] = [:]
    /// Earliest deadline among pending operations (a cheap skip for the sweep).
    var earliestDeadline: ContinuousClock.Instant?
    /// Set when the owning ``MQTTClient`` is gone.
    var closed = false

    var isOperational: Bool {
        if case .connected? = self.session?.phase { return true }
        return false
    }

    mutating func noteDeadline(_ deadline: ContinuousClock.Instant) {
        if let earliest = self.earliestDeadline, earliest <= deadline { return }
        self.earliestDeadline = deadline
    }
}

struct Session {
    enum Phase {
        /// Waiting for the loop thread to start the next attempt.
        case idle
        /// The loop thread is inside the blocking `mosquitto_connect` call.
        case connectCall(attempt: Int)
        /// TCP (and TLS) set up, CONNECT sent, waiting for CONNACK.
        case awaitingConnack
        /// CONNACK accepted; waiting for the SUBACKs of restored subscriptions.
        case restoringSubscriptions
        case connected
        /// Waiting before the next attempt.
        case backoff(until: ContinuousClock.Instant)
    }

    let id: UInt64
    var phase: Phase = .idle
    /// The task in `connect()`, resumed on the first success or failure.
    var connectWaiter: CheckedContinuation<Void, any Error>?
    /// True once a connection has been fully established in this session.
    var hasConnected = false
    /// Consecutive failed attempts since the last successful connection.
    var failedAttempts = 0
    /// Start of the current attempt's time budget.
    var attemptDeadline: ContinuousClock.Instant?
    /// The most specific error of the current attempt so far (a CONNACK
    /// refusal is reported before libmosquitto's generic "connection refused").
    var attemptError: MQTTError?

    var isSocketPhase: Bool {
        switch self.phase {
        case .awaitingConnack, .restoringSubscriptions, .connected: return true
        case .idle, .connectCall, .backoff: return false
        }
    }
}

struct LoopThread {
    /// True while the thread is inside `mosquitto_connect` (DNS and TCP set-up
    /// can block for as long as the operating system's connect timeout).
    var inConnectCall = false
    /// DISCONNECT already requested from libmosquitto for this thread.
    var disconnectSent = false
    /// MQTT 5 reason code for the DISCONNECT (4 asks the broker to publish the will).
    var disconnectReasonCode: Int32 = 0
    var exitWaiters: [UInt64: CheckedContinuation<Void, any Error>] = [:]
}

struct Subscription {
    var filter: String
    var qos: MQTTQoS
    var options: MQTTSubscriptionOptions
}

struct PendingOperation<Value: Sendable> {
    let token: UInt64
    let continuation: CheckedContinuation<Value, any Error>
    let deadline: ContinuousClock.Instant
}

struct PendingSubscribe {
    enum Kind {
        /// A `subscribe()` call waiting for its SUBACK.
        case request(CheckedContinuation<MQTTQoS, any Error>)
        /// A subscription restored after (re)connecting; nobody waits on it.
        case restore
    }

    let token: UInt64
    let kind: Kind
    let subscription: Subscription
    let deadline: ContinuousClock.Instant
}
