/// The values the state machine keeps and the vocabulary of its transitions: what happened
/// (acknowledgements) and what to do (actions, outcomes, loop steps).
extension ClientStateMachine {
    /// What the application asked for between `connect()` and `disconnect()`.
    struct Session {
        enum Phase: Hashable {
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
        var connectWaiter: Waiter?
        /// True once a connection has been fully established in this session.
        var hasConnected = false
        /// Consecutive failed attempts since the last successful connection.
        var failedAttempts = 0
        /// When the current attempt gives up waiting for CONNACK.
        var attemptDeadline: ContinuousClock.Instant?
        /// The most specific error of the current attempt so far (a CONNACK
        /// refusal is reported before libmosquitto's generic "connection refused").
        var attemptError: MQTTError?

        /// True while libmosquitto has a socket that a DISCONNECT can close.
        var isSocketPhase: Bool {
            switch self.phase {
            case .awaitingConnack, .restoringSubscriptions, .connected: return true
            case .idle, .connectCall, .backoff: return false
            }
        }
    }

    /// The loop thread that owns the libmosquitto network I/O. It can outlive
    /// its session briefly while it sends DISCONNECT.
    struct LoopThread {
        /// True while the thread is inside `mosquitto_connect` (DNS and TCP set-up
        /// can block for as long as the operating system's connect timeout).
        var inConnectCall = false
        /// DISCONNECT already requested from libmosquitto for this thread.
        var disconnectSent = false
        /// MQTT 5 reason code for the DISCONNECT (4 asks the broker to publish the will).
        var disconnectReasonCode: Int32 = 0
        /// `connect()` calls waiting for the thread of a finished session to exit.
        var exitWaiters: [UInt64: Waiter] = [:]
    }

    /// A QoS 1/2 publish or an unsubscribe waiting for its acknowledgement.
    struct PendingOperation {
        let token: UInt64
        let waiter: Waiter
        let deadline: ContinuousClock.Instant
    }

    /// One SUBSCRIBE packet waiting for its SUBACK: one filter, or several in a batch.
    struct PendingSubscribe {
        enum Kind {
            /// A `subscribe()` call for one filter waiting for its SUBACK.
            case request(token: UInt64, waiter: Waiter)
            /// A `subscribe()` call for several filters in one packet, waiting for the SUBACK
            /// that answers each of them.
            case batch(token: UInt64, waiter: Waiter)
            /// Subscriptions restored after (re)connecting; nobody waits on them.
            case restore
        }

        let kind: Kind
        /// The packet's filters in order: the SUBACK's reason codes answer them in this order.
        let subscriptions: [Subscription]
        let deadline: ContinuousClock.Instant

        /// The call waiting for this packet, if any.
        var call: (token: UInt64, waiter: Waiter)? {
            switch self.kind {
            case .request(let token, let waiter), .batch(let token, let waiter): return (token, waiter)
            case .restore: return nil
            }
        }
    }

    /// A packet the broker acknowledges, sent on behalf of a waiting call.
    enum Request: Hashable {
        /// A QoS 1/2 PUBLISH, acknowledged by PUBACK or PUBCOMP.
        case publish
        case subscribe(Subscription)
        /// Several filters in one SUBSCRIBE; the call gets one result per filter.
        case subscribeBatch([Subscription])
        case unsubscribe(filter: String)
    }

    /// How a waiting call ends.
    enum Outcome: Hashable {
        /// Connected, acknowledged, or the loop thread exited.
        case success
        /// The SUBACK granted this QoS.
        case granted(MQTTQoS)
        /// The SUBACK of a batch: for each filter in order, the QoS granted or the refusal.
        case grantedEach([Result<MQTTQoS, MQTTError>])
        case failure(MQTTError)
        /// The calling task was cancelled.
        case cancelled
    }

    /// A waiting call and the outcome to resume it with.
    struct Resumption {
        var waiter: Waiter
        var outcome: Outcome
    }

    /// libmosquitto's report that a PUBLISH is done with, translated.
    enum PublishAcknowledgement: Hashable {
        /// Written to the socket (QoS 0, always reason code 0) or acknowledged
        /// with a success reason code (QoS 1/2).
        case accepted(reasonCode: Int32)
        /// An MQTT 5 PUBACK/PUBREC with a failure reason code (0x80 or above).
        case rejected(MQTTError)
    }

    /// One entry of a SUBACK (one per filter of the SUBSCRIBE), translated.
    enum SubscribeAcknowledgement: Hashable {
        case granted(MQTTQoS)
        /// `reason` is the text for `reasonCode` (libmosquitto's for MQTT 5).
        case refused(reasonCode: UInt8, reason: String)
    }

    /// Why the next connection attempt waits.
    enum BackoffCause: Hashable {
        /// An established connection was lost.
        case connectionLost(MQTTError)
        /// Attempt number `attempt` since the last successful connection failed.
        case attemptFailed(MQTTError, attempt: Int)
    }

    /// Why a subscription restored after reconnecting is not in force.
    enum RestoreFailure: Hashable {
        case refused(MQTTError)
        case timedOut
    }

    /// What the client must do; ``ClientCore`` executes actions in order, under its state lock.
    enum Action {
        /// Resume the call with its outcome.
        case resume(Waiter, Outcome)
        /// Tell the connection-state observers about a new state.
        case publishState(MQTTConnectionState)
        /// Queue a DISCONNECT with this MQTT 5 reason code; it also closes a
        /// half-open connection.
        case sendDisconnect(reasonCode: Int32)
        /// Wake the loop thread from a backoff wait so it notices that the session ended.
        case wakeLoopThread
        /// Subscribe again, on the new connection, to every filter in order.
        /// Report each SUBSCRIBE queued with ``ClientStateMachine/subscriptionRestoreSent(_:messageID:deadline:)``,
        /// then call ``ClientStateMachine/subscriptionRestoresSent()``.
        case resubscribe([Subscription], deadline: ContinuousClock.Instant)
        /// The next attempt waits `delay`; the loop thread sleeps it out.
        case startBackoff(Duration, cause: BackoffCause)
        /// The initial connection attempt failed and is not retried.
        case stopConnecting(MQTTError)
        /// A restored subscription is not in force; the connection carries on without it.
        case reportRestoreFailure(Subscription, RestoreFailure)
    }

    /// What `connect()` does next.
    enum ConnectAction {
        /// The session is registered: start its loop thread.
        case startLoopThread
        /// The call ends at once.
        case resume(Waiter, Outcome)
    }

    /// What the loop thread does on its next turn.
    enum LoopStep: Hashable {
        /// Call the blocking `mosquitto_connect` for this attempt, and arm a
        /// timer that abandons the attempt after `timeout`.
        case connect(attempt: Int, timeout: Duration)
        /// Run libmosquitto's network loop for at most `timeout`, then report
        /// ``ClientStateMachine/deadlinesPassed(sessionID:now:libraryErrors:)``.
        case runNetwork(timeout: Duration)
        /// Wait (a backoff) until then, or until woken.
        case sleep(until: ContinuousClock.Instant)
        /// The session is over: close the connection and exit.
        case finish
    }

    /// The loop thread's next step, and the actions to execute before it.
    struct LoopTurn {
        var actions: [Action] = []
        var step: LoopStep
    }
}

/// A subscription the client restores on every (re)connection.
struct Subscription: Hashable, Sendable {
    var filter: String
    var qos: MQTTQoS
    var options: MQTTSubscriptionOptions
}

extension ClientStateMachine.Session: Sendable where Waiter: Sendable {}
extension ClientStateMachine.LoopThread: Sendable where Waiter: Sendable {}
extension ClientStateMachine.PendingOperation: Sendable where Waiter: Sendable {}
extension ClientStateMachine.PendingSubscribe: Sendable where Waiter: Sendable {}
extension ClientStateMachine.PendingSubscribe.Kind: Sendable where Waiter: Sendable {}
extension ClientStateMachine.Resumption: Sendable where Waiter: Sendable {}
extension ClientStateMachine.Action: Sendable where Waiter: Sendable {}
extension ClientStateMachine.ConnectAction: Sendable where Waiter: Sendable {}
extension ClientStateMachine.LoopTurn: Sendable where Waiter: Sendable {}
extension ClientStateMachine.Outcome: Sendable {}
extension ClientStateMachine.Request: Sendable {}
extension ClientStateMachine.LoopStep: Sendable {}
extension ClientStateMachine.BackoffCause: Sendable {}
extension ClientStateMachine.RestoreFailure: Sendable {}

extension ClientStateMachine.Resumption: Equatable where Waiter: Equatable {}
extension ClientStateMachine.Action: Equatable where Waiter: Equatable {}
extension ClientStateMachine.ConnectAction: Equatable where Waiter: Equatable {}
extension ClientStateMachine.LoopTurn: Equatable where Waiter: Equatable {}
