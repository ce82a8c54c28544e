import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import Prometheus
import ServiceLifecycle
import Synchronization

/// A small HTTP/1.1 endpoint for operations: `GET /health` (200 when healthy, 503 otherwise, with
/// a JSON body) and `GET /metrics` (the Prometheus text format).
///
/// It answers only those two paths and only `GET` and `HEAD`; it reads no request body and keeps
/// no state between requests, so it cannot be used to change anything.
public final class StatusEndpoint: Service, Sendable {
    /// Where the endpoint listens.
    public let host: String
    private let requestedPort: Int
    private let health: @Sendable () -> BridgeHealth
    private let registry: PrometheusCollectorRegistry?
    private let logger: Logger
    private let listener = Mutex<(any Channel)?>(nil)

    /// - Parameters:
    ///   - host: the address to listen on (`127.0.0.1` keeps it local; `0.0.0.0` in a container).
    ///   - port: the TCP port; 0 picks a free one (see ``port``).
    ///   - registry: where `/metrics` reads from (the registry of the `PrometheusMetricsFactory`
    ///     bootstrapped into swift-metrics); `nil` answers `/metrics` with 404.
    ///   - health: called for every `/health` request.
    public init(
        host: String, port: Int, registry: PrometheusCollectorRegistry?, logger: Logger = Logger(label: "bridge.http"),
        health: @escaping @Sendable () -> BridgeHealth
    ) {
        self.host = host
        self.requestedPort = port
        self.registry = registry
        self.health = health
        self.logger = logger
    }

    /// The port listened on, once running.
    public var port: Int? { listener.withLock { $0?.localAddress?.port } }

    /// Listens until graceful shutdown or cancellation.
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
    }

    /// Starts listening and returns the listening channel (``run()`` does this for you).
    func start() async throws -> any Channel {
        let health = self.health
        let registry = self.registry
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(StatusRequestHandler(health: health, registry: registry))
                }
            }
            .bind(host: host, port: requestedPort).get()
        listener.withLock { $0 = channel }
        logger.info("status endpoint listening (GET /health, GET /metrics)", metadata: ["address": "\(channel.localAddress.map { "\($0)" } ?? "?")"])
        return channel
    }
}

/// Answers one connection's requests: `/health` and `/metrics`, nothing else.
private final class StatusRequestHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let health: @Sendable () -> BridgeHealth
    private let registry: PrometheusCollectorRegistry?
    private var head: HTTPRequestHead?

    init(health: @escaping @Sendable () -> BridgeHealth, registry: PrometheusCollectorRegistry?) {
        self.health = health
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
        var headers = HTTPHeaders([("Content-Type", contentType), ("Content-Length", "\(body.count)"), ("Cache-Control", "no-store")])
        if status == .methodNotAllowed { headers.add(name: "Allow", value: "GET, HEAD") }
        if !head.isKeepAlive { headers.add(name: "Connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))), promise: nil)
        if head.method != .HEAD {
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))), promise: nil)
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
        guard path == "/health" || path == "/metrics" else {
            return (.notFound, "text/plain; charset=utf-8", Array("not found: the endpoints are /health and /metrics\n".utf8))
        }
        guard head.method == .GET || head.method == .HEAD else {
            return (.methodNotAllowed, "text/plain; charset=utf-8", Array("only GET and HEAD\n".utf8))
        }
        if path == "/health" {
            let report = health()
            return (report.isHealthy ? .ok : .serviceUnavailable, "application/json", Array((report.json + "\n").utf8))
        }
        guard let registry else {
            return (.notFound, "text/plain; charset=utf-8", Array("metrics are not enabled\n".utf8))
        }
        return (.ok, "text/plain; version=0.0.4; charset=utf-8", registry.emitToBuffer())
    }
}
