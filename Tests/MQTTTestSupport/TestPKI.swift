import Foundation

/// Certificates and a password file generated at test time with `openssl` and
/// `mosquitto_passwd`, once per test process.
///
/// - `caFile` signs `serverCertificate` (SAN 127.0.0.1 and localhost) and
///   `clientCertificate`; `caDirectory` holds the same CA, hashed with
///   `openssl rehash`.
/// - `untrustedCAFile` signs `untrustedServerCertificate`, which a client
///   trusting only `caFile` must refuse.
/// - `caFile` also signs `otherHostServerCertificate`, for `broker.example.net` only: trusted,
///   but a client connecting to 127.0.0.1 or localhost must refuse it for its host name.
public struct TestPKI: Sendable {
    /// The user name in ``passwordFile``.
    public static let username = "gateway"
    /// Its password.
    public static let password = "s3cret-pass"

    /// Where the files are.
    public let directory: URL
    public var caFile: String { self.path("ca.crt") }
    public var caDirectory: String { self.path("ca-dir") }
    public var serverCertificate: String { self.path("server.crt") }
    public var serverKey: String { self.path("server.key") }
    public var clientCertificate: String { self.path("client.crt") }
    public var clientKey: String { self.path("client.key") }
    public var untrustedCAFile: String { self.path("untrusted-ca.crt") }
    public var untrustedServerCertificate: String { self.path("untrusted-server.crt") }
    public var untrustedServerKey: String { self.path("untrusted-server.key") }
    public var otherHostServerCertificate: String { self.path("other-host-server.crt") }
    public var otherHostServerKey: String { self.path("other-host-server.key") }
    public var passwordFile: String { self.path("passwords") }

    private func path(_ name: String) -> String {
        self.directory.appendingPathComponent(name).path
    }

    /// Generated on first use; later callers share the same files.
    public static let shared = Task<TestPKI, any Error> {
        try await TestPKI.generate()
    }

    private static func generate() async throws -> TestPKI {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "mqtt-test-pki-\(UUID().uuidString)"
        )
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let pki = TestPKI(directory: directory)
        try await TestCertificateAuthority.makeCAs(
            [("ca", "/CN=MQTT Test CA"), ("untrusted-ca", "/CN=Untrusted Test CA")],
            in: directory
        )
        let serverExtensions = "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n"
        let leaves = [
            ("server", "ca", "/CN=localhost", serverExtensions),
            ("client", "ca", "/CN=gateway-client", "extendedKeyUsage=clientAuth\n"),
            ("untrusted-server", "untrusted-ca", "/CN=localhost", serverExtensions),
            (
                "other-host-server", "ca", "/CN=broker.example.net",
                "subjectAltName=DNS:broker.example.net\nextendedKeyUsage=serverAuth\n"
            ),
        ]
        for (name, issuer, subject, extensions) in leaves {
            try await TestCertificateAuthority.makeLeaf(
                name,
                issuer: issuer,
                subject: subject,
                extensions: extensions,
                in: directory
            )
        }

        let caDirectory = directory.appendingPathComponent("ca-dir")
        try FileManager.default.createDirectory(at: caDirectory, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: pki.caFile, toPath: caDirectory.appendingPathComponent("ca.pem").path)
        try await runCommand(TestCertificateAuthority.openssl, ["rehash", caDirectory.path])

        try await runCommand("/usr/bin/mosquitto_passwd", ["-b", "-c", pki.passwordFile, username, password])
        return pki
    }
}
