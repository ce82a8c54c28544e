import Foundation

/// Certificates for the Modbus/TCP Security tests, generated at test time with `openssl`, once
/// per test process.
///
/// - `caFile` signs two server certificates (`serverA`, `serverB`: SAN 127.0.0.1 and localhost,
///   told apart by their common names `modbus-server-a` and `modbus-server-b`, for reload tests)
///   and the client certificates, each carrying its role in the Modbus/TCP Security role
///   extension (OID 1.3.6.1.4.1.50316.802.1, an ASN.1 UTF8String), written with an openssl
///   extension line `1.3.6.1.4.1.50316.802.1=ASN1:UTF8String:<role>`.
/// - `client(role:)` for the roles in ``roles``; ``noRoleClient`` has no role extension;
///   ``malformedRoleClient`` has the extension as an INTEGER, not a UTF8String.
/// - ``expiredClient`` (role `operator`) was valid only in 2020 (made with `openssl ca`, which
///   takes explicit dates).
/// - `untrustedCAFile` signs ``untrustedClient`` (role `operator`), which a server trusting only
///   `caFile` must refuse.
public struct ModbusTestPKI: Sendable {
    /// The roles a client certificate is made for.
    public static let roles = ["operator", "viewer", "unit1-operator", "coils-only"]

    /// A certificate and its key.
    public struct Identity: Sendable {
        public var certificate: String
        public var key: String
    }

    /// Where the files are.
    public let directory: URL
    public var caFile: String { path("ca.crt") }
    public var untrustedCAFile: String { path("untrusted-ca.crt") }
    public var serverA: Identity { identity("server-a") }
    public var serverB: Identity { identity("server-b") }
    public func client(role: String) -> Identity { identity("client-\(role)") }
    public var noRoleClient: Identity { identity("client-norole") }
    public var malformedRoleClient: Identity { identity("client-malformed") }
    public var expiredClient: Identity { identity("client-expired") }
    public var untrustedClient: Identity { identity("client-untrusted") }

    private func path(_ name: String) -> String { directory.appendingPathComponent(name).path }
    private func identity(_ name: String) -> Identity {
        Identity(certificate: path("\(name).crt"), key: path("\(name).key"))
    }

    /// The role extension's OID.
    public static let roleOID = "1.3.6.1.4.1.50316.802.1"

    /// Generated on first use; later callers share the same files.
    public static let shared = Task<ModbusTestPKI, any Error> {
        try await ModbusTestPKI.generate()
    }

    private static func generate() async throws -> ModbusTestPKI {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "modbus-test-pki-\(UUID().uuidString)"
        )
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let pki = ModbusTestPKI(directory: directory)
        let openssl = TestCertificateAuthority.openssl
        let newKey = TestCertificateAuthority.newKey
        func write(_ text: String, _ name: String) throws {
            try text.write(to: directory.appendingPathComponent(name), atomically: true, encoding: .utf8)
        }

        try await TestCertificateAuthority.makeCAs(
            [("ca", "/CN=Modbus Test CA"), ("untrusted-ca", "/CN=Untrusted Modbus CA")],
            in: directory
        )

        let server = "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n"
        func client(role: String?) -> String {
            "extendedKeyUsage=clientAuth\n" + (role.map { "\(roleOID)=ASN1:UTF8String:\($0)\n" } ?? "")
        }
        var leaves = [
            ("server-a", "ca", "/CN=modbus-server-a", server),
            ("server-b", "ca", "/CN=modbus-server-b", server),
            ("client-norole", "ca", "/CN=master-norole", client(role: nil)),
            (
                "client-malformed", "ca", "/CN=master-malformed",
                "extendedKeyUsage=clientAuth\n\(roleOID)=ASN1:INTEGER:7\n"
            ),
            ("client-untrusted", "untrusted-ca", "/CN=master-untrusted", client(role: "operator")),
        ]
        for role in roles { leaves.append(("client-\(role)", "ca", "/CN=master-\(role)", client(role: role))) }
        for (name, issuer, subject, extensions) in leaves {
            try await TestCertificateAuthority.makeLeaf(
                name,
                issuer: issuer,
                subject: subject,
                extensions: extensions,
                in: directory
            )
        }

        // An expired certificate: `openssl x509 -req` only counts days from now, `openssl ca`
        // takes a start and an end date.
        try write(
            """
            [ca]
            default_ca = test_ca
            [test_ca]
            dir = .
            database = index.txt
            new_certs_dir = issued
            certificate = ca.crt
            private_key = ca.key
            serial = serial
            default_md = sha256
            policy = any_subject
            unique_subject = no
            [any_subject]
            commonName = supplied

            """,
            "ca.cnf"
        )
        try write("", "index.txt")
        try write("1000\n", "serial")
        try FileManager.default.createDirectory(
            at: directory.appendingPathComponent("issued"),
            withIntermediateDirectories: true
        )
        try write(TestCertificateAuthority.leafExtensions + client(role: "operator"), "client-expired.ext")
        try await runCommand(
            openssl,
            ["req", "-new"] + newKey + [
                "-keyout", "client-expired.key", "-out", "client-expired.csr", "-subj", "/CN=master-expired",
            ],
            in: directory
        )
        try await runCommand(
            openssl,
            [
                "ca", "-batch", "-config", "ca.cnf", "-in", "client-expired.csr", "-out", "client-expired.crt",
                "-startdate", "20200101000000Z", "-enddate", "20200102000000Z", "-extfile", "client-expired.ext",
                "-notext",
            ],
            in: directory
        )
        // Readable by the uid the tests run as when the files outlive a root run (CI runs the
        // tests as another user than the build).
        try await runCommand("/bin/chmod", ["-R", "a+rX", directory.path])
        return pki
    }
}
