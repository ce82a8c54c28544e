import MQTTTestSupport
import Synchronization
import Testing

@testable import Mosquitto

// The queue between the loop thread and a message sequence's consumer, driven directly: no
// broker, no libmosquitto. Every wait is bounded by the test's own timeout.

private func message(_ index: Int) -> MQTTMessage {
    MQTTMessage(topic: "t/\(index)", payload: Array("\(index)".utf8))
}

private func take(_ buffer: MessageBuffer, _ count: Int) async -> [String] {
    var topics: [String] = []
    for _ in 0..<count {
        guard let next = await buffer.next(isolation: nil) else { break }
        topics.append(next.topic)
    }
    return topics
}

@Suite("MessageBuffer (the hand-over from the loop thread to the consumer)")
struct MessageBufferTests {
    @Test("messages come out in the order they went in, across the reclaiming of taken places")
    func order() async {
        let buffer = MessageBuffer(capacity: nil)
        for index in 0..<5000 { #expect(buffer.yield(message(index)) == .enqueued) }
        // Taken in two halves with more put in between: the array is compacted on the way.
        #expect(await take(buffer, 3000) == (0..<3000).map { "t/\($0)" })
        for index in 5000..<6000 { #expect(buffer.yield(message(index)) == .enqueued) }
        #expect(await take(buffer, 3000) == (3000..<6000).map { "t/\($0)" })
    }

    @Test("a full bounded buffer drops its oldest message for the new one, and says so")
    func dropOldest() async {
        let buffer = MessageBuffer(capacity: 3)
        #expect((0..<3).map { buffer.yield(message($0)) } == [.enqueued, .enqueued, .enqueued])
        #expect(buffer.yield(message(3)) == .dropped)
        #expect(buffer.yield(message(4)) == .dropped)
        #expect(await take(buffer, 3) == ["t/2", "t/3", "t/4"])
        #expect(buffer.yield(message(5)) == .enqueued)
    }

    @Test("a waiting consumer gets the next message handed to it")
    func waitingConsumer() async throws {
        let buffer = MessageBuffer(capacity: 4)
        let consumer = Task { await take(buffer, 2) }
        // Hand over until the consumer has both: whether it was already waiting or not, the two
        // messages reach it, in order.
        #expect(buffer.yield(message(1)) == .enqueued)
        #expect(buffer.yield(message(2)) == .enqueued)
        let topics = try await withTimeout(.seconds(10), "consumer") { await consumer.value }
        #expect(topics == ["t/1", "t/2"])
    }

    @Test("after finish, the buffered messages are still delivered, then the end; later ones are refused")
    func finish() async {
        let ended = Atomic<Int>(0)
        let buffer = MessageBuffer(capacity: nil) { ended.add(1, ordering: .relaxed) }
        _ = buffer.yield(message(1))
        _ = buffer.yield(message(2))
        buffer.finish()
        buffer.finish()
        #expect(buffer.yield(message(3)) == .terminated)
        #expect(await take(buffer, 5) == ["t/1", "t/2"])
        #expect(await buffer.next(isolation: nil) == nil)
        #expect(ended.load(ordering: .relaxed) == 1)
    }

    @Test("finish wakes a waiting consumer with the end")
    func finishWakesWaiter() async throws {
        let buffer = MessageBuffer(capacity: 4)
        let consumer = Task { await buffer.next(isolation: nil) }
        // Whether the consumer is waiting yet or not, finishing an empty buffer ends it.
        buffer.finish()
        let next = try await withTimeout(.seconds(10), "consumer") { await consumer.value }
        #expect(next == nil)
    }

    @Test("cancelling the waiting consumer ends the buffer: it returns nil and later messages are refused")
    func cancelWaiting() async throws {
        let ended = Atomic<Int>(0)
        let buffer = MessageBuffer(capacity: 4) { ended.add(1, ordering: .relaxed) }
        let consumer = Task { await buffer.next(isolation: nil) }
        consumer.cancel()
        let next = try await withTimeout(.seconds(10), "consumer") { await consumer.value }
        #expect(next == nil)
        #expect(buffer.yield(message(1)) == .terminated)
        #expect(ended.load(ordering: .relaxed) == 1)
    }

    @Test("a cancelled consumer stops even while messages are waiting (a flood cannot keep it looping)")
    func cancelWithMessagesWaiting() async throws {
        let buffer = MessageBuffer(capacity: nil)
        for index in 0..<100 { _ = buffer.yield(message(index)) }
        let consumer = Task { () -> Int in
            withUnsafeCurrentTask { $0?.cancel() }
            var taken = 0
            while await buffer.next(isolation: nil) != nil { taken += 1 }
            return taken
        }
        let taken = try await withTimeout(.seconds(10), "consumer") { await consumer.value }
        #expect(taken == 0)
        #expect(buffer.yield(message(100)) == .terminated)
    }
}
