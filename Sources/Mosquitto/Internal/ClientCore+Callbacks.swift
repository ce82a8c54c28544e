import CMosquitto
import Foundation

/// libmosquitto's callbacks, translated into state machine transitions (and
/// received messages, yielded to `messages`). All of this runs on the loop thread.
extension ClientCore {
    func handleConnack(reasonCode: Int32, flags: Int32) {
        guard reasonCode == 0 else {
            let error = MosquittoResult.connackError(reasonCode, protocolVersion: self.configuration.protocolVersion)
            self.state.withLock { $0.machine.connackRefused(error) }
            return
        }
        // Before any message of this connection can arrive (both run on the loop thread).
        self.acceptedConnections.add(1, ordering: .relaxed)
        // The library's lines matter while a connection is being made (they carry OpenSSL's
        // reason for a TLS failure); once it is up, formatting a debug line for every message
        // received is about 7 % of the ingest path's instructions (callgrind, docs/benchmarks.md).
        // They come back with the next connection attempt, and stay at trace level, where they
        // are logged.
        if self.logger.logLevel > .trace {
            MosquittoCallbacks.removeLog(on: self.handle.pointer)
        }
        self.state.withLock { state in
            let actions = state.machine.connackAccepted(now: .now)
            if !actions.isEmpty {
                self.logger.debug(
                    "MQTT CONNACK accepted",
                    metadata: ["broker": "\(self.brokerDescription)", "sessionPresent": "\(flags & 1 == 1)"]
                )
            }
            self.execute(actions, in: &state)
        }
    }

    func handleDisconnect(rc: Int32) {
        let errorNumber = errno
        let error: MQTTError
        if rc == 0 {
            error = MQTTError(code: .connectionLost, reason: "the broker closed the connection (DISCONNECT)")
        } else if rc >= 0x80 {
            // An MQTT 5 DISCONNECT from the broker: libmosquitto passes its reason code.
            error = MQTTError(
                code: .connectionLost,
                reason: MosquittoResult.reasonString(rc),
                mqttReasonCode: UInt8(truncatingIfNeeded: rc)
            )
        } else {
            error = MosquittoResult.error(rc, errno: errorNumber, logDetail: self.takeLibraryErrors())
        }
        // Before the loss is reported: an observer that sees `.disconnected` finds the ended
        // connection's number here (or a later one's, if it has ended too).
        self.endedConnections.store(self.acceptedConnections.load(ordering: .relaxed), ordering: .releasing)
        self.apply { $0.connectionEnded(error: error, now: .now) }
    }

    func handlePublishAcknowledged(messageID: Int32, reasonCode: Int32) {
        let acknowledgement: StateMachine.PublishAcknowledgement
        if reasonCode >= 0x80 {
            acknowledgement = .rejected(
                MQTTError(
                    code: .publishRejected,
                    reason: MosquittoResult.reasonString(reasonCode),
                    mqttReasonCode: UInt8(truncatingIfNeeded: reasonCode)
                )
            )
        } else {
            acknowledgement = .accepted(reasonCode: reasonCode)
        }
        self.state.withLock { $0.machine.publishAcknowledged(messageID: messageID, acknowledgement)?.resume() }
    }

    /// A SUBACK: one code per filter of the SUBSCRIBE, in its order.
    func handleSubscribeAcknowledged(messageID: Int32, grantedQoS: [Int32]) {
        let acknowledgements = grantedQoS.map { code -> StateMachine.SubscribeAcknowledgement in
            if (0...2).contains(code), let granted = MQTTQoS(rawValue: UInt8(code)) {
                return .granted(granted)
            }
            let reason =
                self.configuration.protocolVersion == .v5
                ? MosquittoResult.reasonString(code) : "the broker refused the subscription"
            return .refused(reasonCode: UInt8(truncatingIfNeeded: code), reason: reason)
        }
        self.apply { $0.subscribeAcknowledged(messageID: messageID, acknowledgements) }
    }

    func handleUnsubscribeAcknowledged(messageID: Int32) {
        self.state.withLock { $0.machine.unsubscribeAcknowledged(messageID: messageID)?.resume() }
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
            properties: properties.map { MQTTProperties(mosquittoProperties: $0) } ?? MQTTProperties(),
            connection: self.acceptedConnections.load(ordering: .relaxed)
        )
        if let route = self.router.sink(for: received.topic) {
            route.deliver(received, logger: self.logger)
            return
        }
        switch self.messages.yield(received) {
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
                    ]
                )
            }
        case .terminated:
            // Nobody will ever read the stream (the consumer was cancelled or
            // the client released): count it so the loss is visible.
            let total = self.droppedMessages.add(1, ordering: .relaxed).newValue
            if total == 1 || total % 1000 == 0 {
                self.logger.warning(
                    "MQTT message received after the message sequence ended; dropped",
                    metadata: ["dropped": "\(total)", "topic": "\(received.topic)"]
                )
            }
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
