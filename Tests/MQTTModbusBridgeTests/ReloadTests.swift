import Foundation
import ModbusCore
import Mosquitto
import Testing

@testable import MQTTModbusBridge
@testable import MQTTModbusBridgeConfiguration

/// What a reload changes, worked out without a broker: the plan from two configurations, and a
/// bridge's cache and write state across ``MQTTModbusBridgeService/reload(_:)``.
@Suite("Configuration reload")
struct ReloadTests {
    static func yaml(port: Int = 1502, broker: String = "host: 127.0.0.1, port: 1883", _ points: String) -> String {
        """
        broker: { \(broker), protocol: mqtt311 }
        modbus: { host: 127.0.0.1, port: \(port) }
        units:
        \(points)
        """
    }

    static let before = """
          - id: 1
            points:
              - { name: temperature, area: input_register, address: 0, type: int16, scale: 10, state_topic: t/temperature, max_age: 1h }
              - { name: humidity, area: input_register, address: 1, type: uint16, state_topic: t/humidity, max_age: 1h }
              - { name: level, area: holding_register, address: 0, type: int16, state_topic: t/level, max_age: 1h,
                  command_topic: t/level/set, ack: { mode: state_echo, timeout: 5s } }
              - { name: mode, area: holding_register, address: 1, type: uint16, state_topic: t/mode, max_age: 1h,
                  payload: { format: json, path: a } }
        """

    /// temperature: scale changed; humidity: removed; level: unchanged (moved down a line in the
    /// file); mode: reads another JSON field; pressure: new, on a new topic; unit 2: new.
    static let after = """
          - id: 1
            points:

              - { name: temperature, area: input_register, address: 0, type: int16, scale: 100, state_topic: t/temperature, max_age: 1h }
              - { name: level, area: holding_register, address: 0, type: int16, state_topic: t/level, max_age: 1h,
                  command_topic: t/level/set, ack: { mode: state_echo, timeout: 5s } }
              - { name: mode, area: holding_register, address: 1, type: uint16, state_topic: t/mode, max_age: 1h,
                  payload: { format: json, path: b } }
              - { name: pressure, area: input_register, address: 2, type: uint16, state_topic: t/pressure, max_age: 1h }
          - id: 2
            points:
              - { name: flow, area: input_register, address: 0, type: uint16, state_topic: t/flow, max_age: 1h }
        """

    static func configuration(_ text: String) throws -> BridgeConfiguration {
        try BridgeConfiguration.parse(yaml: text, file: "reload.yaml")
    }

    static func topicMap(_ text: String) throws -> BridgeTopicMap {
        BridgeTopicMap(try configuration(text), metrics: BridgeMetrics())
    }

    static func message(_ topic: String, _ text: String, retain: Bool = false) -> MQTTMessage {
        MQTTMessage(topic: topic, payload: Array(text.utf8), retain: retain)
    }

    @Test("the plan: kept, converted and new points, subscriptions added, dropped and fetched again")
    func plan() throws {
        let old = try Self.topicMap(Self.yaml(Self.before))
        let new = try Self.topicMap(Self.yaml(Self.after))
        let plan = ReloadPlan(from: old, to: new)
        #expect(plan.refusals.isEmpty)
        let carry = Dictionary(uniqueKeysWithValues: zip(new.map.points.map(\.name), plan.points))
        #expect(carry["temperature"] == .convert(old.indexByName["temperature"]!))
        #expect(carry["level"] == .keep(old.indexByName["level"]!), "only its line moved")
        #expect(carry["mode"] == ReloadPlan.PointCarry.none, "another field of the payload: no value carried")
        #expect(carry["pressure"] == ReloadPlan.PointCarry.none)
        #expect(carry["flow"] == ReloadPlan.PointCarry.none)
        #expect(
            Set(plan.subscribe.map(\.topic)) == ["t/pressure", "t/flow", "t/mode"],
            "t/mode again, for its retained message"
        )
        #expect(plan.unsubscribe == ["t/humidity"])
        #expect(
            plan.summary
                == ReloadSummary(
                    pointsAdded: 2,
                    pointsRemoved: 1,
                    pointsChanged: 2,
                    pointsUnchanged: 1,
                    unitsAdded: 1,
                    unitsRemoved: 0,
                    subscriptionsAdded: 2,
                    subscriptionsRemoved: 1
                )
        )
    }

    @Test("the listener's address and the broker's address and identity are refused, each named; secrets are not shown")
    func refusals() throws {
        let old = try Self.configuration(Self.yaml(Self.before))
        let new = try Self.configuration(
            Self.yaml(
                port: 1503,
                broker: "host: 127.0.0.2, port: 1883, username: u, password: s3cr3t-word",
                Self.before
            )
        )
        let refusals = ReloadPlan.refusals(old, new)
        #expect(refusals.count == 4, "\(refusals)")
        #expect(refusals.contains { $0.hasPrefix("modbus.port changed (1502 → 1503)") }, "\(refusals)")
        #expect(refusals.contains { $0.hasPrefix("broker.host changed (127.0.0.1 → 127.0.0.2)") }, "\(refusals)")
        #expect(refusals.contains { $0.hasPrefix("broker.username changed:") }, "\(refusals)")
        #expect(refusals.contains { $0.hasPrefix("broker.password changed:") }, "\(refusals)")
        #expect(refusals.allSatisfy { $0.hasSuffix("restart the bridge to change it") })
        #expect(!refusals.joined().contains("s3cr3t-word"))
        #expect(ReloadPlan.refusals(old, try Self.configuration(Self.yaml(Self.after))).isEmpty)
    }

    @Test("a change of modbus.event_loop_threads is refused, from the default and between counts")
    func eventLoopThreadsRefused() throws {
        let old = try Self.configuration(Self.yaml(Self.before))
        var new = old
        new.modbus.eventLoopThreads = 2
        let refusals = ReloadPlan.refusals(old, new)
        #expect(refusals.count == 1, "\(refusals)")
        #expect(refusals.first?.hasPrefix("modbus.event_loop_threads changed (one per usable CPU → 2)") == true)
        var again = new
        again.modbus.eventLoopThreads = 1
        #expect(ReloadPlan.refusals(new, again).first?.hasPrefix("modbus.event_loop_threads changed (2 → 1)") == true)
        #expect(ReloadPlan.refusals(new, new).isEmpty)
    }

    @Test("modbus.max_queued_requests is refused under its config key; the write limit and unknown_unit are live")
    func queueLimitRefusedLiveSettingsKept() throws {
        let old = try Self.configuration(Self.yaml(Self.before))
        var queue = old
        queue.modbus.maxQueuedRequestsPerConnection += 1
        let refusals = ReloadPlan.refusals(old, queue)
        #expect(refusals.count == 1, "\(refusals)")
        #expect(refusals.first?.hasPrefix("modbus.max_queued_requests changed") == true, "\(refusals)")
        var live = old
        live.modbus.maxWritesInFlight += 1
        live.modbus.unknownUnit = old.modbus.unknownUnit == .ignore ? .exception : .ignore
        #expect(ReloadPlan.refusals(old, live).isEmpty)
    }

    @Test("a bridge keeps unchanged values, re-encodes a changed scale, drops removed points and serves new units")
    func valuesAcrossReload() async throws {
        let bridge = try MQTTModbusBridgeService(configuration: try Self.configuration(Self.yaml(Self.before)))
        bridge.handle(Self.message("t/temperature", "21.5"))
        bridge.handle(Self.message("t/humidity", "40"))
        bridge.handle(Self.message("t/level", "7"))
        bridge.handle(Self.message("t/mode", #"{"a": 1, "b": 2}"#))
        #expect(try read(bridge.cache, unit: 1, .inputRegister, 0, 2) == [215, 40])

        let summary = try await bridge.reload(try Self.configuration(Self.yaml(Self.after)))
        #expect(summary.pointsAdded == 2 && summary.pointsRemoved == 1)
        #expect(bridge.configuration.points.count == 5)
        #expect(try read(bridge.cache, unit: 1, .inputRegister, 0, 1) == [2150], "21.5 with scale 100")
        #expect(try read(bridge.cache, unit: 1, .holdingRegister, 0, 1) == [7], "unchanged")
        #expect(throws: ModbusException.self, "mode reads another field: no value until a message") {
            try read(bridge.cache, unit: 1, .holdingRegister, 1, 1)
        }
        do {
            _ = try read(bridge.cache, unit: 1, .inputRegister, 1, 1)
            Issue.record("humidity was removed")
        } catch let error as ModbusException {
            #expect(error.code == .illegalDataAddress)
        }
        bridge.handle(Self.message("t/flow", "77"))
        bridge.handle(Self.message("t/humidity", "41"))
        #expect(try read(bridge.cache, unit: 2, .inputRegister, 0, 1) == [77])
        let readiness = bridge.readiness
        #expect(readiness.subscriptionsConfigured == 5)
        #expect(!readiness.isReady)
    }

    @Test("a refused reload leaves the running map as it was")
    func refusedReload() async throws {
        let bridge = try MQTTModbusBridgeService(configuration: try Self.configuration(Self.yaml(Self.before)))
        bridge.handle(Self.message("t/temperature", "21.5"))
        await #expect(throws: ReloadRefusal.self) {
            _ = try await bridge.reload(try Self.configuration(Self.yaml(port: 1600, Self.after)))
        }
        #expect(bridge.configuration.modbus.port == 1502)
        #expect(bridge.configuration.points.count == 4)
        #expect(try read(bridge.cache, unit: 1, .inputRegister, 0, 1) == [215])
    }

    @Test("a state_echo write waiting across a reload is confirmed by the echo the new map receives")
    func echoAcrossReload() async throws {
        let bridge = try MQTTModbusBridgeService(configuration: try Self.configuration(Self.yaml(Self.before)))
        let point = try #require(bridge.configuration.point(named: "level"))
        let (_, promise) = bridge.tracker.registerEcho(
            of: point,
            value: .integer(9),
            settings: try #require(point.command).ack
        )
        _ = try await bridge.reload(try Self.configuration(Self.yaml(Self.after)))
        // In the new map "level" has another index; the echo is matched by name.
        bridge.handle(Self.message("t/level", "9"))
        #expect(await promise.outcome(timeout: .seconds(5)) == .acknowledged)
    }
}
