import Foundation
import Hummingbird
import Logging
import MQTTModbusBridge
import NIOCore
import Prometheus
import ServiceLifecycle
import Synchronization

/// The bridge's read-only HTTP listener for operations and commissioning, on Hummingbird:
///
/// - `GET /` — the status page (HTML, refreshes itself): every point with its value, registers,
///   age and freshness, the last write of each writable point, the Modbus connections, the
///   broker;
/// - `GET /api/points`, `GET /api/connections` — the same data as JSON;
/// - `GET /health` — liveness: 200 whenever the process serves, with a JSON report;
/// - `GET /ready` — readiness: 200 while ``BridgeReadiness/isReady`` (broker connected, every
///   subscription acknowledged, Modbus listener up), else 503 with a JSON body naming what fails
///   (docs/operations-observability.md says how orchestrators and SCADA redundancy pairs use
///   them);
/// - `GET /metrics` — the Prometheus text format.
///
/// It answers only `GET` and `HEAD` (405 otherwise), reads no request body and keeps no state
/// between requests, so nothing on it can change anything. It keeps what a client can cost
/// bounded: at most ``maxConnections`` connections (more are closed at once), each closed after
/// ``idleTimeout`` without a request.
public final class StatusEndpoint: Service, Sendable {
    /// Connections open at once; further ones are closed on arrival.
    public static let maxConnections = 16
    /// A connection with no request for this long is closed.
    public static let idleTimeout = TimeAmount.seconds(30)
    /// How often the status page reloads itself.
    public static let pageRefreshSeconds = 2

    /// Where the endpoint listens.
    public let host: String
    private let requestedPort: Int
    private let health: @Sendable () -> BridgeHealth
    private let status: (@Sendable () -> BridgeStatusSnapshot)?
    private let readiness: (@Sendable () -> BridgeReadiness)?
    private let registry: PrometheusCollectorRegistry?
    private let logger: Logger
    /// The port bound, 0 until then. An atomic rather than a `Mutex`: ThreadSanitizer cannot see
    /// the hand-over of a `Synchronization.Mutex` on Linux and reports its users as racing
    /// (docs/testing.md); it follows atomics.
    private let boundPort = Atomic<Int>(0)
    private let connections = ConnectionCounter(limit: StatusEndpoint.maxConnections)

    /// - Parameters:
    ///   - host: the address to listen on (`127.0.0.1` keeps it local; `0.0.0.0` in a container).
    ///   - port: the TCP port; 0 picks a free one (see ``port``).
    ///   - registry: where `/metrics` reads from (the registry of the `PrometheusMetricsFactory`
    ///     bootstrapped into swift-metrics); `nil` answers `/metrics` with 404.
    ///   - status: called for every request of the status page and the JSON API; `nil` answers
    ///     them with 404.
    ///   - readiness: called for every `/ready` request (``MQTTModbusBridgeService/readiness``);
    ///     `nil` answers `/ready` with 404.
    ///   - health: called for every `/health` request.
    public init(
        host: String,
        port: Int,
        registry: PrometheusCollectorRegistry?,
        logger: Logger = Logger(label: "bridge.http"),
        status: (@Sendable () -> BridgeStatusSnapshot)? = nil,
        readiness: (@Sendable () -> BridgeReadiness)? = nil,
        health: @escaping @Sendable () -> BridgeHealth
    ) {
        self.host = host
        self.requestedPort = port
        self.registry = registry
        self.status = status
        self.readiness = readiness
        self.health = health
        self.logger = logger
    }

    /// Connections open now.
    var connectionCount: Int { connections.count }

    /// The port listened on, once running.
    public var port: Int? {
        let port = boundPort.load(ordering: .acquiring)
        return port == 0 ? nil : port
    }

    /// Listens until graceful shutdown or cancellation, then closes the listener and every
    /// connection (a scraper's keep-alive connection included).
    public func run() async throws {
        let routes = StatusRoutes(health: health, readiness: readiness, status: status, registry: registry)
        let connections = self.connections
        let application = Application(
            responder: CallbackResponder<BasicRequestContext> { request, _ in routes.respond(to: request) },
            server: .http1(
                configuration: .init(
                    additionalChannelHandlers: [ConnectionLimitHandler(counter: connections)],
                    idleTimeout: Self.idleTimeout
                )
            ),
            configuration: ApplicationConfiguration(address: .hostname(host, port: requestedPort), serverName: nil),
            onServerRunning: { [self] channel in
                boundPort.store(channel.localAddress?.port ?? 0, ordering: .releasing)
                logger.info(
                    "status endpoint listening (GET /, /api/points, /api/connections, /health, /ready, /metrics)",
                    metadata: ["address": "\(channel.localAddress.map { "\($0)" } ?? "?")"]
                )
            },
            logger: logger
        )
        try await application.run()
    }
}

/// Counts the listener's connections against its limit.
///
/// An atomic count rather than a `Mutex` (see `boundPort`): the event-loop threads admit and
/// release connections concurrently, and ThreadSanitizer reported the `Mutex`'s users.
final class ConnectionCounter: Sendable {
    private let open = Atomic<Int>(0)
    let limit: Int

    init(limit: Int) { self.limit = limit }

    /// Takes a slot; `false` when all are taken.
    func admit() -> Bool {
        var count = open.load(ordering: .relaxed)
        while count < limit {
            let (exchanged, original) = open.compareExchange(
                expected: count,
                desired: count + 1,
                ordering: .acquiringAndReleasing
            )
            if exchanged { return true }
            count = original
        }
        return false
    }

    func release() { open.subtract(1, ordering: .acquiringAndReleasing) }

    var count: Int { open.load(ordering: .acquiring) }
}

/// Closes a connection at once when the listener already has its limit of connections, so a
/// client that opens many cannot hold more than ``StatusEndpoint/maxConnections`` (Hummingbird's
/// own limit stops accepting instead, which leaves newcomers waiting in the backlog).
final class ConnectionLimitHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny

    private let counter: ConnectionCounter
    private var admitted = false

    init(counter: ConnectionCounter) { self.counter = counter }

    func handlerAdded(context: ChannelHandlerContext) {
        admitted = counter.admit()
        if !admitted { context.close(promise: nil) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        if admitted { counter.release() }
        admitted = false
    }

    func channelInactive(context: ChannelHandlerContext) {
        if admitted { counter.release() }
        admitted = false
        context.fireChannelInactive()
    }
}

/// What each path answers; pure apart from the closures it calls.
struct StatusRoutes: Sendable {
    let health: @Sendable () -> BridgeHealth
    let readiness: (@Sendable () -> BridgeReadiness)?
    let status: (@Sendable () -> BridgeStatusSnapshot)?
    let registry: PrometheusCollectorRegistry?

    static let paths = ["/", "/api/points", "/api/connections", "/health", "/ready", "/metrics"]

    func respond(to request: Request) -> Response {
        let path = request.uri.path
        guard Self.paths.contains(path) else {
            return Self.text(.notFound, "not found: the paths are \(Self.paths.joined(separator: ", "))\n")
        }
        guard request.method == .get || request.method == .head else {
            var response = Self.text(.methodNotAllowed, "only GET and HEAD\n")
            response.headers[.allow] = "GET, HEAD"
            return response
        }
        var response = answer(path)
        response.headers[.cacheControl] = "no-store"
        if request.method == .head {
            response.headers[.contentLength] = "\(response.body.contentLength ?? 0)"
            response.body = ResponseBody()
        }
        return response
    }

    private func answer(_ path: String) -> Response {
        switch path {
        case "/health":
            // Liveness: answering at all is the answer; the body is for people and monitoring.
            return Self.body(.ok, "application/json", health().json + "\n")
        case "/ready":
            guard let readiness else { return Self.text(.notFound, "readiness is not enabled\n") }
            let report = readiness()
            return Self.body(report.isReady ? .ok : .serviceUnavailable, "application/json", report.json + "\n")
        case "/metrics":
            guard let registry else { return Self.text(.notFound, "metrics are not enabled\n") }
            return Self.body(.ok, "text/plain; version=0.0.4; charset=utf-8", registry.emitToBuffer())
        default:
            guard let status else { return Self.text(.notFound, "the status page is not enabled\n") }
            let snapshot = status()
            switch path {
            case "/api/points":
                return Self.json(StatusJSON.points(snapshot))
            case "/api/connections":
                return Self.json(StatusJSON.connections(snapshot))
            default:
                return Self.body(
                    .ok,
                    "text/html; charset=utf-8",
                    StatusPage.render(snapshot, refreshSeconds: StatusEndpoint.pageRefreshSeconds)
                )
            }
        }
    }

    static func text(_ status: HTTPResponse.Status, _ text: String) -> Response {
        body(status, "text/plain; charset=utf-8", text)
    }

    static func json(_ bytes: [UInt8]) -> Response {
        body(.ok, "application/json", bytes)
    }

    static func body(_ status: HTTPResponse.Status, _ contentType: String, _ text: String) -> Response {
        body(status, contentType, Array(text.utf8))
    }

    static func body(_ status: HTTPResponse.Status, _ contentType: String, _ bytes: [UInt8]) -> Response {
        Response(
            status: status,
            headers: [.contentType: contentType, .contentLength: "\(bytes.count)"],
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: bytes))
        )
    }
}

/// The JSON of `GET /api/points` and `GET /api/connections`: snake-case keys, ISO 8601 times.
enum StatusJSON {
    private struct Points: Encodable {
        var takenAt: Date
        var broker: BridgeStatusSnapshot.BrokerStatus
        var modbus: BridgeStatusSnapshot.ModbusListenerStatus
        var points: [BridgeStatusSnapshot.PointStatus]
    }

    private struct Connections: Encodable {
        var takenAt: Date
        var connections: [BridgeStatusSnapshot.ConnectionStatus]
    }

    static func points(_ snapshot: BridgeStatusSnapshot) -> [UInt8] {
        encode(
            Points(takenAt: snapshot.takenAt, broker: snapshot.broker, modbus: snapshot.modbus, points: snapshot.points)
        )
    }

    static func connections(_ snapshot: BridgeStatusSnapshot) -> [UInt8] {
        encode(Connections(takenAt: snapshot.takenAt, connections: snapshot.connections))
    }

    private static func encode(_ value: some Encodable) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.sortedKeys]
        // Every field is a string, number, bool, array or date: encoding cannot fail.
        return Array((try? encoder.encode(value)) ?? Data("{}".utf8)) + [0x0A]
    }
}
