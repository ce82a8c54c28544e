import ModbusCore
import NIOSSL
import SwiftASN1
import X509

/// The Modbus/TCP Security settings of a listener: its certificate, the CA its clients'
/// certificates must chain to, and what each client role may do.
///
/// A server with ``ModbusServerConfiguration/tls`` set speaks TLS 1.2 or later only and requires
/// a client certificate that verifies against ``trustedCAFile``: a client without one, with an
/// untrusted or expired one, or offering an older protocol is refused at the handshake. The
/// client's role is the UTF8String in its certificate's extension
/// ``ModbusClientCertificate/roleExtensionOID``; ``authorization`` says what that role may do.
public struct ModbusTLSConfiguration: Sendable, Hashable {
    /// The server's certificate (PEM), with any intermediate certificates after it.
    public var certificateChainFile: String
    /// The server's private key (PEM), unencrypted.
    public var privateKeyFile: String
    /// The CA certificates (PEM, one or more) that client certificates must chain to.
    public var trustedCAFile: String
    /// The role → permission map and the rule for a certificate without a role.
    public var authorization: ModbusAuthorizationPolicy
    /// A connection that has not completed its handshake in this time is closed (and counted as
    /// a handshake failure): an open socket that never speaks TLS must not hold a connection slot.
    public var handshakeTimeout: Duration = .seconds(10)

    /// Creates the settings; the files are read when the server starts (and again by
    /// ``ModbusServer/replaceTLSCredentials(_:)``).
    public init(
        certificateChainFile: String,
        privateKeyFile: String,
        trustedCAFile: String,
        authorization: ModbusAuthorizationPolicy
    ) {
        self.certificateChainFile = certificateChainFile
        self.privateKeyFile = privateKeyFile
        self.trustedCAFile = trustedCAFile
        self.authorization = authorization
    }
}

extension ModbusServerConfiguration {
    /// The port of Modbus/TCP Security (802). Binding it, like any port below 1024, needs root
    /// or `CAP_NET_BIND_SERVICE` on Linux; an unprivileged process uses another port.
    public static let securePort = 802

    /// A TLS listener on `host`, by default on port 802, with the other settings at their
    /// defaults.
    public init(host: String, port: Int = ModbusServerConfiguration.securePort, tls: ModbusTLSConfiguration) {
        self.init(host: host, port: port)
        self.tls = tls
    }
}

/// The certificate, key, trusted CAs and role map of a TLS listener, read from their files and
/// checked: what new connections use. Made once at start and again for each reload; a failed
/// load leaves the credentials in force untouched.
public struct ModbusTLSCredentials: Sendable {
    /// The settings the files were read from.
    public let configuration: ModbusTLSConfiguration
    let context: NIOSSLContext

    /// Reads and checks the files of `configuration`.
    ///
    /// - Throws: ``ModbusServerError`` with code ``ModbusServerError/Code/tlsCredentials`` naming
    ///   the file and what is wrong with it: unreadable, not PEM, a key that does not belong to
    ///   the certificate, no CA certificate.
    public init(_ configuration: ModbusTLSConfiguration) throws(ModbusServerError) {
        self.configuration = configuration
        let chain: [NIOSSLCertificate]
        let key: NIOSSLPrivateKey
        let trusted: [NIOSSLCertificate]
        do {
            chain = try NIOSSLCertificate.fromPEMFile(configuration.certificateChainFile)
        } catch {
            throw Self.failure("cannot read the certificate \(configuration.certificateChainFile): \(error)")
        }
        guard !chain.isEmpty else {
            throw Self.failure("\(configuration.certificateChainFile) holds no PEM certificate")
        }
        do {
            key = try NIOSSLPrivateKey(file: configuration.privateKeyFile, format: .pem)
        } catch {
            throw Self.failure(
                "cannot read the private key \(configuration.privateKeyFile) (an unencrypted PEM key): \(error)"
            )
        }
        do {
            trusted = try NIOSSLCertificate.fromPEMFile(configuration.trustedCAFile)
        } catch {
            throw Self.failure("cannot read the CA certificates \(configuration.trustedCAFile): \(error)")
        }
        guard !trusted.isEmpty else {
            throw Self.failure("\(configuration.trustedCAFile) holds no PEM certificate to verify clients with")
        }
        var tls = TLSConfiguration.makeServerConfigurationWithMTLS(
            certificateChain: chain.map { .certificate($0) },
            privateKey: .privateKey(key),
            trustRoots: .certificates(trusted)
        )
        // Modbus/TCP Security: TLS 1.2 or later, and a client certificate that verifies.
        tls.minimumTLSVersion = .tlsv12
        tls.certificateVerification = .noHostnameVerification
        // Tells a client which CAs are trusted, so that one holding several certificates picks the right one.
        tls.sendCANameList = true
        do {
            // BoringSSL compares the key with the certificate here: a key that does not belong
            // to it is refused now, not at the first handshake.
            context = try NIOSSLContext(configuration: tls)
        } catch {
            throw Self.failure(
                "cannot use the certificate \(configuration.certificateChainFile) with the key \(configuration.privateKeyFile) (does the key belong to the certificate?): \(error)"
            )
        }
    }

    private static func failure(_ message: String) -> ModbusServerError {
        ModbusServerError(.tlsCredentials, message)
    }
}

/// Reads the Modbus/TCP Security role from a client certificate.
public enum ModbusClientCertificate {
    /// The role extension's OID, 1.3.6.1.4.1.50316.802.1 (the Modbus Organization's arc); its
    /// value is an ASN.1 UTF8String.
    public static let roleExtensionOID: ASN1ObjectIdentifier = [1, 3, 6, 1, 4, 1, 50316, 802, 1]

    /// Why a certificate's role could not be read.
    public struct RoleError: Error, Sendable, CustomStringConvertible {
        public var description: String
    }

    /// The role in a DER-encoded certificate: `nil` when it has no role extension.
    ///
    /// - Throws: ``RoleError`` when the certificate cannot be parsed or the extension is not a
    ///   UTF8String (such a client is refused every request, like one with no role, so that a
    ///   malformed role never falls back to the default role).
    public static func role(derEncoded certificate: [UInt8]) throws(RoleError) -> String? {
        let parsed: Certificate
        do {
            parsed = try Certificate(derEncoded: certificate)
        } catch {
            throw RoleError(description: "the client certificate cannot be parsed: \(error)")
        }
        guard let roleExtension = parsed.extensions[oid: roleExtensionOID] else { return nil }
        do {
            return String(try ASN1UTF8String(derEncoded: roleExtension.value))
        } catch {
            throw RoleError(description: "the role extension is not an ASN.1 UTF8String: \(error)")
        }
    }
}
