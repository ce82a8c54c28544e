import Foundation
import MQTTModbusBridgeConfiguration
import MQTTTestSupport
import ModbusCore
import Mosquitto
import Testing

/// `mqtt-modbus-bridge import-ha`, run as the program on captured Home Assistant discovery
/// configs (Fixtures/home-assistant-discovery.txt, in `mosquitto_sub -v` form): the output
/// validates without a warning, the bridge serves the sensors it describes to pymodbus, and
/// reading the same configs retained from a broker gives the same file.
@Suite("The import-ha command", .serialized)
struct ImportHACommandTests {
    static func fixture() throws -> URL {
        try #require(
            Bundle.module.url(forResource: "home-assistant-discovery", withExtension: "txt", subdirectory: "Fixtures")
        )
    }

    /// Runs the program with its standard output and standard error apart.
    static func run(_ arguments: [String]) async throws -> (status: Int32, stdout: String, stderr: String) {
        let errors = FileManager.default.temporaryDirectory.appendingPathComponent("import-ha-\(UUID().uuidString).err")
        defer { try? FileManager.default.removeItem(at: errors) }
        let executable = try ValidateCommandTests.executable()
        let result = try await runProgram(
            URL(fileURLWithPath: "/bin/sh"),
            [
                "-c", #"exec "$0" "$@" 2>"$ERRORS""#.replacingOccurrences(of: "$ERRORS", with: errors.path),
                executable.path,
            ]
                + arguments
        )
        let stderr = (try? String(contentsOf: errors, encoding: .utf8)) ?? ""
        return (result.status, result.output, stderr)
    }

    static func importFromFile() async throws -> String {
        let result = try await run(["import-ha", "--from-file", try fixture().path])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stderr.contains("14 entities, 14 point(s)"), "\(result.stderr)")
        return result.stdout
    }

    @Test("from a captured file: the output validates cleanly, lists what it left out, and the bridge serves it")
    func fromFile() async throws {
        let yaml = try await Self.importFromFile()
        #expect(yaml.contains("# - homeassistant/cover/garage/config: component 'cover' is not translated"), "\(yaml)")
        #expect(
            yaml.contains("# - homeassistant/sensor/outdoor_dewpoint/config: value_template '{{ (value_json"),
            "\(yaml)"
        )
        #expect(yaml.contains("not translated: mode_command_topic, mode_state_topic"), "\(yaml)")

        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("import-ha-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("plant.yaml")
        try yaml.write(to: file, atomically: true, encoding: .utf8)

        let validation = try await runProgram(try ValidateCommandTests.executable(), ["validate", file.path])
        #expect(validation.status == 0, "\(validation.output)")
        #expect(validation.output == "\(file.path): OK — 1 unit(s), 14 point(s), 6 writable\n", "no warning")

        let configuration = try BridgeConfiguration.load(path: file.path)
        func point(_ name: String) throws -> PointConfiguration {
            try #require(configuration.point(named: name), "\(name) in\n\(yaml)")
        }
        // Stable allocation: component, then unique_id.
        #expect(try point("living_room_thermostat_current_temperature").address == 0)
        #expect(try point("boiler_pressure").address == 1)
        #expect(try point("boiler_temperature").address == 3)

        let broker = try await TestBroker.start()
        let mqtt = try await connectedClient(broker)
        let messages = MessageCollector(mqtt)
        var bridge: BridgeProcess?
        var modbus: PymodbusClient?
        do {
            try await mqtt.subscribeForTest("#")
            let retained: [(String, String)] = [
                ("plant/boiler/availability", "online"),
                ("home/meter/status", "Online"),
                ("plant/pump/availability", "online"),
                ("plant/boiler/state", #"{"temperature": 71.5, "pressure": 1.25, "flame": true, "max_flow": 65}"#),
                ("home/living_room/climate", #"{"humidity": 45.5}"#),
                ("home/meter/power", "1234.5"),
                ("home/meter/energy", "4521.125"),
                ("home/meter/info", #"{"fw": "1.2.3"}"#),
                ("home/thermostat/state", #"{"setpoint": 21.5, "current": 20.8}"#),
                ("plant/pump/state", "OFF"),
            ]
            for (topic, payload) in retained {
                try await mqtt.publishForTest(topic, payload, qos: .atLeastOnce, retain: true)
            }
            let modbusPort = try freeLoopbackPort()
            bridge = try BridgeProcess([
                "run", "--config", file.path, "--broker-host", "127.0.0.1", "--broker-port", "\(broker.port)",
                "--modbus-host", "127.0.0.1", "--modbus-port", "\(modbusPort)",
            ])
            try await messages.waitForMessage(on: configuration.broker.statusTopic, timeout: .seconds(20)) {
                $0.payloadString == "online"
            }
            let client = try PymodbusClient.start(port: modbusPort)
            modbus = client
            try await client.ping()

            func decoded(_ name: String) async throws -> String {
                let point = try point(name)
                let length: Int?
                if case .string(let registers) = point.type { length = registers } else { length = nil }
                let typeName = length == nil ? "\(point.type)" : "string"
                return try await poll("\(name) from the bridge") {
                    try await client.decode(
                        point.area,
                        Int(point.address),
                        type: typeName,
                        scale: point.scale,
                        length: length
                    ).value?.text
                }
            }
            #expect(try await decoded("boiler_temperature") == "71.5")
            #expect(try await decoded("boiler_pressure") == "1.25")
            #expect(try await decoded("living_room_humidity") == "45.5")
            #expect(try await decoded("meter_power") == "1234.5")
            #expect(try await decoded("meter_energy") == "4521.125")
            #expect(try await decoded("meter_firmware") == "1.2.3")
            #expect(try await decoded("living_room_thermostat_current_temperature") == "20.8")
            #expect(try await decoded("living_room_thermostat_setpoint") == "21.5")
            #expect(try await decoded("boiler_max_flow") == "65.0")
            let flame = try point("boiler_flame")
            #expect(try await client.read(.discreteInput, Int(flame.address)).value == [1])

            // The pump's coil: a write publishes ON and succeeds when the pump reports ON.
            let pump = try point("circulation_pump")
            let mark = messages.count
            let echo = Task {
                let command = try await messages.waitForMessage(on: "plant/pump/set", after: mark)
                try await mqtt.publishForTest(
                    "plant/pump/state",
                    command.payloadString,
                    qos: .atLeastOnce,
                    retain: true
                )
                return command.payloadString
            }
            let reply = try await client.write(.coil, Int(pump.address), [1], single: true)
            #expect(try await echo.value == "ON")
            #expect(reply == .ok(true), "acknowledged by the state echo")
            #expect(try await client.read(.coil, Int(pump.address)).value == [1])
        } catch {
            if let bridge { Issue.record("bridge output:\n\(bridge.output)") }
            await modbus?.close()
            await bridge?.cleanUp()
            await mqtt.disconnect()
            await broker.stop()
            broker.removeDirectory()
            throw error
        }
        await modbus?.close()
        await bridge?.cleanUp()
        await mqtt.disconnect()
        await broker.stop()
        broker.removeDirectory()
    }

    @Test("from a broker: the retained configs give the same file as the captured ones")
    func fromBroker() async throws {
        let fromFile = try await Self.importFromFile()
        let broker = try await TestBroker.start()
        let mqtt = try await connectedClient(broker)
        do {
            let lines = try String(contentsOf: try Self.fixture(), encoding: .utf8).split(separator: "\n")
            for line in lines where !line.hasPrefix("#") && !line.isEmpty {
                let space = try #require(line.firstIndex(of: " "))
                try await mqtt.publishForTest(
                    String(line[..<space]),
                    String(line[space...].dropFirst()),
                    qos: .atLeastOnce,
                    retain: true
                )
            }
            // Not a discovery config: outside the prefix.
            try await mqtt.publishForTest("plant/boiler/state", "{}", qos: .atLeastOnce, retain: true)
            let result = try await Self.run(["import-ha", "--broker", "127.0.0.1:\(broker.port)", "--wait", "10"])
            #expect(result.status == 0, "\(result.stderr)")
            #expect(result.stderr.contains("14 entities, 14 point(s)"), "\(result.stderr)")
            #expect(result.stdout.contains("# Source: retained messages on 127.0.0.1:\(broker.port)\n"))
            // Only the source line and the broker's port differ.
            func normalized(_ text: String) -> [String] {
                text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
                    .filter { !$0.hasPrefix("# Source:") }
                    .map { $0 == "  port: \(broker.port)" ? "  port: 1883" : $0 }
            }
            #expect(normalized(result.stdout) == normalized(fromFile))
        } catch {
            await mqtt.disconnect()
            await broker.stop()
            broker.removeDirectory()
            throw error
        }
        await mqtt.disconnect()
        await broker.stop()
        broker.removeDirectory()
    }

    @Test("--broker and --from-file exclude each other; an unreadable file fails with exit 2")
    func arguments() async throws {
        let both = try await Self.run(["import-ha", "--broker", "localhost", "--from-file", "x.txt"])
        #expect(both.status == 64, "\(both.stderr)")
        #expect(both.stderr.contains("give exactly one of --broker and --from-file"), "\(both.stderr)")
        let missing = try await Self.run(["import-ha", "--from-file", "/nonexistent/discovery.txt"])
        #expect(missing.status == 2)
        #expect(missing.stderr.contains("cannot read /nonexistent/discovery.txt"), "\(missing.stderr)")
    }
}
