import CMosquitto

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// publish / subscribe / unsubscribe, called from the application's tasks.
extension ClientCore {
    func publish(
        topic: String,
        payload: [UInt8],
        qos: MQTTQoS,
        retain: Bool,
        properties: MQTTProperties,
        timeout: Duration?
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
                    pointer,
                    &messageID,
                    topic,
                    Int32(bytes.count),
                    bytes.baseAddress,
                    Int32(qos.rawValue),
                    retain,
                    list
                )
            }
        }

        if qos == .atMostOnce {
            // Complete once libmosquitto has queued it: QoS 0 has no acknowledgement.
            try self.state.withLock { state throws(MQTTError) in
                guard state.machine.isOperational else { throw state.machine.notConnectedError }
                var messageID: Int32 = 0
                let rc = send(&messageID)
                guard rc == MOSQ_ERR_SUCCESS.rawValue else { throw MosquittoResult.error(rc) }
                state.machine.qos0PublishSent(messageID: messageID)
            }
            return
        }
        try await self.awaitAcknowledgement(.publish, timeout: timeout, waiter: Waiter.void, send: send)
    }

    func subscribe(
        _ filter: String,
        qos: MQTTQoS,
        options: MQTTSubscriptionOptions,
        timeout: Duration?
    ) async throws
        -> MQTTQoS
    {
        if !options.isDefault && self.configuration.protocolVersion != .v5 {
            throw MQTTError(code: .notSupported, reason: "subscription options need MQTT 5")
        }
        let subscription = Subscription(filter: filter, qos: qos, options: options)
        let pointer = self.handle.pointer
        return try await self.awaitAcknowledgement(
            .subscribe(subscription),
            timeout: timeout,
            waiter: Waiter.subscribe
        ) {
            mosquitto_subscribe_v5(pointer, &$0, filter, Int32(qos.rawValue), options.mosquittoOptions, nil)
        }
    }

    /// Subscribes to `filters` in as few SUBSCRIBE packets as ``SubscribeBatches`` allows, the
    /// packets in flight together; one result per filter, in order.
    func subscribe(
        _ filters: [String],
        qos: MQTTQoS,
        options: MQTTSubscriptionOptions,
        timeout: Duration?
    ) async throws -> [Result<MQTTQoS, MQTTError>] {
        if !options.isDefault && self.configuration.protocolVersion != .v5 {
            throw MQTTError(code: .notSupported, reason: "subscription options need MQTT 5")
        }
        var results = [Result<MQTTQoS, MQTTError>?](repeating: nil, count: filters.count)
        // libmosquitto refuses a whole packet for one malformed filter: check each first, so
        // that one bad filter fails alone.
        var valid: [Int] = []
        for (index, filter) in filters.enumerated() {
            if mosquitto_sub_topic_check(filter) == MOSQ_ERR_SUCCESS.rawValue && filter.utf8.count <= 65535 {
                valid.append(index)
            } else {
                results[index] = .failure(
                    MQTTError(code: .invalidArgument, reason: "not a valid topic filter", detail: "filter \(filter)")
                )
            }
        }
        let subscriptions = valid.map { Subscription(filter: filters[$0], qos: qos, options: options) }
        // Each packet with the positions of its filters in `filters`.
        var packets: [(positions: [Int], subscriptions: [Subscription])] = []
        var start = 0
        for packet in SubscribeBatches.split(subscriptions) {
            packets.append((Array(valid[start..<(start + packet.count)]), packet))
            start += packet.count
        }
        try await withThrowingTaskGroup(of: ([Int], [Result<MQTTQoS, MQTTError>]).self) { group in
            for (positions, packet) in packets {
                group.addTask {
                    do {
                        return (positions, try await self.subscribePacket(packet, timeout: timeout))
                    } catch let error as MQTTError {
                        // The packet as a whole failed (not connected, lost, timed out): so did
                        // each of its filters.
                        return (positions, Array(repeating: .failure(error), count: packet.count))
                    }
                }
            }
            for try await (positions, packetResults) in group {
                for (position, result) in zip(positions, packetResults) { results[position] = result }
            }
        }
        return results.map { $0 ?? .failure(MQTTError(code: .invalidArgument, reason: "not subscribed")) }
    }

    /// One SUBSCRIBE with several filters of one QoS and options, and its SUBACK's results.
    private func subscribePacket(
        _ subscriptions: [Subscription],
        timeout: Duration?
    ) async throws -> [Result<MQTTQoS, MQTTError>] {
        let pointer = self.handle.pointer
        let qos = Int32(subscriptions[0].qos.rawValue)
        let options = subscriptions[0].options.mosquittoOptions
        let filters = subscriptions.map { strdup($0.filter) }
        defer { for filter in filters { free(filter) } }
        return try await self.awaitAcknowledgement(
            .subscribeBatch(subscriptions),
            timeout: timeout,
            waiter: Waiter.subscribeEach
        ) { messageID in
            filters.withUnsafeBufferPointer { filters in
                mosquitto_subscribe_multiple(
                    pointer,
                    &messageID,
                    Int32(filters.count),
                    filters.baseAddress,
                    qos,
                    options,
                    nil
                )
            }
        }
    }

    func unsubscribe(_ filter: String, timeout: Duration?) async throws {
        let pointer = self.handle.pointer
        try await self.awaitAcknowledgement(.unsubscribe(filter: filter), timeout: timeout, waiter: Waiter.void) {
            mosquitto_unsubscribe_v5(pointer, &$0, filter, nil)
        }
    }

    /// Sends a packet the broker acknowledges and waits for that acknowledgement.
    ///
    /// Under the state lock: asks the state machine whether the call may go ahead (not when the
    /// task is cancelled or the client is not connected), calls `send` (which fills in the
    /// message id libmosquitto assigns and returns its result code), and registers the waiting
    /// call under that id. Holding the lock across `send` is what keeps the acknowledgement,
    /// handled on the loop thread, from arriving before the registration. The loop thread
    /// resumes the call when the acknowledgement arrives, the connection is lost, or `timeout`
    /// passes; cancellation takes it back out and resumes it at once.
    private func awaitAcknowledgement<Value: Sendable>(
        _ request: StateMachine.Request,
        timeout: Duration?,
        waiter makeWaiter: (CheckedContinuation<Value, any Error>) -> Waiter,
        send: (inout Int32) -> Int32
    ) async throws -> Value {
        let token = self.nextToken()
        let start = ContinuousClock.now
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Value, any Error>) in
                let waiter = makeWaiter(continuation)
                self.state.withLock { state in
                    if let refusal = state.machine.operationRefusal(isCancelled: Task.isCancelled) {
                        waiter.resume(refusal)
                        return
                    }
                    var messageID: Int32 = 0
                    let rc = send(&messageID)
                    guard rc == MOSQ_ERR_SUCCESS.rawValue else {
                        waiter.resume(.failure(MosquittoResult.error(rc)))
                        return
                    }
                    state.machine.requestSent(
                        request,
                        messageID: messageID,
                        token: token,
                        waiter: waiter,
                        deadline: state.machine.deadline(timeout: timeout, from: start)
                    )
                }
            }
        } onCancel: {
            self.state.withLock { $0.machine.cancelOperation(token: token)?.resume() }
        }
    }
}
