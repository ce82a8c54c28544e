import Foundation
import MQTTTestSupport
import Mosquitto
import Testing

@Suite("User name/password and TLS")
struct AuthenticationTests {
    private func passwordBroker() async throws -> TestBrokerOptions {
        let pki = try await TestPKI.shared.value
        return TestBrokerOptions(passwordFile: pki.passwordFile)
    }

    @Test("the right password connects", arguments: [MQTTProtocolVersion.v5, .v311])
    func goodPassword(version: MQTTProtocolVersion) async throws {
        try await withTestBroker(try await self.passwordBroker()) { broker in
            let client = try await connectedClient(broker, protocolVersion: version) {
                $0.username = TestPKI.username
                $0.password = TestPKI.password
            }
            #expect(client.state == .connected)
            try await client.subscribeForTest("secured/#")
        }
    }

    @Test("a bad password is refused with a clear error", arguments: [MQTTProtocolVersion.v5, .v311])
    func badPassword(version: MQTTProtocolVersion) async throws {
        try await withTestBroker(try await self.passwordBroker()) { broker in
            var configuration = testConfiguration(broker, protocolVersion: version)
            configuration.username = TestPKI.username
            configuration.password = "wrong"
            let client = try MQTTClient(configuration: configuration, logger: testLogger)
            let (error, elapsed) = await measure {
                await #expect(throws: MQTTError.self) {
                    try await withTimeout(.seconds(10), "connect") { try await client.connect() }
                }
            }
            let mqttError = try #require(error)
            #expect(mqttError.code == .notAuthorized)
            #expect(mqttError.mqttReasonCode != nil)
            let reason = mqttError.reason.lowercased()
            #expect(reason.contains("not author") || reason.contains("bad user name or password"), "\(mqttError)")
            #expect(elapsed < .seconds(5))
            #expect(client.state == .disconnected(reason: mqttError))

            // No retry in the background: the broker sees a single attempt.
            let refusals = broker.logLines.filter { $0.contains("not authorised") || $0.contains("not authorized") }
            #expect(refusals.count <= 1, "\(refusals)")
        }
    }

    @Test("anonymous clients are refused when the broker needs a password")
    func anonymousRefused() async throws {
        try await withTestBroker(try await self.passwordBroker()) { broker in
            let client = try MQTTClient(configuration: testConfiguration(broker), logger: testLogger)
            let error = await #expect(throws: MQTTError.self) {
                try await withTimeout(.seconds(10), "connect") { try await client.connect() }
            }
            #expect(error?.code == .notAuthorized)
        }
    }

    private func tlsBroker(
        untrusted: Bool = false,
        requireClientCertificate: Bool = false
    ) async throws
        -> TestBrokerOptions
    {
        let pki = try await TestPKI.shared.value
        return TestBrokerOptions(
            tls: TestBrokerOptions.TLS(
                caFile: pki.caFile,
                certificateFile: untrusted ? pki.untrustedServerCertificate : pki.serverCertificate,
                privateKeyFile: untrusted ? pki.untrustedServerKey : pki.serverKey,
                requireClientCertificate: requireClientCertificate
            )
        )
    }

    @Test("TLS with a trusted CA file and a client certificate carries messages")
    func tlsWithClientCertificate() async throws {
        let pki = try await TestPKI.shared.value
        try await withTestBroker(try await self.tlsBroker(requireClientCertificate: true)) { broker in
            let tls = MQTTTLSConfiguration(
                caFile: pki.caFile,
                certificateFile: pki.clientCertificate,
                privateKeyFile: pki.clientKey
            )
            let client = try await connectedClient(broker) { $0.tls = tls }
            let received = MessageCollector(client)
            try await client.subscribeForTest("tls/echo")
            try await client.publishForTest("tls/echo", "over TLS", qos: .exactlyOnce)
            let messages = try await received.waitForCount(1)
            #expect(messages[0].payloadString == "over TLS")
        }
    }

    @Test("TLS with a CA directory, host name verified against localhost")
    func tlsWithCADirectory() async throws {
        let pki = try await TestPKI.shared.value
        try await withTestBroker(try await self.tlsBroker()) { broker in
            let client = try await connectedClient(broker) {
                $0.host = "localhost"
                $0.tls = MQTTTLSConfiguration(caDirectory: pki.caDirectory)
            }
            try await client.publishForTest("tls/dir", "ok", qos: .atLeastOnce)
            #expect(client.state == .connected)
        }
    }

    @Test("a broker that requires a client certificate refuses a client without one")
    func missingClientCertificate() async throws {
        let pki = try await TestPKI.shared.value
        try await withTestBroker(try await self.tlsBroker(requireClientCertificate: true)) { broker in
            var configuration = testConfiguration(broker)
            configuration.tls = MQTTTLSConfiguration(caFile: pki.caFile)
            let client = try MQTTClient(configuration: configuration, logger: testLogger)
            let error = await #expect(throws: MQTTError.self) {
                try await withTimeout(.seconds(10), "connect") { try await client.connect() }
            }
            // Depending on timing the refusal surfaces during the handshake
            // (tls) or as the connection being closed right after it.
            #expect(
                [MQTTError.Code.tls, .connectionLost, .networkError].contains(error?.code),
                "\(String(describing: error))"
            )
        }
    }

    @Test("an untrusted server certificate is refused with a TLS verification error")
    func untrustedServerCertificate() async throws {
        let pki = try await TestPKI.shared.value
        try await withTestBroker(try await self.tlsBroker(untrusted: true)) { broker in
            var configuration = testConfiguration(broker)
            configuration.tls = MQTTTLSConfiguration(caFile: pki.caFile)
            let client = try MQTTClient(configuration: configuration, logger: testLogger)
            let (error, elapsed) = await measure {
                await #expect(throws: MQTTError.self) {
                    try await withTimeout(.seconds(10), "connect") { try await client.connect() }
                }
            }
            let mqttError = try #require(error)
            #expect(mqttError.code == .tls)
            #expect(mqttError.reason.contains("TLS"), "\(mqttError)")
            #expect(mqttError.detail?.contains("certificate verify failed") == true, "\(mqttError)")
            #expect(elapsed < .seconds(5))
            #expect(!client.state.isConnected)
        }
    }

    @Test("after a connection was up, a reconnection refused by TLS still carries OpenSSL's reason")
    func tlsDetailAfterReconnect() async throws {
        // The client stops listening to libmosquitto's log once connected (it costs the ingest
        // path a formatted line per message) and listens again for every attempt: the detail
        // of a later failure must not be lost.
        let pki = try await TestPKI.shared.value
        let trusted = try await TestBroker.start(try await self.tlsBroker())
        var configuration = testConfiguration(trusted)
        configuration.tls = MQTTTLSConfiguration(caFile: pki.caFile)
        let logs = CapturedLogs(level: .debug)
        let client = try MQTTClient(configuration: configuration, logger: logs.logger)
        let states = client.connectionStates()
        try await withTimeout(.seconds(10), "connect") { try await client.connect() }
        await trusted.stop()
        trusted.removeDirectory()
        // The same port, now with a certificate the client does not trust.
        let untrusted = try await TestBroker.start(try await self.tlsBroker(untrusted: true), port: trusted.port)
        defer { Task { await untrusted.stop() } }
        let refusal = try await withTimeout(.seconds(10), "a refused reconnection") { () -> MQTTError? in
            for await state in states {
                if case .disconnected(let reason?) = state, reason.code == .tls { return reason }
            }
            return nil
        }
        let error = try #require(refusal)
        #expect(error.detail?.contains("certificate verify failed") == true, "\(error)")
        try await withTimeout(.seconds(10), "disconnect") { await client.disconnect() }
        await untrusted.stop()
        untrusted.removeDirectory()
    }

    @Test("a missing CA file is reported when the client is created")
    func missingCAFile() throws {
        var configuration = MQTTConfiguration(port: 8883)
        configuration.tls = MQTTTLSConfiguration(caFile: "/nonexistent/ca.crt")
        let error = #expect(throws: MQTTError.self) {
            _ = try MQTTClient(configuration: configuration, logger: testLogger)
        }
        #expect(error?.code == .invalidArgument)
    }
}
