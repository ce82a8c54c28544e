import CMosquitto

/// publish / subscribe / unsubscribe, called from the application's tasks.
extension ClientCore {
    func publish(
        topic: String, payload: [UInt8], qos: MQTTQoS, retain: Bool, properties: MQTTProperties, timeout: Duration?
    ) async throws {
        guard payload.count <= Int(Int32.max) else {
            throw MQTTError(code: .invalidArgument, reason: "payload too large")
        }
        if !properties.isEmpty && self.configuration.protocolVersion != .v5 {
            throw MQTTError(code: .notSupported, reason: "message properties need MQTT 5")
        }
        var outgoing = try OutgoingProperties.message(properties)
        defer { outgoing.free() }
        let list = outgoing.list
        let pointer = self.handle.pointer

        func send(_ messageID: inout Int32) -> Int32 {
            payload.withUnsafeBytes { bytes in
                mosquitto_publish_v5(
                    pointer, &messageID, topic, Int32(bytes.count), bytes.baseAddress, Int32(qos.rawValue), retain, list)
            }
        }

        if qos == .atMostOnce {
            // Complete once libmosquitto has queued it: QoS 0 has no acknowledgement.
            try self.state.withLock { state throws(MQTTError) in
                guard state.isOperational else { throw Self.notConnectedError(state) }
                var messageID: Int32 = 0
                let rc = send(&messageID)
                guard rc == MOSQ_ERR_SUCCESS.rawValue else { throw MosquittoResult.error(rc) }
                if state.pendingPublishes[messageID] != nil {
                    state.qos0IDCollisions[messageID, default: 0] += 1
                }
            }
            return
        }
        try await self.awaitAcknowledgement(
            timeout: timeout, send: send,
            enqueue: { state, messageID, pending in state.pendingPublishes[messageID] = pending },
            dequeue: { state, token in
                guard let entry = state.pendingPublishes.first(where: { $0.value.token == token }) else { return nil }
                state.pendingPublishes[entry.key] = nil
                return entry.value.continuation
            })
    }

    func subscribe(_ filter: String, qos: MQTTQoS, options: MQTTSubscriptionOptions, timeout: Duration?) async throws
        -> MQTTQoS
    {
        if !options.isDefault && self.configuration.protocolVersion != .v5 {
            throw MQTTError(code: .notSupported, reason: "subscription options need MQTT 5")
        }
        let subscription = Subscription(filter: filter, qos: qos, options: options)
        let pointer = self.handle.pointer
        return try await self.awaitAcknowledgement(
            timeout: timeout,
            send: { mosquitto_subscribe_v5(pointer, &$0, filter, Int32(qos.rawValue), options.mosquittoOptions, nil) },
            enqueue: { state, messageID, pending in
                state.pendingSubscribes[messageID] = PendingSubscribe(
                    token: pending.token, kind: .request(pending.continuation), subscription: subscription, deadline: pending.deadline)
            },
            dequeue: { state, token in
                guard let entry = state.pendingSubscribes.first(where: { $0.value.token == token }),
                    case .request(let continuation) = entry.value.kind
                else { return nil }
                state.pendingSubscribes[entry.key] = nil
                return continuation
            })
    }

    func unsubscribe(_ filter: String, timeout: Duration?) async throws {
        let pointer = self.handle.pointer
        try await self.awaitAcknowledgement(
            timeout: timeout,
            send: { mosquitto_unsubscribe_v5(pointer, &$0, filter, nil) },
            enqueue: { state, messageID, pending in
                // From here on the filter is not restored on reconnection,
                // even if the UNSUBACK never arrives.
                state.subscriptions.removeAll { $0.filter == filter }
                state.pendingUnsubscribes[messageID] = pending
            },
            dequeue: { state, token in
                guard let entry = state.pendingUnsubscribes.first(where: { $0.value.token == token }) else { return nil }
                state.pendingUnsubscribes[entry.key] = nil
                return entry.value.continuation
            })
    }

    /// Sends a packet the broker acknowledges and waits for that acknowledgement.
    ///
    /// Under the state lock: refuses at once when the task is cancelled or the client is not
    /// connected, calls `send` (which fills in the message id libmosquitto assigns and returns
    /// its result code), and `enqueue`s the waiting call under that id. The loop thread resumes
    /// it when the acknowledgement arrives, the connection is lost, or `timeout` passes;
    /// cancellation takes it back out with `dequeue` and resumes it at once.
    private func awaitAcknowledgement<Value: Sendable>(
        timeout: Duration?,
        send: (inout Int32) -> Int32,
        enqueue: (inout ClientState, _ messageID: Int32, PendingOperation<Value>) -> Void,
        dequeue: @escaping @Sendable (inout ClientState, _ token: UInt64) -> CheckedContinuation<Value, any Error>?
    ) async throws -> Value {
        let token = self.nextToken()
        let deadline = ContinuousClock.now + (timeout ?? self.configuration.operationTimeout)
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Value, any Error>) in
                self.state.withLock { state in
                    if Task.isCancelled {
                        continuation.resume(throwing: CancellationError())
                        return
                    }
                    guard state.isOperational else {
                        continuation.resume(throwing: Self.notConnectedError(state))
                        return
                    }
                    var messageID: Int32 = 0
                    let rc = send(&messageID)
                    guard rc == MOSQ_ERR_SUCCESS.rawValue else {
                        continuation.resume(throwing: MosquittoResult.error(rc))
                        return
                    }
                    enqueue(&state, messageID, PendingOperation(token: token, continuation: continuation, deadline: deadline))
                    state.noteDeadline(deadline)
                }
            }
        } onCancel: {
            self.state.withLock { dequeue(&$0, token) }?.resume(throwing: CancellationError())
        }
    }

    static func notConnectedError(_ state: ClientState) -> MQTTError {
        var error = MQTTError(code: .notConnected, reason: "the client is not connected to the broker")
        if case .disconnected(let reason?) = state.publicState {
            error.detail = "last error: \(reason)"
        } else if case .connecting = state.publicState {
            error.detail = "a connection attempt is in progress"
        }
        return error
    }
}
