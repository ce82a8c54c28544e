import Foundation
import ModbusCore
import Testing

@testable import MQTTModbusBridgeConfiguration

/// `profile:` on a device: what each profile expands to, and the mistakes `validate` names.
@Suite("Device profiles")
struct DeviceProfileTests {
    func command(_ point: PointConfiguration, _ value: PointValue, id: String = "c-1") throws -> String {
        String(decoding: try CommandEncoder(point: point).encode(value, correlationID: id), as: UTF8.self)
    }

    func decode(_ point: PointConfiguration, _ topic: String, _ payload: String) throws -> PointValue? {
        try StateMessageDecoder(point: point).decode(topic: topic, payload: Array(payload.utf8))
    }

    // MARK: Tasmota

    @Test func tasmotaRelaySensorAndState() throws {
        let yaml = """
            devices:
              - name: pump_relay
                profile: tasmota
            units:
              - id: 1
                device: pump_relay
                points:
                  - { name: relay, area: coil, address: 0, relay: 1 }
                  - { name: temperature, area: input_register, address: 0, type: int16, scale: 10, sensor: DS18B20.Temperature }
                  - { name: rssi, area: input_register, address: 1, type: uint16, state: Wifi.RSSI }
            """
        let configuration = try #require(validConfiguration(yaml))
        let device = try #require(configuration.device(named: "pump_relay"))
        #expect(device.profile?.kind == .tasmota)
        #expect(device.availability?.topic == "tele/pump_relay/LWT")
        #expect(device.availability?.onlineWords == ["Online"])
        #expect(device.availability?.offlineWords == ["Offline"])
        #expect(device.refresh == [RefreshMessage(topic: "cmnd/pump_relay/POWER")])

        let relay = try #require(configuration.point(named: "relay"))
        #expect(relay.stateTopic == "stat/pump_relay/RESULT")
        #expect(relay.payload.jsonPath?.description == "POWER")
        #expect(relay.payload.trueWords == ["ON"] && relay.payload.falseWords == ["OFF"])
        #expect(relay.payload.ignoresAbsentPath)
        #expect(relay.command?.topic == "cmnd/pump_relay/POWER")
        #expect(relay.command?.retain == false)
        #expect(relay.command?.ack.mode == .stateEcho)
        #expect(try command(relay, .bool(true)) == "ON")
        #expect(try command(relay, .bool(false)) == "OFF")
        #expect(relay.additionalStates.map(\.topic) == ["stat/pump_relay/POWER"])
        // Confirmed by key on RESULT, and by the plain stat/<t>/POWER.
        #expect(try decode(relay, "stat/pump_relay/RESULT", #"{"POWER":"ON"}"#) == .bool(true))
        #expect(try decode(relay, "stat/pump_relay/RESULT", #"{"Dimmer":40}"#) == nil)
        #expect(try decode(relay, "stat/pump_relay/POWER", "OFF") == .bool(false))
        #expect(throws: PayloadDecodingError.self) {
            try decode(relay, "stat/pump_relay/RESULT", #"{"POWER":"maybe"}"#)
        }

        let temperature = try #require(configuration.point(named: "temperature"))
        #expect(temperature.stateTopic == "tele/pump_relay/SENSOR")
        #expect(
            try decode(temperature, "tele/pump_relay/SENSOR", #"{"DS18B20":{"Temperature":20.6}}"#) == .number(20.6)
        )
        #expect(temperature.command == nil)
        let rssi = try #require(configuration.point(named: "rssi"))
        #expect(rssi.stateTopic == "tele/pump_relay/STATE")
        #expect(rssi.payload.jsonPath?.description == "Wifi.RSSI")
    }

    @Test func tasmotaFullTopicAndSeveralRelays() throws {
        let yaml = """
            broker: { client_id: b1 }
            devices:
              - name: board
                profile: tasmota
                topic: sonoff4ch
                full_topic: "home/%topic%/%prefix%/"
                relays: 4
            units:
              - id: 1
                device: board
                points:
                  - { name: r2, area: coil, address: 0, relay: 2 }
                  - { name: r4, area: discrete_input, address: 0, relay: 4 }
            """
        let configuration = try #require(validConfiguration(yaml))
        let r2 = try #require(configuration.point(named: "r2"))
        #expect(r2.stateTopic == "home/sonoff4ch/stat/RESULT")
        #expect(r2.payload.jsonPath?.description == "POWER2")
        #expect(r2.command?.topic == "home/sonoff4ch/cmnd/POWER2")
        #expect(r2.additionalStates.map(\.topic) == ["home/sonoff4ch/stat/POWER2"])
        let r4 = try #require(configuration.point(named: "r4"))
        #expect(r4.command == nil)
        let device = try #require(configuration.device(named: "board"))
        #expect(device.availability?.topic == "home/sonoff4ch/tele/LWT")
        #expect(device.refresh.map(\.topic) == ["home/sonoff4ch/cmnd/POWER2", "home/sonoff4ch/cmnd/POWER4"])
        #expect(device.profile?.topics.first?.topic == "home/%topic%/%prefix%/")
    }

    /// A key written on the point wins; payload merges key by key.
    @Test func writtenKeysOverrideTheProfile() throws {
        let yaml = """
            devices:
              - { name: lamp, profile: tasmota, availability: { topic: custom/lwt }, refresh: { topic: cmnd/lamp/STATE } }
            units:
              - id: 1
                device: lamp
                points:
                  - name: relay
                    area: coil
                    address: 0
                    relay: 1
                    payload: { true_words: [AN], false_words: [AUS] }
                    ack: { timeout: 2s }
            """
        let configuration = try #require(validConfiguration(yaml))
        let relay = try #require(configuration.point(named: "relay"))
        #expect(relay.payload.jsonPath?.description == "POWER")
        #expect(relay.payload.trueWords == ["AN"])
        #expect(relay.command?.ack.mode == .stateEcho)
        #expect(relay.command?.ack.timeout == .seconds(2))
        #expect(try command(relay, .bool(true)) == "AN")
        let device = try #require(configuration.device(named: "lamp"))
        #expect(device.availability?.topic == "custom/lwt")
        #expect(device.refresh == [RefreshMessage(topic: "cmnd/lamp/STATE")])
    }

    // MARK: zigbee2mqtt

    @Test func zigbee2mqttPlug() throws {
        let yaml = """
            devices:
              - { name: kitchen_plug, profile: zigbee2mqtt }
              - { name: other, profile: zigbee2mqtt, base_topic: z2m, friendly_name: "hall/lamp" }
            units:
              - id: 1
                device: kitchen_plug
                points:
                  - { name: plug, area: coil, address: 0, field: state }
                  - { name: power, area: input_register, address: 0, type: uint16, scale: 10, field: power }
                  - { name: lamp, area: holding_register, address: 0, type: uint16, field: brightness, device: other }
            """
        let configuration = try #require(validConfiguration(yaml))
        let plug = try #require(configuration.point(named: "plug"))
        #expect(plug.stateTopic == "zigbee2mqtt/kitchen_plug")
        #expect(plug.command?.topic == "zigbee2mqtt/kitchen_plug/set")
        #expect(plug.command?.ack.mode == .stateEcho)
        #expect(try command(plug, .bool(true)) == #"{"state":"ON"}"#)
        #expect(try command(plug, .bool(false)) == #"{"state":"OFF"}"#)
        #expect(try decode(plug, "zigbee2mqtt/kitchen_plug", #"{"state":"ON","power":12.5}"#) == .bool(true))
        let power = try #require(configuration.point(named: "power"))
        #expect(power.command == nil)
        let device = try #require(configuration.device(named: "kitchen_plug"))
        #expect(device.availability?.topic == "zigbee2mqtt/kitchen_plug/availability")
        // Both forms: zigbee2mqtt 2's JSON and the legacy plain word.
        #expect(device.availability?.isOnline(payload: Array(#"{"state":"online"}"#.utf8)) == true)
        #expect(device.availability?.isOnline(payload: Array("offline".utf8)) == false)
        #expect(device.refresh == [RefreshMessage(topic: "zigbee2mqtt/kitchen_plug/get", payload: #"{"state":""}"#)])
        let lamp = try #require(configuration.point(named: "lamp"))
        #expect(lamp.command?.topic == "z2m/hall/lamp/set")
        #expect(try command(lamp, .integer(128)) == #"{"brightness":128}"#)
        #expect(
            configuration.device(named: "other")?.refresh
                == [RefreshMessage(topic: "z2m/hall/lamp/get", payload: #"{"brightness":""}"#)]
        )
    }

    // MARK: Shelly

    @Test func shellyGen2Switch() throws {
        let yaml = """
            broker: { client_id: plant-bridge }
            devices:
              - { name: shellyplus1pm-a8032ab1, profile: shelly_gen2 }
            units:
              - id: 1
                device: shellyplus1pm-a8032ab1
                points:
                  - { name: output, area: coil, address: 0, field: output }
                  - { name: apower, area: input_register, address: 0, type: int16, scale: 10, field: apower }
                  - { name: energy, area: input_register, address: 1, type: uint32, field: aenergy.total, component: "switch:0" }
            """
        let configuration = try #require(validConfiguration(yaml))
        let output = try #require(configuration.point(named: "output"))
        #expect(output.stateTopic == "shellyplus1pm-a8032ab1/status/switch:0")
        #expect(output.command?.topic == "shellyplus1pm-a8032ab1/rpc")
        #expect(output.command?.ack.mode == .correlationID)
        #expect(output.command?.ack.responseTopic == "plant-bridge/rpc")
        #expect(
            try command(output, .bool(true), id: "x-7")
                == #"{"id":"x-7","src":"plant-bridge","method":"Switch.Set","params":{"id":0,"on":true}}"#
        )
        // Success, and an error reply: never a success.
        let ack = try #require(output.command?.ack)
        #expect(
            AckPayloadEvaluator.evaluate(payload: Array(#"{"id":"x-7","result":{"was_on":false}}"#.utf8), settings: ack)
                == .acknowledged
        )
        let refused = AckPayloadEvaluator.evaluate(
            payload: Array(#"{"id":"x-7","error":{"code":-103,"message":"Invalid argument"}}"#.utf8),
            settings: ack
        )
        #expect(refused.exceptionCode == .serverDeviceFailure)

        let device = try #require(configuration.device(named: "shellyplus1pm-a8032ab1"))
        #expect(device.availability?.topic == "shellyplus1pm-a8032ab1/online")
        #expect(device.availability?.isOnline(payload: Array("false".utf8)) == false)
        let refreshID = "refresh:shellyplus1pm-a8032ab1:switch:0"
        #expect(
            device.refresh == [
                RefreshMessage(
                    topic: "shellyplus1pm-a8032ab1/rpc",
                    payload:
                        #"{"id":"\#(refreshID)","src":"plant-bridge","method":"Switch.GetStatus","params":{"id":0}}"#
                )
            ]
        )
        // The reply to the refresh carries the status; other replies do not.
        let energy = try #require(configuration.point(named: "energy"))
        #expect(
            try decode(energy, "plant-bridge/rpc", #"{"id":"\#(refreshID)","result":{"aenergy":{"total":1234}}}"#)
                == .integer(1234)
        )
        #expect(try decode(energy, "plant-bridge/rpc", #"{"id":"x-7","result":{"aenergy":{"total":1}}}"#) == nil)
        #expect(
            try decode(output, "shellyplus1pm-a8032ab1/status/switch:0", #"{"id":0,"output":false}"#) == .bool(false)
        )
    }

    @Test func shellyMethodAndSource() throws {
        let yaml = """
            devices:
              - { name: shutter, profile: shelly_gen2, topic_prefix: shellies/cover1, rpc_source: scada }
            units:
              - id: 1
                device: shutter
                points:
                  - { name: position, area: holding_register, address: 0, type: uint16, field: current_pos, component: "cover:0" }
            """
        let configuration = try #require(validConfiguration(yaml))
        let position = try #require(configuration.point(named: "position"))
        #expect(position.stateTopic == "shellies/cover1/status/cover:0")
        #expect(
            try command(position, .integer(40), id: "i")
                == #"{"id":"i","src":"scada","method":"Cover.GoToPosition","params":{"id":0,"pos":40}}"#
        )
        #expect(position.command?.ack.responseTopic == "scada/rpc")
        #expect(configuration.device(named: "shutter")?.refresh.first?.payload.contains("Cover.GetStatus") == true)
    }

    // MARK: Mistakes

    @Test func tasmotaRelayOutOfRange() {
        expectSingleError(
            """
            devices:
              - { name: r, profile: tasmota }
            units:
              - id: 1
                device: r
                points:
                  - { name: relay, area: coil, address: 0, relay: 33 }   #!
            """,
            "out of range: relays are numbered 1...32",
            fix: "1 for POWER1"
        )
        expectSingleError(
            """
            devices:
              - { name: r, profile: tasmota }
            units:
              - id: 1
                device: r
                points:
                  - { name: relay, area: coil, address: 0, relay: 2 }   #!
            """,
            "relay 2, but device 'r' has 1 relay",
            fix: "set relays: 2"
        )
    }

    @Test func unknownProfileName() {
        expectSingleError(
            """
            devices:
              - name: r
                profile: tasmotta   #!
            units:
              - { id: 1, points: [{ name: a, area: coil, address: 0, state_topic: a }] }
            """,
            "'profile' must be one of tasmota, zigbee2mqtt, shelly_gen2",
            fix: "did you mean 'tasmota'?"
        )
    }

    @Test func shellyMethodThatIsNotASetter() {
        expectSingleError(
            """
            devices:
              - { name: s, profile: shelly_gen2 }
            units:
              - id: 1
                device: s
                points:
                  - { name: out, area: coil, address: 0, field: output, method: Switch.Toggle }   #!
            """,
            "'Switch.Toggle' is not a Shelly method the bridge can write with",
            fix: "choose one of the known setters"
        )
    }

    @Test func profileKeysNeedTheirProfile() {
        expectSingleError(
            """
            devices:
              - { name: plain }
            units:
              - id: 1
                device: plain
                points:
                  - name: a
                    area: coil
                    address: 0
                    state_topic: a
                    relay: 1   #!
            """,
            "'relay' is a key of profile tasmota, but the point's device 'plain' has no profile"
        )
        expectSingleError(
            """
            devices:
              - name: z
                profile: zigbee2mqtt
                full_topic: "%prefix%/%topic%/"   #!
            units:
              - { id: 1, device: z, points: [{ name: a, area: coil, address: 0, field: state }] }
            """,
            "'full_topic' only applies to devices with profile tasmota (this one is zigbee2mqtt)"
        )
        expectSingleError(
            """
            devices:
              - { name: z, profile: zigbee2mqtt }
            units:
              - id: 1
                device: z
                points:
                  - { name: a, area: coil, address: 0, relay: 1 }   #!
            """,
            "'relay' is not a key of profile zigbee2mqtt"
        )
    }

    @Test func tasmotaCommandsAreNeverRetained() {
        expectSingleError(
            """
            devices:
              - { name: r, profile: tasmota }
            units:
              - id: 1
                device: r
                points:
                  - name: relay
                    area: coil
                    address: 0
                    relay: 1
                    command_retain: true   #!
            """,
            "Tasmota commands are never retained"
        )
    }

    @Test func refreshRateAndHandWrittenRefresh() throws {
        let yaml = """
            broker: { refresh_rate: 2.5 }
            devices:
              - name: boiler
                availability: { topic: boiler/lwt }
                refresh: [{ topic: boiler/get }, { topic: boiler/get2, payload: all }]
            units:
              - { id: 1, device: boiler, points: [{ name: t, area: input_register, address: 0, type: int16, state_topic: boiler/t }] }
            """
        let configuration = try #require(validConfiguration(yaml))
        #expect(configuration.broker.refreshRate == 2.5)
        #expect(
            configuration.device(named: "boiler")?.refresh
                == [RefreshMessage(topic: "boiler/get"), RefreshMessage(topic: "boiler/get2", payload: "all")]
        )
        #expect(
            validConfiguration(
                "units:\n  - { id: 1, points: [{ name: a, area: coil, address: 0, state_topic: a, max_age: 1m }] }"
            )?.broker.refreshRate == 10
        )
        expectSingleError(
            """
            broker:
              refresh_rate: 0   #!
            units:
              - { id: 1, points: [{ name: a, area: coil, address: 0, state_topic: a, max_age: 1m }] }
            """,
            "'refresh_rate' must be a number of messages per second above 0"
        )
    }

    @Test func commandPayloadKey() throws {
        let configuration = try #require(
            validConfiguration(
                singlePoint(
                    """
                          - name: relay
                            area: coil
                            address: 0
                            state_topic: stat/x/RESULT
                            payload: { format: json, path: POWER, true_words: [ON], false_words: [OFF], if_absent: ignore }
                            command_topic: cmnd/x/POWER
                            command_payload: { format: plain }
                            ack: { mode: state_echo }
                            max_age: 1m
                    """
                )
            )
        )
        let relay = try #require(configuration.point(named: "relay"))
        #expect(relay.command?.payload?.encoding == .plain)
        #expect(relay.command?.payload?.trueWords == ["ON"])
        #expect(relay.payload.ignoresAbsentPath)
        #expect(try command(relay, .bool(true)) == "ON")
        expectSingleError(
            singlePoint(
                """
                      - name: a
                        area: coil
                        address: 0
                        state_topic: a
                        command_payload: { format: plain }   #!
                        max_age: 1m
                """
            ),
            "'command_payload' needs a 'command_topic'"
        )
    }
}
