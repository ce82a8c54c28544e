import Testing

@testable import MQTTModbusBridge
@testable import MQTTModbusBridgeConfiguration

/// Readiness and the classification of stray acknowledgements, without a broker.
@Suite("Readiness and stray acknowledgements (no network)")
struct ObservabilityLogicTests {
    @Test("ready only with the broker connected, every subscription acknowledged and the listener up")
    func readinessConditions() {
        let ready = BridgeReadiness(
            brokerConnected: true,
            subscriptionsConfigured: 3,
            subscriptionsAcknowledged: 3,
            modbusListening: true
        )
        #expect(ready.isReady && ready.failing.isEmpty && ready.subscriptionsPending == 0)

        var pending = ready
        pending.subscriptionsAcknowledged = 1
        #expect(!pending.isReady && pending.failing == [.subscriptionsPending] && pending.subscriptionsPending == 2)

        var disconnected = ready
        disconnected.brokerConnected = false
        #expect(disconnected.failing == [.brokerNotConnected, .subscriptionsPending])
        #expect(disconnected.subscriptionsPending == 3, "nothing is in force without a connection")

        var notListening = ready
        notListening.modbusListening = false
        #expect(notListening.failing == [.modbusNotListening])

        let nothingToSubscribe = BridgeReadiness(
            brokerConnected: true,
            subscriptionsConfigured: 0,
            subscriptionsAcknowledged: 0,
            modbusListening: true
        )
        #expect(nothingToSubscribe.isReady)
        #expect(
            pending.json
                == #"{"status":"not_ready","failing":["subscriptions_pending"],"broker_connected":true,"subscriptions":{"configured":3,"acknowledged":1,"pending":2},"modbus_listening":true}"#
        )
    }

    @Test("an ack nobody waits for: duplicate after an answered write, late after an unanswered one, else unmatched")
    func strayAcks() {
        let tracker = AckTracker()
        let settings = AckSettings(mode: .mqtt5)
        let answered = AckTracker.Key.correlationData(Array("a-1".utf8))
        let timedOut = AckTracker.Key.correlationID("a-2")
        let failed = AckTracker.Key.correlationID("a-3")
        _ = tracker.register(answered, settings: settings)
        _ = tracker.register(timedOut, settings: settings)
        _ = tracker.register(failed, settings: settings)

        #expect(tracker.take(answered) != nil)
        tracker.remove(answered)  // the write's cleanup after its answer changes nothing
        tracker.remove(timedOut)
        tracker.failAll(.brokerUnavailable(reason: "test"))

        #expect(tracker.take(answered) == nil && tracker.classify(answered) == .duplicate)
        #expect(tracker.take(timedOut) == nil && tracker.classify(timedOut) == .late)
        #expect(tracker.classify(failed) == .late, "failed when the broker was lost")
        #expect(tracker.classify(.correlationData(Array("other-bridge-1".utf8))) == .unmatched)
    }

    @Test("ended writes are remembered up to a bound; older ones are unmatched")
    func strayAckMemoryIsBounded() {
        let tracker = AckTracker()
        let settings = AckSettings(mode: .correlationID)
        for index in 0...AckTracker.endedCapacity {
            let key = AckTracker.Key.correlationID("w-\(index)")
            _ = tracker.register(key, settings: settings)
            tracker.remove(key)
        }
        #expect(tracker.classify(.correlationID("w-0")) == .unmatched, "the oldest was forgotten")
        #expect(tracker.classify(.correlationID("w-1")) == .late)
        #expect(tracker.classify(.correlationID("w-\(AckTracker.endedCapacity)")) == .late)
        #expect(tracker.pendingCount == 0)
    }
}
