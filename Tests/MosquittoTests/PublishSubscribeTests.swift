import Foundation
import MQTTTestSupport
import Mosquitto
import Testing

@Suite("Publish and subscribe through a real mosquitto")
struct PublishSubscribeTests {
    @Test("a message makes the round trip with its bytes, topic and QoS", arguments: MQTTQoS.allCases)
    func roundTrip(qos: MQTTQoS) async throws {
        try await withTestBroker { broker in
            let subscriber = try await connectedClient(broker)
            let publisher = try await connectedClient(broker)
            let received = MessageCollector(subscriber)
            let granted = try await subscriber.subscribeForTest("plant/boiler/temp", qos: .exactlyOnce)
            #expect(granted == .exactlyOnce)

            // Binary payload, including NUL and bytes that are not UTF-8.
            let payload: [UInt8] = [0x00, 0x01, 0xFF, 0x80, 0x7F] + Array("QoS \(qos.rawValue)".utf8)
            try await withTimeout(.seconds(10), "publish") {
                try await publisher.publish(topic: "plant/boiler/temp", payload: payload, qos: qos)
            }
            let messages = try await received.waitForCount(1)
            #expect(messages.count == 1)
            #expect(messages[0].topic == "plant/boiler/temp")
            #expect(messages[0].payload == payload)
            #expect(messages[0].qos == qos)
            #expect(messages[0].retain == false)
            try await publisher.disconnectForTest()
            try await subscriber.disconnectForTest()
        }
    }

    @Test("a retained message is delivered on subscribe with the retain flag set")
    func retainedMessage() async throws {
        try await withTestBroker { broker in
            let publisher = try await connectedClient(broker)
            try await publisher.publishForTest("plant/pump/state", "running", qos: .atLeastOnce, retain: true)

            let subscriber = try await connectedClient(broker)
            let received = MessageCollector(subscriber)
            try await subscriber.subscribeForTest("plant/pump/#")
            let retained = try await received.waitForCount(1)
            #expect(retained[0].topic == "plant/pump/state")
            #expect(retained[0].payloadString == "running")
            #expect(retained[0].retain == true)

            // A live publication to the same topic is not flagged as retained.
            try await publisher.publishForTest("plant/pump/state", "stopped", qos: .atLeastOnce, retain: true)
            let live = try await received.waitForCount(2)
            #expect(live[1].payloadString == "stopped")
            #expect(live[1].retain == false)
        }
    }

    @Test("wildcard filters + and # match exactly the right topics")
    func wildcards() async throws {
        try await withTestBroker { broker in
            let subscriber = try await connectedClient(broker)
            let publisher = try await connectedClient(broker)
            let received = MessageCollector(subscriber)
            try await subscriber.subscribeForTest("site/+/temp")
            try await subscriber.subscribeForTest("alarms/#")

            let published = [
                "site/a/temp",  // matches +
                "site/a/b/temp",  // + is one level only
                "site/temp",  // + needs a level
                "alarms",  // # includes the parent level
                "alarms/boiler/high",  // any depth
                "other/alarms",  // no match
                "site/b/temp",  // matches +
                "alarms/end",  // sentinel, matches #
            ]
            // QoS 1 from one publisher: the broker forwards them in this order.
            for topic in published {
                try await publisher.publishForTest(topic, topic, qos: .atLeastOnce)
            }
            let messages = try await received.waitForCount(5)
            #expect(
                messages.map(\.topic) == ["site/a/temp", "alarms", "alarms/boiler/high", "site/b/temp", "alarms/end"]
            )
        }
    }

    @Test("unsubscribe stops delivery for that filter only")
    func unsubscribe() async throws {
        try await withTestBroker { broker in
            let subscriber = try await connectedClient(broker)
            let publisher = try await connectedClient(broker)
            let received = MessageCollector(subscriber)
            try await subscriber.subscribeForTest("unsub/a")
            try await subscriber.subscribeForTest("unsub/sentinel")
            try await publisher.publishForTest("unsub/a", "before")
            try await received.waitForCount(1)

            try await withTimeout(.seconds(10), "UNSUBACK") { try await subscriber.unsubscribe("unsub/a") }
            try await publisher.publishForTest("unsub/a", "after")
            try await publisher.publishForTest("unsub/sentinel", "end")
            let messages = try await received.waitForCount(2)
            // The sentinel was published after "after"; had "after" been
            // delivered it would have arrived first.
            #expect(messages.map(\.payloadString) == ["before", "end"])
        }
    }

    /// Median and minimum of `count` QoS 1 request/response round trips
    /// between two clients (each waits for its PUBACK and for the answer).
    private func requestResponseRoundTrips(
        _ broker: TestBroker,
        noDelay: Bool,
        count: Int
    ) async throws
        -> (minimum: Duration, median: Duration)
    {
        let requester = try await connectedClient(broker) { $0.tcpNoDelay = noDelay }
        let responder = try await connectedClient(broker) { $0.tcpNoDelay = noDelay }
        try await responder.subscribeForTest("rr/request", qos: .atLeastOnce)
        try await requester.subscribeForTest("rr/response", qos: .atLeastOnce)
        let responses = MessageCollector(requester)
        let echo = Task {
            for await request in responder.messages {
                try await responder.publish(topic: "rr/response", payload: request.payload, qos: .atLeastOnce)
            }
        }
        defer { echo.cancel() }
        var samples: [Duration] = []
        for index in 0..<count {
            let start = ContinuousClock.now
            try await requester.publishForTest("rr/request", "\(index)", qos: .atLeastOnce)
            try await responses.waitForCount(index + 1)
            samples.append(ContinuousClock.now - start)
        }
        samples.sort()
        return (samples[0], samples[count / 2])
    }

    @Test("QoS 1 request/response takes a fraction of a millisecond with TCP_NODELAY, ~88 ms without")
    func tcpNoDelay() async throws {
        try await withTestBroker { broker in
            // Default configuration: TCP_NODELAY on (and on in the broker).
            let fast = try await self.requestResponseRoundTrips(broker, noDelay: true, count: 20)
            // Nagle's algorithm on the clients meets the broker's delayed ACKs.
            let slow = try await self.requestResponseRoundTrips(broker, noDelay: false, count: 8)
            print("QoS 1 request/response: TCP_NODELAY median \(fast.median), Nagle median \(slow.median)")
            // The minimum, not the median, so a loaded machine cannot fail it.
            #expect(fast.minimum < .milliseconds(20), "TCP_NODELAY round trip \(fast.minimum)")
            #expect(slow.minimum > .milliseconds(30), "the measurement must be able to see Nagle's delay")
        }
    }

    @Test("publishing with MQTT 3.1.1 works and refuses MQTT 5 properties")
    func mqtt311() async throws {
        try await withTestBroker { broker in
            let subscriber = try await connectedClient(broker, protocolVersion: .v311)
            let publisher = try await connectedClient(broker, protocolVersion: .v311)
            let received = MessageCollector(subscriber)
            try await subscriber.subscribeForTest("v311/#", qos: .atLeastOnce)
            try await publisher.publishForTest("v311/x", "hello", qos: .exactlyOnce)
            let messages = try await received.waitForCount(1)
            #expect(messages[0].payloadString == "hello")
            #expect(messages[0].qos == .atLeastOnce)  // downgraded to the subscription's QoS
            #expect(messages[0].properties.isEmpty)

            let error = await #expect(throws: MQTTError.self) {
                try await publisher.publish(
                    topic: "v311/x",
                    payload: [1],
                    properties: MQTTProperties(responseTopic: "reply")
                )
            }
            #expect(error?.code == .notSupported)
        }
    }

    @Test("invalid topics are rejected without disturbing the connection")
    func invalidTopic() async throws {
        try await withTestBroker { broker in
            let client = try await connectedClient(broker)
            let error = await #expect(throws: MQTTError.self) {
                try await client.publish(topic: "bad/+/topic", payload: [1], qos: .atLeastOnce)
            }
            #expect(error?.code == .invalidArgument)
            let subscribeError = await #expect(throws: MQTTError.self) {
                try await client.subscribe("bad/#/filter")
            }
            #expect(subscribeError?.code == .invalidArgument)
            #expect(client.state == .connected)
        }
    }
}

@Suite("Batched subscriptions through a real mosquitto")
struct BatchedSubscribeTests {
    @Test("2,500 filters in one call: each granted, a malformed one fails alone, counts are right, messages arrive")
    func manyFilters() async throws {
        try await withTestBroker { broker in
            let subscriber = try await connectedClient(broker)
            let publisher = try await connectedClient(broker)
            let received = MessageCollector(subscriber)
            var list = (0..<2_500).map { "batch/\($0)/value" }
            list.insert("batch/#/bad", at: 1_234)
            let filters = list
            let results = try await withTimeout(.seconds(30), "batched SUBACKs") {
                try await subscriber.subscribe(filters, qos: .atLeastOnce)
            }
            #expect(results.count == filters.count)
            for (filter, result) in zip(filters, results) where filter != "batch/#/bad" {
                #expect((try? result.get()) == .atLeastOnce, "\(filter): \(result)")
            }
            guard case .failure(let malformed) = results[1_234] else {
                Issue.record("the malformed filter was granted: \(results[1_234])")
                return
            }
            #expect(malformed.code == .invalidArgument)
            #expect(
                subscriber.subscriptionCounts
                    == MQTTSubscriptionCounts(remembered: 2_500, acknowledged: 2_500, pending: 0)
            )
            try await publisher.publishForTest("batch/2499/value", "last", qos: .atLeastOnce)
            try await publisher.publishForTest("batch/0/value", "first", qos: .atLeastOnce)
            let messages = try await received.waitForCount(2)
            #expect(Set(messages.map(\.payloadString)) == ["last", "first"])
            try await publisher.disconnectForTest()
            try await subscriber.disconnectForTest()
        }
    }

    @Test("while disconnected every filter of a batch fails with notConnected")
    func disconnected() async throws {
        try await withTestBroker { broker in
            let client = try await connectedClient(broker)
            try await client.disconnectForTest()
            let results = try await client.subscribe(["x/1", "x/2"])
            #expect(results.count == 2)
            for result in results {
                guard case .failure(let error) = result else {
                    Issue.record("granted while disconnected")
                    continue
                }
                #expect(error.code == .notConnected)
            }
            #expect(client.subscriptionCounts.remembered == 0)
        }
    }
}

@Suite("Broker refusals carry the MQTT 5 reason")
struct RefusalTests {
    // mosquitto 2.0.11's acl_file does not check subscriptions ("FIXME" in
    // its source), so only the publish side of ACL refusals can be shown here.
    @Test("a publish denied by the broker's ACL fails with the broker's reason code")
    func aclRefusals() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("acl-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let aclFile = directory.appendingPathComponent("acl")
        // Lines before any "user" line apply to anonymous clients.
        try "topic readwrite open/#\ntopic deny closed/#\n".write(to: aclFile, atomically: true, encoding: .utf8)
        try await withTestBroker(TestBrokerOptions(extraLines: ["acl_file \(aclFile.path)"])) { broker in
            let client = try await connectedClient(broker)
            try await client.subscribeForTest("open/#")
            try await client.publishForTest("open/x", "allowed", qos: .atLeastOnce)

            let publishError = await #expect(throws: MQTTError.self) {
                try await withTimeout(.seconds(10), "PUBACK") {
                    try await client.publish(topic: "closed/x", payload: [1], qos: .atLeastOnce)
                }
            }
            #expect(publishError?.code == .publishRejected)
            #expect(publishError?.mqttReasonCode == 0x87)
            #expect(publishError?.reason == "Not authorized", "\(String(describing: publishError))")
            #expect(client.state == .connected, "a refusal does not cost the connection")
        }
    }
}
