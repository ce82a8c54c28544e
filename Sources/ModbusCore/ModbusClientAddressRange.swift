import NIOCore

/// A range of client addresses in CIDR notation, IPv4 or IPv6, for
/// ``ModbusServerConfiguration/allowedClients``: `10.0.0.0/8`, `192.168.1.20` (one host),
/// `fd00::/8`, `::1`.
///
/// An IPv4 client reaching a server that listens on `::` arrives as an IPv4-mapped IPv6
/// address (`::ffff:10.1.2.3`); it matches the IPv4 ranges, as an administrator means them.
public struct ModbusClientAddressRange: Sendable, Hashable, CustomStringConvertible {
    /// The network's address bytes (4 or 16), host bits cleared.
    private let network: [UInt8]
    /// How many leading bits must match.
    public let prefixLength: Int

    /// Parses `text`: an address, optionally followed by `/` and a prefix length (0...32 for
    /// IPv4, 0...128 for IPv6). Returns `nil` for anything else. Host bits set in the address
    /// (`10.1.2.3/8`) are cleared, as routers read such a range.
    public init?(_ text: String) {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let bytes = Self.parseAddress(String(parts[0])) else { return nil }
        let maximum = bytes.count * 8
        var length = maximum
        if parts.count == 2 {
            guard let given = Int(parts[1]), (0...maximum).contains(given), parts[1].allSatisfy(\.isNumber) else {
                return nil
            }
            length = given
        }
        self.prefixLength = length
        self.network = Self.masked(bytes, length)
    }

    /// Whether `address` (a peer's socket address) is in the range. A Unix-domain peer is in
    /// no range.
    public func contains(_ address: SocketAddress) -> Bool {
        guard var bytes = Self.bytes(of: address) else { return false }
        if network.count == 4, bytes.count == 16, Self.isIPv4Mapped(bytes) { bytes = Array(bytes[12...]) }
        guard bytes.count == network.count else { return false }
        return Self.masked(bytes, prefixLength) == network
    }

    public var description: String {
        let address: String
        if network.count == 4 {
            address = network.map(String.init).joined(separator: ".")
        } else {
            address = stride(from: 0, to: 16, by: 2).map {
                String(UInt16(network[$0]) << 8 | UInt16(network[$0 + 1]), radix: 16)
            }
            .joined(separator: ":")
        }
        return "\(address)/\(prefixLength)"
    }

    private static func masked(_ bytes: [UInt8], _ length: Int) -> [UInt8] {
        bytes.enumerated().map { index, byte in
            let bits = min(max(length - index * 8, 0), 8)
            return bits == 8 ? byte : byte & ~(UInt8(0xFF) >> UInt8(bits))
        }
    }

    private static func isIPv4Mapped(_ bytes: [UInt8]) -> Bool {
        bytes[0..<10].allSatisfy { $0 == 0 } && bytes[10] == 0xFF && bytes[11] == 0xFF
    }

    private static func bytes(of address: SocketAddress) -> [UInt8]? {
        switch address {
        case .v4(let v4):
            return withUnsafeBytes(of: v4.address.sin_addr) { Array($0) }
        case .v6(let v6):
            return withUnsafeBytes(of: v6.address.sin6_addr) { Array($0) }
        case .unixDomainSocket:
            return nil
        }
    }

    /// The bytes of an IPv4 or IPv6 address literal, through NIO's parser (the one the server
    /// binds with), so that every form NIO accepts is accepted here.
    private static func parseAddress(_ text: String) -> [UInt8]? {
        guard !text.isEmpty, !text.contains("%"),
            let address = try? SocketAddress(ipAddress: text, port: 0)
        else { return nil }
        return bytes(of: address)
    }
}
