import Foundation
import MQTTTestSupport
import Testing

@testable import Mosquitto

@Suite("Message routes: some topics on a buffer of their own")
struct MessageRouteTests {
    @Test("Topic filters match as MQTT says: +, #, $-topics, empty levels")
    func topicFilterMatching() throws {
        func matches(_ filter: String, _ topic: String) throws -> Bool {
            try #require(TopicFilter(filter), "\(filter) is valid").matches(topic)
        }
        #expect(try matches("a/b", "a/b"))
        #expect(try !matches("a/b", "a/b/c"))
        #expect(try !matches("a/b", "a"))
        #expect(try !matches("a/b", "a/c"))
        #expect(try matches("a/+", "a/b"))
        #expect(try matches("a/+", "a/"))
        #expect(try !matches("a/+", "a"))
        #expect(try !matches("a/+", "a/b/c"))
        #expect(try matches("+/+/ack", "x/y/ack"))
        #expect(try matches("a/#", "a"))
        #expect(try matches("a/#", "a/b/c"))
        #expect(try !matches("a/#", "ab"))
        #expect(try matches("#", "anything/at/all"))
        #expect(try !matches("#", "$SYS/broker/load"))
        #expect(try !matches("+/broker", "$SYS/broker"))
        #expect(try matches("$SYS/#", "$SYS/broker"))
        #expect(try matches("dev/ünïcode/+", "dev/ünïcode/x"))
        #expect(try !matches("dev/abc", "dev/abd"))
        for invalid in ["", "a/#/b", "a#", "a/b+", "+a", "a/\u{0}"] {
            #expect(TopicFilter(invalid) == nil, "\(invalid) is not a filter")
        }
        #expect(try #require(TopicFilter("a/+")).isWildcard)
        #expect(try !#require(TopicFilter("a/b")).isWildcard)
    }

    @Test("A client refuses a route with an invalid filter or capacity, and keeps filters a bad update names")
    func invalidRoutes() async throws {
        try await withTestBroker { broker in
            let client = try MQTTClient(configuration: testConfiguration(broker), logger: testLogger)
            #expect(throws: MQTTError.self) { try client.routeMessages(matching: ["a/#/b"], capacity: 10) }
            #expect(throws: MQTTError.self) { try client.routeMessages(matching: ["a"], capacity: 0) }
            let route = try client.routeMessages(matching: ["a", "b/+"], capacity: 10)
            #expect(throws: MQTTError.self) { try route.setFilters(["c", "d#"]) }
            #expect(route.filters == ["a", "b/+"])
        }
    }

    @Test("The ack route loses nothing and keeps its order while the telemetry buffer overflows")
    func routeNeverDropsWhileTelemetryOverflows() async throws {
        let telemetryCount = 2_000
        let ackCount = 200
        // An unbounded broker queue: every message reaches the client, so all the loss this test
        // sees is the client's own (docs/design.md §5.5).
        try await withTestBroker(TestBrokerOptions(maxQueuedMessages: 0)) { broker in
            let subscriber = try MQTTClient(
                configuration: {
                    var configuration = testConfiguration(broker)
                    configuration.messageBufferCapacity = 10
                    return configuration
                }(),
                logger: testLogger
            )
            // Before connecting: no ack can reach the main buffer first. A small buffer that
            // holds the network loop back when full: the consumer below is usually behind.
            let acks = try subscriber.routeMessages(matching: ["dev/+/ack"], capacity: 4, whenFull: .holdBack)
            let received = AsyncRecorder(recording: acks.messages)
            try await withTimeout(.seconds(10), "connect") { try await subscriber.connect() }
            try await subscriber.subscribeForTest("dev/#", qos: .atLeastOnce)

            let publisher = try await connectedClient(broker)
            // Telemetry and acks interleaved, all QoS 1 so the broker drops none of them; nobody
            // reads the telemetry, so its 10-message buffer overflows at once.
            var acksSent = 0
            for index in 0..<telemetryCount {
                try await publisher.publishForTest("dev/\(index % 50)/temperature", "\(index)", qos: .atLeastOnce)
                if index % (telemetryCount / ackCount) == 0 {
                    try await publisher.publishForTest("dev/\(acksSent % 7)/ack", "\(acksSent)", qos: .atLeastOnce)
                    acksSent += 1
                }
            }
            #expect(acksSent == ackCount)
            let acked = try await received.waitUntil("\(ackCount) acks (have \(received.count))", timeout: .seconds(30))
            {
                $0.count >= ackCount
            }
            // Every message published before this SUBACK has passed the client's buffers.
            try await subscriber.subscribeForTest("sync/x", qos: .atMostOnce)

            #expect(acked.map(\.payloadString) == (0..<ackCount).map(String.init), "all acks, in order")
            #expect(acks.droppedMessageCount == 0)
            #expect(subscriber.droppedMessageCount == telemetryCount - 10, "the telemetry buffer overflowed")
            let telemetry = try await MessageCollector(subscriber).waitForCount(10)
            #expect(
                telemetry.map(\.payloadString) == (telemetryCount - 10..<telemetryCount).map(String.init),
                "the telemetry buffer kept the newest, and no ack went there"
            )
            print(
                "route: \(ackCount) acks among \(telemetryCount) telemetry messages: 0 acks dropped, "
                    + "\(subscriber.droppedMessageCount) telemetry dropped, the loop waited \(acks.heldBackCount) times for the ack consumer"
            )
        }
    }

    @Test("holdBack: a full route stops reading until its consumer takes a message, then everything arrives")
    func holdBackWaitsForTheConsumer() async throws {
        try await withTestBroker { broker in
            let subscriber = try MQTTClient(configuration: testConfiguration(broker), logger: testLogger)
            let acks = try subscriber.routeMessages(matching: ["acks/#"], capacity: 2, whenFull: .holdBack)
            try await withTimeout(.seconds(10), "connect") { try await subscriber.connect() }
            try await subscriber.subscribeForTest("#", qos: .atLeastOnce)
            let publisher = try await connectedClient(broker)
            for index in 0..<5 { try await publisher.publishForTest("acks/a", "\(index)", qos: .atLeastOnce) }
            // Two fill the buffer; the third makes the loop thread wait for the consumer.
            try await withTimeout(.seconds(10), "the loop to wait for the route's consumer") {
                while acks.heldBackCount == 0 { try await Task.sleep(for: .milliseconds(10)) }
            }
            let received = AsyncRecorder(recording: acks.messages)
            let all = try await received.waitUntil("5 acks") { $0.count >= 5 }
            #expect(all.map(\.payloadString) == ["0", "1", "2", "3", "4"])
            #expect(acks.droppedMessageCount == 0)
            // The loop runs again: other topics arrive on the client's own sequence.
            let others = MessageCollector(subscriber)
            try await publisher.publishForTest("other/x", "after", qos: .atLeastOnce)
            #expect(try await others.waitForMessage(on: "other/x").payloadString == "after")
        }
    }

    @Test("setFilters moves topics between the route and the main sequence; close gives them back")
    func filtersFollowUpdates() async throws {
        try await withTestBroker { broker in
            let subscriber = try MQTTClient(configuration: testConfiguration(broker), logger: testLogger)
            let route = try subscriber.routeMessages(matching: ["r/a"], capacity: 100)
            let routed = AsyncRecorder(recording: route.messages)
            let main = MessageCollector(subscriber)
            try await withTimeout(.seconds(10), "connect") { try await subscriber.connect() }
            try await subscriber.subscribeForTest("r/#", qos: .atLeastOnce)
            let publisher = try await connectedClient(broker)

            try await publisher.publishForTest("r/a", "1")
            try await publisher.publishForTest("r/b", "2")
            try await routed.waitUntil("r/a on the route") { $0.contains { $0.topic == "r/a" } }
            try await main.waitForMessage(on: "r/b")

            try route.setFilters(["r/+"])
            try await publisher.publishForTest("r/b", "3")
            try await routed.waitUntil("r/b on the route") { $0.contains { $0.payloadString == "3" } }

            route.close()
            try await publisher.publishForTest("r/a", "4")
            try await main.waitForMessage(on: "r/a") { $0.payloadString == "4" }
            #expect(routed.elements.map(\.payloadString) == ["1", "3"])
            #expect(main.messages.map(\.payloadString) == ["2", "4"])
        }
    }
}
