import CMosquitto

/// Executing the state machine's decisions.
extension ClientCore {
    /// A task suspended in one of the client's calls.
    enum Waiter: Sendable {
        /// `connect()`, a QoS 1/2 `publish`, `unsubscribe`, or `connect()` waiting
        /// for the previous loop thread to exit.
        case void(CheckedContinuation<Void, any Error>)
        /// `subscribe`, which returns the granted QoS.
        case subscribe(CheckedContinuation<MQTTQoS, any Error>)
        /// `subscribe` of several filters in one packet: a result per filter.
        case subscribeEach(CheckedContinuation<[Result<MQTTQoS, MQTTError>], any Error>)

        func resume(_ outcome: StateMachine.Outcome) {
            switch (self, outcome) {
            case (.void(let continuation), .success):
                continuation.resume()
            case (.subscribe(let continuation), .granted(let qos)):
                continuation.resume(returning: qos)
            case (.subscribeEach(let continuation), .grantedEach(let results)):
                continuation.resume(returning: results)
            case (.subscribeEach(let continuation), .failure(let error)):
                continuation.resume(throwing: error)
            case (.subscribeEach(let continuation), .cancelled):
                continuation.resume(throwing: CancellationError())
            case (.void(let continuation), .failure(let error)):
                continuation.resume(throwing: error)
            case (.subscribe(let continuation), .failure(let error)):
                continuation.resume(throwing: error)
            case (.void(let continuation), .cancelled):
                continuation.resume(throwing: CancellationError())
            case (.subscribe(let continuation), .cancelled):
                continuation.resume(throwing: CancellationError())
            case (.void, .granted), (.void, .grantedEach), (.subscribe, .success), (.subscribe, .grantedEach),
                (.subscribeEach, .success), (.subscribeEach, .granted):
                // The machine grants a QoS only to the subscribe that asked for it.
                preconditionFailure("\(outcome) does not fit the waiting call")
            }
        }
    }

    /// Runs a transition and executes its actions, under one hold of the state lock.
    func apply(_ transition: (inout StateMachine) -> [StateMachine.Action]) {
        self.state.withLock { state in
            let actions = transition(&state.machine)
            self.execute(actions, in: &state)
        }
    }

    /// Executes actions in order. Runs under the state lock: the libmosquitto calls here only
    /// queue packets (see the lock order on ``ClientCore``), resuming a continuation only
    /// enqueues its task, and yielding under the lock keeps every observer's states in order.
    func execute(_ actions: [StateMachine.Action], in state: inout State) {
        for action in actions {
            switch action {
            case .resume(let waiter, let outcome):
                waiter.resume(outcome)
            case .publishState(let newState):
                self.publish(newState, to: &state.observers)
            case .sendDisconnect(let reasonCode):
                _ = mosquitto_disconnect_v5(self.handle.pointer, reasonCode, nil)
            case .wakeLoopThread:
                self.wakeup.signal()
            case .resubscribe(let subscriptions, let deadline):
                self.resubscribe(subscriptions, deadline: deadline, in: &state)
            case .startBackoff(let delay, .connectionLost(let error)):
                self.logger.warning(
                    "MQTT connection lost; reconnecting",
                    metadata: ["broker": "\(self.brokerDescription)", "error": "\(error)", "delay": "\(delay)"]
                )
            case .startBackoff(let delay, .attemptFailed(let error, let attempt)):
                self.logger.warning(
                    "MQTT connection attempt failed; retrying",
                    metadata: [
                        "broker": "\(self.brokerDescription)", "error": "\(error)", "attempt": "\(attempt)",
                        "delay": "\(delay)",
                    ]
                )
            case .stopConnecting(let error):
                self.logger.debug(
                    "MQTT connection failed",
                    metadata: ["broker": "\(self.brokerDescription)", "error": "\(error)"]
                )
            case .reportRestoreFailure(_, .refused(let error)):
                self.logger.error("MQTT broker refused a restored subscription", metadata: ["error": "\(error)"])
            case .reportRestoreFailure(let subscription, .timedOut):
                self.logger.error(
                    "MQTT subscription not confirmed after reconnecting",
                    metadata: ["filter": "\(subscription.filter)"]
                )
            }
        }
    }

    private func publish(
        _ newState: MQTTConnectionState,
        to observers: inout [UInt64: AsyncStream<MQTTConnectionState>.Continuation]
    ) {
        if case .connected = newState {
            self.logger.info("MQTT connected", metadata: ["broker": "\(self.brokerDescription)"])
        }
        self.logger.debug("MQTT connection state changed", metadata: ["state": "\(newState)"])
        for (token, observer) in observers {
            if case .terminated = observer.yield(newState) {
                observers[token] = nil
            }
        }
    }

    /// Queues SUBSCRIBEs for every remembered subscription on a new connection, many filters per
    /// packet (``SubscribeBatches``). Under the state lock, so each message id is registered
    /// before its SUBACK can be handled.
    private func resubscribe(
        _ subscriptions: [Subscription],
        deadline: ContinuousClock.Instant,
        in state: inout State
    ) {
        for batch in SubscribeBatches.split(subscriptions) {
            var messageID: Int32 = 0
            let rc = SubscribeBatches.withCStrings(batch.map(\.filter)) { filters in
                mosquitto_subscribe_multiple(
                    self.handle.pointer,
                    &messageID,
                    Int32(filters.count),
                    filters.baseAddress,
                    Int32(batch[0].qos.rawValue),
                    batch[0].options.mosquittoOptions,
                    nil
                )
            }
            if rc == MOSQ_ERR_SUCCESS.rawValue {
                state.machine.subscriptionRestoreSent(batch, messageID: messageID, deadline: deadline)
            } else {
                self.logger.error(
                    "MQTT could not restore subscriptions",
                    metadata: [
                        "filters": "\(batch.count)", "first": "\(batch[0].filter)",
                        "error": "\(MosquittoResult.error(rc))",
                    ]
                )
            }
        }
        self.execute(state.machine.subscriptionRestoresSent(), in: &state)
    }
}

extension ClientStateMachine.Resumption where Waiter == ClientCore.Waiter {
    func resume() {
        self.waiter.resume(self.outcome)
    }
}
