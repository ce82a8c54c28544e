import ModbusCore

/// How the server obtains values for FC1...FC4 (and the read half of FC22 and FC23).
///
/// Three forms, one per kind of host:
/// - ``async(_:)`` — for data behind I/O (a database, another protocol). Runs on Swift's global
///   concurrent executor; the connection waits for it, other connections do not. Reads a client
///   pipelines one behind the other (FC1 to FC4 in a row) are handled concurrently, up to 32 at a
///   time, with the replies still in request order; a write waits until the reads before it are
///   answered, and the reads after it wait for the write.
/// - ``sync(_:)`` — for data in memory. Runs on the connection's event-loop thread, with no
///   thread hop and no task per request. It must not block.
/// - ``syncInPlace(_:)`` — like ``sync(_:)`` but the values go straight into the reply frame, so
///   a read allocates nothing. The bridge's register cache uses this form.
///
/// Sync handlers of different connections run concurrently on different event-loop threads:
/// protect shared state (for example with `Synchronization.Mutex`).
public struct ModbusReadHandler: Sendable {
    enum Kind: Sendable {
        case async(@Sendable (ModbusReadRequest) async throws -> [UInt16])
        case sync(@Sendable (ModbusReadRequest) throws -> [UInt16])
        case syncInPlace(@Sendable (ModbusReadRequest, inout ModbusReadValues) throws -> Void)
    }
    let kind: Kind

    /// A handler that may suspend. Return exactly `request.count` values (bits as 0 or 1).
    public static func async(_ body: @escaping @Sendable (ModbusReadRequest) async throws -> [UInt16]) -> Self {
        Self(kind: .async(body))
    }

    /// A handler that runs on the event loop and must not block. Return exactly `request.count` values.
    public static func sync(_ body: @escaping @Sendable (ModbusReadRequest) throws -> [UInt16]) -> Self {
        Self(kind: .sync(body))
    }

    /// A handler that runs on the event loop, must not block, and appends exactly `request.count`
    /// values to the reply without allocating.
    public static func syncInPlace(
        _ body: @escaping @Sendable (ModbusReadRequest, inout ModbusReadValues) throws -> Void
    ) -> Self {
        Self(kind: .syncInPlace(body))
    }

    var isSynchronous: Bool {
        if case .async = kind { false } else { true }
    }
}

/// How the server applies FC5, FC6, FC15, FC16 (and the write half of FC22 and FC23).
///
/// Return normally only when the write has taken effect: the reply tells the client it succeeded.
/// Throw a ``ModbusException`` to answer with its code; any other error is answered 04.
public struct ModbusWriteHandler: Sendable {
    enum Kind: Sendable {
        case async(@Sendable (ModbusWriteRequest) async throws -> Void)
        case sync(@Sendable (ModbusWriteRequest) throws -> Void)
    }
    let kind: Kind

    /// A handler that may suspend, for example until a device acknowledges the write.
    public static func async(_ body: @escaping @Sendable (ModbusWriteRequest) async throws -> Void) -> Self {
        Self(kind: .async(body))
    }

    /// A handler that runs on the event loop and must not block.
    public static func sync(_ body: @escaping @Sendable (ModbusWriteRequest) throws -> Void) -> Self {
        Self(kind: .sync(body))
    }

    var isSynchronous: Bool {
        if case .async = kind { false } else { true }
    }
}
