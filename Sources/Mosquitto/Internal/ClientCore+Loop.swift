import CMosquitto
import Dispatch
import Foundation

/// The loop thread: connection attempts, libmosquitto's network loop, backoff
/// waits and deadline checks, each turn as the state machine decides.
extension ClientCore {
    func runLoop(sessionID: UInt64) {
        self.logger.debug("MQTT loop thread started", metadata: ["broker": "\(self.brokerDescription)"])
        loop: while true {
            let step = self.state.withLock { state in
                let turn = state.machine.nextLoopStep(sessionID: sessionID, now: .now)
                self.execute(turn.actions, in: &state)
                return turn.step
            }
            switch step {
            case .connect(let attempt, let timeout):
                self.performConnect(sessionID: sessionID, attempt: attempt, timeout: timeout)
            case .runNetwork(let timeout):
                let rc = mosquitto_loop(self.handle.pointer, Int32(timeout.wholeMilliseconds), 1)
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

    func performConnect(sessionID: UInt64, attempt: Int, timeout: Duration) {
        self.libraryLog.withLock { $0.removeAll() }
        MosquittoCallbacks.installLog(on: self.handle.pointer)
        // The call below blocks this thread, so another one abandons the attempt.
        DispatchQueue.global().asyncAfter(deadline: .now() + timeout.dispatchInterval) { [self] in
            self.apply { $0.connectCallTimedOut(sessionID: sessionID, attempt: attempt, now: .now) }
        }
        self.logger.debug(
            "MQTT connection attempt",
            metadata: ["broker": "\(self.brokerDescription)", "attempt": "\(attempt)"]
        )
        let result: Result<Void, MQTTError>
        do {
            var properties = try OutgoingProperties.connect(self.configuration)
            defer { properties.free() }
            let rc = mosquitto_connect_bind_v5(
                self.handle.pointer,
                self.configuration.host,
                Int32(self.configuration.port),
                Int32(self.configuration.keepAlive.wholeSeconds),
                nil,
                properties.list
            )
            let errorNumber = errno
            let logDetail = self.takeLibraryErrors()
            result =
                rc == MOSQ_ERR_SUCCESS.rawValue
                ? .success(()) : .failure(MosquittoResult.error(rc, errno: errorNumber, logDetail: logDetail))
        } catch {
            result = .failure(error)
        }
        self.apply { $0.connectCallReturned(sessionID: sessionID, attempt: attempt, result: result, now: .now) }
    }

    func networkLoopFailed(sessionID: UInt64, rc: Int32, errno errorNumber: Int32) {
        let error: MQTTError
        if rc == MOSQ_ERR_NO_CONN.rawValue {
            error = MQTTError(code: .connectionLost, reason: MosquittoResult.text(of: MOSQ_ERR_CONN_LOST.rawValue))
        } else {
            error = MosquittoResult.error(rc, errno: errorNumber, logDetail: self.takeLibraryErrors())
        }
        self.apply { $0.connectionEnded(sessionID: sessionID, error: error, now: .now) }
    }

    func expireDeadlines(sessionID: UInt64) {
        let now = ContinuousClock.now
        self.apply { $0.deadlinesPassed(sessionID: sessionID, now: now, libraryErrors: self.takeLibraryErrors) }
    }

    func finishLoop() {
        let disconnectReasonCode = self.state.withLock { $0.machine.disconnectOnLoopExit }
        let pointer = self.handle.pointer
        if mosquitto_socket(pointer) != -1 {
            if let disconnectReasonCode {
                _ = mosquitto_disconnect_v5(pointer, disconnectReasonCode, nil)
            }
            let deadline = ContinuousClock.now + Self.disconnectFlushTime
            while mosquitto_socket(pointer) != -1 && ContinuousClock.now < deadline {
                _ = mosquitto_loop(pointer, 50, 1)
            }
        }
        self.apply { $0.loopExited() }
        self.logger.debug("MQTT loop thread finished")
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
