import Foundation
import MQTTTestSupport
import Prometheus
import ServiceLifecycle
import Testing

@testable import MQTTModbusBridge
@testable import MQTTModbusBridgeConfiguration
@testable import MQTTModbusBridgeStatus

/// The status endpoint alone, with a health report the test controls, exercised by Python's
/// HTTP client and raw sockets.
@Suite("The status endpoint")
struct StatusEndpointTests {
    static func health(_ connected: Bool) -> BridgeHealth {
        BridgeHealth(
            mqtt: connected ? "connected" : "connecting",
            modbusListening: true,
            modbusConnections: 3,
            writesInFlight: 1,
            payloadDecodeFailures: 2
        )
    }

    static func readiness(_ connected: Bool, acknowledged: Int = 10, listening: Bool = true) -> BridgeReadiness {
        BridgeReadiness(
            brokerConnected: connected,
            subscriptionsConfigured: 10,
            subscriptionsAcknowledged: acknowledged,
            modbusListening: listening
        )
    }

    /// Runs `body` with an endpoint on a free port whose health follows `connected` and whose
    /// readiness follows `ready`.
    static func withEndpoint(
        registry: PrometheusCollectorRegistry? = PrometheusCollectorRegistry(),
        connected: TestLock<Bool> = TestLock(true),
        ready: TestLock<BridgeReadiness>? = TestLock(readiness(true)),
        _ body: (Int, RunningService, StatusEndpoint) async throws -> Void
    ) async throws {
        var readiness: (@Sendable () -> BridgeReadiness)?
        if let ready { readiness = { ready.withLock { $0 } } }
        let endpoint = StatusEndpoint(
            host: "127.0.0.1",
            port: 0,
            registry: registry,
            logger: e2eLogger("e2e.http"),
            readiness: readiness
        ) {
            health(connected.withLock { $0 })
        }
        let running = startService(endpoint, label: "e2e.http")
        do {
            let port = try await poll("the endpoint to listen") { endpoint.port }
            try await body(port, running, endpoint)
        } catch {
            await running.stop()
            throw error
        }
        await running.stop()
    }

    /// Runs a Python script with the port as its argument and returns what it printed.
    static func python(_ script: String, port: Int) async throws -> String {
        let result = try await runProgram(TestPython.url, ["-c", script, "\(port)"])
        guard result.status == 0 else { throw TestBroker.BrokerError(description: "python3 failed:\n\(result.output)") }
        return result.output.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test("/health is 200 with the report (JSON) whatever it says; /metrics is the registry; HEAD, 404 and 405")
    func answers() async throws {
        let registry = PrometheusCollectorRegistry()
        registry.makeCounter(
            descriptor: MetricNameDescriptor(
                namespace: "e2e",
                metricName: "probe",
                unitName: "total",
                helpText: "a counter the test sets"
            )
        ).increment(by: Int64(3))
        let connected = TestLock(true)
        try await Self.withEndpoint(registry: registry, connected: connected) { port, _, _ in
            let ok = try #require(try await httpGet("http://127.0.0.1:\(port)/health"))
            #expect(ok.status == 200)
            #expect(
                ok.body.trimmingCharacters(in: .newlines)
                    == #"{"status":"ok","mqtt":"connected","modbus_listening":true,"modbus_connections":3,"writes_in_flight":1,"payload_decode_failures":2}"#
            )
            connected.withLock { $0 = false }
            let degraded = try #require(try await httpGet("http://127.0.0.1:\(port)/health"))
            #expect(degraded.status == 200 && degraded.body.contains(#""status":"degraded""#), "\(degraded)")
            let metrics = try #require(try await httpGet("http://127.0.0.1:\(port)/metrics"))
            #expect(metrics.status == 200 && metrics.body.contains("e2e_probe_total 3"), "\(metrics)")
            let root = try await httpGet("http://127.0.0.1:\(port)/")
            let query = try await httpGet("http://127.0.0.1:\(port)/health?verbose=1")
            #expect(root?.status == 404)
            #expect(
                query?.status == 200 && query?.body.contains(#""status":"degraded""#) == true,
                "a query string is ignored"
            )
            let methods = try await Self.python(
                """
                import sys, http.client
                for method in ("HEAD", "POST", "DELETE"):
                    connection = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=5)
                    connection.request(method, "/metrics")
                    response = connection.getresponse()
                    print(method, response.status, len(response.read()), response.getheader("Allow"))
                """,
                port: port
            )
            #expect(
                methods.split(separator: "\n") == [
                    "HEAD 200 0 None", "POST 405 18 GET, HEAD", "DELETE 405 18 GET, HEAD",
                ],
                "\(methods)"
            )
        }
    }

    @Test("/ready: 200 while ready, else 503 naming what fails and how many subscriptions are pending")
    func ready() async throws {
        let ready = TestLock(Self.readiness(true))
        try await Self.withEndpoint(ready: ready) { port, _, _ in
            let ok = try #require(try await httpGet("http://127.0.0.1:\(port)/ready"))
            #expect(ok.status == 200)
            #expect(
                ok.body.trimmingCharacters(in: .newlines)
                    == #"{"status":"ready","failing":[],"broker_connected":true,"subscriptions":{"configured":10,"acknowledged":10,"pending":0},"modbus_listening":true}"#
            )
            ready.withLock { $0 = Self.readiness(true, acknowledged: 7) }
            let pending = try #require(try await httpGet("http://127.0.0.1:\(port)/ready"))
            #expect(pending.status == 503)
            #expect(
                pending.body.trimmingCharacters(in: .newlines)
                    == #"{"status":"not_ready","failing":["subscriptions_pending"],"broker_connected":true,"subscriptions":{"configured":10,"acknowledged":7,"pending":3},"modbus_listening":true}"#
            )
            ready.withLock { $0 = Self.readiness(false, acknowledged: 10, listening: false) }
            let down = try #require(try await httpGet("http://127.0.0.1:\(port)/ready"))
            #expect(down.status == 503)
            #expect(
                down.body.trimmingCharacters(in: .newlines)
                    == #"{"status":"not_ready","failing":["broker_not_connected","subscriptions_pending","modbus_not_listening"],"broker_connected":false,"subscriptions":{"configured":10,"acknowledged":0,"pending":10},"modbus_listening":false}"#,
                "no subscription is in force without a connection"
            )
            let head = try await Self.python(
                """
                import sys, http.client
                connection = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=5)
                connection.request("HEAD", "/ready")
                response = connection.getresponse()
                print(response.status, len(response.read()))
                """,
                port: port
            )
            #expect(head == "503 0")
        }
        try await Self.withEndpoint(ready: nil) { port, _, _ in
            let answer = try await httpGet("http://127.0.0.1:\(port)/ready")
            #expect(answer?.status == 404, "no readiness given")
        }
    }

    @Test("without a registry /metrics is 404")
    func noRegistry() async throws {
        try await Self.withEndpoint(registry: nil) { port, _, _ in
            let metrics = try await httpGet("http://127.0.0.1:\(port)/metrics")
            let health = try await httpGet("http://127.0.0.1:\(port)/health")
            #expect(metrics?.status == 404)
            #expect(health?.status == 200)
        }
    }

    @Test("at most 16 connections: the 17th is closed at once, and a slot frees when one closes")
    func connectionLimit() async throws {
        try await Self.withEndpoint { port, _, _ in
            let output = try await Self.python(
                """
                import socket, sys, time
                port = int(sys.argv[1])
                held = []
                for _ in range(16):
                    s = socket.create_connection(("127.0.0.1", port), timeout=5)
                    s.sendall(b"GET /health HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n")
                    s.recv(4096)  # answered: the connection is admitted and stays open (keep-alive)
                    held.append(s)
                extra = socket.create_connection(("127.0.0.1", port), timeout=5)
                print("17th closed" if extra.recv(1) == b"" else "17th open")
                held.pop().close()
                deadline = time.monotonic() + 5
                reply = b""
                while not reply and time.monotonic() < deadline:  # free once the server saw the close
                    try:
                        again = socket.create_connection(("127.0.0.1", port), timeout=5)
                        again.sendall(b"GET /health HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n")
                        reply = again.recv(64)
                    except ConnectionError:
                        pass  # still refused: closed with the request unread, so reset
                    if not reply:
                        time.sleep(0.05)
                print(reply.split(b"\\r\\n")[0].decode())
                """,
                port: port
            )
            #expect(output.split(separator: "\n") == ["17th closed", "HTTP/1.1 200 OK"], "\(output)")
        }
    }

    @Test("graceful shutdown closes open keep-alive connections too")
    func shutdownClosesConnections() async throws {
        try await Self.withEndpoint { port, running, endpoint in
            let script = Task {
                try await Self.python(
                    """
                    import socket, sys
                    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=20)
                    try:
                        s.sendall(b"GET /health HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n")
                        # The response, unless the shutdown came first; then the end of the stream.
                        first = s.recv(4096)
                        print("closed by the server" if first == b"" or s.recv(1) == b"" else "data")
                    except ConnectionResetError:  # closed with the request unread
                        print("closed by the server")
                    """,
                    port: port
                )
            }
            // The script's connection is open once the endpoint holds it.
            _ = try await poll("the keep-alive connection to be open") { endpoint.connectionCount == 1 ? true : nil }
            await running.group.triggerGracefulShutdown()
            // Without the shutdown the script would wait 20 s on the open connection and fail.
            #expect(try await script.value == "closed by the server")
        }
    }
}
