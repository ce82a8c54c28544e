import Foundation
import MQTTModbusBridgeConfiguration
import Mosquitto

extension MQTTConfiguration {
    /// The MQTT client settings for a configuration's `broker:` section: address, session,
    /// credentials (a password file is read here), TLS, the retained `offline` last will on the
    /// status topic, reconnection, timeouts, buffer sizes and TCP_NODELAY.
    ///
    /// - Throws: a `CocoaError` when the password file cannot be read, a
    ///   ``BrokerPasswordUnavailable`` when the password's environment variable is not set.
    package init(bridgeBroker broker: BrokerSettings) throws {
        var configuration = MQTTConfiguration(host: broker.host, port: broker.port, clientID: broker.clientID)
        configuration.cleanSession = broker.cleanSession
        configuration.sessionExpiryInterval = broker.sessionExpiry.map { UInt32(clamping: $0.components.seconds) }
        configuration.keepAlive = broker.keepAlive
        configuration.protocolVersion = broker.protocolVersion == .mqtt5 ? .v5 : .v311
        configuration.username = broker.username
        switch broker.password {
        case .literal(let password): configuration.password = password
        case .file(let path):
            configuration.password = try String(contentsOfFile: path, encoding: .utf8).trimmingCharacters(in: .newlines)
        case .environment(let name):
            guard let value = ProcessInfo.processInfo.environment[name] else {
                throw BrokerPasswordUnavailable(variable: name)
            }
            configuration.password = value
        case nil: break
        }
        if let tls = broker.tls {
            configuration.tls = MQTTTLSConfiguration(
                caFile: tls.caFile,
                caDirectory: tls.caPath,
                certificateFile: tls.certFile,
                privateKeyFile: tls.keyFile,
                verifyServerCertificate: tls.verifyServer,
                verifyHostname: tls.verifyHostname,
                tlsVersion: tls.version,
                ciphers: tls.ciphers
            )
        }
        configuration.will = MQTTWill(
            topic: broker.statusTopic,
            payload: Array(BrokerSettings.offlinePayload.utf8),
            qos: .atLeastOnce,
            retain: true
        )
        configuration.reconnect = MQTTReconnectPolicy(
            initialDelay: broker.reconnect.minDelay,
            maximumDelay: broker.reconnect.maxDelay,
            multiplier: broker.reconnect.multiplier,
            retryInitialConnect: broker.reconnect.retryInitialConnect
        )
        configuration.connectTimeout = broker.connectTimeout
        configuration.operationTimeout = broker.operationTimeout
        configuration.messageBufferCapacity = broker.messageBufferCapacity
        configuration.maxInflightMessages = broker.maxInflightMessages
        configuration.tcpNoDelay = broker.tcpNoDelay
        self = configuration
    }
}

extension MQTTConfiguration {
    /// The MQTT client settings of the command connection (`broker.command_connection:
    /// separate`): the broker connection's address, credentials, TLS, reconnection and timeouts,
    /// under ``BrokerSettings/commandClientID``, with a clean session and no will. A session
    /// kept across a disconnection would only deliver acknowledgements of writes that were
    /// already answered (every waiting write fails when a connection is lost), and the will
    /// belongs to the status of the bridge as a whole, which its main connection carries.
    package init(bridgeCommands broker: BrokerSettings) throws {
        var configuration = try MQTTConfiguration(bridgeBroker: broker)
        configuration.clientID = broker.commandClientID
        configuration.cleanSession = true
        configuration.sessionExpiryInterval = nil
        configuration.will = nil
        // Acknowledgements only: a few per write in flight.
        configuration.messageBufferCapacity = min(broker.messageBufferCapacity, 4096)
        self = configuration
    }
}

/// `broker.password_env` names an environment variable the process does not have.
package struct BrokerPasswordUnavailable: Error, CustomStringConvertible {
    package var variable: String

    package var description: String {
        "the environment variable \(variable) (broker.password_env) is not set: start the bridge with it, "
            + "or use password_file"
    }
}
