import CMosquitto

/// The C callbacks. They capture nothing (C function pointers cannot): each
/// recovers its ``ClientCore`` from the userdata pointer libmosquitto passes
/// back, so there is no global table of clients.
///
/// The MQTT 5 variants are installed because libmosquitto calls them for
/// MQTT 3.1.1 connections too (with no properties), and only they carry the
/// reason codes.
enum MosquittoCallbacks {
    static func install(on pointer: OpaquePointer) {
        mosquitto_connect_v5_callback_set(pointer) { _, userdata, reasonCode, flags, _ in
            core(userdata)?.handleConnack(reasonCode: reasonCode, flags: flags)
        }
        mosquitto_disconnect_v5_callback_set(pointer) { _, userdata, rc, _ in
            core(userdata)?.handleDisconnect(rc: rc)
        }
        mosquitto_publish_v5_callback_set(pointer) { _, userdata, messageID, reasonCode, _ in
            core(userdata)?.handlePublishAcknowledged(messageID: messageID, reasonCode: reasonCode)
        }
        mosquitto_subscribe_v5_callback_set(pointer) { _, userdata, messageID, count, granted, _ in
            let codes = granted.map { Array(UnsafeBufferPointer(start: $0, count: Int(max(count, 0)))) } ?? []
            core(userdata)?.handleSubscribeAcknowledged(messageID: messageID, grantedQoS: codes)
        }
        mosquitto_unsubscribe_v5_callback_set(pointer) { _, userdata, messageID, _ in
            core(userdata)?.handleUnsubscribeAcknowledged(messageID: messageID)
        }
        mosquitto_message_v5_callback_set(pointer) { _, userdata, message, properties in
            guard let message else { return }
            core(userdata)?.handleMessage(message, properties: properties)
        }
        installLog(on: pointer)
    }

    /// Installs the log callback. libmosquitto formats every line it could log (a malloc and a
    /// `vsnprintf` per PUBLISH received) whenever one is installed, whatever its level.
    static func installLog(on pointer: OpaquePointer) {
        mosquitto_log_callback_set(pointer) { _, userdata, level, text in
            guard let text else { return }
            core(userdata)?.handleLog(level: level, message: text)
        }
    }

    /// Removes the log callback, so that libmosquitto stops formatting lines nobody reads.
    static func removeLog(on pointer: OpaquePointer) {
        mosquitto_log_callback_set(pointer, nil)
    }
}

private func core(_ userdata: UnsafeMutableRawPointer?) -> ClientCore? {
    guard let userdata else { return nil }
    return Unmanaged<ClientCore>.fromOpaque(userdata).takeUnretainedValue()
}
