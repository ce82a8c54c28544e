import Foundation
import Logging
import MQTTTestSupport
import Mosquitto
import Testing

@Suite("Throughput and back-pressure")
struct BurstTests {
    @Test("100,000 QoS 0 messages arrive complete and in order at one subscriber")
    func burst() async throws {
        let count = 100_000
        // The broker's default per-client limits drop QoS 0 messages to a
        // subscriber that falls behind (max_queued_messages; docs/design.md §5.5). This test is about our
        // client losing nothing, so the broker's queue is unbounded here.
        try await withTestBroker(TestBrokerOptions(maxQueuedMessages: 0)) { broker in
            let subscriber = try await connectedClient(broker)
            let publisher = try await connectedClient(broker)
            try await subscriber.subscribeForTest("burst/data", qos: .atMostOnce)

            let consumer = Task { () -> (received: Int, outOfOrder: Int) in
                var expected: UInt64 = 0
                var outOfOrder = 0
                for await message in subscriber.messages {
                    let sequence = message.payload.prefix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
                    if sequence != expected { outOfOrder += 1 }
                    expected = sequence + 1
                    if expected == UInt64(count) { break }
                }
                return (Int(expected), outOfOrder)
            }

            let start = ContinuousClock.now
            let padding = Array("plant/area-1/line-2/value".utf8)
            for sequence in 0..<UInt64(count) {
                let bytes = (0..<8).map { UInt8(truncatingIfNeeded: sequence >> (56 - 8 * $0)) }
                try await publisher.publish(topic: "burst/data", payload: bytes + padding, qos: .atMostOnce)
            }
            let published = ContinuousClock.now - start
            let result = try await withTimeout(.seconds(60), "\(count) messages") {
                await consumer.valueCancellingOnExit()
            }
            let elapsed = ContinuousClock.now - start
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            print(
                "burst: published \(count) in \(published), received all in \(elapsed) (\(Int(Double(count) / seconds)) msg/s)"
            )

            #expect(result.received == count)
            #expect(result.outOfOrder == 0)
            #expect(subscriber.droppedMessageCount == 0)
            #expect(!broker.logText.contains("Outgoing messages are being dropped"))
        }
    }

    @Test("a consumer slower than the broker loses the oldest messages, counted and logged")
    func droppedMessagesAreCounted() async throws {
        let logs = CapturedLogs()
        try await withTestBroker { broker in
            let subscriber = try await connectedClient(broker) {
                $0.messageBufferCapacity = 10
            }
            // Rebuild with the capturing logger (connectedClient uses the test logger).
            var configuration = subscriber.configuration
            configuration.clientID = "slow-consumer"
            let slow = try MQTTClient(configuration: configuration, logger: logs.logger)
            try await withTimeout(.seconds(10), "connect") { try await slow.connect() }
            try await slow.subscribeForTest("flood/#", qos: .atMostOnce)

            let publisher = try await connectedClient(broker)
            for index in 0..<100 {
                try await publisher.publishForTest("flood/value", "\(index)", qos: .atLeastOnce)
            }
            // The broker acknowledged all 100, so they are queued to `slow`
            // before this SUBSCRIBE; its SUBACK arrives after them. Once it
            // returns, all 100 went through the (unread) buffer.
            try await slow.subscribeForTest("flood-sync/x", qos: .atMostOnce)
            #expect(slow.droppedMessageCount == 90)

            let kept = try await MessageCollector(slow).waitForCount(10).map(\.payloadString)
            #expect(kept == (90..<100).map(String.init), "the newest messages are kept")
            #expect(logs.messages.contains { $0.contains("too slow") }, "the loss is logged")
        }
    }
}
