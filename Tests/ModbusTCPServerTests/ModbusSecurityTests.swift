import Foundation
import MQTTTestSupport
import MetricsTestKit
import ModbusTCPServer
import Testing

/// Modbus/TCP Security: the TLS listener against Python's `ssl` client (OpenSSL) with
/// certificates made by `openssl` at test time (``ModbusTestPKI``).
@Suite("Modbus/TCP Security (TLS listener, roles)")
struct ModbusSecurityTests {
    static let policy = ModbusAuthorizationPolicy(roles: [
        "operator": .fullAccess,
        "viewer": .readOnly,
        "unit1-operator": ModbusRolePermissions(
            units: [1],
            readableAreas: Set(ModbusArea.allCases),
            writableAreas: [.coil, .holdingRegister]
        ),
        "coils-only": ModbusRolePermissions(readableAreas: [.coil], writableAreas: [.coil], functionCodes: [1, 5]),
    ])

    static func tls(
        _ pki: ModbusTestPKI,
        server: ModbusTestPKI.Identity? = nil,
        policy: ModbusAuthorizationPolicy = Self.policy
    ) -> ModbusTLSConfiguration {
        let identity = server ?? pki.serverA
        return ModbusTLSConfiguration(
            certificateChainFile: identity.certificate,
            privateKeyFile: identity.key,
            trustedCAFile: pki.caFile,
            authorization: policy
        )
    }

    /// Runs `body` with a started TLS server over `store` on a free loopback port.
    func withTLSServer<T>(
        _ tls: ModbusTLSConfiguration,
        store: TestStore,
        metrics: TestMetrics = TestMetrics(),
        _ body: (ModbusServer, Int) async throws -> T
    ) async throws -> T {
        let server = ModbusServer(
            configuration: ModbusServerConfiguration(host: "127.0.0.1", port: 0, tls: tls),
            readHandler: .sync { try store.read($0) },
            writeHandler: .sync { try store.write($0) },
            metricsFactory: metrics
        )
        try await server.start()
        do {
            let result = try await body(server, try #require(server.port))
            await server.stop()
            return result
        } catch {
            await server.stop()
            throw error
        }
    }

    @Test("the operator role reads and writes over TLS 1.2 or later, and sees the server's certificate")
    func operatorAllowed() async throws {
        let pki = try await ModbusTestPKI.shared.value
        let store = TestStore()
        try await withTLSServer(Self.tls(pki), store: store) { server, port in
            #expect(server.isSecure)
            let result = try await ModbusTLSTestClient.run(
                port: port,
                ca: pki.caFile,
                identity: pki.client(role: "operator"),
                requests: [.readHolding(10, count: 2), .writeHolding(20, 4242), .writeCoil(3, true)]
            )
            #expect(result.handshakeCompleted && result.error == nil, "\(result)")
            #expect(result.serverCommonName == "modbus-server-a")
            #expect(["TLSv1.2", "TLSv1.3"].contains(result.version ?? ""), "\(result)")
            #expect(result.replies == [[0x03, 4, 0, 10, 0, 11], [0x06, 0, 20, 0x10, 0x92], [0x05, 0, 3, 0xFF, 0]])
        }
        #expect(store.value(.holdingRegister, 20) == 4242)
        #expect(store.value(.coil, 3) == 1)
    }

    @Test("a read-only role reads, and each of its writes is answered 01 without reaching the handler")
    func viewerWriteRefused() async throws {
        let pki = try await ModbusTestPKI.shared.value
        let store = TestStore()
        let metrics = TestMetrics()
        try await withTLSServer(Self.tls(pki), store: store, metrics: metrics) { _, port in
            let result = try await ModbusTLSTestClient.run(
                port: port,
                ca: pki.caFile,
                identity: pki.client(role: "viewer"),
                requests: [
                    .readInput(5), .writeHolding(20, 1), .writeCoil(3, true),
                    ModbusTLSTestClient.Request([0x10, 0, 30, 0, 1, 2, 0, 9]),
                    // A malformed write is 01 too: the role is checked before the request's data.
                    ModbusTLSTestClient.Request([0x06, 0, 20]),
                ]
            )
            #expect(result.error == nil, "\(result)")
            #expect(result.replies.first == [0x04, 2, 0, 5])
            #expect(result.replies.dropFirst().map { $0 } == [[0x86, 1], [0x85, 1], [0x90, 1], [0x86, 1]])
        }
        #expect(store.writes.withLock { $0.isEmpty }, "no write reached the handler")
        #expect(try metrics.expectCounter("modbus_server_role_denials_total").totalValue == 4)
    }

    @Test("a role limited to unit 1 gets 01 for unit 2; a function code outside a role's list gets 01")
    func unitAndFunctionCodeLimits() async throws {
        let pki = try await ModbusTestPKI.shared.value
        let store = TestStore()
        try await withTLSServer(Self.tls(pki), store: store) { _, port in
            let unitRole = try await ModbusTLSTestClient.run(
                port: port,
                ca: pki.caFile,
                identity: pki.client(role: "unit1-operator"),
                requests: [.readHolding(unit: 1, 1), .readHolding(unit: 2, 1), .writeHolding(unit: 2, 1, 5)]
            )
            #expect(unitRole.replies == [[0x03, 2, 0, 1], [0x83, 1], [0x86, 1]], "\(unitRole)")
            let coils = try await ModbusTLSTestClient.run(
                port: port,
                ca: pki.caFile,
                identity: pki.client(role: "coils-only"),
                requests: [
                    .readCoils(0, count: 1), .writeCoil(1, true),
                    ModbusTLSTestClient.Request([0x0F, 0, 1, 0, 1, 1, 1]),
                    .readHolding(0),
                ]
            )
            #expect(coils.replies == [[0x01, 1, 1], [0x05, 0, 1, 0xFF, 0], [0x8F, 1], [0x83, 1]], "\(coils)")
        }
    }

    @Test(
        "no client certificate, an untrusted one, an expired one, and TLS 1.1 are each refused at the handshake and counted"
    )
    func handshakeRefusals() async throws {
        let pki = try await ModbusTestPKI.shared.value
        let store = TestStore()
        let metrics = TestMetrics()
        try await withTLSServer(Self.tls(pki), store: store, metrics: metrics) { server, port in
            let cases: [(String, ModbusTestPKI.Identity?, String?)] = [
                ("no client certificate", nil, nil),
                ("a certificate from an untrusted CA", pki.untrustedClient, nil),
                ("an expired certificate", pki.expiredClient, nil),
                ("TLS 1.1", pki.client(role: "operator"), "1.1"),
            ]
            for (index, (what, identity, maximumTLS)) in cases.enumerated() {
                let result = try await ModbusTLSTestClient.run(
                    port: port,
                    ca: pki.caFile,
                    identity: identity,
                    requests: [.writeHolding(20, 7)],
                    maximumTLS: maximumTLS
                )
                #expect(result.refused && result.replies.isEmpty, "\(what): \(result)")
                // The server's own count says the refusal was its, not the client's.
                try await waitForCounter(metrics, "modbus_server_tls_handshake_failures_total", Int64(index + 1), what)
            }
            #expect(server.activeConnections == 0)
            // A trusted certificate still gets in afterwards.
            let good = try await ModbusTLSTestClient.run(
                port: port,
                ca: pki.caFile,
                identity: pki.client(role: "viewer"),
                requests: [.readHolding(1)]
            )
            #expect(good.replies == [[0x03, 2, 0, 1]], "\(good)")
        }
        #expect(store.writes.withLock { $0.isEmpty })
    }

    @Test(
        "a certificate without the role extension: every request 01 by default; with default_role that role applies; a malformed role is refused"
    )
    func missingRole() async throws {
        let pki = try await ModbusTestPKI.shared.value
        let store = TestStore()
        let metrics = TestMetrics()
        try await withTLSServer(Self.tls(pki), store: store, metrics: metrics) { _, port in
            let result = try await ModbusTLSTestClient.run(
                port: port,
                ca: pki.caFile,
                identity: pki.noRoleClient,
                requests: [.readHolding(1), ModbusTLSTestClient.Request([0x2B, 0x0E, 1, 0])]
            )
            #expect(result.handshakeCompleted && result.error == nil, "trusted, so admitted: \(result)")
            #expect(result.replies == [[0x83, 1], [0xAB, 1]], "\(result)")

            let malformed = try await ModbusTLSTestClient.run(
                port: port,
                ca: pki.caFile,
                identity: pki.malformedRoleClient,
                requests: [.readHolding(1)]
            )
            #expect(malformed.refused && malformed.replies.isEmpty, "\(malformed)")
            try await waitForCounter(metrics, "modbus_server_tls_handshake_failures_total", 1, "the malformed role")
        }
        var policy = Self.policy
        policy.defaultRole = "viewer"
        try await withTLSServer(Self.tls(pki, policy: policy), store: store) { _, port in
            let result = try await ModbusTLSTestClient.run(
                port: port,
                ca: pki.caFile,
                identity: pki.noRoleClient,
                requests: [.readHolding(1), .writeHolding(1, 9)]
            )
            #expect(result.replies == [[0x03, 2, 0, 1], [0x86, 1]], "\(result)")
        }
        #expect(store.writes.withLock { $0.isEmpty })
    }

    @Test("plain and TLS listeners side by side over the same handlers")
    func plainAndTLSSideBySide() async throws {
        let pki = try await ModbusTestPKI.shared.value
        let store = TestStore()
        try await withTLSServer(Self.tls(pki), store: store) { _, tlsPort in
            try await withServer(
                read: .sync { try store.read($0) },
                write: .sync { try store.write($0) }
            ) { plain, plainPort in
                #expect(!plain.isSecure)
                let secure = try await ModbusTLSTestClient.run(
                    port: tlsPort,
                    ca: pki.caFile,
                    identity: pki.client(role: "operator"),
                    requests: [.writeHolding(40, 0x1234)]
                )
                #expect(secure.replies == [[0x06, 0, 40, 0x12, 0x34]], "\(secure)")
                let client = try RawModbusClient(port: plainPort)
                #expect(
                    try await client.request(ModbusFrames.read(0x03, address: 40, count: 1)) == [0x03, 2, 0x12, 0x34]
                )
                // A TLS client on the plain port, and a plain one on the TLS port, get nowhere.
                let wrongPort = try await ModbusTLSTestClient.run(
                    port: plainPort,
                    ca: pki.caFile,
                    identity: pki.client(role: "operator"),
                    requests: [.readHolding(40)]
                )
                #expect(wrongPort.refused, "\(wrongPort)")
                let plainOnTLS = try RawModbusClient(port: tlsPort)
                try await plainOnTLS.send(ModbusFrames.frame(ModbusFrames.read(0x03, address: 40, count: 1)))
                #expect(await plainOnTLS.waitForClose(), "a plain frame is not a TLS ClientHello")
            }
        }
    }

    @Test(
        "new credentials: new connections get the new certificate, an open connection goes on; a bad key or a missing file is refused and the old credentials stay"
    )
    func replaceCredentials() async throws {
        let pki = try await ModbusTestPKI.shared.value
        let store = TestStore()
        try await withTLSServer(Self.tls(pki), store: store) { server, port in
            let proceed = FileManager.default.temporaryDirectory.appendingPathComponent(
                "modbus-tls-proceed-\(UUID().uuidString)"
            ).path
            defer { try? FileManager.default.removeItem(atPath: proceed) }
            async let held = ModbusTLSTestClient.run(
                port: port,
                ca: pki.caFile,
                identity: pki.client(role: "operator"),
                requests: [.readHolding(1), .readHolding(2)],
                waitFor: proceed
            )
            try await withTimeout(.seconds(20), "the held connection's first request") {
                while server.connections.first?.requests != 1 { try await Task.sleep(for: .milliseconds(10)) }
            }

            try server.replaceTLSCredentials(try ModbusTLSCredentials(Self.tls(pki, server: pki.serverB)))
            let fresh = try await ModbusTLSTestClient.run(
                port: port,
                ca: pki.caFile,
                identity: pki.client(role: "viewer"),
                requests: [.readHolding(3)]
            )
            #expect(fresh.serverCommonName == "modbus-server-b" && fresh.replies == [[0x03, 2, 0, 3]], "\(fresh)")
            _ = FileManager.default.createFile(atPath: proceed, contents: nil)
            let open = try await held
            #expect(open.serverCommonName == "modbus-server-a", "\(open)")
            #expect(open.replies == [[0x03, 2, 0, 1], [0x03, 2, 0, 2]], "the open connection went on: \(open)")

            // A key that does not belong to the certificate, and a file that is not there.
            var mismatched = Self.tls(pki)
            mismatched.privateKeyFile = pki.serverB.key
            let keyError = #expect(throws: ModbusServerError.self) { try ModbusTLSCredentials(mismatched) }
            #expect(keyError?.code == .tlsCredentials)
            #expect(keyError?.message.contains(pki.serverB.key) == true, "\(String(describing: keyError))")
            var missing = Self.tls(pki)
            missing.certificateChainFile = pki.directory.appendingPathComponent("nothing-here.crt").path
            let fileError = #expect(throws: ModbusServerError.self) { try ModbusTLSCredentials(missing) }
            #expect(fileError?.message.contains("nothing-here.crt") == true, "\(String(describing: fileError))")
            #expect(server.tlsCredentials?.configuration.certificateChainFile == pki.serverB.certificate)

            // A new role map applies to the connections already open, from their next request.
            var revoked = Self.policy
            revoked.roles["operator"] = .readOnly
            try server.replaceTLSCredentials(
                try ModbusTLSCredentials(Self.tls(pki, server: pki.serverB, policy: revoked))
            )
            let after = try await ModbusTLSTestClient.run(
                port: port,
                ca: pki.caFile,
                identity: pki.client(role: "operator"),
                requests: [.readHolding(4), .writeHolding(4, 1)]
            )
            #expect(after.replies == [[0x03, 2, 0, 4], [0x86, 1]], "\(after)")
        }
    }

    @Test("a TLS listener whose files cannot be used does not start, and says which file")
    func startRefusedWithBadFiles() async throws {
        let pki = try await ModbusTestPKI.shared.value
        var tls = Self.tls(pki)
        tls.trustedCAFile = pki.directory.appendingPathComponent("no-ca.crt").path
        let server = ModbusServer(
            configuration: ModbusServerConfiguration(host: "127.0.0.1", port: 0, tls: tls),
            readHandler: .sync { _ in [] }
        )
        let error = await #expect(throws: ModbusServerError.self) { try await server.start() }
        #expect(
            error?.code == .tlsCredentials && error?.message.contains("no-ca.crt") == true,
            "\(String(describing: error))"
        )
        #expect(!server.isRunning)
        #expect(ModbusServerConfiguration(host: "::", tls: tls).port == 802, "802 by default")
    }

    private func waitForCounter(_ metrics: TestMetrics, _ label: String, _ value: Int64, _ what: String) async throws {
        try await withTimeout(.seconds(10), "\(label) to reach \(value) after \(what)") {
            while (try? metrics.expectCounter(label).totalValue) ?? 0 < value {
                try await Task.sleep(for: .milliseconds(10))
            }
        }
        #expect(try metrics.expectCounter(label).totalValue == value, "\(what)")
    }
}
