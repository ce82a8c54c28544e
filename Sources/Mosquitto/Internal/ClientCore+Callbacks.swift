import CMosquitto
import Foundation

/// What libmosquitto's callbacks do. All of this runs on the loop thread.
extension ClientCore {
    func handleConnack(reasonCode: Int32, flags: Int32) {
        self.state.withLock { state in
            guard let session = state.session, case .awaitingConnack = session.phase else { return }
            guard reasonCode == 0 else {
                state.session?.attemptError = MosquittoResult.connackError(
                    reasonCode, protocolVersion: self.configuration.protocolVersion)
                return  // libmosquitto closes the connection next; that ends the attempt
            }
            self.logger.debug(
                "MQTT CONNACK accepted",
                metadata: ["broker": "\(self.brokerDescription)", "sessionPresent": "\(flags & 1 == 1)"])
            state.session?.phase = .restoringSubscriptions
            let deadline = ContinuousClock.now + self.configuration.operationTimeout
            for subscription in state.subscriptions {
                var messageID: Int32 = 0
                let rc = mosquitto_subscribe_v5(
                    self.handle.pointer, &messageID, subscription.filter, Int32(subscription.qos.rawValue),
                    subscription.options.mosquittoOptions, nil)
                if rc == MOSQ_ERR_SUCCESS.rawValue {
                    state.pendingSubscribes[messageID] = PendingSubscribe(
                        token: self.nextToken(), kind: .restore, subscription: subscription, deadline: deadline)
                    state.noteDeadline(deadline)
                } else {
                    self.logger.error(
                        "MQTT could not restore subscription",
                        metadata: ["filter": "\(subscription.filter)", "error": "\(MosquittoResult.error(rc))"])
                }
            }
            self.completeRestorationIfDone(in: &state)
        }
    }

    func completeRestorationIfDone(in state: inout ClientState) {
        guard case .restoringSubscriptions? = state.session?.phase else { return }
        let restoring = state.pendingSubscribes.values.contains {
            if case .restore = $0.kind { return true }
            return false
        }
        guard !restoring else { return }
        state.session?.phase = .connected
        state.session?.hasConnected = true
        state.session?.failedAttempts = 0
        state.session?.attemptDeadline = nil
        self.logger.info("MQTT connected", metadata: ["broker": "\(self.brokerDescription)"])
        self.setPublicState(.connected, in: &state)
        state.session?.connectWaiter?.resume()
        state.session?.connectWaiter = nil
    }

    func handleDisconnect(rc: Int32) {
        let errorNumber = errno
        let error: MQTTError
        if rc == 0 {
            error = MQTTError(code: .connectionLost, reason: "the broker closed the connection (DISCONNECT)")
        } else if rc >= 0x80 {
            // An MQTT 5 DISCONNECT from the broker: libmosquitto passes its reason code.
            error = MQTTError(
                code: .connectionLost, reason: MosquittoResult.reasonString(rc),
                mqttReasonCode: UInt8(truncatingIfNeeded: rc))
        } else {
            error = MosquittoResult.error(rc, errno: errorNumber, logDetail: self.takeLibraryErrors())
        }
        self.state.withLock { state in
            guard let session = state.session else { return }
            self.connectionEnded(in: &state, sessionID: session.id, error: error)
        }
    }

    func handlePublishAcknowledged(messageID: Int32, reasonCode: Int32) {
        self.state.withLock { state in
            if reasonCode == 0, let collisions = state.qos0IDCollisions[messageID] {
                // A QoS 0 publish with this id was written to the socket.
                state.qos0IDCollisions[messageID] = collisions > 1 ? collisions - 1 : nil
                return
            }
            guard let pending = state.pendingPublishes.removeValue(forKey: messageID) else { return }
            if reasonCode >= 0x80 {
                pending.continuation.resume(
                    throwing: MQTTError(
                        code: .publishRejected, reason: MosquittoResult.reasonString(reasonCode),
                        mqttReasonCode: UInt8(truncatingIfNeeded: reasonCode)))
            } else {
                pending.continuation.resume()
            }
        }
    }

    func handleSubscribeAcknowledged(messageID: Int32, grantedQoS: [Int32]) {
        self.state.withLock { state in
            guard let pending = state.pendingSubscribes.removeValue(forKey: messageID) else { return }
            let code = grantedQoS.first ?? 0x80
            let granted = (0...2).contains(code) ? MQTTQoS(rawValue: UInt8(code)) : nil
            var rejection: MQTTError?
            if granted == nil {
                let reason =
                    self.configuration.protocolVersion == .v5
                    ? MosquittoResult.reasonString(code) : "the broker refused the subscription"
                rejection = MQTTError(
                    code: .subscriptionRejected, reason: reason, mqttReasonCode: UInt8(truncatingIfNeeded: code),
                    detail: "filter \(pending.subscription.filter)")
            }
            switch pending.kind {
            case .request(let continuation):
                if let granted {
                    let subscription = pending.subscription
                    if let index = state.subscriptions.firstIndex(where: { $0.filter == subscription.filter }) {
                        state.subscriptions[index] = subscription
                    } else {
                        state.subscriptions.append(subscription)
                    }
                    continuation.resume(returning: granted)
                } else if let rejection {
                    continuation.resume(throwing: rejection)
                }
            case .restore:
                if let rejection {
                    self.logger.error("MQTT broker refused a restored subscription", metadata: ["error": "\(rejection)"])
                }
                self.completeRestorationIfDone(in: &state)
            }
        }
    }

    func handleUnsubscribeAcknowledged(messageID: Int32) {
        let pending = self.state.withLock { $0.pendingUnsubscribes.removeValue(forKey: messageID) }
        pending?.continuation.resume()
    }

    func handleMessage(_ message: UnsafePointer<mosquitto_message>, properties: OpaquePointer?) {
        let raw = message.pointee
        let payload: [UInt8]
        if raw.payloadlen > 0, let bytes = raw.payload {
            payload = Array(UnsafeRawBufferPointer(start: bytes, count: Int(raw.payloadlen)))
        } else {
            payload = []
        }
        let received = MQTTMessage(
            topic: raw.topic.map { String(cString: $0) } ?? "",
            payload: payload,
            qos: MQTTQoS(rawValue: UInt8(truncatingIfNeeded: raw.qos)) ?? .atMostOnce,
            retain: raw.retain,
            properties: properties.map { MQTTProperties(mosquittoProperties: $0) } ?? MQTTProperties())
        switch self.messageContinuation.yield(received) {
        case .enqueued:
            break
        case .dropped:
            let total = self.droppedMessages.add(1, ordering: .relaxed).newValue
            // Every drop is counted; the log is thinned out so a flood does not
            // become a log flood: the first, then every 1000th.
            if total == 1 || total % 1000 == 0 {
                self.logger.warning(
                    "MQTT message consumer is too slow: oldest buffered messages dropped",
                    metadata: [
                        "dropped": "\(total)", "bufferCapacity": "\(self.configuration.messageBufferCapacity)",
                    ])
            }
        case .terminated:
            // Nobody will ever read the stream (the consumer was cancelled or
            // the client released): count it so the loss is visible.
            let total = self.droppedMessages.add(1, ordering: .relaxed).newValue
            if total == 1 || total % 1000 == 0 {
                self.logger.warning(
                    "MQTT message received after the message sequence ended; dropped",
                    metadata: ["dropped": "\(total)", "topic": "\(received.topic)"])
            }
        @unknown default:
            break
        }
    }

    func handleLog(level: Int32, message: UnsafePointer<CChar>) {
        let level = UInt32(bitPattern: level)
        if level & UInt32(MOSQ_LOG_ERR) != 0 || level & UInt32(MOSQ_LOG_WARNING) != 0 {
            let text = String(cString: message)
            self.libraryLog.withLock { lines in
                if lines.count < 8 { lines.append(text) }
            }
            self.logger.debug("\(text)", metadata: ["source": "libmosquitto"])
        } else if self.logger.logLevel <= .trace {
            self.logger.trace("\(String(cString: message))", metadata: ["source": "libmosquitto"])
        }
    }
}
