import CMosquitto
import Dispatch
import Foundation

/// The loop thread: connection attempts, libmosquitto's network loop,
/// reconnection with backoff, deadlines.
extension ClientCore {
    enum LoopStep {
        case connect(attempt: Int)
        case runNetwork(timeoutMilliseconds: Int32)
        case sleep(until: ContinuousClock.Instant)
        case finish
    }

    func runLoop(sessionID: UInt64) {
        self.logger.debug("MQTT loop thread started", metadata: ["broker": "\(self.brokerDescription)"])
        loop: while true {
            let step = self.state.withLock { self.nextStep(in: &$0, sessionID: sessionID) }
            switch step {
            case .connect(let attempt):
                self.performConnect(sessionID: sessionID, attempt: attempt)
            case .runNetwork(let timeout):
                let rc = mosquitto_loop(self.handle.pointer, timeout, 1)
                let errorNumber = errno
                if rc != MOSQ_ERR_SUCCESS.rawValue {
                    self.networkLoopFailed(sessionID: sessionID, rc: rc, errno: errorNumber)
                }
                self.expireDeadlines(sessionID: sessionID)
            case .sleep(let deadline):
                _ = self.wakeup.wait(timeout: DispatchTime.now() + (deadline - .now).dispatchInterval)
            case .finish:
                break loop
            }
        }
        self.finishLoop()
    }

    func nextStep(in state: inout ClientState, sessionID: UInt64) -> LoopStep {
        guard var session = state.session, session.id == sessionID else { return .finish }
        let now = ContinuousClock.now
        switch session.phase {
        case .backoff(let until) where until > now:
            return .sleep(until: until)
        case .idle, .backoff:
            let attempt = session.failedAttempts + 1
            session.phase = .connectCall(attempt: attempt)
            session.attemptDeadline = now + self.configuration.connectTimeout
            session.attemptError = nil
            state.session = session
            state.loop?.inConnectCall = true
            self.setPublicState(.connecting, in: &state)
            return .connect(attempt: attempt)
        case .connectCall:
            // Only reachable if the timer abandoned the attempt and a new one
            // has not started; treat like idle on the next turn.
            return .sleep(until: now + Self.loopTick)
        case .awaitingConnack, .restoringSubscriptions, .connected:
            var deadlines = [state.earliestDeadline]
            if case .awaitingConnack = session.phase { deadlines.append(session.attemptDeadline) }
            var wait = Self.loopTick
            if let earliest = deadlines.compactMap({ $0 }).min() {
                wait = min(wait, max(earliest - now, .zero))
            }
            return .runNetwork(timeoutMilliseconds: Int32(wait.wholeMilliseconds))
        }
    }

    func performConnect(sessionID: UInt64, attempt: Int) {
        self.libraryLog.withLock { $0.removeAll() }
        let timeout = self.configuration.connectTimeout
        DispatchQueue.global().asyncAfter(deadline: .now() + timeout.dispatchInterval) { [self] in
            self.connectCallTimedOut(sessionID: sessionID, attempt: attempt)
        }
        self.logger.debug(
            "MQTT connection attempt", metadata: ["broker": "\(self.brokerDescription)", "attempt": "\(attempt)"])
        let rc: Int32
        let errorNumber: Int32
        do {
            var properties = try OutgoingProperties.connect(self.configuration)
            defer { properties.free() }
            rc = mosquitto_connect_bind_v5(
                self.handle.pointer, self.configuration.host, Int32(self.configuration.port),
                Int32(self.configuration.keepAlive.wholeSeconds), nil, properties.list)
            errorNumber = errno
        } catch {
            self.state.withLock { state in
                state.loop?.inConnectCall = false
                self.attemptFailed(in: &state, sessionID: sessionID, error: error)
            }
            return
        }
        let logDetail = self.takeLibraryErrors()
        self.state.withLock { state in
            state.loop?.inConnectCall = false
            guard let session = state.session, session.id == sessionID,
                case .connectCall(let current) = session.phase, current == attempt
            else {
                return  // abandoned by the timer or by disconnect()
            }
            if rc == MOSQ_ERR_SUCCESS.rawValue {
                state.session?.phase = .awaitingConnack
            } else {
                self.attemptFailed(
                    in: &state, sessionID: sessionID,
                    error: MosquittoResult.error(rc, errno: errorNumber, logDetail: logDetail))
            }
        }
    }

    func connectCallTimedOut(sessionID: UInt64, attempt: Int) {
        self.state.withLock { state in
            guard let session = state.session, session.id == sessionID,
                case .connectCall(let current) = session.phase, current == attempt
            else { return }
            self.attemptFailed(
                in: &state, sessionID: sessionID,
                error: MQTTError(
                    code: .timeout,
                    reason: "could not reach \(self.brokerDescription) within \(self.configuration.connectTimeout)"))
        }
    }

    func networkLoopFailed(sessionID: UInt64, rc: Int32, errno errorNumber: Int32) {
        let error: MQTTError
        if rc == MOSQ_ERR_NO_CONN.rawValue {
            error = MQTTError(code: .connectionLost, reason: MosquittoResult.text(of: MOSQ_ERR_CONN_LOST.rawValue))
        } else {
            error = MosquittoResult.error(rc, errno: errorNumber, logDetail: self.takeLibraryErrors())
        }
        self.state.withLock { state in
            self.connectionEnded(in: &state, sessionID: sessionID, error: error)
        }
    }

    /// Handles the end of a connection or attempt, whoever noticed it first
    /// (the disconnect callback or the loop's result); later reports are no-ops.
    func connectionEnded(in state: inout ClientState, sessionID: UInt64, error: MQTTError) {
        guard let session = state.session, session.id == sessionID else { return }
        switch session.phase {
        case .awaitingConnack:
            self.attemptFailed(in: &state, sessionID: sessionID, error: session.attemptError ?? error)
        case .restoringSubscriptions, .connected:
            let lost = MQTTError(
                code: .connectionLost,
                reason: "the connection to the broker was lost before the operation completed",
                detail: error.description)
            self.failPendingOperations(in: &state, with: lost)
            let delay = self.configuration.reconnect.delay(beforeAttempt: 0)
            state.session?.failedAttempts = 0
            state.session?.phase = .backoff(until: .now + delay)
            self.logger.warning(
                "MQTT connection lost; reconnecting",
                metadata: ["broker": "\(self.brokerDescription)", "error": "\(error)", "delay": "\(delay)"])
            self.setPublicState(.disconnected(reason: error), in: &state)
        case .idle, .connectCall, .backoff:
            return
        }
    }

    func attemptFailed(in state: inout ClientState, sessionID: UInt64, error: MQTTError) {
        guard var session = state.session, session.id == sessionID else { return }
        session.failedAttempts += 1
        if !session.hasConnected && !self.configuration.reconnect.retryInitialConnect {
            self.logger.debug("MQTT connection failed", metadata: ["broker": "\(self.brokerDescription)", "error": "\(error)"])
            state.session = nil
            session.connectWaiter?.resume(throwing: error)
            self.setPublicState(.disconnected(reason: error), in: &state)
            if session.isSocketPhase, state.loop?.disconnectSent == false {
                _ = mosquitto_disconnect_v5(self.handle.pointer, 0, nil)
                state.loop?.disconnectSent = true
            }
            return
        }
        // After a lost connection the first attempt already waited
        // delay(0); an initial connect that failed has not waited yet.
        let delay = self.configuration.reconnect.delay(
            beforeAttempt: session.hasConnected ? session.failedAttempts : session.failedAttempts - 1)
        self.logger.warning(
            "MQTT connection attempt failed; retrying",
            metadata: [
                "broker": "\(self.brokerDescription)", "error": "\(error)", "attempt": "\(session.failedAttempts)",
                "delay": "\(delay)",
            ])
        if session.isSocketPhase {
            // Closes the half-open connection (for example after a CONNACK
            // timeout); the next attempt would close it anyway.
            _ = mosquitto_disconnect_v5(self.handle.pointer, 0, nil)
        }
        session.phase = .backoff(until: .now + delay)
        state.session = session
        self.setPublicState(.disconnected(reason: error), in: &state)
    }

    func finishLoop() {
        let (sendDisconnect, reasonCode) = self.state.withLock { state in
            (state.loop?.disconnectSent == false, state.loop?.disconnectReasonCode ?? 0)
        }
        let pointer = self.handle.pointer
        if mosquitto_socket(pointer) != -1 {
            if sendDisconnect {
                _ = mosquitto_disconnect_v5(pointer, reasonCode, nil)
            }
            let deadline = ContinuousClock.now + Self.disconnectFlushTime
            while mosquitto_socket(pointer) != -1 && ContinuousClock.now < deadline {
                _ = mosquitto_loop(pointer, 50, 1)
            }
        }
        let waiters = self.state.withLock { state -> [CheckedContinuation<Void, any Error>] in
            let waiters = Array(state.loop?.exitWaiters.values ?? [:].values)
            state.loop = nil
            return waiters
        }
        for waiter in waiters { waiter.resume() }
        self.logger.debug("MQTT loop thread finished")
    }

    func expireDeadlines(sessionID: UInt64) {
        let now = ContinuousClock.now
        self.state.withLock { state in
            if let session = state.session, session.id == sessionID, case .awaitingConnack = session.phase,
                let deadline = session.attemptDeadline, deadline <= now
            {
                self.attemptFailed(
                    in: &state, sessionID: sessionID,
                    error: session.attemptError
                        ?? MQTTError(
                            code: .timeout,
                            reason: "no CONNACK from \(self.brokerDescription) within \(self.configuration.connectTimeout)",
                            detail: self.takeLibraryErrors()))
            }
            guard let earliest = state.earliestDeadline, earliest <= now else { return }
            let timeout = { (what: String) in
                MQTTError(code: .timeout, reason: "no \(what) from the broker within the time limit")
            }
            var next: ContinuousClock.Instant?
            for (id, pending) in state.pendingPublishes {
                if pending.deadline <= now {
                    state.pendingPublishes[id] = nil
                    pending.continuation.resume(throwing: timeout("acknowledgement (PUBACK/PUBCOMP)"))
                } else {
                    next = min(next ?? pending.deadline, pending.deadline)
                }
            }
            for (id, pending) in state.pendingUnsubscribes {
                if pending.deadline <= now {
                    state.pendingUnsubscribes[id] = nil
                    pending.continuation.resume(throwing: timeout("UNSUBACK"))
                } else {
                    next = min(next ?? pending.deadline, pending.deadline)
                }
            }
            for (id, pending) in state.pendingSubscribes {
                if pending.deadline <= now {
                    state.pendingSubscribes[id] = nil
                    switch pending.kind {
                    case .request(let continuation):
                        continuation.resume(throwing: timeout("SUBACK"))
                    case .restore:
                        self.logger.error(
                            "MQTT subscription not confirmed after reconnecting",
                            metadata: ["filter": "\(pending.subscription.filter)"])
                    }
                } else {
                    next = min(next ?? pending.deadline, pending.deadline)
                }
            }
            state.earliestDeadline = next
            self.completeRestorationIfDone(in: &state)
        }
    }

    func failPendingOperations(in state: inout ClientState, with error: MQTTError) {
        for pending in state.pendingPublishes.values { pending.continuation.resume(throwing: error) }
        for pending in state.pendingUnsubscribes.values { pending.continuation.resume(throwing: error) }
        for pending in state.pendingSubscribes.values {
            if case .request(let continuation) = pending.kind { continuation.resume(throwing: error) }
        }
        state.pendingPublishes = [:]
        state.pendingUnsubscribes = [:]
        state.pendingSubscribes = [:]
        state.qos0IDCollisions = [:]
        state.earliestDeadline = nil
    }

    func takeLibraryErrors() -> String? {
        let lines = self.libraryLog.withLock { lines -> [String] in
            defer { lines.removeAll() }
            return lines
        }
        return lines.isEmpty ? nil : lines.joined(separator: "; ")
    }

    var brokerDescription: String {
        "\(self.configuration.host):\(self.configuration.port)"
    }
}
