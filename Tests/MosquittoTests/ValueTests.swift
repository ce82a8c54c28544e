import Testing

@testable import Mosquitto

@Suite("Values, errors and configuration (no broker)")
struct ValueTests {
    @Test("reconnection backoff grows exponentially and stays bounded")
    func backoff() {
        let policy = MQTTReconnectPolicy(initialDelay: .milliseconds(100), maximumDelay: .seconds(1), multiplier: 2)
        #expect(policy.delay(beforeAttempt: 0) == .milliseconds(100))
        #expect(policy.delay(beforeAttempt: 1) == .milliseconds(200))
        #expect(policy.delay(beforeAttempt: 3) == .milliseconds(800))
        #expect(policy.delay(beforeAttempt: 4) == .seconds(1))
        #expect(policy.delay(beforeAttempt: 1_000) == .seconds(1))
        let flat = MQTTReconnectPolicy(initialDelay: .milliseconds(100), maximumDelay: .seconds(1), multiplier: 0.5)
        #expect(flat.delay(beforeAttempt: 5) == .milliseconds(100), "a multiplier below 1 never shrinks the delay")
    }

    @Test("CONNACK refusals map to codes with libmosquitto's text")
    func connackMapping() {
        let v311 = MosquittoResult.connackError(5, protocolVersion: .v311)
        #expect(v311.code == .notAuthorized)
        #expect(v311.reason == "Connection Refused: not authorised.")
        #expect(v311.mqttReasonCode == 5)
        #expect(MosquittoResult.connackError(2, protocolVersion: .v311).code == .connectionRefused)

        let v5 = MosquittoResult.connackError(0x86, protocolVersion: .v5)
        #expect(v5.code == .notAuthorized)
        #expect(v5.reason.lowercased().contains("bad user name or password"))
        #expect(MosquittoResult.connackError(0x88, protocolVersion: .v5).code == .connectionRefused)
    }

    @Test("libmosquitto result codes map to error codes")
    func resultMapping() {
        #expect(MosquittoResult.error(4).code == .notConnected)  // MOSQ_ERR_NO_CONN
        #expect(MosquittoResult.error(7).code == .connectionLost)  // MOSQ_ERR_CONN_LOST
        #expect(MosquittoResult.error(8).code == .tls)  // MOSQ_ERR_TLS
        #expect(MosquittoResult.error(3).code == .invalidArgument)  // MOSQ_ERR_INVAL
        let socket = MosquittoResult.error(14, errno: 111)  // MOSQ_ERR_ERRNO, ECONNREFUSED
        #expect(socket.code == .networkError)
        #expect(socket.reason == "Connection refused")
    }

    @Test("errors describe themselves on one line with code, reason, detail and reason code")
    func errorDescription() {
        let error = MQTTError(
            code: .notAuthorized,
            reason: "Not authorized",
            mqttReasonCode: 0x87,
            detail: "user gateway"
        )
        #expect(error.description == "MQTTError.notAuthorized: Not authorized — user gateway (reason code 0x87)")
        #expect(MQTTError.Code.tls.description == "tls")
    }

    @Test("unusable configurations are rejected when the client is created")
    func configurationValidation() {
        var keepAlive = MQTTConfiguration()
        keepAlive.keepAlive = .seconds(3)
        #expect(throws: MQTTError.self) { _ = try MQTTClient(configuration: keepAlive) }

        var persistent = MQTTConfiguration()
        persistent.cleanSession = false
        let error = #expect(throws: MQTTError.self) { _ = try MQTTClient(configuration: persistent) }
        #expect(error?.code == .invalidArgument)

        var noCA = MQTTConfiguration()
        noCA.tls = MQTTTLSConfiguration()
        #expect(throws: MQTTError.self) { _ = try MQTTClient(configuration: noCA) }

        var willProperties = MQTTConfiguration(protocolVersion: .v311)
        willProperties.will = MQTTWill(topic: "w", payload: [], properties: MQTTProperties(contentType: "x"))
        let notSupported = #expect(throws: MQTTError.self) { _ = try MQTTClient(configuration: willProperties) }
        #expect(notSupported?.code == .notSupported)
    }

    @Test("the linked libmosquitto reports its version")
    func libraryVersion() {
        #expect(MQTTClient.libraryVersion.hasPrefix("2."))
    }

    @Test("subscription options encode to the SUBSCRIBE option bits")
    func subscriptionOptions() {
        #expect(MQTTSubscriptionOptions().mosquittoOptions == 0)
        let all = MQTTSubscriptionOptions(noLocal: true, retainAsPublished: true, retainHandling: .doNotSend)
        #expect(all.mosquittoOptions == 0x04 | 0x08 | 0x20)
    }
}
