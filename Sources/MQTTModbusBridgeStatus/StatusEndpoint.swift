import Logging
import MQTTModbusBridge
import NIOCore
import NIOHTTP1
import NIOPosix
import Prometheus
import ServiceLifecycle
import Synchronization

/// A small HTTP/1.1 endpoint for operations: `GET /health` (liveness: 200 whenever the process
/// serves, with a JSON report), `GET /ready` (readiness: 200 while ``BridgeReadiness/isReady``,
/// else 503, with a JSON body naming what fails) and `GET /metrics` (the Prometheus text format).
/// docs/operations-observability.md says how orchestrators and SCADA redundancy pairs use them.
///
/// The readiness decision is ``BridgeReadiness``'s, a value with no HTTP in it; this type only
/// maps it to a status code. It answers only those three paths and only `GET` and `HEAD`; it reads no request body and keeps
/// no state between requests, so it cannot be used to change anything. It keeps what a client can
/// cost bounded: at most ``maxConnections`` connections (more are closed at once), each closed
/// after ``idleTimeout`` without a request, and no further request read while a client does not
/// read its responses.
public final class StatusEndpoint: Service, Sendable {
    /// Connections open at once; further ones are closed on arrival.
    public static let maxConnections = 16
    /// A connection with no request for this long is closed.
    public static let idleTimeout = TimeAmount.seconds(30)

    /// Where the endpoint listens.
    public let host: String
    private let requestedPort: Int
    private let health: @Sendable () -> BridgeHealth
    private let readiness: (@Sendable () -> BridgeReadiness)?
    private let registry: PrometheusCollectorRegistry?
    private let logger: Logger
    private let listener = Mutex<(any Channel)?>(nil)
    private let connections = Mutex<[ObjectIdentifier: any Channel]>([:])

    /// - Parameters:
    ///   - host: the address to listen on (`127.0.0.1` keeps it local; `0.0.0.0` in a container).
    ///   - port: the TCP port; 0 picks a free one (see ``port``).
    ///   - registry: where `/metrics` reads from (the registry of the `PrometheusMetricsFactory`
    ///     bootstrapped into swift-metrics); `nil` answers `/metrics` with 404.
    ///   - readiness: called for every `/ready` request (``MQTTModbusBridgeService/readiness``);
    ///     `nil` answers `/ready` with 404.
    ///   - health: called for every `/health` request.
    public init(
        host: String,
        port: Int,
        registry: PrometheusCollectorRegistry?,
        logger: Logger = Logger(label: "bridge.http"),
        readiness: (@Sendable () -> BridgeReadiness)? = nil,
        health: @escaping @Sendable () -> BridgeHealth
    ) {
        self.host = host
        self.requestedPort = port
        self.registry = registry
        self.readiness = readiness
        self.health = health
        self.logger = logger
    }

    /// Connections open now.
    var connectionCount: Int { connections.withLock { $0.count } }

    /// The port listened on, once running.
    public var port: Int? { listener.withLock { $0?.localAddress?.port } }

    /// Listens until graceful shutdown or cancellation, then closes the listener and every
    /// connection (a scraper's keep-alive connection included).
    public func run() async throws {
        let channel = try await start()
        await withGracefulShutdownHandler {
            await withTaskCancellationHandler {
                try? await channel.closeFuture.get()
            } onCancel: {
                channel.close(promise: nil)
            }
        } onGracefulShutdown: {
            channel.close(promise: nil)
        }
        let open = connections.withLock { Array($0.values) }
        for connection in open { try? await connection.close() }
    }

    /// Starts listening and returns the listening channel (``run()`` does this for you).
    func start() async throws -> any Channel {
        let health = self.health
        let readiness = self.readiness
        let registry = self.registry
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { [self] channel in
                let id = ObjectIdentifier(channel)
                let admitted = self.connections.withLock { open -> Bool in
                    guard open.count < Self.maxConnections else { return false }
                    open[id] = channel
                    return true
                }
                guard admitted else { return channel.close() }
                channel.closeFuture.whenComplete { _ in _ = self.connections.withLock { $0.removeValue(forKey: id) } }
                do {
                    // IPPROTO_TCP level; `.socketOption(.tcp_nodelay)` would set SO_DEBUG.
                    try channel.syncOptions?.setOption(.tcpOption(.tcp_nodelay), value: 1)
                    let pipeline = channel.pipeline.syncOperations
                    try pipeline.addHandler(IdleStateHandler(readTimeout: Self.idleTimeout))
                    try pipeline.configureHTTPServerPipeline(withErrorHandling: true)
                    try pipeline.addHandler(
                        StatusRequestHandler(health: health, readiness: readiness, registry: registry)
                    )
                    return channel.eventLoop.makeSucceededVoidFuture()
                } catch {
                    // NIO closes the connection without a word; say why.
                    self.logger.error(
                        "status endpoint: cannot set up an accepted connection; closing it",
                        metadata: [
                            "peer": "\(channel.remoteAddress.map { "\($0)" } ?? "unknown")", "error": "\(error)",
                        ]
                    )
                    return channel.eventLoop.makeFailedFuture(error)
                }
            }
            .bind(host: host, port: requestedPort).get()
        listener.withLock { $0 = channel }
        logger.info(
            "status endpoint listening (GET /health, GET /ready, GET /metrics)",
            metadata: ["address": "\(channel.localAddress.map { "\($0)" } ?? "?")"]
        )
        return channel
    }
}

/// Answers one connection's requests: `/health`, `/ready` and `/metrics`, nothing else.
///
/// It holds reading while the channel is not writable: requests are answered as they are read,
/// and a client that pipelines requests without reading the responses would otherwise pile them
/// up in memory. It closes the connection when the `IdleStateHandler` in front reports no read
/// for the idle timeout.
private final class StatusRequestHandler: ChannelDuplexHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private var readHeld = false

    func read(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            context.read()
        } else {
            readHeld = true
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable, readHeld {
            readHeld = false
            context.read()
        }
        context.fireChannelWritabilityChanged()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent {
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    private let health: @Sendable () -> BridgeHealth
    private let readiness: (@Sendable () -> BridgeReadiness)?
    private let registry: PrometheusCollectorRegistry?
    private var head: HTTPRequestHead?

    init(
        health: @escaping @Sendable () -> BridgeHealth,
        readiness: (@Sendable () -> BridgeReadiness)?,
        registry: PrometheusCollectorRegistry?
    ) {
        self.health = health
        self.readiness = readiness
        self.registry = registry
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head): self.head = head
        case .body: break  // Neither endpoint takes a body; it is read and dropped.
        case .end:
            guard let head = head.take() else { return }
            respond(to: head, context: context)
        }
    }

    private func respond(to head: HTTPRequestHead, context: ChannelHandlerContext) {
        let (status, contentType, body) = answer(head)
        var headers = HTTPHeaders([
            ("Content-Type", contentType), ("Content-Length", "\(body.count)"), ("Cache-Control", "no-store"),
        ])
        if status == .methodNotAllowed { headers.add(name: "Allow", value: "GET, HEAD") }
        if !head.isKeepAlive { headers.add(name: "Connection", value: "close") }
        context.write(
            wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))),
            promise: nil
        )
        if head.method != .HEAD {
            context.write(
                wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))),
                promise: nil
            )
        }
        if head.isKeepAlive {
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        } else {
            let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
            context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in bound.value.close(promise: nil) }
        }
    }

    private func answer(_ head: HTTPRequestHead) -> (HTTPResponseStatus, String, [UInt8]) {
        let path = head.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? head.uri
        guard path == "/health" || path == "/ready" || path == "/metrics" else {
            return (
                .notFound, "text/plain; charset=utf-8",
                Array("not found: the endpoints are /health, /ready and /metrics\n".utf8)
            )
        }
        guard head.method == .GET || head.method == .HEAD else {
            return (.methodNotAllowed, "text/plain; charset=utf-8", Array("only GET and HEAD\n".utf8))
        }
        if path == "/health" {
            // Liveness: answering at all is the answer; the body is for people and monitoring.
            return (.ok, "application/json", Array((health().json + "\n").utf8))
        }
        if path == "/ready" {
            guard let readiness else {
                return (.notFound, "text/plain; charset=utf-8", Array("readiness is not enabled\n".utf8))
            }
            let report = readiness()
            return (report.isReady ? .ok : .serviceUnavailable, "application/json", Array((report.json + "\n").utf8))
        }
        guard let registry else {
            return (.notFound, "text/plain; charset=utf-8", Array("metrics are not enabled\n".utf8))
        }
        return (.ok, "text/plain; version=0.0.4; charset=utf-8", registry.emitToBuffer())
    }
}
