/// The client's session logic: connecting, reconnecting with backoff, restoring subscriptions,
/// and the calls waiting for the broker with their deadlines.
///
/// A value with mutating transitions. Each takes what happened (a call from the application,
/// a libmosquitto callback, the loop thread's turn, the current time) and returns what to do
/// about it as actions. It performs no I/O, reads no clock and never calls libmosquitto, so
/// every path (reconnection, backoff, time limits) is tested without a broker. ``ClientCore``
/// owns the only instance, behind its state lock, translates libmosquitto's callbacks into
/// transitions and executes the actions: it makes the libmosquitto calls, resumes the tasks
/// and tells the connection-state observers. A transition and its actions run under one lock
/// hold, which is what makes "publish while disconnected fails at once" and "a pending publish
/// fails when the connection drops" deterministic.
///
/// `Waiter` stands for a suspended call: a continuation in the client, a plain value in the
/// tests. The machine only stores waiters and hands each back exactly once, in an action with
/// the ``Outcome`` to resume it with.
struct ClientStateMachine<Waiter> {
    /// How long the loop thread blocks in libmosquitto's network loop at most, so
    /// that deadlines are checked at least this often.
    static var loopTick: Duration { .milliseconds(100) }

    /// `host:port`, for error messages.
    let broker: String
    let connectTimeout: Duration
    let operationTimeout: Duration
    let reconnect: MQTTReconnectPolicy

    /// What the application asked for between `connect()` and `disconnect()`.
    private(set) var session: Session?
    /// The loop thread, if one runs.
    private(set) var loop: LoopThread?
    /// The public state, mirrored to every observer.
    private(set) var connectionState: MQTTConnectionState = .disconnected(reason: nil)
    /// Subscriptions to restore on every (re)connection, in the order made.
    private(set) var subscriptions: [Subscription] = []
    /// Where each filter is in ``subscriptions``: a SUBACK finds its entry without a scan, which
    /// made subscribing to 10,000 filters quadratic (seconds of CPU).
    private var subscriptionIndex: [String: Int] = [:]
    /// The filters the broker granted on the current connection (by a call's SUBACK or a
    /// restore's). Emptied when the connection ends: a new connection starts with none in force,
    /// which is what lets an application tell "connected" from "connected and subscribed".
    private(set) var acknowledgedFilters: Set<String> = []
    /// QoS 1/2 publishes waiting for PUBACK/PUBCOMP, by message id.
    private var pendingPublishes: [Int32: PendingOperation] = [:]
    /// QoS 0 publishes whose message id equals that of a pending QoS 1/2
    /// publish (message ids are 16-bit and libmosquitto numbers QoS 0 messages
    /// too, so they wrap quickly under load). libmosquitto reports both with
    /// the same callback; this count tells the QoS 0 report apart.
    private var qos0IDCollisions: [Int32: Int] = [:]
    private var pendingSubscribes: [Int32: PendingSubscribe] = [:]
    private var pendingUnsubscribes: [Int32: PendingOperation] = [:]
    /// Earliest deadline among pending operations (a cheap skip for the sweep).
    private(set) var earliestDeadline: ContinuousClock.Instant?
    /// Set when the owning ``MQTTClient`` is gone.
    private(set) var isClosed = false

    init(configuration: MQTTConfiguration) {
        self.broker = "\(configuration.host):\(configuration.port)"
        self.connectTimeout = configuration.connectTimeout
        self.operationTimeout = configuration.operationTimeout
        self.reconnect = configuration.reconnect
    }

    // MARK: Queries

    /// Whether publish, subscribe and unsubscribe are accepted now.
    var isOperational: Bool {
        if case .connected? = self.session?.phase { return true }
        return false
    }

    /// Calls waiting for the broker's acknowledgement (restored subscriptions are not calls).
    var pendingOperationCount: Int {
        let subscribes = self.pendingSubscribes.values.filter { $0.call != nil }
        return self.pendingPublishes.count + subscribes.count + self.pendingUnsubscribes.count
    }

    /// SUBSCRIBE packets (calls and restores) waiting for their SUBACK.
    var pendingSubscribeCount: Int { self.pendingSubscribes.count }

    /// The error for an operation attempted while not connected, with the reason if one is known.
    var notConnectedError: MQTTError {
        var error = MQTTError(code: .notConnected, reason: "the client is not connected to the broker")
        if case .disconnected(let reason?) = self.connectionState {
            error.detail = "last error: \(reason)"
        } else if case .connecting = self.connectionState {
            error.detail = "a connection attempt is in progress"
        }
        return error
    }

    /// Whether `disconnect()` should wait for the loop thread to exit. A thread
    /// stuck in a blocking connect exits when that call returns; nothing is
    /// gained by waiting for it.
    var shouldAwaitLoopExit: Bool {
        self.loop.map { !$0.inConnectCall } ?? false
    }

    /// The reason code of the DISCONNECT the exiting loop thread must still
    /// send, or `nil` if it was sent already (or there is no loop thread).
    var disconnectOnLoopExit: Int32? {
        guard let loop = self.loop, !loop.disconnectSent else { return nil }
        return loop.disconnectReasonCode
    }

    // MARK: Session lifecycle, driven by the application

    /// `connect()` was called; `sessionID` is new.
    mutating func connect(sessionID: UInt64, waiter: Waiter, isCancelled: Bool) -> ConnectAction {
        if isCancelled {
            return .resume(waiter, .cancelled)
        }
        if self.isClosed {
            return .resume(waiter, .failure(MQTTError(code: .disconnected, reason: "the client was released")))
        }
        guard self.session == nil, self.loop == nil else {
            return .resume(
                waiter,
                .failure(
                    MQTTError(
                        code: .alreadyConnected,
                        reason: "connect() was called while a connection is active or still closing"
                    )
                )
            )
        }
        var session = Session(id: sessionID)
        session.connectWaiter = waiter
        self.session = session
        self.loop = LoopThread()
        return .startLoopThread
    }

    /// The task in `connect()` was cancelled: the session ends unless it has connected already.
    mutating func cancelConnect(sessionID: UInt64) -> [Action] {
        guard let session = self.session, session.id == sessionID, session.connectWaiter != nil else { return [] }
        return self.endSession(
            failingOperationsWith: MQTTError(code: .disconnected, reason: "connect() was cancelled"),
            connectWaiterOutcome: .cancelled,
            reasonCode: 0
        )
    }

    /// `disconnect()` was called; `reasonCode` goes into the DISCONNECT packet.
    mutating func disconnect(reasonCode: Int32) -> [Action] {
        self.endSession(
            failingOperationsWith: MQTTError(
                code: .disconnected,
                reason: "disconnect() was called before the operation completed"
            ),
            connectWaiterOutcome: .failure(
                MQTTError(
                    code: .disconnected,
                    reason: "disconnect() was called before the connection was established"
                )
            ),
            reasonCode: reasonCode
        )
    }

    /// The owning ``MQTTClient`` is gone: the session ends and no new one can start.
    mutating func shutdown() -> [Action] {
        self.isClosed = true
        let released = MQTTError(code: .disconnected, reason: "the client was released")
        return self.endSession(
            failingOperationsWith: released,
            connectWaiterOutcome: .failure(released),
            reasonCode: 0
        )
    }

    /// `connect()` waits for the loop thread of a finished session, which may still be sending
    /// DISCONNECT. Returns the resumption when there is nothing to wait for; otherwise the
    /// waiter waits, and the client arms a timer that reports ``loopExitWaitTimedOut(token:)``.
    mutating func waitForLoopExit(token: UInt64, waiter: Waiter) -> Resumption? {
        // With a session the caller gets `alreadyConnected` next; only a
        // thread that is still closing a finished session is waited for.
        guard self.loop != nil, self.session == nil else { return Resumption(waiter: waiter, outcome: .success) }
        self.loop?.exitWaiters[token] = waiter
        return nil
    }

    mutating func loopExitWaitTimedOut(token: UInt64) -> Resumption? {
        guard let waiter = self.loop?.exitWaiters.removeValue(forKey: token) else { return nil }
        let error = MQTTError(
            code: .timeout,
            reason: "the previous connection attempt is still in progress (blocked in DNS or TCP connect)"
        )
        return Resumption(waiter: waiter, outcome: .failure(error))
    }

    /// The loop thread has closed the connection and is exiting.
    mutating func loopExited() -> [Action] {
        let waiters = self.loop.map { Array($0.exitWaiters.values) } ?? []
        self.loop = nil
        return waiters.map { .resume($0, .success) }
    }

    // MARK: The loop thread's turns and connection attempts

    /// What the loop thread of `sessionID` does next.
    mutating func nextLoopStep(sessionID: UInt64, now: ContinuousClock.Instant) -> LoopTurn {
        // Runs once per turn of the network loop, that is about once per message received:
        // it reads the session in place rather than copying it (and its waiter and error).
        guard self.session?.id == sessionID, let phase = self.session?.phase else { return LoopTurn(step: .finish) }
        switch phase {
        case .backoff(let until) where until > now:
            return LoopTurn(step: .sleep(until: until))
        case .idle, .backoff:
            let attempt = (self.session?.failedAttempts ?? 0) + 1
            self.session?.phase = .connectCall(attempt: attempt)
            let attemptDeadline = now + self.connectTimeout
            self.session?.attemptDeadline = attemptDeadline
            self.session?.attemptError = nil
            self.loop?.inConnectCall = true
            var actions: [Action] = []
            self.setConnectionState(.connecting, into: &actions)
            return LoopTurn(actions: actions, step: .connect(attempt: attempt, timeout: self.connectTimeout))
        case .connectCall:
            // Only reachable if the timer abandoned the attempt and a new one
            // has not started; treat like idle on the next turn.
            return LoopTurn(step: .sleep(until: now + Self.loopTick))
        case .awaitingConnack, .restoringSubscriptions, .connected:
            var earliest = self.earliestDeadline
            if case .awaitingConnack = phase, let attemptDeadline = self.session?.attemptDeadline {
                earliest = min(earliest ?? attemptDeadline, attemptDeadline)
            }
            var wait = Self.loopTick
            if let earliest {
                wait = min(wait, max(earliest - now, .zero))
            }
            return LoopTurn(step: .runNetwork(timeout: wait))
        }
    }

    /// The blocking `mosquitto_connect` of `attempt` returned.
    mutating func connectCallReturned(
        sessionID: UInt64,
        attempt: Int,
        result: Result<Void, MQTTError>,
        now: ContinuousClock.Instant
    ) -> [Action] {
        self.loop?.inConnectCall = false
        guard let session = self.session, session.id == sessionID,
            case .connectCall(let current) = session.phase, current == attempt
        else {
            return []  // abandoned by the timer or by disconnect()
        }
        switch result {
        case .success:
            self.session?.phase = .awaitingConnack
            return []
        case .failure(let error):
            return self.attemptFailed(sessionID: sessionID, error: error, now: now)
        }
    }

    /// The timer armed for `attempt`'s connect call fired.
    mutating func connectCallTimedOut(sessionID: UInt64, attempt: Int, now: ContinuousClock.Instant) -> [Action] {
        guard let session = self.session, session.id == sessionID,
            case .connectCall(let current) = session.phase, current == attempt
        else { return [] }
        let error = MQTTError(
            code: .timeout,
            reason: "could not reach \(self.broker) within \(self.connectTimeout)"
        )
        return self.attemptFailed(sessionID: sessionID, error: error, now: now)
    }

    /// The broker refused the connection in its CONNACK. libmosquitto closes the
    /// connection next; that ends the attempt, with this error.
    mutating func connackRefused(_ error: MQTTError) {
        guard case .awaitingConnack? = self.session?.phase else { return }
        self.session?.attemptError = error
    }

    /// The broker accepted the connection: every subscription is restored before the client
    /// reports `.connected`.
    mutating func connackAccepted(now: ContinuousClock.Instant) -> [Action] {
        guard case .awaitingConnack? = self.session?.phase else { return [] }
        self.session?.phase = .restoringSubscriptions
        self.acknowledgedFilters = []
        return [.resubscribe(self.subscriptions, deadline: now + self.operationTimeout)]
    }

    /// libmosquitto queued the SUBSCRIBE restoring `subscription` as `messageID`.
    mutating func subscriptionRestoreSent(
        _ subscription: Subscription,
        messageID: Int32,
        deadline: ContinuousClock.Instant
    ) {
        self.subscriptionRestoreSent([subscription], messageID: messageID, deadline: deadline)
    }

    /// libmosquitto queued one SUBSCRIBE restoring `subscriptions`, in this order, as `messageID`.
    mutating func subscriptionRestoreSent(
        _ subscriptions: [Subscription],
        messageID: Int32,
        deadline: ContinuousClock.Instant
    ) {
        self.pendingSubscribes[messageID] = PendingSubscribe(
            kind: .restore,
            subscriptions: subscriptions,
            deadline: deadline
        )
        self.noteDeadline(deadline)
    }

    /// Every restoring SUBSCRIBE of a ``Action/resubscribe(_:deadline:)`` has been queued (or failed to be).
    mutating func subscriptionRestoresSent() -> [Action] {
        var actions: [Action] = []
        self.completeRestorationIfDone(into: &actions)
        return actions
    }

    /// libmosquitto reported the connection closed (its disconnect callback).
    mutating func connectionEnded(error: MQTTError, now: ContinuousClock.Instant) -> [Action] {
        guard let session = self.session else { return [] }
        return self.connectionEnded(sessionID: session.id, error: error, now: now)
    }

    /// The connection or attempt of `sessionID` ended, whoever noticed it first (the
    /// disconnect callback or the network loop's result); later reports change nothing.
    mutating func connectionEnded(sessionID: UInt64, error: MQTTError, now: ContinuousClock.Instant) -> [Action] {
        guard let session = self.session, session.id == sessionID else { return [] }
        switch session.phase {
        case .awaitingConnack:
            return self.attemptFailed(sessionID: sessionID, error: session.attemptError ?? error, now: now)
        case .restoringSubscriptions, .connected:
            var actions: [Action] = []
            let lost = MQTTError(
                code: .connectionLost,
                reason: "the connection to the broker was lost before the operation completed",
                detail: error.description
            )
            self.failPendingOperations(with: lost, into: &actions)
            let delay = self.reconnect.delay(beforeAttempt: 0)
            self.session?.failedAttempts = 0
            self.session?.phase = .backoff(until: now + delay)
            actions.append(.startBackoff(delay, cause: .connectionLost(error)))
            self.setConnectionState(.disconnected(reason: error), into: &actions)
            return actions
        case .idle, .connectCall, .backoff:
            return []
        }
    }

    // MARK: Operations

    /// Whether an operation may be sent now; if not, the outcome that ends the call at once.
    /// Nothing is queued while disconnected.
    func operationRefusal(isCancelled: Bool) -> Outcome? {
        if isCancelled { return .cancelled }
        guard self.isOperational else { return .failure(self.notConnectedError) }
        return nil
    }

    /// When a call started at `now` with `timeout` (`nil`: the configured one) gives up.
    func deadline(timeout: Duration?, from now: ContinuousClock.Instant) -> ContinuousClock.Instant {
        now + (timeout ?? self.operationTimeout)
    }

    /// libmosquitto queued a QoS 0 PUBLISH as `messageID`; it completes without acknowledgement.
    mutating func qos0PublishSent(messageID: Int32) {
        if self.pendingPublishes[messageID] != nil {
            self.qos0IDCollisions[messageID, default: 0] += 1
        }
    }

    /// libmosquitto queued `request` as `messageID`; `waiter` waits for its acknowledgement
    /// until `deadline`. `token` identifies the call for cancellation.
    mutating func requestSent(
        _ request: Request,
        messageID: Int32,
        token: UInt64,
        waiter: Waiter,
        deadline: ContinuousClock.Instant
    ) {
        switch request {
        case .publish:
            self.pendingPublishes[messageID] = PendingOperation(token: token, waiter: waiter, deadline: deadline)
        case .subscribe(let subscription):
            self.pendingSubscribes[messageID] = PendingSubscribe(
                kind: .request(token: token, waiter: waiter),
                subscriptions: [subscription],
                deadline: deadline
            )
        case .subscribeBatch(let subscriptions):
            self.pendingSubscribes[messageID] = PendingSubscribe(
                kind: .batch(token: token, waiter: waiter),
                subscriptions: subscriptions,
                deadline: deadline
            )
        case .unsubscribe(let filter):
            // From here on the filter is not restored on reconnection, even if
            // the UNSUBACK never arrives.
            if self.subscriptionIndex[filter] != nil {
                self.subscriptions.removeAll { $0.filter == filter }
                self.subscriptionIndex = Dictionary(
                    uniqueKeysWithValues: self.subscriptions.enumerated().map { ($1.filter, $0) }
                )
            }
            self.acknowledgedFilters.remove(filter)
            self.pendingUnsubscribes[messageID] = PendingOperation(token: token, waiter: waiter, deadline: deadline)
        }
        self.noteDeadline(deadline)
    }

    /// The call identified by `token` was cancelled; it ends at once if it still waits.
    mutating func cancelOperation(token: UInt64) -> Resumption? {
        if let entry = self.pendingPublishes.first(where: { $0.value.token == token }) {
            self.pendingPublishes[entry.key] = nil
            return Resumption(waiter: entry.value.waiter, outcome: .cancelled)
        }
        for (messageID, pending) in self.pendingSubscribes {
            if let call = pending.call, call.token == token {
                self.pendingSubscribes[messageID] = nil
                return Resumption(waiter: call.waiter, outcome: .cancelled)
            }
        }
        if let entry = self.pendingUnsubscribes.first(where: { $0.value.token == token }) {
            self.pendingUnsubscribes[entry.key] = nil
            return Resumption(waiter: entry.value.waiter, outcome: .cancelled)
        }
        return nil
    }

    /// libmosquitto is done with the PUBLISH `messageID` (written for QoS 0, acknowledged for QoS 1/2).
    mutating func publishAcknowledged(messageID: Int32, _ acknowledgement: PublishAcknowledgement) -> Resumption? {
        if case .accepted(reasonCode: 0) = acknowledgement, let collisions = self.qos0IDCollisions[messageID] {
            // A QoS 0 publish with this id was written to the socket.
            self.qos0IDCollisions[messageID] = collisions > 1 ? collisions - 1 : nil
            return nil
        }
        guard let pending = self.pendingPublishes.removeValue(forKey: messageID) else { return nil }
        switch acknowledgement {
        case .accepted:
            return Resumption(waiter: pending.waiter, outcome: .success)
        case .rejected(let error):
            return Resumption(waiter: pending.waiter, outcome: .failure(error))
        }
    }

    /// The SUBACK for `messageID`, a SUBSCRIBE with one filter, arrived.
    mutating func subscribeAcknowledged(messageID: Int32, _ acknowledgement: SubscribeAcknowledgement) -> [Action] {
        self.subscribeAcknowledged(messageID: messageID, [acknowledgement])
    }

    /// The SUBACK for `messageID` arrived, with one entry per filter of its SUBSCRIBE, in order.
    /// Each filter stands on its own: a granted one is in force (and remembered, if a call asked
    /// for it) whatever the broker answered for its neighbours in the packet. A filter the SUBACK
    /// has no entry for (a broker answering short) counts as refused.
    mutating func subscribeAcknowledged(
        messageID: Int32,
        _ acknowledgements: [SubscribeAcknowledgement]
    ) -> [Action] {
        guard let pending = self.pendingSubscribes.removeValue(forKey: messageID) else { return [] }
        var results: [Result<MQTTQoS, MQTTError>] = []
        results.reserveCapacity(pending.subscriptions.count)
        for (index, subscription) in pending.subscriptions.enumerated() {
            let acknowledgement =
                index < acknowledgements.count
                ? acknowledgements[index]
                : .refused(reasonCode: 0x80, reason: "the broker's SUBACK has no entry for this filter")
            switch acknowledgement {
            case .granted(let granted):
                self.acknowledgedFilters.insert(subscription.filter)
                if pending.call != nil { self.remember(subscription) }
                results.append(.success(granted))
            case .refused(let reasonCode, let reason):
                results.append(
                    .failure(
                        MQTTError(
                            code: .subscriptionRejected,
                            reason: reason,
                            mqttReasonCode: reasonCode,
                            detail: "filter \(subscription.filter)"
                        )
                    )
                )
            }
        }
        switch pending.kind {
        case .request(_, let waiter):
            // A single-filter SUBSCRIBE has exactly one result.
            switch results[0] {
            case .success(let granted): return [.resume(waiter, .granted(granted))]
            case .failure(let rejection): return [.resume(waiter, .failure(rejection))]
            }
        case .batch(_, let waiter):
            return [.resume(waiter, .grantedEach(results))]
        case .restore:
            var actions: [Action] = []
            for (subscription, result) in zip(pending.subscriptions, results) {
                if case .failure(let rejection) = result {
                    actions.append(.reportRestoreFailure(subscription, .refused(rejection)))
                }
            }
            self.completeRestorationIfDone(into: &actions)
            return actions
        }
    }

    /// A subscription the broker granted to a call: restored on every reconnection from now on.
    private mutating func remember(_ subscription: Subscription) {
        if let index = self.subscriptionIndex[subscription.filter] {
            self.subscriptions[index] = subscription
        } else {
            self.subscriptionIndex[subscription.filter] = self.subscriptions.count
            self.subscriptions.append(subscription)
        }
    }

    /// The UNSUBACK for `messageID` arrived.
    mutating func unsubscribeAcknowledged(messageID: Int32) -> Resumption? {
        guard let pending = self.pendingUnsubscribes.removeValue(forKey: messageID) else { return nil }
        return Resumption(waiter: pending.waiter, outcome: .success)
    }

    /// The loop thread of `sessionID` checks the time limits after a network-loop turn. A
    /// CONNACK that did not come in time fails the attempt; its error's detail is
    /// `libraryErrors()` (libmosquitto's error lines), read only then.
    mutating func deadlinesPassed(
        sessionID: UInt64,
        now: ContinuousClock.Instant,
        libraryErrors: () -> String?
    ) -> [Action] {
        var actions: [Action] = []
        // Checked after every turn of the network loop: the session is read in place, not copied.
        if self.session?.id == sessionID, self.session?.phase == .awaitingConnack,
            let deadline = self.session?.attemptDeadline, deadline <= now
        {
            let error =
                self.session?.attemptError
                ?? MQTTError(
                    code: .timeout,
                    reason: "no CONNACK from \(self.broker) within \(self.connectTimeout)",
                    detail: libraryErrors()
                )
            actions += self.attemptFailed(sessionID: sessionID, error: error, now: now)
        }
        guard let earliest = self.earliestDeadline, earliest <= now else { return actions }
        let timeout = { (what: String) in
            MQTTError(code: .timeout, reason: "no \(what) from the broker within the time limit")
        }
        var next: ContinuousClock.Instant?
        for (messageID, pending) in self.pendingPublishes {
            if pending.deadline <= now {
                self.pendingPublishes[messageID] = nil
                actions.append(.resume(pending.waiter, .failure(timeout("acknowledgement (PUBACK/PUBCOMP)"))))
            } else {
                next = min(next ?? pending.deadline, pending.deadline)
            }
        }
        for (messageID, pending) in self.pendingUnsubscribes {
            if pending.deadline <= now {
                self.pendingUnsubscribes[messageID] = nil
                actions.append(.resume(pending.waiter, .failure(timeout("UNSUBACK"))))
            } else {
                next = min(next ?? pending.deadline, pending.deadline)
            }
        }
        for (messageID, pending) in self.pendingSubscribes {
            if pending.deadline <= now {
                self.pendingSubscribes[messageID] = nil
                if let call = pending.call {
                    actions.append(.resume(call.waiter, .failure(timeout("SUBACK"))))
                } else {
                    for subscription in pending.subscriptions {
                        actions.append(.reportRestoreFailure(subscription, .timedOut))
                    }
                }
            } else {
                next = min(next ?? pending.deadline, pending.deadline)
            }
        }
        self.earliestDeadline = next
        self.completeRestorationIfDone(into: &actions)
        return actions
    }

    // MARK: Shared steps

    private mutating func setConnectionState(_ newState: MQTTConnectionState, into actions: inout [Action]) {
        guard self.connectionState != newState else { return }
        self.connectionState = newState
        actions.append(.publishState(newState))
    }

    private mutating func noteDeadline(_ deadline: ContinuousClock.Instant) {
        if let earliest = self.earliestDeadline, earliest <= deadline { return }
        self.earliestDeadline = deadline
    }

    /// Ends the session: fails what is pending, reports `.disconnected(nil)` and
    /// makes the loop thread send DISCONNECT and exit.
    private mutating func endSession(
        failingOperationsWith error: MQTTError,
        connectWaiterOutcome: Outcome,
        reasonCode: Int32
    ) -> [Action] {
        guard let session = self.session else { return [] }
        var actions: [Action] = []
        self.session = nil
        if let waiter = session.connectWaiter {
            actions.append(.resume(waiter, connectWaiterOutcome))
        }
        self.failPendingOperations(with: error, into: &actions)
        self.setConnectionState(.disconnected(reason: nil), into: &actions)
        self.loop?.disconnectReasonCode = reasonCode
        if session.isSocketPhase, self.loop?.disconnectSent == false {
            // Queuing DISCONNECT also wakes the loop thread out of select().
            actions.append(.sendDisconnect(reasonCode: reasonCode))
            self.loop?.disconnectSent = true
        }
        actions.append(.wakeLoopThread)
        return actions
    }

    private mutating func attemptFailed(
        sessionID: UInt64,
        error: MQTTError,
        now: ContinuousClock.Instant
    ) -> [Action] {
        guard var session = self.session, session.id == sessionID else { return [] }
        var actions: [Action] = []
        session.failedAttempts += 1
        // Retrying the first connection waits for a broker that is not up yet; a broker that
        // answers "not this certificate" or "not these credentials" would answer the same for
        // ever, so that fails connect() at once, retry or not. (After a first connection every
        // loss is retried: a broker whose certificate is being renewed comes back.)
        let retry = self.reconnect.retryInitialConnect && !MQTTReconnectPolicy.failsInitialConnectAtOnce(error)
        if !session.hasConnected && !retry {
            actions.append(.stopConnecting(error))
            self.session = nil
            if let waiter = session.connectWaiter {
                actions.append(.resume(waiter, .failure(error)))
            }
            self.setConnectionState(.disconnected(reason: error), into: &actions)
            if session.isSocketPhase, self.loop?.disconnectSent == false {
                actions.append(.sendDisconnect(reasonCode: 0))
                self.loop?.disconnectSent = true
            }
            return actions
        }
        // After a lost connection the first attempt already waited
        // delay(0); an initial connect that failed has not waited yet.
        let delay = self.reconnect.delay(
            beforeAttempt: session.hasConnected ? session.failedAttempts : session.failedAttempts - 1
        )
        actions.append(.startBackoff(delay, cause: .attemptFailed(error, attempt: session.failedAttempts)))
        if session.isSocketPhase {
            // Closes the half-open connection (for example after a CONNACK
            // timeout); the next attempt would close it anyway.
            actions.append(.sendDisconnect(reasonCode: 0))
        }
        session.phase = .backoff(until: now + delay)
        self.session = session
        self.setConnectionState(.disconnected(reason: error), into: &actions)
        return actions
    }

    private mutating func completeRestorationIfDone(into actions: inout [Action]) {
        guard case .restoringSubscriptions? = self.session?.phase else { return }
        let restoring = self.pendingSubscribes.values.contains {
            if case .restore = $0.kind { return true }
            return false
        }
        guard !restoring else { return }
        self.session?.phase = .connected
        self.session?.hasConnected = true
        self.session?.failedAttempts = 0
        self.session?.attemptDeadline = nil
        self.setConnectionState(.connected, into: &actions)
        if let waiter = self.session?.connectWaiter {
            actions.append(.resume(waiter, .success))
            self.session?.connectWaiter = nil
        }
    }

    private mutating func failPendingOperations(with error: MQTTError, into actions: inout [Action]) {
        for pending in self.pendingPublishes.values {
            actions.append(.resume(pending.waiter, .failure(error)))
        }
        for pending in self.pendingUnsubscribes.values {
            actions.append(.resume(pending.waiter, .failure(error)))
        }
        for pending in self.pendingSubscribes.values {
            if let call = pending.call {
                actions.append(.resume(call.waiter, .failure(error)))
            }
        }
        self.pendingPublishes = [:]
        self.pendingUnsubscribes = [:]
        self.pendingSubscribes = [:]
        self.qos0IDCollisions = [:]
        self.earliestDeadline = nil
        // Only ever called when the connection (or the session) ends.
        self.acknowledgedFilters = []
    }
}

extension ClientStateMachine: Sendable where Waiter: Sendable {}
