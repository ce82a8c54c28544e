import Testing

@testable import Mosquitto

// The client's session logic driven step by step, the way the loop thread and libmosquitto's
// callbacks drive it: no broker, no libmosquitto call, no clock (instants are offsets from
// one reading). A waiter is a name; an action that resumes it names it with its outcome.

private typealias Machine = ClientStateMachine<String>

private let start = ContinuousClock.now

private func at(_ milliseconds: Int) -> ContinuousClock.Instant {
    start + .milliseconds(milliseconds)
}

/// Connect timeout 5 s, operation timeout 10 s, backoff from 100 ms doubling up to 1 s.
private func configuration(retryInitialConnect: Bool = false) -> MQTTConfiguration {
    MQTTConfiguration(
        host: "broker.test",
        port: 1883,
        reconnect: MQTTReconnectPolicy(
            initialDelay: .milliseconds(100),
            maximumDelay: .seconds(1),
            multiplier: 2,
            retryInitialConnect: retryInitialConnect
        ),
        connectTimeout: .seconds(5),
        operationTimeout: .seconds(10)
    )
}

private let refused = MQTTError(code: .networkError, reason: "Connection refused")
private let brokerGone = MQTTError(code: .connectionLost, reason: "Connection lost")

/// The error a pending operation gets when the connection drops because of `cause`.
private func lost(_ cause: MQTTError) -> MQTTError {
    MQTTError(
        code: .connectionLost,
        reason: "the connection to the broker was lost before the operation completed",
        detail: cause.description
    )
}

private func noAcknowledgement(_ what: String) -> MQTTError {
    MQTTError(code: .timeout, reason: "no \(what) from the broker within the time limit")
}

private func notConnected(detail: String? = nil) -> MQTTError {
    MQTTError(code: .notConnected, reason: "the client is not connected to the broker", detail: detail)
}

/// The waiters the actions resume, with their outcomes (pending operations are failed in no
/// particular order).
private func resumed(_ actions: [Machine.Action]) -> [String: Machine.Outcome] {
    var outcomes: [String: Machine.Outcome] = [:]
    for case .resume(let waiter, let outcome) in actions {
        outcomes[waiter] = outcome
    }
    return outcomes
}

private func resumption(_ waiter: String, _ outcome: Machine.Outcome) -> Machine.Resumption {
    Machine.Resumption(waiter: waiter, outcome: outcome)
}

private func subscription(_ filter: String, _ qos: MQTTQoS = .atLeastOnce) -> Subscription {
    Subscription(filter: filter, qos: qos, options: MQTTSubscriptionOptions())
}

extension ClientStateMachine where Waiter == String {
    /// The loop thread's turn at `now` starts connection attempt `attempt`, whose connect call
    /// then returns `result`.
    fileprivate mutating func attempt(
        _ attempt: Int,
        at now: ContinuousClock.Instant,
        result: Result<Void, MQTTError> = .success(()),
        sessionID: UInt64 = 1
    ) -> [Action] {
        let turn = self.nextLoopStep(sessionID: sessionID, now: now)
        #expect(turn.step == .connect(attempt: attempt, timeout: .seconds(5)))
        #expect(turn.actions == [.publishState(.connecting)])
        return self.connectCallReturned(sessionID: sessionID, attempt: attempt, result: result, now: now)
    }

    /// `connect()` through CONNACK with nothing to restore: connected at `now`.
    fileprivate mutating func connected(at now: ContinuousClock.Instant = start, sessionID: UInt64 = 1) {
        #expect(self.connect(sessionID: sessionID, waiter: "connect", isCancelled: false) == .startLoopThread)
        #expect(self.attempt(1, at: now, sessionID: sessionID).isEmpty)
        #expect(self.connackAccepted(now: now) == [.resubscribe(self.subscriptions, deadline: now + .seconds(10))])
        for (index, subscription) in self.subscriptions.enumerated() {
            self.subscriptionRestoreSent(subscription, messageID: Int32(900 + index), deadline: now + .seconds(10))
        }
        _ = self.subscriptionRestoresSent()
        for index in self.subscriptions.indices {
            _ = self.subscribeAcknowledged(messageID: Int32(900 + index), .granted(.atLeastOnce))
        }
        #expect(self.connectionState == .connected)
    }

    /// `waiter`'s `request` queued as `messageID`; its token is the message id unless given.
    fileprivate mutating func sent(
        _ request: Request,
        _ messageID: Int32,
        by waiter: String,
        token: UInt64? = nil,
        deadline: ContinuousClock.Instant = at(10_000)
    ) {
        self.requestSent(
            request,
            messageID: messageID,
            token: token ?? UInt64(messageID),
            waiter: waiter,
            deadline: deadline
        )
    }

    /// `subscribe()` acknowledged: the filter is remembered.
    fileprivate mutating func subscribed(_ filter: String, messageID: Int32) {
        self.requestSent(
            .subscribe(subscription(filter)),
            messageID: messageID,
            token: UInt64(messageID),
            waiter: "subscribe",
            deadline: at(60_000)
        )
        #expect(
            self.subscribeAcknowledged(messageID: messageID, .granted(.atLeastOnce)) == [
                .resume("subscribe", .granted(.atLeastOnce))
            ]
        )
    }
}

@Suite("Client state machine: connecting, reconnecting and disconnecting (no broker)")
struct ClientSessionStateMachineTests {
    @Test("connect(): the first turn announces connecting; CONNACK and the restored subscriptions end it connected")
    func connectSucceeds() {
        var machine = Machine(configuration: configuration())
        #expect(machine.connect(sessionID: 1, waiter: "connect", isCancelled: false) == .startLoopThread)
        #expect(machine.connectionState == .disconnected(reason: nil))
        let turn = machine.nextLoopStep(sessionID: 1, now: start)
        #expect(turn.actions == [.publishState(.connecting)])
        #expect(turn.step == .connect(attempt: 1, timeout: .seconds(5)))
        #expect(machine.connectCallReturned(sessionID: 1, attempt: 1, result: .success(()), now: at(20)).isEmpty)

        // Waiting for CONNACK: the network loop runs in ticks, the last one cut to the CONNACK deadline.
        #expect(machine.nextLoopStep(sessionID: 1, now: at(20)).step == .runNetwork(timeout: .milliseconds(100)))
        #expect(machine.nextLoopStep(sessionID: 1, now: at(4_970)).step == .runNetwork(timeout: .milliseconds(30)))
        #expect(machine.operationRefusal(isCancelled: false) != nil, "not connected before CONNACK")

        #expect(machine.connackAccepted(now: at(30)) == [.resubscribe([], deadline: at(10_030))])
        #expect(machine.subscriptionRestoresSent() == [.publishState(.connected), .resume("connect", .success)])
        #expect(machine.isOperational)
        #expect(machine.operationRefusal(isCancelled: false) == nil)
        #expect(machine.nextLoopStep(sessionID: 1, now: at(40)).step == .runNetwork(timeout: .milliseconds(100)))
        #expect(machine.cancelConnect(sessionID: 1).isEmpty, "cancelling a connect() that returned changes nothing")
    }

    @Test("connect(): a failed first attempt ends the call with its error and is not retried")
    func firstAttemptFails() {
        var machine = Machine(configuration: configuration())
        _ = machine.connect(sessionID: 1, waiter: "connect", isCancelled: false)
        #expect(
            machine.attempt(1, at: start, result: .failure(refused)) == [
                .stopConnecting(refused), .resume("connect", .failure(refused)),
                .publishState(.disconnected(reason: refused)),
            ]
        )
        #expect(machine.session == nil)
        #expect(machine.nextLoopStep(sessionID: 1, now: at(10)).step == .finish)
        #expect(
            machine.operationRefusal(isCancelled: false) == .failure(notConnected(detail: "last error: \(refused)"))
        )

        // Once the loop thread is gone a new session can start.
        #expect(machine.loopExited().isEmpty)
        #expect(machine.connect(sessionID: 2, waiter: "again", isCancelled: false) == .startLoopThread)
    }

    @Test("connect(): a CONNACK refusal is the attempt's error, not the closed connection that follows it")
    func connackRefused() {
        var machine = Machine(configuration: configuration())
        _ = machine.connect(sessionID: 1, waiter: "connect", isCancelled: false)
        _ = machine.attempt(1, at: start)
        let notAuthorized = MQTTError(code: .notAuthorized, reason: "Not authorized", mqttReasonCode: 0x87)
        machine.connackRefused(notAuthorized)
        let refusedSocket = MQTTError(code: .connectionRefused, reason: "Connection refused")
        #expect(
            machine.connectionEnded(error: refusedSocket, now: at(10)) == [
                .stopConnecting(notAuthorized), .resume("connect", .failure(notAuthorized)),
                .publishState(.disconnected(reason: notAuthorized)), .sendDisconnect(reasonCode: 0),
            ]
        )
        #expect(machine.disconnectOnLoopExit == nil, "DISCONNECT was queued already")
        // The network loop's own report of the same end comes second and changes nothing.
        #expect(machine.connectionEnded(sessionID: 1, error: refusedSocket, now: at(10)).isEmpty)
    }

    @Test("connect(): a connect call blocked past connectTimeout is abandoned with timeout; its late return is ignored")
    func connectCallTimesOut() {
        var machine = Machine(configuration: configuration())
        _ = machine.connect(sessionID: 1, waiter: "connect", isCancelled: false)
        let turn = machine.nextLoopStep(sessionID: 1, now: start)
        #expect(turn.step == .connect(attempt: 1, timeout: .seconds(5)))
        let otherAttempt = machine.connectCallTimedOut(sessionID: 1, attempt: 2, now: at(5_000))
        #expect(otherAttempt.isEmpty, "another attempt's timer")

        let timeout = MQTTError(
            code: .timeout,
            reason: "could not reach broker.test:1883 within \(Duration.seconds(5))"
        )
        #expect(
            machine.connectCallTimedOut(sessionID: 1, attempt: 1, now: at(5_000)) == [
                .stopConnecting(timeout), .resume("connect", .failure(timeout)),
                .publishState(.disconnected(reason: timeout)),
            ]
        )
        #expect(!machine.shouldAwaitLoopExit, "nothing is gained by waiting for a thread blocked in connect")
        #expect(machine.connectCallReturned(sessionID: 1, attempt: 1, result: .success(()), now: at(9_000)).isEmpty)
        #expect(machine.shouldAwaitLoopExit)
        #expect(machine.nextLoopStep(sessionID: 1, now: at(9_000)).step == .finish)
    }

    @Test("connect(): no CONNACK within connectTimeout fails the attempt with timeout and libmosquitto's error lines")
    func connackTimesOut() {
        var machine = Machine(configuration: configuration())
        _ = machine.connect(sessionID: 1, waiter: "connect", isCancelled: false)
        _ = machine.attempt(1, at: start)
        var linesRead = 0
        let early = machine.deadlinesPassed(sessionID: 1, now: at(4_999)) {
            linesRead += 1
            return nil
        }
        #expect(early.isEmpty)
        #expect(linesRead == 0, "the error lines are only taken when they are reported")

        let timeout = MQTTError(
            code: .timeout,
            reason: "no CONNACK from broker.test:1883 within \(Duration.seconds(5))",
            detail: "OpenSSL: something"
        )
        #expect(
            machine.deadlinesPassed(sessionID: 1, now: at(5_000), libraryErrors: { "OpenSSL: something" }) == [
                .stopConnecting(timeout), .resume("connect", .failure(timeout)),
                .publishState(.disconnected(reason: timeout)), .sendDisconnect(reasonCode: 0),
            ]
        )
    }

    @Test("retryInitialConnect: failed first attempts back off from initialDelay, doubling up to maximumDelay")
    func initialConnectBackoff() {
        var machine = Machine(configuration: configuration(retryInitialConnect: true))
        _ = machine.connect(sessionID: 1, waiter: "connect", isCancelled: false)
        var now = start
        let schedule: [Duration] = [
            .milliseconds(100), .milliseconds(200), .milliseconds(400), .milliseconds(800), .seconds(1), .seconds(1),
        ]
        for (index, delay) in schedule.enumerated() {
            #expect(
                machine.attempt(index + 1, at: now, result: .failure(refused)) == [
                    .startBackoff(delay, cause: .attemptFailed(refused, attempt: index + 1)),
                    .publishState(.disconnected(reason: refused)),
                ]
            )
            // The loop thread sleeps out the delay; a turn in between sleeps again.
            #expect(machine.nextLoopStep(sessionID: 1, now: now + delay / 2).step == .sleep(until: now + delay))
            now += delay
        }
        #expect(machine.attempt(7, at: now).isEmpty)
        #expect(machine.connackAccepted(now: now) == [.resubscribe([], deadline: now + .seconds(10))])
        #expect(machine.subscriptionRestoresSent() == [.publishState(.connected), .resume("connect", .success)])
    }

    @Test(
        "retryInitialConnect: a first attempt refused for TLS or credentials fails connect() at once",
        arguments: [
            MQTTError(code: .tls, reason: "A TLS error occurred.", detail: "certificate verify failed"),
            MQTTError(code: .notAuthorized, reason: "not authorised"),
        ]
    )
    func initialConnectRefusedForGood(error: MQTTError) {
        var machine = Machine(configuration: configuration(retryInitialConnect: true))
        _ = machine.connect(sessionID: 1, waiter: "connect", isCancelled: false)
        #expect(
            machine.attempt(1, at: start, result: .failure(error)) == [
                .stopConnecting(error), .resume("connect", .failure(error)),
                .publishState(.disconnected(reason: error)),
            ]
        )
        #expect(machine.session == nil)
    }

    @Test("a lost connection fails what is pending, backs off, reconnects and restores every subscription")
    func reconnection() {
        var machine = Machine(configuration: configuration())
        machine.connected()
        machine.subscribed("plant/#", messageID: 1)
        machine.subscribed("alarms", messageID: 2)
        machine.subscribed("extra", messageID: 3)
        machine.sent(.publish, 4, by: "publish")
        machine.sent(.subscribe(subscription("never-granted")), 5, by: "subscribe")
        machine.sent(.unsubscribe(filter: "extra"), 6, by: "unsubscribe")
        #expect(machine.pendingOperationCount == 3)

        let actions = machine.connectionEnded(sessionID: 1, error: brokerGone, now: at(1_000))
        #expect(
            resumed(actions) == [
                "publish": .failure(lost(brokerGone)), "subscribe": .failure(lost(brokerGone)),
                "unsubscribe": .failure(lost(brokerGone)),
            ]
        )
        #expect(
            actions.suffix(2) == [
                .startBackoff(.milliseconds(100), cause: .connectionLost(brokerGone)),
                .publishState(.disconnected(reason: brokerGone)),
            ]
        )
        #expect(machine.pendingOperationCount == 0)
        #expect(machine.connectionEnded(error: brokerGone, now: at(1_000)).isEmpty, "the second report of the loss")
        #expect(
            machine.operationRefusal(isCancelled: false) == .failure(notConnected(detail: "last error: \(brokerGone)"))
        )

        // Reconnection attempts back off: 100 ms before the first, then 200 ms, 400 ms.
        #expect(machine.nextLoopStep(sessionID: 1, now: at(1_050)).step == .sleep(until: at(1_100)))
        #expect(
            machine.attempt(1, at: at(1_100), result: .failure(refused)) == [
                .startBackoff(.milliseconds(200), cause: .attemptFailed(refused, attempt: 1)),
                .publishState(.disconnected(reason: refused)),
            ]
        )
        #expect(
            machine.attempt(2, at: at(1_300), result: .failure(refused)) == [
                .startBackoff(.milliseconds(400), cause: .attemptFailed(refused, attempt: 2)),
                .publishState(.disconnected(reason: refused)),
            ]
        )
        #expect(machine.attempt(3, at: at(1_700)).isEmpty)

        // Every remembered subscription is restored, in order, before the client reports connected;
        // the one being unsubscribed is not, nor the one never granted.
        let restored = [subscription("plant/#"), subscription("alarms")]
        #expect(machine.connackAccepted(now: at(1_710)) == [.resubscribe(restored, deadline: at(11_710))])
        machine.subscriptionRestoreSent(restored[0], messageID: 7, deadline: at(11_710))
        machine.subscriptionRestoreSent(restored[1], messageID: 8, deadline: at(11_710))
        #expect(machine.subscriptionRestoresSent().isEmpty)
        #expect(machine.connectionState == .connecting)
        #expect(
            machine.operationRefusal(isCancelled: false)
                == .failure(notConnected(detail: "a connection attempt is in progress"))
        )
        #expect(machine.pendingOperationCount == 0, "restored subscriptions are nobody's call")
        #expect(machine.subscribeAcknowledged(messageID: 7, .granted(.atLeastOnce)).isEmpty)
        #expect(machine.subscribeAcknowledged(messageID: 8, .granted(.atLeastOnce)) == [.publishState(.connected)])
        #expect(machine.isOperational)

        // A successful connection resets the backoff.
        let again = machine.connectionEnded(error: brokerGone, now: at(2_000))
        #expect(
            again == [
                .startBackoff(.milliseconds(100), cause: .connectionLost(brokerGone)),
                .publishState(.disconnected(reason: brokerGone)),
            ]
        )
    }

    @Test("restored subscriptions that are refused or never confirmed are reported; the connection carries on")
    func restoreFailures() {
        var machine = Machine(configuration: configuration())
        machine.connected()
        machine.subscribed("refused/#", messageID: 1)
        machine.subscribed("silent/#", messageID: 2)
        _ = machine.connectionEnded(error: brokerGone, now: at(0))
        _ = machine.attempt(1, at: at(100))
        _ = machine.connackAccepted(now: at(100))
        machine.subscriptionRestoreSent(subscription("refused/#"), messageID: 3, deadline: at(10_100))
        machine.subscriptionRestoreSent(subscription("silent/#"), messageID: 4, deadline: at(10_100))
        #expect(machine.subscriptionRestoresSent().isEmpty)

        let rejection = MQTTError(
            code: .subscriptionRejected,
            reason: "Not authorized",
            mqttReasonCode: 0x87,
            detail: "filter refused/#"
        )
        #expect(
            machine.subscribeAcknowledged(messageID: 3, .refused(reasonCode: 0x87, reason: "Not authorized")) == [
                .reportRestoreFailure(subscription("refused/#"), .refused(rejection))
            ]
        )
        #expect(machine.nextLoopStep(sessionID: 1, now: at(10_050)).step == .runNetwork(timeout: .milliseconds(50)))
        #expect(
            machine.deadlinesPassed(sessionID: 1, now: at(10_100), libraryErrors: { nil }) == [
                .reportRestoreFailure(subscription("silent/#"), .timedOut), .publishState(.connected),
            ]
        )
        #expect(machine.subscriptions.map(\.filter) == ["refused/#", "silent/#"], "still restored next time")
    }

    @Test(
        "acknowledged filters: granted SUBACKs count on this connection; a loss, a refusal or an unsubscribe does not"
    )
    func acknowledgedFilters() {
        var machine = Machine(configuration: configuration())
        machine.connected()
        #expect(machine.acknowledgedFilters.isEmpty && machine.pendingSubscribeCount == 0)
        machine.subscribed("a", messageID: 1)
        machine.sent(.subscribe(subscription("b")), 2, by: "b")
        machine.sent(.subscribe(subscription("c")), 3, by: "c")
        #expect(machine.acknowledgedFilters == ["a"] && machine.pendingSubscribeCount == 2)
        _ = machine.subscribeAcknowledged(messageID: 2, .granted(.atMostOnce))
        _ = machine.subscribeAcknowledged(messageID: 3, .refused(reasonCode: 0x87, reason: "Not authorized"))
        #expect(machine.acknowledgedFilters == ["a", "b"] && machine.pendingSubscribeCount == 0)
        machine.sent(.unsubscribe(filter: "b"), 4, by: "unsubscribe")
        #expect(machine.acknowledgedFilters == ["a"], "not in force once the UNSUBSCRIBE is sent")

        // A new connection starts with nothing in force; restores count as their SUBACKs arrive.
        _ = machine.connectionEnded(error: brokerGone, now: at(1_000))
        #expect(machine.acknowledgedFilters.isEmpty)
        _ = machine.attempt(1, at: at(1_100))
        _ = machine.connackAccepted(now: at(1_100))
        machine.subscriptionRestoreSent(subscription("a"), messageID: 5, deadline: at(11_100))
        #expect(machine.subscriptionRestoresSent().isEmpty)
        #expect(machine.acknowledgedFilters.isEmpty && machine.pendingSubscribeCount == 1)
        #expect(machine.subscribeAcknowledged(messageID: 5, .granted(.atLeastOnce)) == [.publishState(.connected)])
        #expect(machine.acknowledgedFilters == ["a"] && machine.pendingSubscribeCount == 0)

        // A restore the broker refuses is remembered but not in force.
        machine.subscribed("d", messageID: 6)
        _ = machine.connectionEnded(error: brokerGone, now: at(2_000))
        _ = machine.attempt(1, at: at(2_100))
        _ = machine.connackAccepted(now: at(2_100))
        machine.subscriptionRestoreSent(subscription("a"), messageID: 7, deadline: at(12_100))
        machine.subscriptionRestoreSent(subscription("d"), messageID: 8, deadline: at(12_100))
        _ = machine.subscriptionRestoresSent()
        _ = machine.subscribeAcknowledged(messageID: 7, .granted(.atLeastOnce))
        _ = machine.subscribeAcknowledged(messageID: 8, .refused(reasonCode: 0x87, reason: "Not authorized"))
        #expect(machine.connectionState == .connected)
        #expect(machine.subscriptions.count == 2 && machine.acknowledgedFilters == ["a"])
        // After the unsubscribe of "b" the entries moved; subscribing "d" again still replaces its own.
        machine.sent(.subscribe(subscription("d", .atMostOnce)), 9, by: "d again")
        _ = machine.subscribeAcknowledged(messageID: 9, .granted(.atMostOnce))
        #expect(machine.subscriptions == [subscription("a"), subscription("d", .atMostOnce)])
        #expect(machine.acknowledgedFilters == ["a", "d"])

        _ = machine.disconnect(reasonCode: 0)
        #expect(machine.acknowledgedFilters.isEmpty, "nothing is in force without a session")
    }

    @Test("disconnect() fails every waiter with disconnected and sends DISCONNECT with its reason code")
    func disconnect() {
        var machine = Machine(configuration: configuration())
        machine.connected()
        machine.subscribed("kept/#", messageID: 1)
        machine.sent(.publish, 2, by: "publish")
        machine.sent(.subscribe(subscription("x")), 3, by: "subscribe")
        machine.sent(.unsubscribe(filter: "y"), 4, by: "unsubscribe")

        let actions = machine.disconnect(reasonCode: 4)
        let error = MQTTError(code: .disconnected, reason: "disconnect() was called before the operation completed")
        #expect(
            resumed(actions) == [
                "publish": .failure(error), "subscribe": .failure(error), "unsubscribe": .failure(error),
            ]
        )
        #expect(
            actions.suffix(3) == [
                .publishState(.disconnected(reason: nil)), .sendDisconnect(reasonCode: 4), .wakeLoopThread,
            ]
        )
        #expect(machine.pendingOperationCount == 0)
        #expect(machine.nextLoopStep(sessionID: 1, now: at(10)).step == .finish)
        #expect(machine.shouldAwaitLoopExit)
        #expect(machine.disconnectOnLoopExit == nil)
        #expect(machine.disconnect(reasonCode: 0).isEmpty, "a second disconnect() has nothing to end")

        // While the loop thread closes, connect() waits for it; then the subscriptions come back.
        let alreadyConnected = MQTTError(
            code: .alreadyConnected,
            reason: "connect() was called while a connection is active or still closing"
        )
        #expect(
            machine.connect(sessionID: 2, waiter: "early", isCancelled: false)
                == .resume("early", .failure(alreadyConnected))
        )
        #expect(machine.waitForLoopExit(token: 10, waiter: "exit") == nil)
        #expect(machine.loopExited() == [.resume("exit", .success)])
        #expect(machine.waitForLoopExit(token: 11, waiter: "exit") == resumption("exit", .success))
        #expect(machine.connect(sessionID: 2, waiter: "connect", isCancelled: false) == .startLoopThread)
        _ = machine.attempt(1, at: at(100), sessionID: 2)
        #expect(machine.connackAccepted(now: at(100)) == [.resubscribe([subscription("kept/#")], deadline: at(10_100))])
    }

    @Test("disconnect() while connecting fails connect(); in a backoff it only wakes the loop thread")
    func disconnectWhileConnecting() {
        var machine = Machine(configuration: configuration(retryInitialConnect: true))
        _ = machine.connect(sessionID: 1, waiter: "connect", isCancelled: false)
        _ = machine.attempt(1, at: start, result: .failure(refused))
        #expect(
            machine.disconnect(reasonCode: 0) == [
                .resume(
                    "connect",
                    .failure(
                        MQTTError(
                            code: .disconnected,
                            reason: "disconnect() was called before the connection was established"
                        )
                    )
                ),
                .publishState(.disconnected(reason: nil)), .wakeLoopThread,
            ]
        )
        #expect(machine.disconnectOnLoopExit == 0, "no socket yet: the exiting thread sends DISCONNECT if it has one")
    }

    @Test("a previous loop thread that does not exit in time fails connect() with timeout")
    func loopExitTimesOut() {
        var machine = Machine(configuration: configuration())
        _ = machine.connect(sessionID: 1, waiter: "connect", isCancelled: false)
        _ = machine.nextLoopStep(sessionID: 1, now: start)
        _ = machine.disconnect(reasonCode: 0)
        #expect(!machine.shouldAwaitLoopExit, "the thread is blocked in DNS or TCP connect")
        #expect(machine.waitForLoopExit(token: 7, waiter: "next connect") == nil)
        let timeout = MQTTError(
            code: .timeout,
            reason: "the previous connection attempt is still in progress (blocked in DNS or TCP connect)"
        )
        #expect(machine.loopExitWaitTimedOut(token: 7) == resumption("next connect", .failure(timeout)))
        #expect(machine.loopExitWaitTimedOut(token: 7) == nil)
        #expect(machine.loopExited().isEmpty)
    }

    @Test("cancelling connect() ends the session at once, during an attempt or a backoff")
    func cancelConnect() {
        var machine = Machine(configuration: configuration(retryInitialConnect: true))
        #expect(machine.connect(sessionID: 1, waiter: "connect", isCancelled: true) == .resume("connect", .cancelled))
        #expect(machine.session == nil)

        _ = machine.connect(sessionID: 2, waiter: "connect", isCancelled: false)
        _ = machine.attempt(1, at: start, result: .failure(refused), sessionID: 2)
        #expect(machine.cancelConnect(sessionID: 1).isEmpty, "another session")
        #expect(
            machine.cancelConnect(sessionID: 2) == [
                .resume("connect", .cancelled), .publishState(.disconnected(reason: nil)), .wakeLoopThread,
            ]
        )
        #expect(machine.nextLoopStep(sessionID: 2, now: at(10)).step == .finish)

        // Waiting for CONNACK, there is a socket to close.
        #expect(machine.loopExited().isEmpty)
        _ = machine.connect(sessionID: 3, waiter: "connect", isCancelled: false)
        _ = machine.attempt(1, at: at(20), sessionID: 3)
        #expect(
            machine.cancelConnect(sessionID: 3) == [
                .resume("connect", .cancelled), .publishState(.disconnected(reason: nil)),
                .sendDisconnect(reasonCode: 0),
                .wakeLoopThread,
            ]
        )
    }

    @Test("releasing the client fails every waiter and refuses connect() from then on")
    func shutdown() {
        var machine = Machine(configuration: configuration())
        machine.connected()
        machine.sent(.publish, 1, by: "publish")
        let released = MQTTError(code: .disconnected, reason: "the client was released")
        #expect(
            machine.shutdown() == [
                .resume("publish", .failure(released)), .publishState(.disconnected(reason: nil)),
                .sendDisconnect(reasonCode: 0), .wakeLoopThread,
            ]
        )
        #expect(machine.isClosed)
        _ = machine.loopExited()
        #expect(
            machine.connect(sessionID: 2, waiter: "connect", isCancelled: false)
                == .resume("connect", .failure(released))
        )
        #expect(machine.shutdown().isEmpty)
    }
}

@Suite("Client state machine: publish, subscribe and unsubscribe (no broker)")
struct ClientOperationStateMachineTests {
    @Test("while not connected an operation fails at once with notConnected; a cancelled one with cancelled")
    func refusals() {
        var machine = Machine(configuration: configuration())
        #expect(machine.operationRefusal(isCancelled: false) == .failure(notConnected()))
        #expect(machine.operationRefusal(isCancelled: true) == .cancelled)
        machine.connected()
        #expect(machine.operationRefusal(isCancelled: false) == nil)
        #expect(machine.operationRefusal(isCancelled: true) == .cancelled)
    }

    @Test("acknowledgements complete their calls: PUBACK, an MQTT 5 rejection, SUBACK granted or refused, UNSUBACK")
    func acknowledgements() {
        var machine = Machine(configuration: configuration())
        machine.connected()
        machine.sent(.publish, 1, by: "publish")
        // 0x10, "no matching subscribers", is a success.
        #expect(
            machine.publishAcknowledged(messageID: 1, .accepted(reasonCode: 0x10)) == resumption("publish", .success)
        )
        #expect(machine.publishAcknowledged(messageID: 1, .accepted(reasonCode: 0)) == nil, "nothing waits any more")

        let rejected = MQTTError(code: .publishRejected, reason: "Not authorized", mqttReasonCode: 0x87)
        machine.sent(.publish, 2, by: "rejected")
        #expect(
            machine.publishAcknowledged(messageID: 2, .rejected(rejected))
                == resumption("rejected", .failure(rejected))
        )

        machine.sent(.subscribe(subscription("a", .exactlyOnce)), 3, by: "subscribe")
        #expect(
            machine.subscribeAcknowledged(messageID: 3, .granted(.atLeastOnce))
                == [.resume("subscribe", .granted(.atLeastOnce))]
        )
        machine.sent(.subscribe(subscription("a", .atMostOnce)), 4, by: "again")
        _ = machine.subscribeAcknowledged(messageID: 4, .granted(.atMostOnce))
        #expect(machine.subscriptions == [subscription("a", .atMostOnce)], "subscribing again replaces the entry")

        machine.sent(.subscribe(subscription("b")), 5, by: "refused")
        let rejection = MQTTError(
            code: .subscriptionRejected,
            reason: "the broker refused the subscription",
            mqttReasonCode: 0x80,
            detail: "filter b"
        )
        let refusal = machine.subscribeAcknowledged(
            messageID: 5,
            .refused(reasonCode: 0x80, reason: "the broker refused the subscription")
        )
        #expect(refusal == [.resume("refused", .failure(rejection))])
        #expect(machine.subscriptions.map(\.filter) == ["a"])

        machine.sent(.unsubscribe(filter: "a"), 6, by: "unsubscribe")
        #expect(machine.subscriptions.isEmpty, "an unsubscribed filter is not restored even before its UNSUBACK")
        #expect(machine.unsubscribeAcknowledged(messageID: 6) == resumption("unsubscribe", .success))
        #expect(machine.unsubscribeAcknowledged(messageID: 6) == nil)
        #expect(machine.pendingOperationCount == 0)
    }

    @Test("a QoS 0 report with the message id of a pending QoS 1 publish does not complete that publish")
    func qos0IDCollision() {
        var machine = Machine(configuration: configuration())
        machine.connected()
        machine.sent(.publish, 9, by: "qos1", token: 1)
        machine.qos0PublishSent(messageID: 9)
        machine.qos0PublishSent(messageID: 10)
        #expect(machine.publishAcknowledged(messageID: 9, .accepted(reasonCode: 0)) == nil, "the QoS 0 one was written")
        #expect(machine.publishAcknowledged(messageID: 10, .accepted(reasonCode: 0)) == nil)
        #expect(machine.publishAcknowledged(messageID: 9, .accepted(reasonCode: 0)) == resumption("qos1", .success))
    }

    @Test("each pending operation fails with timeout at its own deadline, not before; the loop wakes for it")
    func deadlines() {
        var machine = Machine(configuration: configuration())
        machine.connected()
        #expect(machine.deadline(timeout: nil, from: at(0)) == at(10_000), "operationTimeout by default")
        machine.sent(.publish, 1, by: "publish", deadline: machine.deadline(timeout: .seconds(1), from: at(0)))
        machine.sent(.unsubscribe(filter: "u"), 2, by: "unsubscribe", deadline: at(3_000))
        machine.sent(.subscribe(subscription("s")), 3, by: "subscribe")
        #expect(machine.earliestDeadline == at(1_000))
        #expect(machine.nextLoopStep(sessionID: 1, now: at(960)).step == .runNetwork(timeout: .milliseconds(40)))

        #expect(machine.deadlinesPassed(sessionID: 1, now: at(999), libraryErrors: { nil }).isEmpty)
        #expect(
            machine.deadlinesPassed(sessionID: 1, now: at(1_000), libraryErrors: { nil }) == [
                .resume("publish", .failure(noAcknowledgement("acknowledgement (PUBACK/PUBCOMP)")))
            ]
        )
        #expect(machine.earliestDeadline == at(3_000))
        #expect(
            machine.deadlinesPassed(sessionID: 1, now: at(3_000), libraryErrors: { nil }) == [
                .resume("unsubscribe", .failure(noAcknowledgement("UNSUBACK")))
            ]
        )
        #expect(
            machine.deadlinesPassed(sessionID: 1, now: at(10_000), libraryErrors: { nil }) == [
                .resume("subscribe", .failure(noAcknowledgement("SUBACK")))
            ]
        )
        #expect(machine.earliestDeadline == nil)
        #expect(machine.pendingOperationCount == 0)
        #expect(machine.publishAcknowledged(messageID: 1, .accepted(reasonCode: 0)) == nil, "a late PUBACK")
        #expect(machine.isOperational, "a time limit does not cost the connection")
    }

    @Test("cancelling a waiting operation ends it at once with cancelled; its acknowledgement later is ignored")
    func cancellation() {
        var machine = Machine(configuration: configuration())
        machine.connected()
        machine.sent(.publish, 1, by: "publish", token: 11)
        machine.sent(.subscribe(subscription("s")), 2, by: "subscribe", token: 12)
        machine.sent(.unsubscribe(filter: "u"), 3, by: "unsubscribe", token: 13)

        #expect(machine.cancelOperation(token: 99) == nil)
        #expect(machine.cancelOperation(token: 12) == resumption("subscribe", .cancelled))
        #expect(machine.cancelOperation(token: 11) == resumption("publish", .cancelled))
        #expect(machine.cancelOperation(token: 13) == resumption("unsubscribe", .cancelled))
        #expect(machine.cancelOperation(token: 11) == nil, "cancelled once")
        #expect(machine.pendingOperationCount == 0)
        #expect(machine.publishAcknowledged(messageID: 1, .accepted(reasonCode: 0)) == nil)
        #expect(machine.subscribeAcknowledged(messageID: 2, .granted(.atLeastOnce)).isEmpty)
        #expect(machine.subscriptions.isEmpty, "a cancelled subscribe is not remembered")
        #expect(machine.unsubscribeAcknowledged(messageID: 3) == nil)
    }
}

@Suite("Batched subscriptions: many filters per SUBSCRIBE, a result per filter (no broker)")
struct BatchedSubscriptionTests {
    private static func refusal(_ filter: String) -> MQTTError {
        MQTTError(
            code: .subscriptionRejected,
            reason: "Not authorized",
            mqttReasonCode: 0x87,
            detail: "filter \(filter)"
        )
    }

    @Test("a SUBACK refusing one filter of a batch fails that filter alone; the granted ones count and are remembered")
    func refusedFilterInBatch() {
        var machine = Machine(configuration: configuration())
        machine.connected()
        let batch = [subscription("a/#"), subscription("b/#"), subscription("c/#")]
        machine.sent(.subscribeBatch(batch), 7, by: "batch")
        #expect(machine.pendingOperationCount == 1)
        #expect(machine.pendingSubscribeCount == 1, "one packet")
        let actions = machine.subscribeAcknowledged(
            messageID: 7,
            [.granted(.atLeastOnce), .refused(reasonCode: 0x87, reason: "Not authorized"), .granted(.atMostOnce)]
        )
        #expect(
            actions == [
                .resume(
                    "batch",
                    .grantedEach([.success(.atLeastOnce), .failure(Self.refusal("b/#")), .success(.atMostOnce)])
                )
            ]
        )
        #expect(machine.acknowledgedFilters == ["a/#", "c/#"])
        #expect(machine.subscriptions.map(\.filter) == ["a/#", "c/#"], "the refused filter is not restored")
        #expect(machine.pendingOperationCount == 0 && machine.pendingSubscribeCount == 0)
    }

    @Test("a SUBACK with fewer entries than filters refuses the filters it does not answer")
    func shortSuback() {
        var machine = Machine(configuration: configuration())
        machine.connected()
        machine.sent(.subscribeBatch([subscription("a"), subscription("b")]), 3, by: "batch")
        let actions = machine.subscribeAcknowledged(messageID: 3, [.granted(.atLeastOnce)])
        guard case .resume("batch", .grantedEach(let results))? = actions.first else {
            Issue.record("expected the batch to be resumed, got \(actions)")
            return
        }
        #expect(results.count == 2)
        #expect((try? results[0].get()) == .atLeastOnce)
        #expect(results[1].mqttErrorCode == .subscriptionRejected)
        #expect(machine.acknowledgedFilters == ["a"])
    }

    @Test("a batch with no SUBACK in time fails as a whole with timeout; a lost connection fails it too")
    func batchTimeoutAndLoss() {
        var machine = Machine(configuration: configuration())
        machine.connected()
        machine.sent(.subscribeBatch([subscription("a"), subscription("b")]), 4, by: "late", deadline: at(500))
        #expect(
            resumed(machine.deadlinesPassed(sessionID: 1, now: at(500), libraryErrors: { nil }))
                == ["late": .failure(noAcknowledgement("SUBACK"))]
        )
        #expect(machine.acknowledgedFilters.isEmpty && machine.subscriptions.isEmpty)
        machine.sent(.subscribeBatch([subscription("c")]), 5, by: "lost")
        #expect(resumed(machine.connectionEnded(error: brokerGone, now: at(600)))["lost"] == .failure(lost(brokerGone)))
    }

    @Test("a cancelled batch call ends at once; its late SUBACK changes nothing")
    func cancelledBatch() {
        var machine = Machine(configuration: configuration())
        machine.connected()
        machine.sent(.subscribeBatch([subscription("a")]), 6, by: "batch", token: 42)
        #expect(machine.cancelOperation(token: 42) == resumption("batch", .cancelled))
        #expect(machine.subscribeAcknowledged(messageID: 6, [.granted(.atLeastOnce)]).isEmpty)
        #expect(machine.acknowledgedFilters.isEmpty)
    }

    @Test("restored subscriptions in one packet: a refused one is reported alone, and the client connects")
    func restoredBatch() {
        var machine = Machine(configuration: configuration())
        machine.connected()
        machine.subscribed("a", messageID: 1)
        machine.subscribed("b", messageID: 2)
        _ = machine.connectionEnded(error: brokerGone, now: at(100))
        let turn = machine.nextLoopStep(sessionID: 1, now: at(200))
        #expect(turn.step == .connect(attempt: 1, timeout: .seconds(5)))
        _ = machine.connectCallReturned(sessionID: 1, attempt: 1, result: .success(()), now: at(200))
        let restored = [subscription("a"), subscription("b")]
        #expect(machine.connackAccepted(now: at(200)) == [.resubscribe(restored, deadline: at(10_200))])
        machine.subscriptionRestoreSent(restored, messageID: 9, deadline: at(10_200))
        #expect(machine.subscriptionRestoresSent().isEmpty)
        #expect(machine.pendingSubscribeCount == 1 && machine.pendingOperationCount == 0)
        #expect(
            machine.subscribeAcknowledged(
                messageID: 9,
                [.refused(reasonCode: 0x87, reason: "Not authorized"), .granted(.atLeastOnce)]
            ) == [.reportRestoreFailure(subscription("a"), .refused(Self.refusal("a"))), .publishState(.connected)]
        )
        #expect(machine.acknowledgedFilters == ["b"])
    }

    @Test("packets group filters by QoS and options, in order, within the filter and byte limits")
    func packetSplitting() {
        let many = (0..<2_500).map { subscription("plant/\($0)/value") }
        let packets = SubscribeBatches.split(many)
        #expect(packets.map(\.count) == [1_000, 1_000, 500])
        #expect(packets.flatMap { $0 } == many, "every filter once, in order")

        let mixed = [
            subscription("a"), subscription("b", .atMostOnce), subscription("c"), subscription("d", .atMostOnce),
        ]
        #expect(SubscribeBatches.split(mixed).map { $0.map(\.filter) } == [["a", "c"], ["b", "d"]])

        // 10-byte filters cost 13 bytes each: 3 fit in 40 bytes.
        let sized = (0..<7).map { subscription("topic/\($0)/xy") }
        #expect(SubscribeBatches.split(sized, maxFilters: 100, maxBytes: 40).map(\.count) == [3, 3, 1])
        let huge = subscription(String(repeating: "x", count: 100))
        #expect(SubscribeBatches.split([huge, subscription("a")], maxBytes: 50).map(\.count) == [1, 1])
        #expect(SubscribeBatches.split([]).isEmpty)
    }
}

extension Result where Failure == MQTTError {
    fileprivate var mqttErrorCode: MQTTError.Code? {
        if case .failure(let error) = self { error.code } else { nil }
    }
}
