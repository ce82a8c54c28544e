import CMosquitto
import Dispatch
import Foundation

/// Connecting, disconnecting and releasing: the session lifecycle, driven by
/// the application's calls.
extension ClientCore {
    func connect() async throws {
        // A previous loop thread may still be sending DISCONNECT.
        try await self.awaitLoopExit(timeout: self.configuration.connectTimeout)
        let sessionID = self.nextToken()
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let start = self.state.withLock { state -> Bool in
                    if Task.isCancelled {
                        continuation.resume(throwing: CancellationError())
                        return false
                    }
                    if state.closed {
                        continuation.resume(throwing: MQTTError(code: .disconnected, reason: "the client was released"))
                        return false
                    }
                    guard state.session == nil, state.loop == nil else {
                        continuation.resume(
                            throwing: MQTTError(
                                code: .alreadyConnected,
                                reason: "connect() was called while a connection is active or still closing"))
                        return false
                    }
                    var session = Session(id: sessionID)
                    session.connectWaiter = continuation
                    state.session = session
                    state.loop = LoopThread()
                    return true
                }
                guard start else { return }
                let thread = Thread { [self] in
                    self.runLoop(sessionID: sessionID)
                }
                thread.name = "mqtt-loop"
                thread.start()
            }
        } onCancel: {
            self.cancelConnect(sessionID: sessionID)
        }
    }

    func cancelConnect(sessionID: UInt64) {
        self.state.withLock { state in
            guard let session = state.session, session.id == sessionID, session.connectWaiter != nil else { return }
            self.endSession(
                in: &state, failingOperationsWith: MQTTError(code: .disconnected, reason: "connect() was cancelled"),
                connectWaiterError: CancellationError(), reasonCode: 0)
        }
    }

    func disconnect(publishingWill: Bool) async {
        if publishingWill && self.configuration.protocolVersion == .v311 {
            self.logger.warning("MQTT 3.1.1 cannot ask the broker to publish the will; disconnecting normally")
        }
        let reasonCode: Int32 = publishingWill && self.configuration.protocolVersion == .v5 ? 4 : 0
        let waitForThread = self.state.withLock { state -> Bool in
            if state.session != nil {
                self.endSession(
                    in: &state,
                    failingOperationsWith: MQTTError(
                        code: .disconnected, reason: "disconnect() was called before the operation completed"),
                    connectWaiterError: MQTTError(
                        code: .disconnected, reason: "disconnect() was called before the connection was established"),
                    reasonCode: reasonCode)
            }
            // A thread stuck in a blocking connect exits when that call
            // returns; nothing is gained by waiting for it here.
            return state.loop.map { !$0.inConnectCall } ?? false
        }
        if waitForThread {
            try? await self.awaitLoopExit(timeout: Self.disconnectFlushTime + .seconds(1))
        }
    }

    /// Releases everything when the owning ``MQTTClient`` goes away.
    func shutdown() {
        let observers = self.state.withLock { state -> [AsyncStream<MQTTConnectionState>.Continuation] in
            state.closed = true
            if state.session != nil {
                self.endSession(
                    in: &state,
                    failingOperationsWith: MQTTError(code: .disconnected, reason: "the client was released"),
                    connectWaiterError: MQTTError(code: .disconnected, reason: "the client was released"),
                    reasonCode: 0)
            }
            let observers = Array(state.observers.values)
            state.observers = [:]
            return observers
        }
        // Outside the lock: finishing runs termination handlers synchronously.
        for observer in observers { observer.finish() }
        self.messageContinuation.finish()
    }

    /// Ends the session: fails what is pending, reports `.disconnected(nil)`
    /// and makes the loop thread send DISCONNECT and exit.
    func endSession(
        in state: inout ClientState, failingOperationsWith error: MQTTError, connectWaiterError: any Error,
        reasonCode: Int32
    ) {
        guard let session = state.session else { return }
        state.session = nil
        session.connectWaiter?.resume(throwing: connectWaiterError)
        self.failPendingOperations(in: &state, with: error)
        self.setPublicState(.disconnected(reason: nil), in: &state)
        state.loop?.disconnectReasonCode = reasonCode
        if session.isSocketPhase, state.loop?.disconnectSent == false {
            // Queues DISCONNECT and wakes the loop thread out of select().
            _ = mosquitto_disconnect_v5(self.handle.pointer, reasonCode, nil)
            state.loop?.disconnectSent = true
        }
        self.wakeup.signal()
    }

    func awaitLoopExit(timeout: Duration) async throws {
        let token = self.nextToken()
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let waiting = self.state.withLock { state -> Bool in
                // With a session the caller gets `alreadyConnected` next; only
                // a thread that is still closing a finished session is waited for.
                guard state.loop != nil, state.session == nil else { return false }
                state.loop?.exitWaiters[token] = continuation
                return true
            }
            guard waiting else {
                continuation.resume()
                return
            }
            DispatchQueue.global().asyncAfter(deadline: .now() + timeout.dispatchInterval) { [self] in
                let waiter = self.state.withLock { $0.loop?.exitWaiters.removeValue(forKey: token) }
                waiter?.resume(
                    throwing: MQTTError(
                        code: .timeout,
                        reason: "the previous connection attempt is still in progress (blocked in DNS or TCP connect)"))
            }
        }
    }
}
