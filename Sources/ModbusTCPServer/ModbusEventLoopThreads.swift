import NIOCore
import NIOPosix
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// How many event-loop threads a ``ModbusServer`` runs when the host passes no group, and the
/// groups it runs them on.
///
/// NIO's shared group has one thread per core of the machine (its count reads cgroup quotas but
/// not the CPU affinity mask). A process confined to fewer CPUs (`taskset`, a container's
/// cpuset, systemd's `CPUAffinity=`) then runs two or more busy loops on one core, and every
/// request waits behind the other loop's time slice: on a 2-core machine with the server
/// confined to one core, that put the p99 latency at about 4 ms against 0.3 ms with one loop.
/// So the default counts the CPUs the process may use.
enum ModbusEventLoopThreads {
    /// The thread count: the configured one, or else the CPUs the process may run on (never
    /// more than NIO's count, which honours a cgroup CPU quota), at least 1.
    ///
    /// - Parameters:
    ///   - configured: ``ModbusServerConfiguration/eventLoopThreads``.
    ///   - affinity: the CPUs in the process's affinity mask, `nil` when unknown.
    ///   - system: NIO's `System.coreCount`.
    static func resolve(configured: Int?, affinity: Int?, system: Int) -> Int {
        if let configured { return max(configured, 1) }
        guard let affinity, affinity > 0 else { return max(system, 1) }
        return max(min(affinity, system), 1)
    }

    /// The count ``resolve(configured:affinity:system:)`` gives for this process now.
    static func forThisProcess(configured: Int?) -> Int {
        resolve(configured: configured, affinity: affinityCPUCount(), system: System.coreCount)
    }

    /// The number of CPUs set in a `cpu_set_t`-style bit mask.
    static func cpuCount(inAffinityMask mask: some Sequence<UInt8>) -> Int {
        mask.reduce(0) { $0 + $1.nonzeroBitCount }
    }

    /// The CPUs this process may run on (`sched_getaffinity`), or `nil` where that cannot be
    /// read (not Linux).
    static func affinityCPUCount() -> Int? {
        #if os(Linux)
        // Swift's Glibc module leaves out the GNU extensions, `sched_getaffinity` among them;
        // the C library exports it all the same (glibc and musl).
        typealias SchedGetAffinity = @convention(c) (pid_t, Int, UnsafeMutableRawPointer?) -> Int32
        guard let symbol = dlsym(nil, "sched_getaffinity") else { return nil }
        let schedGetAffinity = unsafeBitCast(symbol, to: SchedGetAffinity.self)
        // 1024 CPUs (glibc's cpu_set_t), then larger masks: the call fails with EINVAL when the
        // kernel's mask is larger than the buffer.
        for bytes in [128, 1024, 8192] {
            var mask = [UInt8](repeating: 0, count: bytes)
            let rc = mask.withUnsafeMutableBytes { schedGetAffinity(0, $0.count, $0.baseAddress) }
            if rc == 0 { return cpuCount(inAffinityMask: mask) }
            guard errno == EINVAL else { return nil }
        }
        return nil
        #else
        return nil
        #endif
    }

    /// The groups of servers created without one: one group per thread count, made on first use
    /// and kept for the life of the process, like NIO's shared group. A program that makes and
    /// drops servers (tests, a host restarting its listener) reuses the threads instead of
    /// leaking a group per server.
    private static let groups = Mutex<[Int: MultiThreadedEventLoopGroup]>([:])

    /// The process-wide group with `threads` threads.
    static func sharedGroup(threads: Int) -> MultiThreadedEventLoopGroup {
        groups.withLock { groups in
            if let group = groups[threads] { return group }
            let group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
            groups[threads] = group
            return group
        }
    }
}
