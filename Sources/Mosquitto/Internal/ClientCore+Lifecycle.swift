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
                // `Task.isCancelled` is read under the lock, so a cancellation
                // either is seen here or finds the session registered.
                let action = self.state.withLock { state in
                    state.machine.connect(
                        sessionID: sessionID,
                        waiter: .void(continuation),
                        isCancelled: Task.isCancelled
                    )
                }
                switch action {
                case .resume(let waiter, let outcome):
                    waiter.resume(outcome)
                case .startLoopThread:
                    let thread = Thread { [self] in
                        self.runLoop(sessionID: sessionID)
                    }
                    thread.name = "mqtt-loop"
                    thread.start()
                }
            }
        } onCancel: {
            self.apply { $0.cancelConnect(sessionID: sessionID) }
        }
    }

    func disconnect(publishingWill: Bool) async {
        if publishingWill && self.configuration.protocolVersion == .v311 {
            self.logger.warning("MQTT 3.1.1 cannot ask the broker to publish the will; disconnecting normally")
        }
        let reasonCode: Int32 = publishingWill && self.configuration.protocolVersion == .v5 ? 4 : 0
        let waitForThread = self.state.withLock { state -> Bool in
            self.execute(state.machine.disconnect(reasonCode: reasonCode), in: &state)
            return state.machine.shouldAwaitLoopExit
        }
        if waitForThread {
            try? await self.awaitLoopExit(timeout: Self.disconnectFlushTime + .seconds(1))
        }
    }

    /// Releases everything when the owning ``MQTTClient`` goes away.
    func shutdown() {
        let observers = self.state.withLock { state -> [AsyncStream<MQTTConnectionState>.Continuation] in
            self.execute(state.machine.shutdown(), in: &state)
            let observers = Array(state.observers.values)
            state.observers = [:]
            return observers
        }
        // Outside the lock: finishing runs termination handlers synchronously.
        for observer in observers { observer.finish() }
        self.messages.finish()
        for route in self.router.closeAll() { route.buffer.finish() }
    }

    func awaitLoopExit(timeout: Duration) async throws {
        let token = self.nextToken()
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let immediate = self.state.withLock { state in
                state.machine.waitForLoopExit(token: token, waiter: .void(continuation))
            }
            if let immediate {
                immediate.resume()
                return
            }
            DispatchQueue.global().asyncAfter(deadline: .now() + timeout.dispatchInterval) { [self] in
                self.state.withLock { $0.machine.loopExitWaitTimedOut(token: token)?.resume() }
            }
        }
    }
}
