import ModbusCore
import Testing

@testable import MQTTModbusBridgeConfiguration

/// The translation of Home Assistant discovery configs into a topic map (`import-ha`), without I/O.
@Suite("Home Assistant discovery import")
struct HomeAssistantImportTests {
    static func message(_ topic: String, _ json: String) -> HomeAssistantDiscoveryMessage {
        HomeAssistantDiscoveryMessage(topic: topic, payload: Array(json.utf8))
    }

    /// Translates `messages` and loads the result with the bridge's own loader.
    static func imported(
        _ messages: [HomeAssistantDiscoveryMessage],
        options: HomeAssistantImport.Options = HomeAssistantImport.Options()
    ) throws -> (output: HomeAssistantImport.Output, configuration: BridgeConfiguration) {
        let output = HomeAssistantImport(options: options).translate(messages)
        do {
            let configuration = try BridgeConfiguration.parse(yaml: output.yaml, file: "import.yaml")
            return (output, configuration)
        } catch {
            Issue.record("the output does not load:\n\(error)\n\(output.yaml)")
            throw error
        }
    }

    static let boilerTemperature = message(
        "homeassistant/sensor/boiler/temperature/config",
        #"""
        {"~":"plant/boiler","name":"Temperature","uniq_id":"boiler_temperature","stat_t":"~/state",
         "val_tpl":"{{ value_json.temperature }}","dev_cla":"temperature","unit_of_meas":"°C",
         "avty_t":"~/availability","pl_avail":"up","pl_not_avail":"down","dev":{"ids":["b1"],"name":"Boiler"}}
        """#
    )

    @Test("abbreviated keys and the ~ base topic are written out")
    func abbreviationsAndBaseTopic() throws {
        let (_, configuration) = try Self.imported([Self.boilerTemperature])
        let point = try #require(configuration.point(named: "boiler_temperature"))
        #expect(point.stateTopic == "plant/boiler/state")
        #expect(point.area == .inputRegister && point.address == 0)
        #expect(point.type == .int16 && point.scale == 10, "device_class temperature: tenths of a degree")
        #expect(point.payload.jsonPath?.description == "temperature")
        #expect(point.descriptionText == "Boiler Temperature")
        let device = try #require(configuration.device(named: "Boiler"))
        #expect(point.device == "Boiler")
        #expect(device.availability?.topic == "plant/boiler/availability")
        #expect(device.availability?.onlineWords == ["up"] && device.availability?.offlineWords == ["down"])
        #expect(configuration.freshnessWarnings.isEmpty && configuration.warnings.isEmpty)
    }

    @Test("~ at the end of a topic, and in availability entries")
    func baseTopicAtTheEnd() {
        let config = HomeAssistantDiscovery.withBaseTopic([
            "~": .string("kitchen/plug"),
            "state_topic": .string("tele/~"),
            "command_topic": .string("~/set"),
            "name": .string("~ stays in names"),
            "availability": .array([.object([JSONMember(key: "topic", value: .string("~/LWT"))])]),
        ])
        #expect(config["state_topic"] == .string("tele/kitchen/plug"))
        #expect(config["command_topic"] == .string("kitchen/plug/set"))
        #expect(config["name"] == .string("~ stays in names"))
        #expect(config["~"] == nil)
        #expect(config["availability"]?.serialized() == #"[{"topic":"kitchen/plug/LWT"}]"#)
    }

    @Test(
        "value templates that are JSON paths become payload paths",
        arguments: [
            ("{{ value_json.temperature }}", "temperature"),
            ("{{value_json.temperature}}", "temperature"),
            ("{{ value_json['x'] }}", "x"),
            (#"{{ value_json["room.1"].t }}"#, #"["room.1"].t"#),
            ("{{ value_json.readings[2].value }}", "readings[2].value"),
            ("{{ value_json.power | float }}", "power"),
            ("{{ value_json.power | float(0) }}", "power"),
            ("{{ value_json }}", "$"),
        ]
    )
    func jsonPathTemplates(template: String, path: String) throws {
        let parsed = try #require(HomeAssistantTemplate.parse(template))
        guard case .jsonPath(let jsonPath) = parsed else {
            Issue.record("\(template) → \(parsed)")
            return
        }
        #expect(jsonPath.description == path)
    }

    @Test(
        "other templates are not translated",
        arguments: [
            "{{ value_json.t * 10 }}", "{{ value_json.t | round(1) }}", "{{ value_json.t | int }}",
            "{% if value_json.on %}ON{% else %}OFF{% endif %}", "{{ value_json.a }} {{ value_json.b }}",
            "{{ value.split(',')[0] }}", "{{ value_json.get('t') }}", "value_json.t", "{{ value_json[x] }}",
        ]
    )
    func untranslatableTemplates(template: String) {
        #expect(HomeAssistantTemplate.parse(template) == nil, "\(template)")
    }

    @Test("{{ value }} and no template read the payload itself")
    func plainTemplates() {
        #expect(HomeAssistantTemplate.parse(nil) == .payload)
        #expect(HomeAssistantTemplate.parse("{{ value }}") == .payload)
        #expect(HomeAssistantTemplate.command(nil) == "")
        #expect(HomeAssistantTemplate.command("{{ value }}") == "")
        #expect(HomeAssistantTemplate.command(#"{"temp": {{ value }}}"#) == #"{"temp": {{value}}}"#)
        #expect(HomeAssistantTemplate.command("{{ value | int }}") == nil)
    }

    @Test("an untranslatable template and an unknown component are listed as comments, not dropped")
    func untranslatedAsComments() throws {
        let messages = [
            Self.boilerTemperature,
            Self.message(
                "homeassistant/sensor/dewpoint/config",
                #"{"unique_id":"dewpoint","state_topic":"outdoor","value_template":"{{ value_json.t - 2 }}","unit_of_measurement":"°C"}"#
            ),
            Self.message("homeassistant/cover/garage/config", #"{"unique_id":"garage","command_topic":"garage/set"}"#),
            Self.message("homeassistant/sensor/broken/config", "not json"),
            Self.message("homeassistant/sensor/removed/config", ""),
            Self.message("homeassistant/status", "online"),
        ]
        let (output, configuration) = try Self.imported(messages)
        #expect(configuration.points.map(\.name) == ["boiler_temperature"])
        #expect(output.notTranslated.count == 3, "\(output.notTranslated)")
        let lines = output.yaml.split(separator: "\n").map(String.init)
        #expect(
            lines.contains(
                "# - homeassistant/sensor/dewpoint/config: value_template '{{ value_json.t - 2 }}' is not a simple JSON path"
            ),
            "\(output.yaml)"
        )
        #expect(
            lines.contains { $0.hasPrefix("#     {") && $0.contains(#""unique_id":"dewpoint""#) },
            "the config itself"
        )
        #expect(
            lines.contains {
                $0.hasPrefix("# - homeassistant/cover/garage/config: component 'cover' is not translated")
            }
        )
        #expect(lines.contains { $0.hasPrefix("# - homeassistant/sensor/broken/config: the payload is not JSON") })
        #expect(!output.yaml.contains("removed"), "a removed config is nothing")
    }

    static let plant: [HomeAssistantDiscoveryMessage] = [
        message(
            "homeassistant/switch/pump/config",
            #"{"name":"Pump","unique_id":"pump","state_topic":"plant/pump/state","command_topic":"plant/pump/set","state_on":"running","state_off":"stopped","availability":[{"topic":"plant/pump/lwt","payload_available":"Online","payload_not_available":"Offline"},{"topic":"plant/bridge/state"}],"availability_mode":"all"}"#
        ),
        message(
            "homeassistant/switch/valve/config",
            #"{"name":"Valve","unique_id":"valve","command_topic":"garden/valve/set","payload_on":"1","payload_off":"0"}"#
        ),
        message(
            "homeassistant/switch/plug/config",
            #"{"unique_id":"plug","state_topic":"z2m/plug","value_template":"{{ value_json.state }}","command_topic":"z2m/plug/set"}"#
        ),
        message(
            "homeassistant/light/hall/config",
            #"{"uniq_id":"hall","cmd_t":"hall/set","stat_t":"hall/state","bri_cmd_t":"hall/bri/set","bri_stat_t":"hall/bri","bri_scl":100,"rgb_cmd_t":"hall/rgb/set"}"#
        ),
        message(
            "homeassistant/climate/lounge/config",
            #"{"uniq_id":"lounge","temp_cmd_t":"lounge/sp/set","temp_cmd_tpl":"{\"sp\": {{ value }}}","temp_stat_t":"lounge/state","temp_stat_tpl":"{{ value_json.sp }}","curr_temp_t":"lounge/state","curr_temp_tpl":"{{ value_json.t }}","mode_cmd_t":"lounge/mode/set"}"#
        ),
        message(
            "homeassistant/number/boiler/max_flow/config",
            #"{"uniq_id":"max_flow","cmd_t":"boiler/max_flow/set","stat_t":"boiler/state","val_tpl":"{{ value_json.max_flow }}","min":30,"max":85,"step":0.5,"exp_aft":120}"#
        ),
        message(
            "homeassistant/binary_sensor/door/config",
            #"{"uniq_id":"door","stat_t":"door/state","pl_on":"open","pl_off":"closed","dev_cla":"door"}"#
        ),
        message(
            "homeassistant/sensor/meter/config",
            #"{"uniq_id":"meter_energy","stat_t":"meter/energy","unit_of_meas":"kWh","dev_cla":"energy"}"#
        ),
        message("homeassistant/sensor/fw/config", #"{"uniq_id":"fw","stat_t":"meter/fw"}"#),
    ]

    @Test("each component becomes its area, type, payload and acknowledgement")
    func components() throws {
        let (output, configuration) = try Self.imported(Self.plant)
        #expect(configuration.freshnessWarnings.isEmpty, "\(configuration.freshnessWarnings)")
        #expect(configuration.warnings.isEmpty, "\(configuration.warnings)")

        let pump = try #require(configuration.point(named: "pump"))
        #expect(pump.area == .coil)
        #expect(pump.payload.trueWords == ["ON", "running"] && pump.payload.falseWords == ["OFF", "stopped"])
        #expect(pump.command?.topic == "plant/pump/set" && pump.command?.ack.mode == .stateEcho)
        #expect(pump.device == "plant_pump_lwt")
        #expect(
            output.notTranslated.contains {
                $0.contains("availability on plant/bridge/state not watched") && $0.contains("availability_mode all")
            }
        )

        let valve = try #require(configuration.point(named: "valve"))
        #expect(valve.stateTopic == nil && valve.command?.ack.mode == .broker, "no state: the broker's PUBACK")
        #expect(valve.payload.trueWords.first == "1" && valve.payload.falseWords.first == "0")

        let plug = try #require(configuration.point(named: "plug"))
        #expect(plug.payload.jsonPath?.description == "state" && plug.command == nil, "JSON state: read-only")
        #expect(output.notTranslated.contains { $0.contains("commands on z2m/plug/set not translated") })

        let hall = try #require(configuration.point(named: "hall"))
        #expect(hall.area == .coil && hall.command?.ack.mode == .stateEcho)
        let brightness = try #require(configuration.point(named: "hall_brightness"))
        #expect(brightness.area == .holdingRegister && brightness.type == .uint16)
        #expect(brightness.stateTopic == "hall/bri" && brightness.command?.topic == "hall/bri/set")
        #expect(output.notTranslated.contains { $0.hasSuffix("not translated: rgb_command_topic") })

        let setpoint = try #require(configuration.point(named: "lounge_setpoint"))
        #expect(setpoint.area == .holdingRegister && setpoint.type == .int16 && setpoint.scale == 10)
        #expect(setpoint.payload.jsonPath?.description == "sp")
        #expect(setpoint.command?.template?.text == #"{"sp": {{value}}}"#)
        #expect(setpoint.command?.ack.mode == .stateEcho)
        let current = try #require(configuration.point(named: "lounge_current_temperature"))
        #expect(current.area == .inputRegister && current.payload.jsonPath?.description == "t")
        #expect(output.notTranslated.contains { $0.hasSuffix("not translated: mode_command_topic") })

        let maxFlow = try #require(configuration.point(named: "max_flow"))
        #expect(maxFlow.type == .int16 && maxFlow.scale == 10, "step 0.5: tenths")
        #expect(maxFlow.command?.template?.text == "{{value}}", "the bare number, not a JSON document")
        #expect(maxFlow.maxAge == .seconds(120), "expire_after")

        let door = try #require(configuration.point(named: "door"))
        #expect(door.area == .discreteInput && door.payload.trueWords == ["open"])
        #expect(door.maxAge == .seconds(600), "no availability: import-ha's max_age")

        let energy = try #require(configuration.point(named: "meter_energy"))
        #expect(energy.type == .int32 && energy.scale == 1000)
        let firmware = try #require(configuration.point(named: "fw"))
        #expect(firmware.type == .string(length: 16), "no unit, no state class: text")

        // Addresses in order of component, then unique_id, from 0 in each area.
        let coils = configuration.points.filter { $0.area == .coil }.sorted { $0.address < $1.address }
        #expect(coils.map(\.name) == ["hall", "plug", "pump", "valve"])
        let holding = configuration.points.filter { $0.area == .holdingRegister }.sorted { $0.address < $1.address }
        #expect(holding.map(\.name) == ["lounge_setpoint", "hall_brightness", "max_flow"])
        #expect(holding.map(\.address) == [0, 1, 2])
    }

    @Test("the same configs in another order give the same text")
    func stableOutput() throws {
        let first = HomeAssistantImport().translate(Self.plant)
        let second = HomeAssistantImport().translate(Self.plant.reversed())
        #expect(first.yaml == second.yaml)
        var shuffled = Self.plant
        var generator = SystemRandomNumberGenerator()
        shuffled.shuffle(using: &generator)
        #expect(HomeAssistantImport().translate(shuffled).yaml == first.yaml)
    }

    @Test("device discovery: each component of a device config is an entity with the shared keys")
    func deviceDiscovery() throws {
        let message = Self.message(
            "homeassistant/device/th1/config",
            #"{"dev":{"ids":"th1","name":"Sensor"},"o":{"name":"x"},"stat_t":"th1/state","avty_t":"th1/lwt","cmps":{"t":{"p":"sensor","dev_cla":"temperature","unit_of_meas":"°C","val_tpl":"{{ value_json.t }}","uniq_id":"th1_t"},"h":{"p":"sensor","dev_cla":"humidity","val_tpl":"{{ value_json.h }}","uniq_id":"th1_h"}}}"#
        )
        let (_, configuration) = try Self.imported([message])
        #expect(configuration.points.map(\.name).sorted() == ["th1_h", "th1_t"])
        #expect(configuration.points.allSatisfy { $0.stateTopic == "th1/state" && $0.device == "Sensor" })
    }

    @Test("the options reach the file: unit, broker, credentials, max_age")
    func options() throws {
        var options = HomeAssistantImport.Options()
        options.unit = 7
        options.brokerHost = "mqtt.local"
        options.brokerPort = 1884
        options.username = "bridge"
        options.passwordFile = "/etc/bridge/password"
        options.maxAge = .seconds(90)
        let (_, configuration) = try Self.imported(
            [Self.message("homeassistant/sensor/x/config", #"{"uniq_id":"x","stat_t":"x","unit_of_meas":"W"}"#)],
            options: options
        )
        #expect(configuration.units.map(\.id) == [7])
        #expect(configuration.broker.host == "mqtt.local" && configuration.broker.port == 1884)
        #expect(configuration.broker.username == "bridge")
        #expect(configuration.point(named: "x")?.maxAge == .seconds(90))
    }

    @Test("captured files: mosquitto_sub -v lines and a JSON object give the same messages")
    func capturedFiles() throws {
        let lines = """
            # captured
            homeassistant/sensor/a/config {"uniq_id":"a","stat_t":"a/state"}

            homeassistant/sensor/b/config {"uniq_id":"b", "stat_t":"b/state"}
            homeassistant/sensor/a/config {"uniq_id":"a","stat_t":"a/new"}
            homeassistant/sensor/c/config (null)
            """
        let fromLines = try HomeAssistantCapture.parse(lines)
        #expect(
            fromLines.map(\.topic) == [
                "homeassistant/sensor/b/config", "homeassistant/sensor/a/config", "homeassistant/sensor/c/config",
            ]
        )
        #expect(String(decoding: fromLines[1].payload, as: UTF8.self) == #"{"uniq_id":"a","stat_t":"a/new"}"#)
        #expect(fromLines[2].payload.isEmpty)

        let object = """
            {"homeassistant/sensor/b/config": {"uniq_id": "b", "stat_t": "b/state"},
             "homeassistant/sensor/a/config": "{\\"uniq_id\\":\\"a\\",\\"stat_t\\":\\"a/new\\"}",
             "homeassistant/sensor/c/config": null}
            """
        let fromObject = try HomeAssistantCapture.parse(object)
        #expect(fromObject.map(\.topic) == fromLines.map(\.topic))
        #expect(HomeAssistantImport().translate(fromObject).yaml == HomeAssistantImport().translate(fromLines).yaml)

        #expect(throws: HomeAssistantCaptureError.self) { try HomeAssistantCapture.parse("{not json") }
    }

    @Test("YAML scalars are quoted when a plain scalar could be misread")
    func scalars() {
        #expect(HomeAssistantImport.scalar("plant/boiler/state") == "plant/boiler/state")
        #expect(HomeAssistantImport.scalar("ON") == #""ON""#)
        #expect(HomeAssistantImport.scalar("1") == #""1""#)
        #expect(HomeAssistantImport.scalar("Living room") == #""Living room""#)
        #expect(HomeAssistantImport.scalar(#"say "hi"\"#) == #""say \"hi\"\\""#)
        #expect(HomeAssistantImport.scalar("°C") == #""°C""#)
    }
}
