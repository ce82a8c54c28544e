import Foundation
import MQTTTestSupport
import ModbusCore
import Testing

@testable import MQTTModbusBridge
@testable import MQTTModbusBridgeStatus

/// The commissioning page and its JSON API, on a running bridge with a real mosquitto, pymodbus
/// as the master, Python's urllib as the HTTP client, and Debian's headless Chromium as the
/// browser.
@Suite("The status page and its JSON API")
struct StatusPageTests {
    static func yaml(_ port: Int) -> String {
        baseYAML(brokerPort: port) + """

            units:
              - id: 1
                points:
                  - { name: temperature, area: input_register, address: 0, type: int16, scale: 10,
                      state_topic: e2e/page/temperature, max_age: 1h }
                  - { name: flow, area: input_register, address: 1, type: uint16, state_topic: e2e/page/flow,
                      max_age: 300ms }
                  - { name: never_sent, area: input_register, address: 2, type: uint16,
                      state_topic: e2e/page/never, max_age: 1h }
                  - { name: setpoint, area: holding_register, address: 0, type: int16,
                      command_topic: e2e/page/setpoint/set, ack: { mode: broker } }
                  - { name: valve, area: holding_register, address: 1, type: uint16,
                      command_topic: e2e/page/valve/set, ack: { mode: mqtt5, timeout: 300ms } }
            """
    }

    /// Runs `body` with a bridge (see ``withBridge(_:simulator:_:)``) and its status listener.
    static func withStatusPage(_ body: (BridgeHarness, Int) async throws -> Void) async throws {
        try await withBridge(Self.yaml) { harness in
            let bridge = harness.bridge
            let endpoint = StatusEndpoint(
                host: "127.0.0.1",
                port: 0,
                registry: nil,
                logger: e2eLogger("e2e.http"),
                status: { bridge.statusSnapshot() },
                health: { bridge.health }
            )
            let running = startService(endpoint, label: "e2e.http")
            do {
                let port = try await poll("the status listener to listen") { endpoint.port }
                try await body(harness, port)
            } catch {
                await running.stop()
                throw error
            }
            await running.stop()
        }
    }

    /// The JSON object at `url`.
    static func json(_ url: String) async throws -> [String: Any] {
        let response = try #require(try await httpGet(url), "nothing answers \(url)")
        #expect(response.status == 200, "\(response)")
        return try parse(response.body)
    }

    static func parse(_ body: String) throws -> [String: Any] {
        let object = try JSONSerialization.jsonObject(with: Data(body.utf8))
        return try #require(object as? [String: Any], "\(body)")
    }

    static func point(_ name: String, in document: [String: Any]) throws -> [String: Any] {
        let points = try #require(document["points"] as? [[String: Any]])
        return try #require(points.first { $0["name"] as? String == name }, "no point \(name) in \(points)")
    }

    @Test("/api/points: values, registers, references, freshness and last writes; /api/connections: the master")
    func jsonAPI() async throws {
        try await Self.withStatusPage { harness, port in
            try await harness.publish("e2e/page/temperature", "21.5")
            try await harness.publish("e2e/page/flow", "7")
            try await harness.awaitRead(.inputRegister, 0) { $0 == [215] }
            #expect(try await harness.modbus.write(.holdingRegister, 0, [42], single: true) == .ok(true))
            #expect(
                try await harness.modbus.write(.holdingRegister, 1, [3], single: true)
                    == .exception(.gatewayTargetDeviceFailedToRespond),
                "nobody answers the valve's MQTT 5 command"
            )

            // The flow value outlives its 300 ms max_age: stale, with its last value still shown.
            let url = "http://127.0.0.1:\(port)/api/points"
            let body = try await poll("flow to turn stale", timeout: .seconds(10)) { () -> String? in
                let response = try #require(try await httpGet(url))
                let document = try Self.parse(response.body)
                return try Self.point("flow", in: document)["freshness"] as? String == "stale" ? response.body : nil
            }
            let document = try Self.parse(body)
            let broker = try #require(document["broker"] as? [String: Any])
            #expect(broker["state"] as? String == "connected")
            #expect(broker["port"] as? Int == harness.broker.port)

            let temperature = try Self.point("temperature", in: document)
            #expect(temperature["value"] as? String == "21.5")
            #expect(temperature["registers"] as? [Int] == [215])
            #expect(temperature["reference"] as? String == "300001")
            #expect(temperature["area"] as? String == "input_register")
            #expect(temperature["freshness"] as? String == "fresh")
            #expect(temperature["state_topic"] as? String == "e2e/page/temperature")
            #expect((temperature["age_seconds"] as? Double).map { $0 >= 0 && $0 < 60 } == true, "\(temperature)")

            let flow = try Self.point("flow", in: document)
            #expect(flow["value"] as? String == "7" && flow["registers"] as? [Int] == [7], "\(flow)")

            let never = try Self.point("never_sent", in: document)
            #expect(never["freshness"] as? String == "missing")
            #expect(never["value"] == nil && never["registers"] as? [Int] == [], "\(never)")

            let setpoint = try Self.point("setpoint", in: document)
            let written = try #require(setpoint["last_write"] as? [String: Any], "\(setpoint)")
            #expect(written["value"] as? String == "42")
            #expect(written["outcome"] as? String == "ok")
            #expect(written["exception_code"] == nil)
            #expect((written["latency_milliseconds"] as? Double).map { $0 > 0 } == true, "\(written)")
            #expect(setpoint["reference"] as? String == "400001")

            let valve = try Self.point("valve", in: document)
            let refused = try #require(valve["last_write"] as? [String: Any], "\(valve)")
            #expect(refused["outcome"] as? String == "timeout")
            #expect(refused["exception_code"] as? Int == 0x0B)
            #expect((refused["latency_milliseconds"] as? Double).map { $0 >= 250 } == true, "\(refused)")

            let connections = try await Self.json("http://127.0.0.1:\(port)/api/connections")
            let open = try #require(connections["connections"] as? [[String: Any]])
            #expect(open.count == 1, "pymodbus is the one master: \(open)")
            #expect((open.first?["requests"] as? Int).map { $0 >= 3 } == true, "\(open)")
            #expect((open.first?["peer"] as? String)?.contains("127.0.0.1") == true, "\(open)")
        }
    }

    @Test("read-only: POST and PUT are refused with 405 and change nothing")
    func readOnly() async throws {
        try await Self.withStatusPage { harness, port in
            try await harness.publish("e2e/page/temperature", "20.0")
            try await harness.awaitRead(.inputRegister, 0) { $0 == [200] }
            let output = try await StatusEndpointTests.python(
                """
                import sys, http.client
                for method, path in (("POST", "/"), ("PUT", "/api/points"), ("DELETE", "/api/connections")):
                    connection = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=5)
                    connection.request(method, path, body=b'{"value": 1}')
                    response = connection.getresponse()
                    print(method, response.status, response.getheader("Allow"))
                """,
                port: port
            )
            #expect(
                output.split(separator: "\n") == ["POST 405 GET, HEAD", "PUT 405 GET, HEAD", "DELETE 405 GET, HEAD"],
                "\(output)"
            )
            #expect(try await harness.modbus.read(.inputRegister, 0).value == [200], "the value is untouched")
        }
    }

    /// Debian's Chromium, headless: `--dump-dom` prints the DOM after the page loaded.
    static func chromium(_ arguments: [String]) async throws -> String {
        let profile = FileManager.default.temporaryDirectory.appendingPathComponent("e2e-chromium-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: profile) }
        let result = try await runProgram(
            URL(fileURLWithPath: "/usr/bin/chromium"),
            [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                "--user-data-dir=\(profile.path)", "--window-size=1400,900",
            ] + arguments
        )
        guard result.status == 0 else {
            throw TestBroker.BrokerError(description: "chromium failed (\(result.status)):\n\(result.output)")
        }
        return result.output
    }

    @Test("in a real browser: point names, values and freshness render, and a new value shows after a refresh")
    func browser() async throws {
        #expect(
            FileManager.default.isExecutableFile(atPath: "/usr/bin/chromium"),
            "Debian's chromium is needed (Tests/setup.sh installs it)"
        )
        try await Self.withStatusPage { harness, port in
            try await harness.publish("e2e/page/temperature", "21.5")
            try await harness.awaitRead(.inputRegister, 0) { $0 == [215] }
            let url = "http://127.0.0.1:\(port)/"

            let page = try await Self.chromium(["--dump-dom", url])
            #expect(page.contains("<title>mqtt-modbus-bridge status</title>"), "\(page.prefix(2000))")
            for name in ["temperature", "flow", "never_sent", "setpoint", "valve"] {
                #expect(page.contains(#"<td class="name">\#(name)</td>"#), "\(name) is listed")
            }
            #expect(page.contains(#"<td class="value">21.5</td>"#), "\(page.prefix(4000))")
            #expect(page.contains(#"<tr id="point-1-temperature" data-freshness="fresh">"#))
            #expect(page.contains(#"<tr id="point-1-never_sent" data-freshness="missing">"#))
            #expect(page.contains(#"id="broker-state" class="connected""#))

            // A screenshot, for a person to look at when this fails.
            let screenshot = FileManager.default.temporaryDirectory.appendingPathComponent(
                "e2e-status-page-\(UUID().uuidString).png"
            )
            defer { try? FileManager.default.removeItem(at: screenshot) }
            _ = try await Self.chromium(["--screenshot=\(screenshot.path)", url])
            let png = try Data(contentsOf: screenshot)
            #expect(png.count > 10_000 && png.starts(with: [0x89, 0x50, 0x4E, 0x47]), "a PNG of \(png.count) bytes")

            // A value published afterwards is on the page at its next load.
            try await harness.publish("e2e/page/temperature", "23.4")
            try await harness.awaitRead(.inputRegister, 0) { $0 == [234] }
            let refreshed = try await Self.chromium(["--dump-dom", url])
            #expect(refreshed.contains(#"<td class="value">23.4</td>"#), "\(refreshed.prefix(4000))")
            #expect(!refreshed.contains(#"<td class="value">21.5</td>"#))
            #expect(page.contains(#"<meta http-equiv="refresh" content="2">"#), "the page reloads itself")
        }
    }
}
