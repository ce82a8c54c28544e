import NIOPosix
import Testing

@testable import ModbusTCPServer

#if canImport(Glibc)
import Glibc
#endif

/// How many event-loop threads a server without a host-supplied group runs, and on which group.
@Suite("Event-loop threads from the CPU affinity")
struct EventLoopThreadsTests {
    @Test("the configured count wins; otherwise the affinity mask, bounded by the system's count, at least 1")
    func resolution() {
        #expect(ModbusEventLoopThreads.resolve(configured: 3, affinity: 1, system: 2) == 3)
        #expect(ModbusEventLoopThreads.resolve(configured: nil, affinity: 1, system: 2) == 1)
        #expect(ModbusEventLoopThreads.resolve(configured: nil, affinity: 8, system: 2) == 2, "a cgroup quota")
        #expect(ModbusEventLoopThreads.resolve(configured: nil, affinity: nil, system: 4) == 4)
        #expect(ModbusEventLoopThreads.resolve(configured: nil, affinity: 0, system: 4) == 4)
        #expect(ModbusEventLoopThreads.resolve(configured: nil, affinity: nil, system: 0) == 1)
    }

    @Test("a mask's CPUs are its set bits, wherever they are")
    func maskCount() {
        #expect(ModbusEventLoopThreads.cpuCount(inAffinityMask: [UInt8](repeating: 0, count: 128)) == 0)
        #expect(ModbusEventLoopThreads.cpuCount(inAffinityMask: [0b0000_0001] + [UInt8](repeating: 0, count: 127)) == 1)
        #expect(ModbusEventLoopThreads.cpuCount(inAffinityMask: [0xFF, 0x00, 0x81, 0x01]) == 11)
    }

    #if os(Linux)
    @Test("sched_getaffinity agrees with the kernel's Cpus_allowed_list for this process")
    func affinityOfThisProcess() throws {
        let status = try #require(Self.read("/proc/self/status"))
        let line = try #require(status.split(separator: "\n").first { $0.hasPrefix("Cpus_allowed_list:") })
        let list = line.dropFirst("Cpus_allowed_list:".count).filter { !$0.isWhitespace }
        var expected = 0
        for range in list.split(separator: ",") {
            let bounds = range.split(separator: "-").compactMap { Int($0) }
            expected += bounds.count == 2 ? bounds[1] - bounds[0] + 1 : 1
        }
        #expect(ModbusEventLoopThreads.affinityCPUCount() == expected)
    }

    static func read(_ path: String) -> String? {
        guard let file = fopen(path, "r") else { return nil }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = fread(&buffer, 1, buffer.count, file)
            if count <= 0 { break }
            bytes += buffer[0..<count]
        }
        return String(decoding: bytes, as: UTF8.self)
    }
    #endif

    @Test("servers asking for the same count share one group; another count gets its own")
    func sharedGroups() {
        let one = ModbusEventLoopThreads.sharedGroup(threads: 1)
        #expect(ModbusEventLoopThreads.sharedGroup(threads: 1) === one)
        let two = ModbusEventLoopThreads.sharedGroup(threads: 2)
        #expect(two !== one)
        #expect(Array(one.makeIterator()).count == 1)
        #expect(Array(two.makeIterator()).count == 2)
    }

    @Test("a server with eventLoopThreads set serves on its own group; 0 threads is refused at start")
    func configuredThreads() async throws {
        let store = TestStore()
        var configuration = ModbusServerConfiguration.loopback()
        configuration.eventLoopThreads = 1
        try await withServer(configuration, read: .sync { try store.read($0) }, write: nil) { _, port in
            let client = try RawModbusClient(port: port)
            #expect(try await client.request(ModbusFrames.read(0x03, address: 5, count: 1)) == [0x03, 2, 0, 5])
        }
        configuration.eventLoopThreads = 0
        let server = ModbusServer(configuration: configuration, readHandler: .sync { try store.read($0) })
        await #expect {
            try await server.start()
        } throws: { error in
            (error as? ModbusServerError)?.code == .invalidConfiguration
                && "\(error)".contains("eventLoopThreads must be at least 1")
        }
    }
}
