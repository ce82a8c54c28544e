import Foundation
import ModbusCore
import Mosquitto
import Testing

@testable import MQTTModbusBridge
@testable import MQTTModbusBridgeConfiguration

/// How the bridge handles incoming MQTT messages, without a broker: messages are handed to it
/// directly, and acknowledgements are awaited on the tracker's promises.
@Suite("Bridge message handling")
struct MessageHandlingTests {
    static let yaml = """
        broker: { host: 127.0.0.1, port: 1883, protocol: mqtt311 }
        units:
          - id: 1
            points:
              - { name: level, area: holding_register, address: 0, type: int16, state_topic: t/level,
                  command_topic: t/level/set, ack: { mode: state_echo, timeout: 5s } }
              - { name: valve, area: holding_register, address: 1, type: int16, command_topic: t/valve/set,
                  payload: { format: json, path: value },
                  ack: { mode: correlation_id, response_topic: "t/+/ack", timeout: 5s } }
        """

    static func bridge() throws -> MQTTModbusBridgeService {
        try MQTTModbusBridgeService(configuration: try BridgeConfiguration.parse(yaml: yaml, file: "handling.yaml"))
    }

    static func message(_ topic: String, _ text: String, retain: Bool = false) -> MQTTMessage {
        MQTTMessage(topic: topic, payload: Array(text.utf8), retain: retain)
    }

    @Test("a retained state never confirms a state_echo write; the same value live does")
    func retainedStateDoesNotConfirmEcho() async throws {
        let bridge = try Self.bridge()
        let index = try #require(bridge.map.index(of: "level"))
        let point = bridge.map.points[index]
        let (_, promise) = bridge.tracker.registerEcho(
            of: point,
            value: .integer(42),
            settings: try #require(point.command).ack
        )
        bridge.handle(Self.message("t/level", "42", retain: true))
        #expect(await promise.outcome(timeout: .milliseconds(100)) == .timedOut, "a retained 42 is old news")
        let (_, live) = bridge.tracker.registerEcho(
            of: point,
            value: .integer(42),
            settings: try #require(point.command).ack
        )
        bridge.handle(Self.message("t/level", "42"))
        #expect(await live.outcome(timeout: .seconds(5)) == .acknowledged)
    }

    @Test("a correlation_id ack on a topic matching a wildcard response_topic is recognised")
    func wildcardAckTopic() async throws {
        let bridge = try Self.bridge()
        let point = try #require(bridge.configuration.point(named: "valve"))
        let promise = bridge.tracker.register(.correlationID("abc-1"), settings: try #require(point.command).ack)
        bridge.handle(Self.message("t/other/ack", #"{"id": "abc-2", "ok": true}"#))
        bridge.handle(Self.message("t/valve/ack", #"{"id": "abc-1", "ok": true}"#))
        #expect(await promise.outcome(timeout: .seconds(5)) == .acknowledged)
        #expect(bridge.routes.correlationIDFields(forAckTopic: "t/a/b/ack").isEmpty, "+ is one level")
    }

    @Test(
        "ack topics have a path of their own: response and correlation_id ack topics, not state_echo's state topic; they follow a reload"
    )
    func ackRouteFollowsTheTopicMap() async throws {
        let bridge = try Self.bridge()
        #expect(bridge.routes.ackFilters == ["t/+/ack"], "the state_echo point's state topic is telemetry")
        #expect(bridge.acks.filters == ["t/+/ack"])
        #expect(bridge.acks.overflowPolicy == .holdBack, "an ack is never dropped")
        #expect(bridge.routes.isAckOnly("t/valve/ack"))
        #expect(!bridge.routes.isAckOnly("t/level"))

        // An ack handed to the ack path resolves its write.
        let point = try #require(bridge.configuration.point(named: "valve"))
        let promise = bridge.tracker.register(.correlationID("abc-9"), settings: try #require(point.command).ack)
        bridge.handleAcknowledgement(Self.message("t/valve/ack", #"{"id": "abc-9", "ok": true}"#))
        #expect(await promise.outcome(timeout: .seconds(5)) == .acknowledged)

        let reloaded =
            Self.yaml.replacingOccurrences(of: #"response_topic: "t/+/ack""#, with: "response_topic: t/valve/reply")
                + """

                      - { name: pump, area: holding_register, address: 2, type: int16, command_topic: t/pump/set,
                          payload: { format: json, path: value },
                          ack: { mode: correlation_id, response_topic: t/pump/reply, timeout: 5s } }
                """
        _ = try await bridge.reload(try BridgeConfiguration.parse(yaml: reloaded, file: "handling.yaml"))
        #expect(bridge.routes.ackFilters == ["t/pump/reply", "t/valve/reply"])
        #expect(bridge.acks.filters == ["t/pump/reply", "t/valve/reply"], "the route follows the map in force")
    }

    @Test("a written value does not overwrite a state that arrived while the write waited")
    func writtenValueYieldsToNewerState() throws {
        let bridge = try Self.bridge()
        let index = try #require(bridge.map.index(of: "level"))
        bridge.handle(Self.message("t/level", "10"))
        let token = bridge.cache.lastUpdate(of: index)
        // The device reports 25 (say, clamped) before the write of 30 is acknowledged.
        bridge.handle(Self.message("t/level", "25"))
        bridge.cache.update(point: index, image: .words([30]), ifUnchangedSince: token)
        #expect(try read(bridge.cache, unit: 1, .holdingRegister, 0, 1) == [25])
        // With nothing newer, the written value is what reads return.
        bridge.cache.update(point: index, image: .words([30]), ifUnchangedSince: bridge.cache.lastUpdate(of: index))
        #expect(try read(bridge.cache, unit: 1, .holdingRegister, 0, 1) == [30])
    }

    /// Found by the soak (docs/soak.md): state messages received just before the broker was
    /// lost, still in the telemetry buffer when the loss made every value stale, were applied
    /// afterwards and served as live values while the broker was away.
    @Test("a state message of a lost broker connection, handled after the loss, leaves its point missing")
    func messageOfALostConnectionStaysStale() throws {
        let bridge = try Self.bridge()
        func level(_ text: String, connection: UInt64) -> MQTTMessage {
            MQTTMessage(topic: "t/level", payload: Array(text.utf8), connection: connection)
        }
        bridge.handle(level("5", connection: 1))
        #expect(try read(bridge.cache, unit: 1, .holdingRegister, 0, 1) == [5])

        bridge.brokerConnectionLost(through: 1)
        #expect(
            exception { _ = try read(bridge.cache, unit: 1, .holdingRegister, 0, 1) }
                == .gatewayTargetDeviceFailedToRespond
        )
        // Buffered before the loss, handled after it: the broker is still away.
        bridge.handle(level("6", connection: 1))
        #expect(
            exception { _ = try read(bridge.cache, unit: 1, .holdingRegister, 0, 1) }
                == .gatewayTargetDeviceFailedToRespond,
            "a value of the lost connection must not make the point fresh again"
        )
        // The next connection's values (its retained states first) are live.
        bridge.handle(level("7", connection: 2))
        #expect(try read(bridge.cache, unit: 1, .holdingRegister, 0, 1) == [7])
        // A message not received from a broker (connection 0) is always applied.
        bridge.brokerConnectionLost(through: 2)
        bridge.handle(level("8", connection: 0))
        #expect(try read(bridge.cache, unit: 1, .holdingRegister, 0, 1) == [8])
        #expect(MQTTModbusBridgeService.isFromLostConnection(level("9", connection: 2), lostConnection: 2))
        #expect(!MQTTModbusBridgeService.isFromLostConnection(level("9", connection: 3), lostConnection: 2))
    }
}
