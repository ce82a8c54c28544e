import Foundation
import ModbusCore
import Testing

@testable import MQTTModbusBridge
@testable import MQTTModbusBridgeConfiguration

@Suite("Configuration loading")
struct ConfigurationLoadingTests {
    static let fullConfiguration = """
        broker:
          host: mqtt.local
          client_id: bridge-1
          protocol: mqtt5
          keepalive: 1m
          username: bridge
          password: secret
          status_topic: site/bridge/status
          reconnect: { min_delay: 500ms, max_delay: 1m, multiplier: 1.5, retry_initial_connect: false }
        modbus:
          port: 5020
          idle_timeout: none
          connection_limit_policy: reject_new
          device_identification: { vendor_name: ACME, product_code: B1, revision: "1.2", model_name: M }
        defaults:
          byte_order: CDAB
          qos: 0
          max_age: 1m
          on_missing: { exception: 4 }
          ack: { mode: correlation_id, timeout: 2s, response_topic: site/acks }
        units:
          - id: 7
            name: boiler
            fill_gaps: true
            points:
              - name: temperature
                area: input_register
                address: 0
                type: float32
                state_topic: site/boiler/temperature
              - name: counter
                area: input_register
                address: 2
                type: int64
                byte_order: ABCD
                state_topic: site/boiler/data
                payload: { format: json, path: "counters[1].value" }
                max_age: none
                on_missing: { value: -1 }
              - name: setpoint
                area: holding_register
                address: 0
                type: int16
                scale: 10
                offset: -5
                state_topic: site/boiler/setpoint
                payload: { format: json, path: sp }
                command_topic: site/boiler/setpoint/set
                qos: 1
              - name: relay
                area: coil
                address: 3
                state_topic: site/boiler/relay
                payload: { format: boolean, true_words: [ON, closed], false_words: [OFF, open] }
                command_topic: site/boiler/relay/set
                command_template: 'relay {{value}} {{correlation_id}}'
                qos: 2
                ack: { mode: broker, timeout: 1s }
            templates:
              - for: { n: [1, 2] }
                name: "pump_{{n}}"
                area: discrete_input
                address: "{{ 10 + n }}"
                state_topic: "site/pump/{{n}}"
        """

    @Test func fullConfigurationParsesToTheExpectedModel() throws {
        let configuration = try BridgeConfiguration.parse(yaml: Self.fullConfiguration, file: "full.yaml")
        #expect(configuration.warnings.isEmpty)

        var broker = BrokerSettings(
            host: "mqtt.local",
            clientID: "bridge-1",
            keepAlive: .seconds(60),
            username: "bridge",
            password: .literal("secret"),
            statusTopic: "site/bridge/status",
            reconnect: ReconnectSettings(
                minDelay: .milliseconds(500),
                maxDelay: .seconds(60),
                multiplier: 1.5,
                retryInitialConnect: false
            )
        )
        broker.port = 1883
        #expect(configuration.broker == broker)

        var modbus = ModbusListenerSettings(port: 5020, connectionLimitPolicy: .rejectNew, idleTimeout: nil)
        modbus.deviceIdentification = ModbusDeviceIdentification(
            vendorName: "ACME",
            productCode: "B1",
            majorMinorRevision: "1.2",
            modelName: "M"
        )
        #expect(configuration.modbus == modbus)

        #expect(configuration.units.count == 1)
        let unit = try #require(configuration.units.first)
        #expect(unit.id == 7 && unit.name == "boiler" && unit.fillGaps)
        #expect(unit.points.map(\.name) == ["temperature", "counter", "setpoint", "relay", "pump_1", "pump_2"])
        #expect(configuration.unitIDs == [7])

        func location(_ line: Int, _ column: Int = 9) -> ConfigurationLocation {
            ConfigurationLocation(file: "full.yaml", line: line, column: column)
        }
        let failure = MissingValuePolicy.exception(.serverDeviceFailure)
        let expected: [PointConfiguration] = [
            PointConfiguration(
                name: "temperature",
                unitID: 7,
                area: .inputRegister,
                address: 0,
                type: .float32,
                byteOrder: .cdab,
                stateTopic: "site/boiler/temperature",
                payload: .plain,
                qos: .atMostOnce,
                maxAge: .seconds(60),
                onMissing: failure,
                location: location(26)
            ),
            PointConfiguration(
                name: "counter",
                unitID: 7,
                area: .inputRegister,
                address: 2,
                type: .int64,
                byteOrder: .abcd,
                stateTopic: "site/boiler/data",
                payload: PayloadFormat(encoding: .json(path: JSONPath([.key("counters"), .index(1), .key("value")]))),
                qos: .atMostOnce,
                maxAge: nil,
                onMissing: .substitute(.integer(-1)),
                location: location(31)
            ),
            PointConfiguration(
                name: "setpoint",
                unitID: 7,
                area: .holdingRegister,
                address: 0,
                type: .int16,
                byteOrder: .cdab,
                scale: 10,
                offset: -5,
                stateTopic: "site/boiler/setpoint",
                payload: PayloadFormat(encoding: .json(path: JSONPath([.key("sp")]))),
                qos: .atLeastOnce,
                maxAge: .seconds(60),
                onMissing: failure,
                command: CommandSettings(
                    topic: "site/boiler/setpoint/set",
                    qos: .atLeastOnce,
                    ack: AckSettings(mode: .correlationID, timeout: .seconds(2), responseTopic: "site/acks")
                ),
                location: location(40)
            ),
            PointConfiguration(
                name: "relay",
                unitID: 7,
                area: .coil,
                address: 3,
                type: .bool,
                byteOrder: .abcd,
                stateTopic: "site/boiler/relay",
                payload: PayloadFormat(encoding: .boolean, trueWords: ["ON", "closed"], falseWords: ["OFF", "open"]),
                qos: .exactlyOnce,
                maxAge: .seconds(60),
                onMissing: failure,
                command: CommandSettings(
                    topic: "site/boiler/relay/set",
                    template: try CommandTemplate(parsing: "relay {{value}} {{correlation_id}}"),
                    qos: .exactlyOnce,
                    ack: AckSettings(mode: .broker, timeout: .seconds(1))
                ),
                location: location(50)
            ),
            PointConfiguration(
                name: "pump_1",
                unitID: 7,
                area: .discreteInput,
                address: 11,
                type: .bool,
                byteOrder: .abcd,
                stateTopic: "site/pump/1",
                qos: .atMostOnce,
                maxAge: .seconds(60),
                onMissing: failure,
                location: location(60)
            ),
            PointConfiguration(
                name: "pump_2",
                unitID: 7,
                area: .discreteInput,
                address: 12,
                type: .bool,
                byteOrder: .abcd,
                stateTopic: "site/pump/2",
                qos: .atMostOnce,
                maxAge: .seconds(60),
                onMissing: failure,
                location: location(60)
            ),
        ]
        for (actual, wanted) in zip(unit.points, expected) {
            #expect(actual == wanted, "\(actual.name)")
        }
    }

    @Test func brokerAckRefusesQoS0FromDefaults() {
        let yaml = Self.fullConfiguration.replacingOccurrences(of: "        qos: 2\n", with: "")
        let errors = configurationErrors(yaml)
        #expect(errors.map(\.message) == ["ack mode broker needs QoS 1 or 2: at QoS 0 the broker acknowledges nothing"])
        #expect(errors.first?.line == 57)
    }

    @Test func computedPointProperties() throws {
        let yaml = """
            units:
              - id: 1
                points:
                  - { name: f, area: holding_register, address: 100, type: float64, state_topic: f, command_topic: f/set }
                  - { name: s, area: input_register, address: 0, type: string, length: 10, state_topic: s }
                  - { name: c, area: coil, address: 9, state_topic: c }
                  - { name: b, area: holding_register, address: 200, type: bit, bit: 15, state_topic: b }
            """
        let points = try #require(validConfiguration(yaml)).points
        #expect(points.map(\.registerCount) == [4, 10, 1, 1])
        #expect(points.map(\.addressRange) == [100...103, 0...9, 9...9, 200...200])
        #expect(points.map(\.isWritable) == [true, false, false, false])
        #expect(points[3].bitPosition == 15)
        #expect(points[0].command?.ack == AckSettings(mode: .mqtt5, responseTopic: "f/set/response"))
    }

    @Test func defaultsWhenNothingIsSaid() throws {
        let configuration = try #require(
            validConfiguration(
                "units:\n  - id: 1\n    points:\n      - { name: a, area: holding_register, address: 0, type: uint16, state_topic: a, command_topic: a/set }\n"
            )
        )
        #expect(configuration.broker == BrokerSettings())
        #expect(configuration.broker.host == "127.0.0.1" && configuration.broker.port == 1883)
        #expect(configuration.broker.statusTopic == "mqtt-modbus-bridge/status")
        #expect(configuration.modbus == ModbusListenerSettings())
        let point = try #require(configuration.points.first)
        #expect(point.byteOrder == .abcd && point.scale == 1 && point.offset == 0)
        #expect(point.qos == .atLeastOnce && point.maxAge == nil)
        #expect(point.onMissing == .exception(.gatewayTargetDeviceFailedToRespond))
        #expect(point.payload == .plain)
        // The default ack mode is mqtt5, never broker.
        #expect(point.command?.ack.mode == .mqtt5)
        #expect(point.command?.ack.timeout == .seconds(5))
        #expect(point.command?.ack.responseTopic == "a/set/response")
        #expect(point.command?.retain == false)
    }

    @Test func ackModeFromDefaultsAndPointOverride() throws {
        let yaml = """
            defaults:
              ack: { mode: state_echo, timeout: 8s }
            units:
              - id: 1
                points:
                  - { name: a, area: holding_register, address: 0, type: int16, state_topic: a, command_topic: a/set }
                  - { name: b, area: holding_register, address: 1, type: int16, state_topic: b, command_topic: b/set, ack: { mode: broker } }
            """
        let points = try #require(validConfiguration(yaml)).points
        #expect(points[0].command?.ack.mode == .stateEcho)
        #expect(points[0].command?.ack.timeout == .seconds(8))
        #expect(points[1].command?.ack.mode == .broker)
        #expect(points[1].command?.ack.timeout == .seconds(8))
    }

    @Test func brokerPortDefaultsTo8883WithTLS() throws {
        let yaml = singlePoint(
            "      - { name: a, area: coil, address: 0, state_topic: a }\n",
            broker: "  tls: { ca_file: /etc/ca.pem }"
        )
        let configuration = try #require(validConfiguration(yaml))
        #expect(configuration.broker.port == 8883)
        #expect(configuration.broker.tls == TLSSettings(caFile: "/etc/ca.pem"))
    }

    @Test func relativePathsResolveAgainstTheFileDirectory() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "bridge-config-\(UInt32.random(in: 0...UInt32.max))"
        )
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("bridge.yaml")
        let yaml = singlePoint(
            "      - { name: a, area: coil, address: 0, state_topic: a }\n",
            broker:
                "  username: u\n  password_file: secrets/pw\n  tls: { ca_file: /abs/ca.pem, cert_file: c.pem, key_file: k.pem }"
        )
        try yaml.write(to: file, atomically: true, encoding: .utf8)
        let configuration = try BridgeConfiguration.load(path: file.path)
        #expect(configuration.broker.password == .file(path: directory.path + "/secrets/pw"))
        #expect(configuration.broker.tls?.caFile == "/abs/ca.pem")
        #expect(configuration.broker.tls?.certFile == directory.path + "/c.pem")
        // parse(yaml:) does no path resolution.
        let parsed = try BridgeConfiguration.parse(yaml: yaml)
        #expect(parsed.broker.password == .file(path: "secrets/pw"))
    }

    @Test func templatesExpandEveryCombinationInOrder() throws {
        let yaml = """
            units:
              - id: 1
                templates:
                  - for: { pump: "1...3", side: [in, out] }
                    name: "p{{pump}}_{{side}}"
                    area: input_register
                    address: "{{ (pump - 1) * 2 + index % 2 }}"
                    type: int16
                    state_topic: "pumps/{{pump}}/{{side}}"
                    command_topic: "pumps/{{pump}}/{{side}}/set"
            """
        let errors = configurationErrors(yaml)
        #expect(errors.count == 1)  // input registers are read-only: reported once for all six instances
        let writable = yaml.replacingOccurrences(of: "input_register", with: "holding_register")
            .replacingOccurrences(
                of: "command_topic",
                with: "command_template: '{\"v\": {{value}}, \"p\": \"{{point}}\"}'\n        command_topic"
            )
        let points = try #require(validConfiguration(writable)).points
        #expect(points.map(\.name) == ["p1_in", "p1_out", "p2_in", "p2_out", "p3_in", "p3_out"])
        #expect(points.map(\.address) == [0, 1, 2, 3, 4, 5])
        #expect(
            points.map(\.stateTopic) == [
                "pumps/1/in", "pumps/1/out", "pumps/2/in", "pumps/2/out", "pumps/3/in", "pumps/3/out",
            ]
        )
        // Command placeholders survive template expansion.
        #expect(points[0].command?.template?.text == "{\"v\": {{value}}, \"p\": \"{{point}}\"}")
        #expect(points.allSatisfy { $0.location.line == 4 })
    }

    @Test func templateStringVariablesAndQuotedNumbers() throws {
        let yaml = """
            units:
              - id: 1
                templates:
                  - for: { room: [kitchen, "01"] }
                    name: "t_{{room}}"
                    area: input_register
                    address: "{{index}}"
                    type: int16
                    state_topic: "rooms/{{room}}/t"
            """
        let points = try #require(validConfiguration(yaml)).points
        #expect(points.map(\.name) == ["t_kitchen", "t_01"])
    }

    @Test func yamlAnchorsAndMergeKeys() throws {
        let yaml = """
            x-common: &common
              area: holding_register
              type: float32
              byte_order: CDAB
            units:
              - id: 1
                points:
                  - { <<: *common, name: a, address: 0, state_topic: a }
                  - { <<: *common, name: b, address: 2, state_topic: b, byte_order: ABCD }
            """
        // Top-level helper keys are not allowed; anchors live inside known sections.
        #expect(configurationErrors(yaml).first?.message == "unknown key 'x-common' in the configuration")
        let valid = """
            units:
              - id: 1
                points:
                  - &first { name: a, area: holding_register, address: 0, type: float32, byte_order: CDAB, state_topic: a }
                  - { <<: *first, name: b, address: 2, state_topic: b, byte_order: ABCD }
            """
        let points = try #require(validConfiguration(valid)).points
        #expect(points.map(\.type) == [.float32, .float32])
        #expect(points.map(\.byteOrder) == [.cdab, .abcd])
    }

    @Test func numbersInOtherNotations() throws {
        let yaml = singlePoint(
            "      - { name: a, area: holding_register, address: 0x10, type: int32, scale: 1e2, offset: -0.5, state_topic: a }\n"
        )
        let point = try #require(validConfiguration(yaml)?.points.first)
        #expect(point.address == 16 && point.scale == 100 && point.offset == -0.5)
    }

    @Test func everyExampleConfigurationValidates() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: exampleConfigsDirectory).filter {
            $0.hasSuffix(".yaml") || $0.hasSuffix(".yml")
        }
        #expect(files.contains("demo.yaml") && files.contains("complete-reference.yaml"))
        for file in files.sorted() {
            do {
                let configuration = try BridgeConfiguration.load(path: exampleConfigsDirectory + "/" + file)
                #expect(configuration.warnings.isEmpty, "\(file): \(configuration.warnings)")
                #expect(!configuration.points.isEmpty, "\(file)")
            } catch {
                Issue.record("\(file) does not validate:\n\(error)")
            }
        }
    }

    @Test func demoConfigurationHasTheAdvertisedPoints() throws {
        let configuration = try BridgeConfiguration.load(path: exampleConfigsDirectory + "/demo.yaml")
        #expect(configuration.broker.host == "127.0.0.1" && configuration.broker.port == 1883)
        #expect(configuration.modbus.port == 5020)
        let points = Dictionary(uniqueKeysWithValues: configuration.points.map { ($0.name, $0) })
        #expect(points["boiler_temperature"]?.type == .float32)
        #expect(points["boiler_pressure"]?.type == .int16 && points["boiler_pressure"]?.scale == 100)
        #expect(points["boiler_burner_on"]?.area == .discreteInput)
        #expect(points["boiler_model"]?.type == .string(length: 8))
        #expect(points["boiler_burner_starts"]?.byteOrder == .cdab && points["boiler_burner_starts"]?.type == .uint32)
        #expect(points["boiler_setpoint"]?.command?.ack.mode == .mqtt5)
        #expect(points["pump_1_enable"]?.command?.ack.mode == .correlationID && points["pump_1_enable"]?.area == .coil)
        #expect(points["pump_1_speed"]?.command?.ack.mode == .stateEcho)
        #expect(points["pump_3_running"]?.address == 2)
    }
}

@Suite("Configuration size")
struct ConfigurationSizeTests {
    /// 10,000 points (the size docs/design.md §6 measures the broker with) load in reasonable time,
    /// both written out and from a template.
    @Test func tenThousandPoints() throws {
        var yaml = "units:\n  - id: 1\n    points:\n"
        for index in 0..<10_000 {
            yaml +=
                "      - { name: p\(index), area: holding_register, address: \(index * 2), type: float32, state_topic: plant/\(index)/value }\n"
        }
        let clock = ContinuousClock()
        let start = clock.now
        let configuration = try BridgeConfiguration.parse(yaml: yaml)
        let written = clock.now - start
        #expect(configuration.points.count == 10_000)

        let template = """
            units:
              - id: 1
                templates:
                  - for: { n: "0...9999" }
                    name: "p{{n}}"
                    area: holding_register
                    address: "{{ n * 2 }}"
                    type: float32
                    state_topic: "plant/{{n}}/value"
            """
        let templateStart = clock.now
        let expanded = try BridgeConfiguration.parse(yaml: template)
        let fromTemplate = clock.now - templateStart
        #expect(expanded.points.map(\.address) == configuration.points.map(\.address))
        #expect(
            written < .seconds(20) && fromTemplate < .seconds(20),
            "written out: \(written), template: \(fromTemplate)"
        )
        print("10,000 points: written out \(written), from a template \(fromTemplate)")
    }
}

@Suite("Documentation")
struct DocumentationTests {
    /// Every complete YAML example in examples/CONFIGURATION.md (a block with `units:`) loads.
    @Test func referenceExamplesValidate() throws {
        let path = URL(fileURLWithPath: exampleConfigsDirectory).deletingLastPathComponent().appendingPathComponent(
            "CONFIGURATION.md"
        ).path
        let text = try String(contentsOfFile: path, encoding: .utf8)
        let blocks = text.components(separatedBy: "```yaml\n").dropFirst().map {
            $0.components(separatedBy: "```").first ?? ""
        }
        let complete = blocks.filter { $0.contains("units:") }
        #expect(!complete.isEmpty)
        for block in complete {
            #expect(validConfiguration(block) != nil)
        }
    }
}
