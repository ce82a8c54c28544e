import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A TCP client over plain POSIX sockets, for talking to the server byte by byte.
///
/// The socket calls block, so each runs on a thread of its own, never on Swift's cooperative
/// pool (where it would starve the server's async handlers) nor on a small shared pool (where
/// the blocking calls of tests running in parallel would queue behind each other). Every
/// receive is bounded by a timeout, so a test that waits for a reply never hangs.
final class RawModbusClient: @unchecked Sendable {
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    private let fd: Int32

    /// Connects to 127.0.0.1:`port` (or ::1 with `ipv6`). `receiveBuffer` fixes the socket's
    /// receive buffer (the kernel doubles it and stops tuning it), for a client that must fall
    /// behind quickly.
    ///
    /// `timeout` bounds every send and receive. It only stops a test that would hang (no test
    /// waits for it to expire), so it is generous: under the thread sanitizer on a 2-core machine,
    /// with the other tests of the target running beside it on the shared event loops and other
    /// work on the machine, two tests once waited more than 5 s, at the same moment, for a reply.
    init(port: Int, ipv6: Bool = false, timeout: TimeInterval = 30, receiveBuffer: Int32? = nil) throws {
        // Close-on-exec: a broker or client process that a parallel test starts must not inherit
        // this socket (it would keep the connection open after we close it).
        fd = socket(ipv6 ? AF_INET6 : AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "socket() failed: errno \(errno)") }
        var tv = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - floor(timeout)) * 1_000_000))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        if var size = receiveBuffer {
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
        let result: Int32
        if ipv6 {
            var address = sockaddr_in6()
            address.sin6_family = sa_family_t(AF_INET6)
            address.sin6_port = in_port_t(UInt16(port).bigEndian)
            address.sin6_addr = in6addr_loopback
            result = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size))
                }
            }
        } else {
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = in_port_t(UInt16(port).bigEndian)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            result = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
        }
        guard result == 0 else {
            // No close here: deinit runs for a throwing initialiser of a fully initialised
            // class and closes the socket; closing it twice would close whatever descriptor
            // another thread got in between.
            throw Failure(description: "connect to port \(port) failed: errno \(errno)")
        }
    }

    deinit { close(fd) }

    /// The client's own port (IPv4), as the server sees it in the peer address.
    var localPort: Int {
        var address = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let result = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return result == 0 ? Int(UInt16(bigEndian: address.sin_port)) : -1
    }

    private func sendBlocking(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes[offset...].withUnsafeBytes {
                Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL))
            }
            guard sent > 0 else { throw Failure(description: "send failed: errno \(errno)") }
            offset += sent
        }
    }

    /// Receives exactly `count` bytes or throws (timeout, or the server closed the connection).
    private func receiveBlocking(_ count: Int) throws -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        var offset = 0
        while offset < count {
            let received = bytes[offset...].withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if received == 0 {
                throw Failure(description: "connection closed by server after \(offset) of \(count) bytes")
            }
            if received < 0 {
                throw Failure(description: "receive failed (errno \(errno)) after \(offset) of \(count) bytes")
            }
            offset += received
        }
        return bytes
    }

    /// Receives one whole Modbus TCP frame (MBAP header and PDU).
    func receiveFrame() async throws -> [UInt8] {
        try await onOwnThread { try self.receiveFrameBlocking() }
    }

    private func receiveFrameBlocking() throws -> [UInt8] {
        let header = try receiveBlocking(7)
        let length = Int(header[4]) << 8 | Int(header[5])
        guard length >= 1 else { throw Failure(description: "reply with MBAP length \(length)") }
        return header + (try receiveBlocking(length - 1))
    }

    func send(_ bytes: [UInt8]) async throws {
        try await onOwnThread { try self.sendBlocking(bytes) }
    }

    func receive(_ count: Int) async throws -> [UInt8] {
        try await onOwnThread { try self.receiveBlocking(count) }
    }

    /// Sends a request PDU in a frame and returns the reply PDU, checking the echoed header.
    func request(_ pdu: [UInt8], unit: UInt8 = 1, transaction: UInt16 = 0x1234) async throws -> [UInt8] {
        try await send(ModbusFrames.frame(pdu, unit: unit, transaction: transaction))
        let reply = try await receiveFrame()
        guard reply[0] == UInt8(transaction >> 8), reply[1] == UInt8(transaction & 0xFF) else {
            throw Failure(description: "transaction id not echoed: \(reply.prefix(2))")
        }
        guard reply[2] == 0, reply[3] == 0 else { throw Failure(description: "protocol id not 0 in reply") }
        guard reply[6] == unit else { throw Failure(description: "unit id not echoed: \(reply[6]) for \(unit)") }
        let length = Int(reply[4]) << 8 | Int(reply[5])
        guard length == reply.count - 6 else {
            throw Failure(description: "MBAP length \(length) for \(reply.count - 6) bytes")
        }
        return Array(reply[7...])
    }

    /// Receives whole frames until the server closes the connection; throws if it closes in the
    /// middle of a frame or nothing comes for the receive timeout. One thread for all of them.
    func receiveFramesUntilClose() async throws -> [[UInt8]] {
        try await onOwnThread {
            var frames: [[UInt8]] = []
            while true {
                var first: UInt8 = 0
                let received = recv(self.fd, &first, 1, 0)
                if received == 0 { return frames }
                if received < 0 {
                    throw Failure(description: "receive failed (errno \(errno)) after \(frames.count) frames")
                }
                let rest = try self.receiveBlocking(6)
                let length = Int(rest[3]) << 8 | Int(rest[4])
                guard length >= 1 else { throw Failure(description: "reply with MBAP length \(length)") }
                frames.append([first] + rest + (try self.receiveBlocking(length - 1)))
            }
        }
    }

    /// Whether the server closes the connection (EOF or reset) within the receive timeout.
    func waitForClose() async -> Bool {
        (try? await onOwnThread { self.waitForCloseBlocking() }) ?? false
    }

    private func waitForCloseBlocking() -> Bool {
        var byte: UInt8 = 0
        while true {
            let received = recv(fd, &byte, 1, 0)
            if received == 0 { return true }
            if received < 0 { return errno == ECONNRESET }
        }
    }
}

/// Builders for request frames.
enum ModbusFrames {
    static func frame(_ pdu: [UInt8], unit: UInt8 = 1, transaction: UInt16 = 0x1234, protocolID: UInt16 = 0) -> [UInt8]
    {
        let length = pdu.count + 1
        return [
            UInt8(transaction >> 8), UInt8(transaction & 0xFF), UInt8(protocolID >> 8), UInt8(protocolID & 0xFF),
            UInt8(length >> 8), UInt8(length & 0xFF), unit,
        ] + pdu
    }

    static func u16(_ value: Int) -> [UInt8] { [UInt8((value >> 8) & 0xFF), UInt8(value & 0xFF)] }

    static func read(_ function: UInt8, address: Int, count: Int) -> [UInt8] {
        [function] + u16(address) + u16(count)
    }

    static func writeRegisters(address: Int, values: [UInt16]) -> [UInt8] {
        [0x10] + u16(address) + u16(values.count) + [UInt8(values.count * 2)] + values.flatMap { u16(Int($0)) }
    }

    static func writeCoils(address: Int, bits: [Bool]) -> [UInt8] {
        var packed = [UInt8](repeating: 0, count: (bits.count + 7) / 8)
        for (index, bit) in bits.enumerated() where bit { packed[index / 8] |= 1 << UInt8(index % 8) }
        return [0x0F] + u16(address) + u16(bits.count) + [UInt8(packed.count)] + packed
    }
}

/// Runs a blocking call on a new thread and resumes the caller when it returns.
func onOwnThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread { continuation.resume(with: Result { try body() }) }
    }
}
