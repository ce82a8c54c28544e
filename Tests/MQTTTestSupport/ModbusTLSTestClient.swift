import Foundation

/// An independent Modbus/TCP Security client: Python's `ssl` module (OpenSSL) carrying raw
/// Modbus frames, one connection per ``run(port:ca:identity:requests:maximumTLS:)``.
///
/// It checks the server's certificate against the CA and the host name 127.0.0.1, presents the
/// client certificate given (or none), sends each request in order and reads its reply. The
/// result tells whether the handshake passed, the server certificate's common name and the TLS
/// version, and each reply PDU, or the error that ended the connection.
public enum ModbusTLSTestClient {
    /// One request: a unit id and a PDU (function code first).
    public struct Request: Sendable {
        public var unit: UInt8
        public var pdu: [UInt8]

        public init(unit: UInt8 = 1, _ pdu: [UInt8]) {
            self.unit = unit
            self.pdu = pdu
        }

        /// FC3, read `count` holding registers from `address`.
        public static func readHolding(unit: UInt8 = 1, _ address: UInt16, count: UInt16 = 1) -> Request {
            Request(unit: unit, [0x03] + address.bigEndianBytes + count.bigEndianBytes)
        }

        /// FC4, read `count` input registers from `address`.
        public static func readInput(unit: UInt8 = 1, _ address: UInt16, count: UInt16 = 1) -> Request {
            Request(unit: unit, [0x04] + address.bigEndianBytes + count.bigEndianBytes)
        }

        /// FC1, read `count` coils from `address`.
        public static func readCoils(unit: UInt8 = 1, _ address: UInt16, count: UInt16 = 1) -> Request {
            Request(unit: unit, [0x01] + address.bigEndianBytes + count.bigEndianBytes)
        }

        /// FC6, write one holding register.
        public static func writeHolding(unit: UInt8 = 1, _ address: UInt16, _ value: UInt16) -> Request {
            Request(unit: unit, [0x06] + address.bigEndianBytes + value.bigEndianBytes)
        }

        /// FC5, write one coil.
        public static func writeCoil(unit: UInt8 = 1, _ address: UInt16, _ on: Bool) -> Request {
            Request(unit: unit, [0x05] + address.bigEndianBytes + [on ? 0xFF : 0x00, 0x00])
        }
    }

    /// What the client saw.
    public struct Result: Sendable, CustomStringConvertible {
        /// The handshake completed on the client's side. (With TLS 1.3 a client completes its
        /// side before the server has checked the client's certificate; a refusal then shows as
        /// an error on the first read.)
        public var handshakeCompleted: Bool
        /// The common name of the server's certificate.
        public var serverCommonName: String?
        /// `TLSv1.2`, `TLSv1.3`.
        public var version: String?
        /// Each request's reply PDU, in order; stops at the first error.
        public var replies: [[UInt8]]
        /// What ended the connection early, if anything.
        public var error: String?
        /// The script's output, for failure messages.
        public var output: String

        /// Whether the server refused the connection: the handshake failed, or the connection
        /// ended before the first reply.
        public var refused: Bool { !handshakeCompleted || (replies.isEmpty && error != nil) }

        /// The exception code of reply `index`, if it is an exception.
        public func exception(_ index: Int) -> UInt8? {
            guard index < replies.count, replies[index].count == 2, replies[index][0] & 0x80 != 0 else { return nil }
            return replies[index][1]
        }

        public var description: String { output }
    }

    /// The script printed no result line.
    public struct NoResult: Error, CustomStringConvertible {
        public var output: String
        public var description: String { "the TLS client printed no result:\n\(output)" }
    }

    /// Connects to 127.0.0.1:`port` and sends `requests`.
    ///
    /// - Parameters:
    ///   - maximumTLS: `"1.1"` offers TLS 1.1 at most (the client's own security level is
    ///     lowered so that it can), to show that the server refuses it.
    ///   - waitFor: after the first reply, wait (at most 20 s) until this file exists before
    ///     sending the other requests: a connection kept open while the test changes something.
    public static func run(
        port: Int,
        ca: String,
        identity: ModbusTestPKI.Identity?,
        requests: [Request],
        maximumTLS: String? = nil,
        waitFor: String? = nil
    ) async throws -> Result {
        let script = FileManager.default.temporaryDirectory.appendingPathComponent(
            "modbus-tls-client-\(UUID().uuidString).py"
        )
        try source.write(to: script, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: script) }
        var arguments = [script.path, "--port", "\(port)", "--ca", ca]
        if let identity { arguments += ["--cert", identity.certificate, "--key", identity.key] }
        if let maximumTLS { arguments += ["--max-tls", maximumTLS] }
        if let waitFor { arguments += ["--wait-for", waitFor] }
        for request in requests {
            arguments += ["--request", "\(request.unit):" + request.pdu.map { String(format: "%02x", $0) }.joined()]
        }
        let output = try await runCommand(TestPython.path, arguments)
        guard let line = output.split(separator: "\n").last(where: { $0.hasPrefix("{") }),
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
        else {
            throw NoResult(output: output)
        }
        let replies = (object["replies"] as? [String] ?? []).map { hex in
            stride(from: 0, to: hex.count, by: 2).map { offset -> UInt8 in
                let start = hex.index(hex.startIndex, offsetBy: offset)
                return UInt8(hex[start..<hex.index(start, offsetBy: 2)], radix: 16) ?? 0
            }
        }
        return Result(
            handshakeCompleted: object["handshake"] as? Bool ?? false,
            serverCommonName: object["server_cn"] as? String,
            version: object["version"] as? String,
            replies: replies,
            error: object["error"] as? String,
            output: output
        )
    }

    static let source = #"""
        import argparse, json, os, socket, ssl, struct, time

        parser = argparse.ArgumentParser()
        parser.add_argument("--port", type=int, required=True)
        parser.add_argument("--ca", required=True)
        parser.add_argument("--cert")
        parser.add_argument("--key")
        parser.add_argument("--max-tls")
        parser.add_argument("--wait-for")
        parser.add_argument("--request", action="append", default=[])
        args = parser.parse_args()

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.load_verify_locations(args.ca)
        if args.cert:
            context.load_cert_chain(args.cert, args.key)
        if args.max_tls == "1.1":
            # OpenSSL 3 refuses TLS 1.1 itself at its default security level.
            context.set_ciphers("DEFAULT:@SECLEVEL=0")
            context.minimum_version = ssl.TLSVersion.TLSv1_1
            context.maximum_version = ssl.TLSVersion.TLSv1_1

        result = {"handshake": False, "replies": []}

        def receive(connection, count):
            data = b""
            while len(data) < count:
                chunk = connection.recv(count - len(data))
                if not chunk:
                    raise EOFError("the server closed the connection")
                data += chunk
            return data

        try:
            raw = socket.create_connection(("127.0.0.1", args.port), timeout=10)
            connection = context.wrap_socket(raw, server_hostname="127.0.0.1")
            result["handshake"] = True
            result["version"] = connection.version()
            subject = dict(item[0] for item in connection.getpeercert()["subject"])
            result["server_cn"] = subject.get("commonName")
            for transaction, request in enumerate(args.request, start=1):
                unit, pdu = request.split(":")
                pdu = bytes.fromhex(pdu)
                connection.sendall(struct.pack(">HHHB", transaction, 0, len(pdu) + 1, int(unit)) + pdu)
                header = receive(connection, 7)
                tid, protocol, length, _ = struct.unpack(">HHHB", header)
                if tid != transaction:
                    raise ValueError("reply for transaction %d, expected %d" % (tid, transaction))
                result["replies"].append(receive(connection, length - 1).hex())
                if transaction == 1 and args.wait_for:
                    deadline = time.monotonic() + 20
                    while not os.path.exists(args.wait_for) and time.monotonic() < deadline:
                        time.sleep(0.01)
            connection.close()
        except (ssl.SSLError, OSError, EOFError, ValueError) as error:
            result["error"] = "%s: %s" % (type(error).__name__, error)
        print(json.dumps(result))
        """#
}

extension UInt16 {
    fileprivate var bigEndianBytes: [UInt8] { [UInt8(self >> 8), UInt8(self & 0xFF)] }
}
