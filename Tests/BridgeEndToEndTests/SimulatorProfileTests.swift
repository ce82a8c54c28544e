import Foundation
import MQTTModbusBridgeConfiguration
import Testing

@testable import MQTTModbusBridgeSimulator

/// The simulator's device conventions without a broker: the shipped profile examples, commands
/// written by the bridge's own encoder, and every message the simulated device publishes read
/// back by the bridge's own decoders.
@Suite("Simulator: profile conventions")
struct SimulatorProfileTests {
    static func example(_ file: String) throws -> BridgeConfiguration {
        let path = ValidateCommandTests.repositoryRoot.appendingPathComponent("examples/configs/\(file)").path
        return try BridgeConfiguration.load(path: path)
    }

    static let now = Date(timeIntervalSince1970: 1_714_564_800)  // 2024-05-01T12:00:00Z

    static func initialValues(_ configuration: BridgeConfiguration) -> [String: PointValue] {
        var values: [String: PointValue] = [:]
        for point in configuration.points { values[point.name] = DeviceSimulator.initialValue(for: point) }
        return values
    }

    /// What the bridge reads from `publications` for each point (the last message that carries
    /// a value for it).
    static func read(
        _ publications: [Publication],
        _ configuration: BridgeConfiguration
    ) throws -> [String: PointValue] {
        var read: [String: PointValue] = [:]
        for publication in publications {
            for point in configuration.points
            where point.stateTopic == publication.topic
                || point.additionalStates.contains(where: {
                    $0.topic == publication.topic
                })
            {
                if let value = try StateMessageDecoder(point: point).decode(
                    topic: publication.topic,
                    payload: publication.payload
                ) {
                    read[point.name] = value
                }
            }
        }
        return read
    }

    static func command(_ point: PointConfiguration, _ value: PointValue, id: String = "c-1") throws -> [UInt8] {
        try CommandEncoder(point: point).encode(value, correlationID: id)
    }

    static func acknowledge(_ point: String) -> DeviceSimulator.AckBehaviour { .acknowledge }
    static func refuse(_ point: String) -> DeviceSimulator.AckBehaviour { .refuse(reason: "no", code: nil) }
    static func ignore(_ point: String) -> DeviceSimulator.AckBehaviour { .ignore }

    // MARK: Tasmota

    static func tasmota() throws -> (BridgeConfiguration, TasmotaConvention) {
        let configuration = try example("tasmota-profile.yaml")
        let device = try #require(configuration.device(named: "boiler_board"))
        guard case .tasmota(let topic, let fullTopic)? = device.profile?.identity else {
            throw TestFailure("no Tasmota identity: \(String(describing: device.profile))")
        }
        let points = configuration.points.filter { $0.device == device.name }
        return (configuration, TasmotaConvention(device: device, points: points, topic: topic, fullTopic: fullTopic))
    }

    @Test("Tasmota: after connecting, tele STATE and SENSOR with Time, and every relay on RESULT and POWER<n>")
    func tasmotaReport() throws {
        let (configuration, tasmota) = try Self.tasmota()
        #expect(tasmota.relays.map(\.key) == ["POWER1", "POWER2"])
        #expect(
            Set(tasmota.requestTopics)
                == ["cmnd/boiler_board/POWER1", "cmnd/boiler_board/POWER2", "cmnd/boiler_board/STATE"]
        )
        let values = Self.initialValues(configuration)
        let report = tasmota.report(.connected, values: values, now: Self.now)
        #expect(report.allSatisfy { !$0.retain }, "Tasmota retains only its LWT")
        let state = try #require(report.first { $0.topic == "tele/boiler_board/STATE" })
        #expect(state.text.hasPrefix(#"{"Time":"2024-05-01T12:00:00","POWER1":"ON","POWER2":"ON","Wifi":{"RSSI":"#))
        let sensor = try #require(report.first { $0.topic == "tele/boiler_board/SENSOR" })
        #expect(sensor.text == #"{"Time":"2024-05-01T12:00:00","DS18B20":{"Temperature":10},"TempUnit":"C"}"#)
        #expect(report.contains(Publication(topic: "stat/boiler_board/POWER2", text: "ON")))
        // The bridge reads every point from what the device published.
        let read = try Self.read(report, configuration)
        for point in configuration.points {
            #expect(read[point.name]?.doubleValue == values[point.name]?.doubleValue, "\(point.name)")
        }
        // Later ticks: telemetry only (both relays are switched by the bridge).
        let periodic = tasmota.report(.periodic, values: values, now: Self.now)
        #expect(periodic.map(\.topic) == ["tele/boiler_board/STATE", "tele/boiler_board/SENSOR"])
    }

    @Test("Tasmota: a POWER command the bridge wrote switches the relay and is confirmed as Tasmota does")
    func tasmotaCommands() throws {
        let (configuration, tasmota) = try Self.tasmota()
        let pump = try #require(configuration.point(named: "pump"))
        let off = try Self.command(pump, .bool(false))
        #expect(String(decoding: off, as: UTF8.self) == "OFF")
        let request = try #require(tasmota.request(topic: "cmnd/boiler_board/POWER1", payload: off))
        #expect(request == .power(relay: 0, .set(false)))
        var values = Self.initialValues(configuration)
        #expect(tasmota.changes(in: request, values: values) == [PointChange(point: "pump", value: .bool(false))])

        var unchanged = values
        #expect(tasmota.answer(request, behaviour: Self.ignore, values: &unchanged, now: Self.now).isEmpty)
        let refused = tasmota.answer(request, behaviour: Self.refuse, values: &unchanged, now: Self.now)
        #expect(refused.map(\.text) == [#"{"POWER1":"ON"}"#, "ON"], "no negative answer: the state as it is")
        #expect(unchanged == values)

        let answer = tasmota.answer(request, behaviour: Self.acknowledge, values: &values, now: Self.now)
        #expect(
            answer == [
                Publication(topic: "stat/boiler_board/RESULT", text: #"{"POWER1":"OFF"}"#),
                Publication(topic: "stat/boiler_board/POWER1", text: "OFF"),
            ]
        )
        #expect(try Self.read(answer, configuration)["pump"] == .bool(false))
        #expect(values["pump"] == .bool(false))
    }

    @Test("Tasmota: an empty command (or ?) is a query; TOGGLE, 1 and 0 switch; STATE answers on RESULT")
    func tasmotaQueries() throws {
        let (configuration, tasmota) = try Self.tasmota()
        var values = Self.initialValues(configuration)
        for query in ["", "?", " "] {
            let request = try #require(tasmota.request(topic: "cmnd/boiler_board/POWER2", payload: Array(query.utf8)))
            #expect(tasmota.changes(in: request, values: values).isEmpty)
            let answer = tasmota.answer(request, behaviour: Self.ignore, values: &values, now: Self.now)
            #expect(answer.map(\.text) == [#"{"POWER2":"ON"}"#, "ON"], "queries are answered whatever the switches")
        }
        #expect(
            tasmota.request(topic: "cmnd/boiler_board/POWER2", payload: Array("toggle".utf8))
                == .power(relay: 1, .toggle)
        )
        let toggle = TasmotaConvention.Request.power(relay: 1, .toggle)
        #expect(tasmota.changes(in: toggle, values: values) == [PointChange(point: "burner", value: .bool(false))])
        #expect(
            TasmotaConvention.power(in: Array("1".utf8), for: try #require(configuration.point(named: "burner")))
                == .set(true)
        )
        #expect(tasmota.request(topic: "cmnd/boiler_board/POWER2", payload: Array("maybe".utf8)) == .unknown)
        let unknown = tasmota.answer(.unknown, behaviour: Self.acknowledge, values: &values, now: Self.now)
        #expect(unknown.map(\.text) == [#"{"Command":"Unknown"}"#])
        #expect(tasmota.request(topic: "cmnd/other/POWER1", payload: []) == nil)

        let state = tasmota.answer(.state, behaviour: Self.acknowledge, values: &values, now: Self.now)
        #expect(state.map(\.topic) == ["stat/boiler_board/RESULT"])
        let read = try Self.read(state, configuration)
        #expect(read["pump"] == .bool(true) && read["burner"] == .bool(true), "\(state)")
    }

    // MARK: zigbee2mqtt

    static func zigbee() throws -> (BridgeConfiguration, Zigbee2MQTTConvention) {
        let configuration = try example("zigbee2mqtt-profile.yaml")
        let device = try #require(configuration.device(named: "kitchen_plug"))
        guard case .zigbee2mqtt(let base, let name)? = device.profile?.identity else {
            throw TestFailure("no zigbee2mqtt identity")
        }
        let points = configuration.points.filter { $0.device == device.name }
        return (configuration, Zigbee2MQTTConvention(device: device, points: points, stateTopic: "\(base)/\(name)"))
    }

    @Test("zigbee2mqtt: one document on <base>/<name>; /set answered with the new document, /get with the document")
    func zigbee2mqtt() throws {
        let (configuration, zigbee) = try Self.zigbee()
        #expect(zigbee.requestTopics == ["zigbee2mqtt/kitchen_plug/set", "zigbee2mqtt/kitchen_plug/get"])
        var values = Self.initialValues(configuration)
        let report = zigbee.report(.connected, values: values, now: Self.now)
        #expect(report.map(\.text) == [#"{"state":"ON","power":10,"voltage":100,"linkquality":120}"#])
        #expect(try Self.read(report, configuration).count == configuration.points.count)

        let relay = try #require(configuration.point(named: "plug_relay"))
        let off = try Self.command(relay, .bool(false))
        #expect(String(decoding: off, as: UTF8.self) == #"{"state":"OFF"}"#)
        let set = try #require(zigbee.request(topic: "zigbee2mqtt/kitchen_plug/set", payload: off))
        #expect(zigbee.changes(in: set, values: values) == [PointChange(point: "plug_relay", value: .bool(false))])
        var unchanged = values
        #expect(zigbee.answer(set, behaviour: Self.ignore, values: &unchanged, now: Self.now).isEmpty)
        let refused = zigbee.answer(set, behaviour: Self.refuse, values: &unchanged, now: Self.now)
        #expect(try Self.read(refused, configuration)["plug_relay"] == .bool(true), "the unchanged state")
        let echo = zigbee.answer(set, behaviour: Self.acknowledge, values: &values, now: Self.now)
        #expect(echo.map(\.topic) == ["zigbee2mqtt/kitchen_plug"])
        #expect(try Self.read(echo, configuration)["plug_relay"] == .bool(false))

        // The bridge's refresh: {"state":""} on /get.
        let device = try #require(configuration.device(named: "kitchen_plug"))
        let refresh = try #require(device.refresh.first)
        let get = try #require(zigbee.request(topic: refresh.topic, payload: Array(refresh.payload.utf8)))
        #expect(get == .get && zigbee.changes(in: get, values: values).isEmpty)
        let answer = zigbee.answer(get, behaviour: Self.ignore, values: &values, now: Self.now)
        #expect(try Self.read(answer, configuration)["plug_relay"] == .bool(false))
        // A document with nothing the device can set is ignored.
        #expect(zigbee.request(topic: "zigbee2mqtt/kitchen_plug/set", payload: Array(#"{"color":1}"#.utf8)) == nil)
        #expect(
            String(decoding: DeviceSimulator.availabilityPayload(device.availability!, online: true), as: UTF8.self)
                == #"{"state":"online"}"#
        )
    }

    // MARK: Shelly

    static func shelly() throws -> (BridgeConfiguration, ShellyGen2Convention) {
        let configuration = try example("shelly-gen2-switch.yaml")
        let device = try #require(configuration.device(named: "shellyplus1pm-a8032ab1"))
        guard case .shellyGen2(let prefix, let source)? = device.profile?.identity else {
            throw TestFailure("no Shelly identity")
        }
        let points = configuration.points.filter { $0.device == device.name }
        return (configuration, ShellyGen2Convention(device: device, points: points, prefix: prefix, source: source))
    }

    static let prefix = "shellyplus1pm-a8032ab1"

    @Test("Shelly: Switch.Set as the bridge writes it, answered on <src>/rpc with was_on after the new status")
    func shellySet() throws {
        let (configuration, shelly) = try Self.shelly()
        #expect(shelly.components.map(\.name) == ["switch:0"])
        #expect(shelly.setters.map(\.method) == ["Switch.Set"] && shelly.setters.map(\.parameter) == ["on"])
        let output = try #require(configuration.point(named: "output"))
        let ack = try #require(output.command?.ack)
        var values = Self.initialValues(configuration)
        values["output"] = .bool(false)
        let request = try #require(
            shelly.request(topic: "\(Self.prefix)/rpc", payload: try Self.command(output, .bool(true), id: "c-9"))
        )
        #expect(shelly.changes(in: request, values: values) == [PointChange(point: "output", value: .bool(true))])

        var unchanged = values
        #expect(shelly.answer(request, behaviour: Self.ignore, values: &unchanged, now: Self.now).isEmpty)
        let refused = shelly.answer(request, behaviour: Self.refuse, values: &unchanged, now: Self.now)
        #expect(refused.map(\.topic) == ["shelly-bridge/rpc"] && unchanged == values)
        #expect(
            refused.first?.text
                == #"{"id":"c-9","src":"\#(Self.prefix)","dst":"shelly-bridge","error":{"code":-103,"message":"no"}}"#
        )
        let refusal = AckPayloadEvaluator.evaluate(payload: refused[0].payload, settings: ack)
        #expect(refusal.exceptionCode == .serverDeviceFailure, "an error reply is 04")

        let answer = shelly.answer(request, behaviour: Self.acknowledge, values: &values, now: Self.now)
        #expect(answer.map(\.topic) == ["\(Self.prefix)/status/switch:0", "shelly-bridge/rpc"])
        #expect(
            answer[1].text == #"{"id":"c-9","src":"\#(Self.prefix)","dst":"shelly-bridge","result":{"was_on":false}}"#
        )
        #expect(AckPayloadEvaluator.evaluate(payload: answer[1].payload, settings: ack) == .acknowledged)
        #expect(AckPayloadEvaluator.correlationID(in: answer[1].payload, at: ack.idField) == "c-9")
        #expect(try Self.read(answer, configuration)["output"] == .bool(true))
    }

    @Test("Shelly: the bridge's GetStatus refresh is answered with the status, read by the refresh's id")
    func shellyGetStatus() throws {
        let (configuration, shelly) = try Self.shelly()
        var values = Self.initialValues(configuration)
        let report = shelly.report(.connected, values: values, now: Self.now)
        #expect(report.map(\.text) == [#"{"id":0,"output":true,"apower":10,"voltage":10}"#])

        let device = try #require(configuration.device(named: Self.prefix))
        let refresh = try #require(device.refresh.first)
        let request = try #require(shelly.request(topic: refresh.topic, payload: Array(refresh.payload.utf8)))
        #expect(shelly.changes(in: request, values: values).isEmpty)
        let answer = shelly.answer(request, behaviour: Self.ignore, values: &values, now: Self.now)
        #expect(answer.map(\.topic) == ["shelly-bridge/rpc"])
        #expect(
            answer.first?.text
                == #"{"id":"refresh:\#(Self.prefix):switch:0","src":"\#(Self.prefix)","dst":"shelly-bridge","result":{"id":0,"output":true,"apower":10,"voltage":10}}"#
        )
        let read = try Self.read(answer, configuration)
        #expect(read.count == configuration.points.count, "every point from the reply: \(read)")
    }

    @Test(
        "Shelly: numeric ids echoed, Shelly.GetStatus, and errors for unknown methods, components and parameters",
        arguments: [
            (
                #"{"id":7,"src":"tool","method":"Switch.Set","params":{"id":0,"on":false}}"#,
                #""result":{"was_on":true}"#
            ),
            (#"{"id":8,"src":"tool","method":"Shelly.GetStatus"}"#, #""result":{"switch:0":{"id":0,"#),
            (
                #"{"id":9,"src":"tool","method":"Switch.Toggle","params":{"id":0}}"#,
                #""error":{"code":404,"message":"No handler for Switch.Toggle"}"#
            ),
            (
                #"{"id":10,"src":"tool","method":"Switch.Set","params":{"id":3,"on":true}}"#,
                #""error":{"code":-105,"message":"Bad id=3"}"#
            ),
            (
                #"{"id":11,"src":"tool","method":"Switch.GetStatus"}"#,
                #""error":{"code":-103,"message":"Missing required 'id'"}"#
            ),
            (
                #"{"id":12,"src":"tool","method":"Switch.Set","params":{"id":0}}"#,
                #""error":{"code":-103,"message":"Missing required 'on'"}"#
            ),
            (
                #"{"id":13,"src":"tool","method":"Cover.GetStatus","params":{"id":0}}"#,
                #""error":{"code":404,"message":"No handler for Cover.GetStatus"}"#
            ),
        ]
    )
    func shellyFrames(request text: String, expected: String) throws {
        let (configuration, shelly) = try Self.shelly()
        var values = Self.initialValues(configuration)
        let request = try #require(shelly.request(topic: "\(Self.prefix)/rpc", payload: Array(text.utf8)))
        let answer = shelly.answer(request, behaviour: Self.acknowledge, values: &values, now: Self.now)
        let reply = try #require(answer.last)
        #expect(reply.topic == "tool/rpc")
        let id = text.split(separator: ",").first!.dropFirst(#"{"id":"#.count)
        #expect(reply.text.hasPrefix(#"{"id":\#(id),"src":"\#(Self.prefix)","dst":"tool","#), "\(reply.text)")
        #expect(reply.text.contains(expected), "\(reply.text)")
    }

    @Test("Shelly: a frame without an id or a source has nobody to answer; other topics are not requests")
    func shellyIgnored() throws {
        let (_, shelly) = try Self.shelly()
        for text in [
            #"{"src":"tool","method":"Shelly.GetStatus"}"#, #"{"id":1,"method":"Shelly.GetStatus"}"#, "garbage",
        ] {
            #expect(shelly.request(topic: "\(Self.prefix)/rpc", payload: Array(text.utf8)) == nil, "\(text)")
        }
        #expect(
            shelly.request(topic: "other/rpc", payload: Array(#"{"id":1,"src":"t","method":"Shelly.GetStatus"}"#.utf8))
                == nil
        )
    }
}

/// A test precondition that did not hold.
struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
