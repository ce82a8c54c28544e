import Foundation

/// The `openssl` steps both test PKIs (``TestPKI`` for the broker, ``ModbusTestPKI`` for
/// Modbus/TCP Security) share: self-signed CAs and leaf certificates they sign, EC keys
/// (generated instantly, unlike RSA), valid for two days, all in one directory.
enum TestCertificateAuthority {
    static let openssl = "/usr/bin/openssl"
    /// The `openssl req` arguments for a new unencrypted P-256 key.
    static let newKey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    /// The extensions every leaf carries before its own.
    static let leafExtensions = "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"

    /// Writes `<name>.key` and `<name>.crt`, a self-signed CA, for each name and subject.
    static func makeCAs(_ authorities: [(name: String, subject: String)], in directory: URL) async throws {
        for (name, subject) in authorities {
            try await runCommand(
                openssl,
                ["req", "-x509", "-new"] + newKey + [
                    "-keyout", "\(name).key", "-out", "\(name).crt", "-days", "2", "-subj", subject,
                    "-addext", "basicConstraints=critical,CA:TRUE",
                    "-addext", "keyUsage=critical,keyCertSign,cRLSign",
                ],
                in: directory
            )
        }
    }

    /// Writes `<name>.key` and `<name>.crt` signed by the CA `<issuer>`, with
    /// ``leafExtensions`` and `extensions` (openssl extension-file lines).
    static func makeLeaf(
        _ name: String,
        issuer: String,
        subject: String,
        extensions: String,
        in directory: URL
    ) async throws {
        try (leafExtensions + extensions).write(
            to: directory.appendingPathComponent("\(name).ext"),
            atomically: true,
            encoding: .utf8
        )
        try await runCommand(
            openssl,
            ["req", "-new"] + newKey + ["-keyout", "\(name).key", "-out", "\(name).csr", "-subj", subject],
            in: directory
        )
        try await runCommand(
            openssl,
            [
                "x509", "-req", "-in", "\(name).csr", "-CA", "\(issuer).crt", "-CAkey", "\(issuer).key",
                "-CAcreateserial", "-out", "\(name).crt", "-days", "2", "-extfile", "\(name).ext",
            ],
            in: directory
        )
    }
}
