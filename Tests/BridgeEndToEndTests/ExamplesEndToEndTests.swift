import Foundation
import MQTTModbusBridgeConfiguration
import MQTTTestSupport
import ModbusCore
import Mosquitto
import Testing

/// Every example of `examples/configs/` the way its header says to run it: a real mosquitto,
/// `mqtt-modbus-bridge simulate --config <example>` and `mqtt-modbus-bridge run --config
/// <example>` as processes (pointed at the test broker and a loopback Modbus port by their
/// command-line overrides), and pymodbus as the master. Each test reads a value and checks it
/// against what the simulator published, decoded by pymodbus independently of the bridge, and
/// for writable examples makes one write that is acknowledged the example's way and reads it back.
@Suite("The shipped examples against the simulator", .serialized)
struct ExamplesEndToEndTests {
    /// The examples this suite runs; ValidateCommandTests checks that they exist.
    static let exampleFiles = [
        "energy-meter.yaml", "hvac-mqtt5.yaml", "pump-correlation-id.yaml", "zigbee2mqtt-plug.yaml",
        "tasmota-relay.yaml", "plant-templates.yaml", "tasmota-profile.yaml", "zigbee2mqtt-profile.yaml",
        "shelly-gen2-switch.yaml",
    ]

    /// An example running: its configuration as loaded, the test client (subscribed to `#`), the
    /// messages it saw, and pymodbus on the bridge's port.
    struct Running: Sendable {
        let configuration: BridgeConfiguration
        let messages: MessageCollector
        let modbus: PymodbusClient
        /// The bridge's status endpoint (`--status-listen`).
        let statusPort: Int
        /// The `simulate` process.
        let simulator: BridgeProcess
        let broker: TestBroker

        /// Kills the simulator (no goodbye): the broker publishes the device's last will, and
        /// the bridge stops serving its values (0B, the default missing-value policy).
        func killSimulator(will topic: String, _ word: String, unserved address: Int) async throws {
            let mark = messages.count
            simulator.send(SIGKILL)
            let will = try await messages.waitForMessage(on: topic, after: mark)
            #expect(will.payloadString == word, "the last will: \(will.payloadString)")
            #expect(try await retainedMessage(on: topic, in: broker).payloadString == word, "retained")
            let modbus = self.modbus
            _ = try await poll("coil \(address) no longer served") {
                try await modbus.read(.coil, address, count: 1) == .exception(.gatewayTargetDeviceFailedToRespond)
                    ? true : nil
            }
        }

        /// A series of the bridge's `/metrics`, by its exact name (`nil`: not exported).
        func metric(_ series: String) async throws -> Double? {
            let response = try #require(try await httpGet("http://127.0.0.1:\(statusPort)/metrics"), "/metrics")
            let line = response.body.split(separator: "\n").first { $0.hasPrefix(series + " ") }
            return line.flatMap { Double($0.split(separator: " ").last ?? "") }
        }

        /// Where `message` is in the messages seen (to wait for what came after it).
        func index(of message: MQTTMessage) throws -> Int {
            let seen = messages.messages
            let index = try #require(
                seen.firstIndex { $0.topic == message.topic && $0.payload == message.payload },
                "\(message.topic) was seen"
            )
            return index + 1
        }

        /// The last message on `topic` so far (the simulator's retained state, or a later one).
        func last(on topic: String) throws -> MQTTMessage {
            try #require(messages.messages.last { $0.topic == topic }, "nothing on \(topic)")
        }

        /// A number of a JSON state message, at a dotted path.
        func number(on topic: String, at path: String) throws -> Double {
            let message = try last(on: topic)
            var value: Any? = try JSONSerialization.jsonObject(with: Data(message.payload))
            for key in path.split(separator: ".") { value = (value as? [String: Any])?[String(key)] }
            return try #require((value as? NSNumber)?.doubleValue, "\(path) in \(message.payloadString)")
        }

        /// Polls pymodbus's own decoding of a point until the bridge serves it.
        func decoded(
            _ area: ModbusArea,
            _ address: Int,
            type: String,
            order: String = "ABCD",
            scale: Double = 1,
            unit: Int = 1
        ) async throws -> DecodedValue {
            let modbus = self.modbus
            return try await poll("\(type) at \(area) \(address) of unit \(unit)") {
                try await modbus.decode(area, address, type: type, order: order, scale: scale, unit: unit).value
            }
        }

        /// Polls a read until it answers `expected`.
        func awaitRead(_ area: ModbusArea, _ address: Int, unit: Int = 1, _ expected: [UInt16]) async throws {
            let modbus = self.modbus
            _ = try await poll("\(area) \(address) of unit \(unit) to read \(expected)") {
                try await modbus.read(area, address, count: expected.count, unit: unit).value == expected ? true : nil
            }
        }

        /// Writes and returns the command the bridge published on `commandTopic` for it.
        func write(
            _ area: ModbusArea,
            _ address: Int,
            _ values: [UInt16],
            unit: Int = 1,
            commandTopic: String
        ) async throws -> MQTTMessage {
            let mark = messages.count
            let reply = try await modbus.write(area, address, values, single: values.count == 1, unit: unit)
            #expect(reply == .ok(true), "the device acknowledged the write")
            let command = try await messages.waitForMessage(on: commandTopic, after: mark)
            #expect(command.retain == false, "commands are never retained")
            return command
        }
    }

    /// Runs `body` with the example `file` served by `run` against `simulate`; stops everything.
    /// `interval`: the simulator's telemetry interval (0: its first states only).
    func withExample(_ file: String, interval: Int = 0, _ body: (Running) async throws -> Void) async throws {
        let path = ValidateCommandTests.repositoryRoot.appendingPathComponent("examples/configs/\(file)").path
        let configuration = try BridgeConfiguration.load(path: path)
        let broker = try await TestBroker.start()
        let mqtt = try await connectedClient(broker)
        let messages = MessageCollector(mqtt)
        try await mqtt.subscribeForTest("#")
        let brokerFlags = ["--broker-host", "127.0.0.1", "--broker-port", "\(broker.port)"]
        var processes: [BridgeProcess] = []
        var modbus: PymodbusClient?
        do {
            // --interval 0: the initial states only, so a value read stays the value published.
            let simulator = try BridgeProcess(
                ["simulate", "--config", path, "--interval", "\(interval)"] + brokerFlags
            )
            processes.append(simulator)
            let stateTopics = Set(configuration.points.compactMap(\.stateTopic))
            try await messages.waitUntil("the simulator's initial states", timeout: .seconds(20)) { received in
                stateTopics.isSubset(of: Set(received.map(\.topic)))
            }
            let modbusPort = try freeLoopbackPort()
            let statusPort = try freeLoopbackPort()
            let bridge = try BridgeProcess(
                [
                    "run", "--config", path, "--modbus-host", "127.0.0.1", "--modbus-port", "\(modbusPort)",
                    "--status-listen", "127.0.0.1:\(statusPort)",
                ] + brokerFlags
            )
            processes.append(bridge)
            let statusTopic = configuration.broker.statusTopic
            try await messages.waitForMessage(on: statusTopic, timeout: .seconds(20)) { $0.payloadString == "online" }
            let client = try PymodbusClient.start(port: modbusPort)
            modbus = client
            try await client.ping()
            try await body(
                Running(
                    configuration: configuration,
                    messages: messages,
                    modbus: client,
                    statusPort: statusPort,
                    simulator: simulator,
                    broker: broker
                )
            )
        } catch {
            for process in processes { Issue.record("\(file) output:\n\(process.output)") }
            await modbus?.close()
            for process in processes.reversed() { await process.cleanUp() }
            await mqtt.disconnect()
            await broker.stop()
            broker.removeDirectory()
            throw error
        }
        await modbus?.close()
        for process in processes.reversed() { await process.cleanUp() }
        await mqtt.disconnect()
        await broker.stop()
        broker.removeDirectory()
    }

    /// The two registers of a 32-bit value, low word first (CDAB).
    static func wordSwapped(_ bits: UInt32) -> [UInt16] {
        [UInt16(truncatingIfNeeded: bits), UInt16(truncatingIfNeeded: bits >> 16)]
    }

    @Test("energy meter: float32 in CDAB and a scaled int32 counter, as the Shelly published them")
    func energyMeter() async throws {
        try await withExample("energy-meter.yaml") { example in
            let prefix = "shellypro3em-c8f09e8a1b2c/status"
            let voltage = try example.number(on: "\(prefix)/em:0", at: "a_voltage")
            let decodedVoltage = try await example.decoded(.inputRegister, 0, type: "float32", order: "CDAB")
            #expect(Float(decodedVoltage.text) == Float(voltage), "\(decodedVoltage)")
            #expect(decodedVoltage.registers == Self.wordSwapped(Float(voltage).bitPattern), "low word first")

            // Wh from the meter, 0.01 kWh in the registers (scale 0.1).
            let energy = try example.number(on: "\(prefix)/emdata:0", at: "total_act")
            let counter = try await example.decoded(.inputRegister, 20, type: "int32", order: "CDAB", scale: 0.1)
            let raw = Int32((energy * 0.1).rounded())
            #expect(counter.registers == Self.wordSwapped(UInt32(bitPattern: raw)), "\(counter)")
            let reading = try #require(Double(counter.text))
            #expect(abs(reading - energy) <= 5, "within half a register step (10 Wh): \(reading) vs \(energy)")
        }
    }

    @Test("HVAC: a setpoint write carries MQTT 5 request/response and succeeds on the controller's response")
    func hvacMQTT5() async throws {
        try await withExample("hvac-mqtt5.yaml") { example in
            let supply = try example.number(on: "hvac/ahu-1/state", at: "supply_temp")
            let decoded = try await example.decoded(.inputRegister, 0, type: "float32")
            #expect(Float(decoded.text) == Float(supply), "\(decoded)")

            let topic = "hvac/ahu-1/zone-1/heating_setpoint/set"
            let mark = example.messages.count
            let command = try await example.write(.holdingRegister, 0, [215], commandTopic: topic)
            #expect(command.payloadString == "21.5")
            #expect(command.properties.responseTopic == "\(topic)/response")
            let correlation = try #require(command.properties.correlationData, "MQTT 5 correlation data")
            let response = try await example.messages.waitForMessage(on: "\(topic)/response", after: mark)
            #expect(response.properties.correlationData == correlation)
            try await example.awaitRead(.holdingRegister, 0, [215])
        }
    }

    @Test("pump: a speed write carries an id the controller's JSON ack echoes on pumps/p1/ack")
    func pumpCorrelationID() async throws {
        try await withExample("pump-correlation-id.yaml") { example in
            let flow = try example.number(on: "pumps/p1/state", at: "flow")
            let decoded = try await example.decoded(.inputRegister, 0, type: "uint16", scale: 10)
            #expect(Double(decoded.text) == flow, "\(decoded)")

            let mark = example.messages.count
            let command = try await example.write(.holdingRegister, 0, [1450], commandTopic: "pumps/p1/set/speed")
            let document = try JSONSerialization.jsonObject(with: Data(command.payload))
            let sent = try #require(document as? [String: Any], "\(command.payloadString)")
            #expect(sent["cmd"] as? String == "set_speed" && (sent["speed"] as? NSNumber)?.intValue == 1450)
            let id = try #require(sent["request_id"] as? String, "\(command.payloadString)")
            let ack = try await example.messages.waitForMessage(on: "pumps/p1/ack", after: mark)
            let acked = try JSONSerialization.jsonObject(with: Data(ack.payload)) as? [String: Any]
            #expect(acked?["request_id"] as? String == id && acked?["ok"] as? Bool == true, "\(ack.payloadString)")
            try await example.awaitRead(.holdingRegister, 0, [1450])
        }
    }

    @Test("zigbee2mqtt plug: OFF on <name>/set succeeds when the plug's state reports OFF")
    func zigbee2mqttPlug() async throws {
        try await withExample("zigbee2mqtt-plug.yaml") { example in
            let power = try example.number(on: "zigbee2mqtt/kitchen_plug", at: "power")
            let decoded = try await example.decoded(.inputRegister, 0, type: "uint16", scale: 10)
            #expect(Double(decoded.text) == power, "\(decoded)")

            try await example.awaitRead(.coil, 0, [1])  // the simulator's initial state, ON
            let mark = example.messages.count
            let command = try await example.write(.coil, 0, [0], commandTopic: "zigbee2mqtt/kitchen_plug/set")
            #expect(command.payloadString == "OFF")
            let echo = try await example.messages.waitForMessage(on: "zigbee2mqtt/kitchen_plug/state", after: mark)
            #expect(echo.payloadString == "OFF")
            try await example.awaitRead(.coil, 0, [0])
        }
    }

    @Test("Tasmota relay: cmnd/<t>/POWER succeeds when stat/<t>/RESULT reports the new POWER")
    func tasmotaRelay() async throws {
        try await withExample("tasmota-relay.yaml") { example in
            let rssi = try example.number(on: "tele/pump_relay/STATE", at: "Wifi.RSSI")
            let decoded = try await example.decoded(.inputRegister, 0, type: "uint16")
            #expect(Double(decoded.text) == rssi, "\(decoded)")

            #expect(try example.last(on: "stat/pump_relay/RESULT").payloadString == #"{"POWER":"ON"}"#)
            try await example.awaitRead(.coil, 0, [1])
            let mark = example.messages.count
            let command = try await example.write(.coil, 0, [0], commandTopic: "cmnd/pump_relay/POWER")
            #expect(command.payloadString == "OFF", "command_payload: plain, with the point's words")
            let result = try await example.messages.waitForMessage(on: "stat/pump_relay/RESULT", after: mark)
            #expect(result.payloadString == #"{"POWER":"OFF"}"#)
            try await example.awaitRead(.coil, 0, [0])
        }
    }

    @Test("plant: templated points on two units read and write at their expanded addresses")
    func plantTemplates() async throws {
        try await withExample("plant-templates.yaml") { example in
            // Pump 3, return side: instance index 5 of the pressure template, address 105 of unit 2.
            let pressure = try #require(Double(try example.last(on: "plant/pumps/3/return/pressure").payloadString))
            let decoded = try await example.decoded(.inputRegister, 105, type: "int16", scale: 100, unit: 2)
            #expect(Double(decoded.text) == pressure, "\(decoded)")

            // Boiler 3's setpoint: holding register 2 of unit 1, acknowledged by state echo.
            let mark = example.messages.count
            let command = try await example.write(
                .holdingRegister,
                2,
                [750],
                unit: 1,
                commandTopic: "plant/boilers/3/setpoint/set"
            )
            #expect(command.payloadString == "75")
            let echo = try await example.messages.waitForMessage(on: "plant/boilers/3/setpoint", after: mark)
            #expect(echo.payloadString == "75")
            try await example.awaitRead(.holdingRegister, 2, unit: 1, [750])

            // Pump 3 stopped: coil 2 of unit 2.
            let stop = try await example.write(.coil, 2, [0], unit: 2, commandTopic: "plant/pumps/3/running/set")
            #expect(stop.payloadString == "OFF")
            try await example.awaitRead(.coil, 2, unit: 2, [0])
        }
    }
    // MARK: Profiles: the simulator speaks each device's convention; nothing it publishes is
    // retained but the availability, so the bridge (started after it) learns relay and switch
    // states from its refresh requests.

    @Test("Tasmota profile: relays from the refresh queries, SENSOR telemetry, POWER1 OFF confirmed on RESULT")
    func tasmotaProfile() async throws {
        try await withExample("tasmota-profile.yaml", interval: 1) { example in
            #expect(try example.last(on: "tele/boiler_board/LWT").payloadString == "Online")
            // The bridge's refresh: an empty command per relay, answered with RESULT and POWER<n>.
            for relay in ["POWER1", "POWER2"] {
                let query = try await example.messages.waitForMessage(on: "cmnd/boiler_board/\(relay)")
                #expect(query.payload.isEmpty && query.retain == false)
                let asked = try example.index(of: query)
                let answer = try await example.messages.waitForMessage(on: "stat/boiler_board/\(relay)", after: asked)
                #expect(answer.payloadString == "ON" && answer.retain == false)
            }
            try await example.awaitRead(.coil, 0, [1, 1])
            // Telemetry changes every second: poll until the register and the last SENSOR agree.
            let modbus = example.modbus
            _ = try await poll("flow temperature as the last SENSOR said") {
                let published = try example.number(on: "tele/boiler_board/SENSOR", at: "DS18B20.Temperature")
                let decoded = try await modbus.decode(.inputRegister, 0, type: "int16", scale: 10).value
                return decoded.flatMap { Double($0.text) } == published ? true : nil
            }

            let mark = example.messages.count
            let command = try await example.write(.coil, 0, [0], commandTopic: "cmnd/boiler_board/POWER1")
            #expect(command.payloadString == "OFF")
            let result = try await example.messages.waitForMessage(on: "stat/boiler_board/RESULT", after: mark) {
                $0.payloadString.contains("POWER1")
            }
            #expect(result.payloadString == #"{"POWER1":"OFF"}"#)
            let power = try await example.messages.waitForMessage(on: "stat/boiler_board/POWER1", after: mark)
            #expect(power.payloadString == "OFF")
            try await example.awaitRead(.coil, 0, [0, 1])
            try await example.killSimulator(will: "tele/boiler_board/LWT", "Offline", unserved: 0)
        }
    }

    @Test("zigbee2mqtt profile: the state from the /get refresh, OFF on /set confirmed by the plug's document")
    func zigbee2mqttProfile() async throws {
        try await withExample("zigbee2mqtt-profile.yaml") { example in
            let get = try await example.messages.waitForMessage(on: "zigbee2mqtt/kitchen_plug/get")
            #expect(get.payloadString == #"{"state":""}"#)
            let asked = try example.index(of: get)
            let state = try await example.messages.waitForMessage(on: "zigbee2mqtt/kitchen_plug", after: asked)
            #expect(state.retain == false, "the answer to /get")
            let power = try example.number(on: "zigbee2mqtt/kitchen_plug", at: "power")
            let decoded = try await example.decoded(.inputRegister, 0, type: "uint16", scale: 10)
            #expect(Double(decoded.text) == power, "\(decoded)")
            try await example.awaitRead(.coil, 0, [1])

            let mark = example.messages.count
            let command = try await example.write(.coil, 0, [0], commandTopic: "zigbee2mqtt/kitchen_plug/set")
            #expect(command.payloadString == #"{"state":"OFF"}"#)
            let echo = try await example.messages.waitForMessage(on: "zigbee2mqtt/kitchen_plug", after: mark)
            #expect(echo.payloadString.hasPrefix(#"{"state":"OFF","#), "\(echo.payloadString)")
            try await example.awaitRead(.coil, 0, [0])
            try await example.killSimulator(
                will: "zigbee2mqtt/kitchen_plug/availability",
                #"{"state":"offline"}"#,
                unserved: 0
            )
        }
    }

    @Test("Shelly Gen2 profile: status from the GetStatus refresh (no unmatched ack), Switch.Set answered by id")
    func shellyGen2Profile() async throws {
        try await withExample("shelly-gen2-switch.yaml") { example in
            let device = "shellyplus1pm-a8032ab1"
            #expect(try example.last(on: "\(device)/online").payloadString == "true")
            let reply = try await example.messages.waitForMessage(on: "shelly-bridge/rpc") {
                $0.payloadString.hasPrefix(#"{"id":"refresh:"#)
            }
            #expect(reply.payloadString.contains(#""result":{"id":0,"output":true"#), "\(reply.payloadString)")
            let apower = try example.number(on: "\(device)/status/switch:0", at: "apower")
            let decoded = try await example.decoded(.inputRegister, 0, type: "int16", scale: 10)
            #expect(Double(decoded.text) == apower, "\(decoded)")
            try await example.awaitRead(.coil, 0, [1])
            #expect(try await example.metric("bridge_unmatched_acks_total") == 0, "the refresh reply is a status")

            let mark = example.messages.count
            let command = try await example.write(.coil, 0, [0], commandTopic: "\(device)/rpc")
            let sent = try #require(try JSONSerialization.jsonObject(with: Data(command.payload)) as? [String: Any])
            #expect(sent["method"] as? String == "Switch.Set" && sent["src"] as? String == "shelly-bridge")
            let id = try #require(sent["id"] as? String, "\(command.payloadString)")
            let answer = try await example.messages.waitForMessage(on: "shelly-bridge/rpc", after: mark)
            #expect(
                answer.payloadString
                    == #"{"id":"\#(id)","src":"\#(device)","dst":"shelly-bridge","result":{"was_on":true}}"#
            )
            try await example.awaitRead(.coil, 0, [0])
            #expect(try await example.metric("bridge_unmatched_acks_total") == 0)
            try await example.killSimulator(will: "\(device)/online", "false", unserved: 0)
        }
    }
}
