import Foundation
import MQTTModbusBridge
import MQTTTestSupport
import ModbusCore
import Mosquitto
import Testing

/// Device profiles through a real mosquitto, the bridge and pymodbus, with the test client
/// playing each device by its documented convention (not the simulator): a read, a write
/// acknowledged the device's way, a write the device ignores (0B), the device going offline and
/// back, and the refresh after a reconnection bringing a value that is not retained.
@Suite("Device profiles, end to end", .serialized)
struct ProfilesEndToEndTests {
    /// Publishes a marker and waits for it: everything published before has been delivered.
    func barrier(_ harness: BridgeHarness) async throws {
        let marker = UUID().uuidString
        let mark = harness.messages.count
        try await harness.publish("e2e/barrier", marker, retain: false)
        try await harness.messages.waitForMessage(on: "e2e/barrier", after: mark) { $0.payloadString == marker }
    }

    /// Waits for the next message on `topic` after `mark` that satisfies `predicate`.
    func next(
        _ harness: BridgeHarness,
        on topic: String,
        after mark: Int,
        where predicate: @escaping @Sendable (MQTTMessage) -> Bool = { _ in true }
    ) async throws -> MQTTMessage {
        try await harness.messages.waitForMessage(on: topic, after: mark, timeout: .seconds(10), where: predicate)
    }

    /// Makes the bridge reconnect while the test client stays connected (so it sees every message
    /// the bridge publishes once back): a client with the bridge's client id takes its session
    /// over and leaves. Returns the mark after which the bridge's messages of the new connection
    /// come, once it said "online" again.
    func reconnectBridge(_ harness: BridgeHarness) async throws -> Int {
        let mark = harness.messages.count
        let impostor = try await connectedClient(harness.broker) {
            $0.clientID = harness.configuration.broker.clientID
        }
        await impostor.disconnect()
        _ = try await next(harness, on: statusTopic, after: mark) { $0.payloadString == "online" }
        return mark
    }

    // MARK: Tasmota

    static func tasmota(_ port: Int) -> String {
        baseYAML(brokerPort: port) + """

            devices:
              - { name: pump_relay, profile: tasmota }
            units:
              - id: 1
                device: pump_relay
                points:
                  - { name: relay, area: coil, address: 0, relay: 1, ack: { timeout: 1s },
                      quality: { area: input_register, address: 100 },
                      last_command: { area: input_register, address: 101 } }
                  - { name: temperature, area: input_register, address: 0, type: int16, scale: 10,
                      sensor: DS18B20.Temperature }
            """
    }

    @Test("tasmota: RESULT by key, POWER plain, LWT, a write confirmed on stat/…/RESULT, refresh after a reconnection")
    func tasmota() async throws {
        try await withBridge(Self.tasmota) { harness in
            let modbus = harness.modbus
            try await harness.publish("tele/pump_relay/LWT", "Online")
            try await harness.publish(
                "tele/pump_relay/SENSOR",
                #"{"Time":"2024-05-01T12:00:00","DS18B20":{"Temperature":20.6}}"#
            )
            try await harness.publish("stat/pump_relay/RESULT", #"{"POWER":"OFF"}"#, retain: false)
            try await harness.awaitRead(.inputRegister, 0) { $0 == [206] }
            try await harness.awaitRead(.coil, 0) { $0 == [0] }
            #expect(try await modbus.read(.inputRegister, 100) == .ok([0]), "fresh")
            // A RESULT about something else is not about the relay; plain stat/…/POWER is.
            try await harness.publish("stat/pump_relay/RESULT", #"{"Dimmer":40}"#, retain: false)
            try await harness.publish("stat/pump_relay/POWER", "ON", retain: false)
            try await harness.awaitRead(.coil, 0) { $0 == [1] }
            #expect(harness.bridge.payloadDecodeFailures == 0)

            // A write, confirmed the way Tasmota confirms: RESULT with the key.
            var mark = harness.messages.count
            async let off = modbus.write(.coil, 0, [0], single: true)
            let command = try await next(harness, on: "cmnd/pump_relay/POWER", after: mark)
            #expect(command.payloadString == "OFF")
            #expect(command.retain == false, "Tasmota commands are never retained")
            try await harness.publish("stat/pump_relay/RESULT", #"{"POWER":"OFF"}"#, retain: false)
            #expect(try await off == .ok(true))
            #expect(try await modbus.read(.inputRegister, 101) == .ok([0x0100]), "acknowledged")

            // A write the device ignores: 0B after the ack timeout.
            mark = harness.messages.count
            #expect(
                try await modbus.write(.coil, 0, [1], single: true) == .exception(.gatewayTargetDeviceFailedToRespond)
            )
            _ = try await next(harness, on: "cmnd/pump_relay/POWER", after: mark) { $0.payloadString == "ON" }
            #expect(try await modbus.read(.inputRegister, 101) == .ok([0x030B]), "timed out")

            // Its last will: reads answer the missing-value policy at once, writes 0B, nothing sent.
            try await harness.publish("tele/pump_relay/LWT", "Offline")
            #expect(try await harness.awaitReadException(.coil, 0) == .gatewayTargetDeviceFailedToRespond)
            #expect(try await modbus.read(.inputRegister, 0) == .exception(.gatewayTargetDeviceFailedToRespond))
            #expect(try await modbus.read(.inputRegister, 100) == .ok([3]), "device offline")
            mark = harness.messages.count
            #expect(
                try await modbus.write(.coil, 0, [1], single: true) == .exception(.gatewayTargetDeviceFailedToRespond)
            )
            try await barrier(harness)
            #expect(!harness.messages.messages.dropFirst(mark).contains { $0.topic == "cmnd/pump_relay/POWER" })
            #expect(try await modbus.read(.inputRegister, 101) == .ok([0x050B]), "refused: device offline")

            try await harness.publish("tele/pump_relay/LWT", "Online")
            try await harness.awaitRead(.coil, 0) { $0 == [0] }
            try await harness.awaitRead(.inputRegister, 0) { $0 == [206] }

            // After a reconnection the bridge asks (an empty cmnd/…/POWER): the answer, not retained, is read.
            let restart = try await reconnectBridge(harness)
            let query = try await next(harness, on: "cmnd/pump_relay/POWER", after: restart)
            #expect(query.payloadString == "" && query.retain == false)
            try await harness.publish("tele/pump_relay/LWT", "Online")
            try await harness.publish("stat/pump_relay/RESULT", #"{"POWER":"ON"}"#, retain: false)
            try await harness.awaitRead(.coil, 0) { $0 == [1] }
            #expect(try await modbus.read(.inputRegister, 100) == .ok([0]), "fresh again")
        }
    }

    // MARK: zigbee2mqtt

    static func zigbee(_ port: Int) -> String {
        baseYAML(brokerPort: port) + """

            devices:
              - { name: kitchen_plug, profile: zigbee2mqtt }
            units:
              - id: 1
                device: kitchen_plug
                points:
                  - { name: plug, area: coil, address: 0, field: state, ack: { timeout: 1s } }
                  - { name: power, area: input_register, address: 0, type: uint16, scale: 10, field: power }
            """
    }

    @Test(
        "zigbee2mqtt: JSON state, {\"state\":\"ON\"} confirmed by the state echo, both availability forms, refresh by get"
    )
    func zigbee2mqtt() async throws {
        try await withBridge(Self.zigbee) { harness in
            let modbus = harness.modbus
            let state = "zigbee2mqtt/kitchen_plug"
            try await harness.publish("\(state)/availability", #"{"state":"online"}"#)
            try await harness.publish(state, #"{"state":"OFF","power":12.5,"linkquality":80}"#, retain: false)
            try await harness.awaitRead(.inputRegister, 0) { $0 == [125] }
            try await harness.awaitRead(.coil, 0) { $0 == [0] }

            var mark = harness.messages.count
            async let on = modbus.write(.coil, 0, [1], single: true)
            let command = try await next(harness, on: "\(state)/set", after: mark)
            #expect(command.payloadString == #"{"state":"ON"}"#)
            #expect(command.retain == false)
            try await harness.publish(state, #"{"state":"ON","power":40.1,"linkquality":80}"#, retain: false)
            #expect(try await on == .ok(true))
            #expect(try await modbus.read(.inputRegister, 0) == .ok([401]))

            // Ignored: zigbee2mqtt reports nothing (or the old state): 0B.
            mark = harness.messages.count
            async let ignored = modbus.write(.coil, 0, [0], single: true)
            _ = try await next(harness, on: "\(state)/set", after: mark)
            try await harness.publish(state, #"{"state":"ON","power":40.1}"#, retain: false)
            #expect(try await ignored == .exception(.gatewayTargetDeviceFailedToRespond))

            // The legacy plain availability payload works as well.
            try await harness.publish("\(state)/availability", "offline")
            #expect(try await harness.awaitReadException(.coil, 0) == .gatewayTargetDeviceFailedToRespond)
            mark = harness.messages.count
            #expect(
                try await modbus.write(.coil, 0, [0], single: true) == .exception(.gatewayTargetDeviceFailedToRespond)
            )
            try await barrier(harness)
            #expect(!harness.messages.messages.dropFirst(mark).contains { $0.topic == "\(state)/set" })
            try await harness.publish("\(state)/availability", #"{"state":"online"}"#)
            try await harness.awaitRead(.coil, 0) { $0 == [1] }

            let restart = try await reconnectBridge(harness)
            let get = try await next(harness, on: "\(state)/get", after: restart)
            #expect(get.payloadString == #"{"state":""}"# && get.retain == false)
            try await harness.publish("\(state)/availability", #"{"state":"online"}"#)
            try await harness.publish(state, #"{"state":"OFF","power":0}"#, retain: false)
            try await harness.awaitRead(.coil, 0) { $0 == [0] }
            try await harness.awaitRead(.inputRegister, 0) { $0 == [0] }
        }
    }

    // MARK: Shelly

    static func shelly(_ port: Int) -> String {
        baseYAML(brokerPort: port) + """

            devices:
              - { name: shelly1, profile: shelly_gen2, rpc_source: e2e-bridge-rpc }
            units:
              - id: 1
                device: shelly1
                points:
                  - { name: output, area: coil, address: 0, field: output, ack: { timeout: 1s } }
                  - { name: apower, area: input_register, address: 0, type: int16, scale: 10, field: apower }
            """
    }

    /// Answers the next RPC request on `shelly1/rpc` after `mark` with `reply(id)`, on `<src>/rpc`.
    func answerRPC(
        _ harness: BridgeHarness,
        after mark: Int,
        method: String,
        _ reply: @escaping (String) -> String
    ) async throws -> [String: Any] {
        let request = try await next(harness, on: "shelly1/rpc", after: mark) { $0.payloadString.contains(method) }
        let frame = try #require(try JSONSerialization.jsonObject(with: Data(request.payload)) as? [String: Any])
        let id = try #require(frame["id"] as? String)
        let source = try #require(frame["src"] as? String)
        try await harness.publish("\(source)/rpc", reply(id), retain: false)
        return frame
    }

    @Test(
        "shelly_gen2: status notifications, Switch.Set answered by RPC id, an error reply is 04, online, GetStatus refresh"
    )
    func shellyGen2() async throws {
        try await withBridge(Self.shelly) { harness in
            let modbus = harness.modbus
            try await harness.publish("shelly1/online", "true")
            try await harness.publish(
                "shelly1/status/switch:0",
                #"{"id":0,"source":"init","output":false,"apower":8.5}"#
            )
            try await harness.awaitRead(.inputRegister, 0) { $0 == [85] }
            try await harness.awaitRead(.coil, 0) { $0 == [0] }

            var mark = harness.messages.count
            async let on = modbus.write(.coil, 0, [1], single: true)
            let frame = try await answerRPC(harness, after: mark, method: "Switch.Set") { id in
                #"{"id":"\#(id)","src":"shelly1","dst":"e2e-bridge-rpc","result":{"was_on":false}}"#
            }
            #expect(frame["method"] as? String == "Switch.Set")
            #expect(frame["src"] as? String == "e2e-bridge-rpc")
            #expect((frame["params"] as? [String: Any])?["on"] as? Bool == true)
            #expect(try await on == .ok(true))

            // An error reply is never a success.
            mark = harness.messages.count
            async let refused = modbus.write(.coil, 0, [0], single: true)
            _ = try await answerRPC(harness, after: mark, method: "Switch.Set") { id in
                #"{"id":"\#(id)","src":"shelly1","error":{"code":-103,"message":"Invalid argument"}}"#
            }
            #expect(try await refused == .exception(.serverDeviceFailure))

            // No reply at all: 0B.
            mark = harness.messages.count
            #expect(
                try await modbus.write(.coil, 0, [0], single: true) == .exception(.gatewayTargetDeviceFailedToRespond)
            )
            _ = try await next(harness, on: "shelly1/rpc", after: mark)

            try await harness.publish("shelly1/online", "false")
            #expect(try await harness.awaitReadException(.inputRegister, 0) == .gatewayTargetDeviceFailedToRespond)
            mark = harness.messages.count
            #expect(
                try await modbus.write(.coil, 0, [1], single: true) == .exception(.gatewayTargetDeviceFailedToRespond)
            )
            try await barrier(harness)
            #expect(!harness.messages.messages.dropFirst(mark).contains { $0.topic == "shelly1/rpc" })
            try await harness.publish("shelly1/online", "true")
            try await harness.awaitRead(.inputRegister, 0) { $0 == [85] }

            // After a reconnection: Switch.GetStatus; its reply (not retained) is the status.
            let restart = try await reconnectBridge(harness)
            try await harness.publish("shelly1/online", "true")
            _ = try await answerRPC(harness, after: restart, method: "Switch.GetStatus") { id in
                #"{"id":"\#(id)","src":"shelly1","result":{"id":0,"output":true,"apower":61.2,"voltage":230.1}}"#
            }
            try await harness.awaitRead(.inputRegister, 0) { $0 == [612] }
            try await harness.awaitRead(.coil, 0) { $0 == [1] }
        }
    }
}
