import CoreMetrics
import Logging
import ModbusCore
import NIOConcurrencyHelpers
import NIOCore
import NIOSSL
import NIOTLS

/// The TLS side of a server: the credentials new connections use, the counters, and the rule
/// book that each TLS connection's requests are checked against.
///
/// The credentials (certificate, key, CAs, role map) are replaced whole by
/// ``ModbusServer/replaceTLSCredentials(_:)``: connections accepted afterwards handshake with
/// the new certificate, connections already open keep the TLS session they have, and every
/// request from then on, theirs included, is checked against the new role map.
final class ModbusTLSState: Sendable {
    /// `nil` until the server starts and has read the files.
    /// A `pthread_mutex_t`, which ThreadSanitizer can follow: replaced on reload while
    /// handshakes read it on the event loops (docs/testing.md).
    private let current = NIOLockedValueBox<ModbusTLSCredentials?>(nil)
    let handshakeFailures: RateLimitedEventLog
    let roleDenials: RateLimitedEventLog

    init(metricsFactory: any MetricsFactory, logInterval: Duration) {
        handshakeFailures = RateLimitedEventLog(
            counter: Counter(label: "modbus_server_tls_handshake_failures_total", factory: metricsFactory),
            logInterval: logInterval,
            message: "TLS handshake failed; closing the connection"
        )
        roleDenials = RateLimitedEventLog(
            counter: Counter(label: "modbus_server_role_denials_total", factory: metricsFactory),
            logInterval: logInterval,
            message: "request refused by the client's role; answering illegal function (01)"
        )
    }

    var credentials: ModbusTLSCredentials? { current.withLockedValue { $0 } }

    func replace(with credentials: ModbusTLSCredentials) {
        current.withLockedValue { $0 = credentials }
    }

    /// The role map in force; an empty one (everything denied) before the server has started.
    var authorization: ModbusAuthorizationPolicy {
        current.withLockedValue { $0?.configuration.authorization } ?? ModbusAuthorizationPolicy(roles: [:])
    }
}

/// What the dispatcher needs to authorize the requests of one TLS connection: the role its
/// certificate names and the server's TLS state (for the role map in force and the counter).
struct ModbusConnectionAccess: Sendable {
    /// The role in the client certificate; `nil` when it has none.
    let certificateRole: String?
    let state: ModbusTLSState
    let peer: String

    /// Whether the request may go on; a denial is counted and logged (at a bounded rate).
    func permits(unitID: UInt8, functionCode: UInt8, logger: Logger) -> Bool {
        let function = ModbusFunctionCode(rawValue: functionCode)
        switch state.authorization.decide(role: certificateRole, unitID: unitID, functionCode: function) {
        case .allowed:
            return true
        case .denied(let reason):
            state.roleDenials.record(
                peer: peer,
                logger: logger,
                metadata: [
                    "role": "\(certificateRole ?? "none")", "unit": "\(unitID)", "function": "\(function)",
                    "reason": "\(reason)",
                ]
            )
            return false
        }
    }
}

/// Sits behind the TLS handler of a new connection until its handshake completes: then reads
/// the client's role from its certificate and hands the connection to a
/// ``ModbusConnectionHandler``. A handshake that fails (no certificate, an untrusted or expired
/// one, a protocol older than TLS 1.2), does not finish in time, or leaves a role that cannot be
/// read, closes the connection and is counted in `modbus_server_tls_handshake_failures_total`.
final class ModbusTLSHandshakeHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private let state: ModbusTLSState
    private let peer: String
    private let timeout: Duration
    private let logger: Logger
    /// Makes the Modbus handler for the connection, once its role is known.
    private let makeConnectionHandler: (ModbusConnectionAccess) -> ModbusConnectionHandler
    private var timer: Scheduled<Void>?
    private var finished = false

    init(
        state: ModbusTLSState,
        peer: String,
        timeout: Duration,
        logger: Logger,
        makeConnectionHandler: @escaping (ModbusConnectionAccess) -> ModbusConnectionHandler
    ) {
        self.state = state
        self.peer = peer
        self.timeout = timeout
        self.logger = logger
        self.makeConnectionHandler = makeConnectionHandler
    }

    func handlerAdded(context: ChannelHandlerContext) {
        timer = context.eventLoop.assumeIsolated().scheduleTask(in: TimeAmount(timeout)) {
            self.fail(context: context, reason: "no TLS handshake within \(self.timeout)")
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard case TLSUserEvent.handshakeCompleted = event, !finished else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        finished = true
        timer?.cancel()
        do {
            let role = try peerRole(context: context)
            let access = ModbusConnectionAccess(certificateRole: role, state: state, peer: peer)
            logger.debug("TLS handshake completed", metadata: ["peer": "\(peer)", "role": "\(role ?? "none")"])
            let pipeline = context.pipeline.syncOperations
            try pipeline.addHandler(makeConnectionHandler(access), position: .after(self))
            context.fireUserInboundEventTriggered(event)
            pipeline.removeHandler(context: context, promise: nil)
        } catch {
            finished = false
            fail(context: context, reason: "\(error)")
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        fail(context: context, reason: "\(error)")
    }

    func channelInactive(context: ChannelHandlerContext) {
        if !finished {
            fail(context: context, reason: "the client closed the connection during the handshake")
        }
        context.fireChannelInactive()
    }

    private func fail(context: ChannelHandlerContext, reason: String) {
        guard !finished else { return }
        finished = true
        timer?.cancel()
        state.handshakeFailures.record(peer: peer, logger: logger, metadata: ["reason": "\(reason)"])
        context.close(promise: nil)
    }

    /// The role in the verified client certificate; `nil` when it names none.
    private func peerRole(context: ChannelHandlerContext) throws -> String? {
        let tls = try context.pipeline.syncOperations.handler(type: NIOSSLServerHandler.self)
        guard let certificate = tls.peerCertificate else {
            // The context requires a client certificate, so a completed handshake has one.
            throw ModbusServerError(.invalidState, "the TLS handshake completed without a client certificate")
        }
        return try ModbusClientCertificate.role(derEncoded: try certificate.toDERBytes())
    }
}
