import Foundation
import MQTTTestSupport
import Mosquitto
import Testing

@Suite("MQTT 5 request/response")
struct RequestResponseTests {
    @Test("a request with response topic and correlation data is answered and matched")
    func requestResponse() async throws {
        try await withTestBroker { broker in
            let requester = try await connectedClient(broker)
            let responder = try await connectedClient(broker)
            let requests = MessageCollector(responder)
            let responses = MessageCollector(requester)
            try await responder.subscribeForTest("devices/+/command", qos: .atLeastOnce)
            let replyTopic = "gateway/replies/\(UUID().uuidString)"
            try await requester.subscribeForTest(replyTopic, qos: .atLeastOnce)

            // The responder answers every request on its response topic with
            // the request's correlation data, as an MQTT 5 device would.
            let answering = Task {
                let request = try await requests.waitForCount(1)[0]
                let replyTo = try #require(request.properties.responseTopic)
                try await responder.publish(
                    topic: replyTo,
                    payload: Array("ok:\(request.payloadString)".utf8),
                    qos: .atLeastOnce,
                    properties: MQTTProperties(
                        correlationData: request.properties.correlationData,
                        userProperties: [MQTTUserProperty("status", "accepted")],
                        contentType: "text/plain"
                    )
                )
                return request
            }

            // Another requester's answer on the same topic must not match.
            let correlation: [UInt8] = [0xDE, 0xAD, 0x00, 0x01]
            try await requester.publishForTest(
                "devices/boiler/command",
                "setpoint=21.5",
                qos: .atLeastOnce,
                properties: MQTTProperties(
                    responseTopic: replyTopic,
                    correlationData: correlation,
                    userProperties: [MQTTUserProperty("unit", "1"), MQTTUserProperty("unit", "2")],
                    contentType: "text/plain",
                    payloadFormat: .utf8,
                    messageExpiryInterval: 30
                )
            )

            let request = try await withTimeout(.seconds(10), "responder") {
                try await answering.valueCancellingOnExit()
            }
            #expect(request.topic == "devices/boiler/command")
            #expect(request.properties.responseTopic == replyTopic)
            #expect(request.properties.correlationData == correlation)
            #expect(
                request.properties.userProperties == [MQTTUserProperty("unit", "1"), MQTTUserProperty("unit", "2")]
            )
            #expect(request.properties.contentType == "text/plain")
            #expect(request.properties.payloadFormat == .utf8)
            #expect(request.properties.messageExpiryInterval.map { $0 <= 30 && $0 > 0 } == true)

            let reply = try await responses.waitForCount(1)[0]
            #expect(reply.topic == replyTopic)
            #expect(
                reply.properties.correlationData == correlation,
                "the answer carries the request's correlation data"
            )
            #expect(reply.properties.userProperty("status") == "accepted")
            #expect(reply.payloadString == "ok:setpoint=21.5")
        }
    }

    @Test("the last will is published when asked for at disconnection, and not after a normal one")
    func lastWill() async throws {
        try await withTestBroker { broker in
            let watcher = try await connectedClient(broker)
            let received = MessageCollector(watcher)
            try await watcher.subscribeForTest("gateway/status/#")

            let will = MQTTWill(
                topic: "gateway/status/a",
                payload: Array("offline".utf8),
                qos: .atLeastOnce,
                retain: false,
                properties: MQTTProperties(userProperties: [MQTTUserProperty("reason", "will")])
            )
            let normal = try await connectedClient(broker) { $0.will = will }
            try await normal.disconnectForTest()
            let withWill = try await connectedClient(broker) {
                $0.will = MQTTWill(topic: "gateway/status/b", payload: Array("offline".utf8), qos: .atLeastOnce)
            }
            try await withTimeout(.seconds(10), "disconnect") { await withWill.disconnect(publishingWill: true) }

            let messages = try await received.waitForCount(1)
            // Only b's will: a disconnected normally, before b.
            #expect(messages.map(\.topic) == ["gateway/status/b"])
            #expect(messages[0].payloadString == "offline")
        }
    }
}
