import Testing

@testable import MQTTModbusBridge
@testable import MQTTModbusBridgeConfiguration

/// The shared ack-timeout list (`AckDeadlineList`, pure: the clock is passed in) and the one
/// sweeper that runs it for every waiting write (`AckDeadlines`).
@Suite("Ack deadlines")
struct AckDeadlinesTests {
    static func promise() -> AckPromise { AckPromise(settings: AckSettings(mode: .mqtt5)) }

    @Test("A sweep returns the writes past their deadline and keeps the others")
    func dueAndKept() {
        let now = ContinuousClock.now
        var list = AckDeadlineList()
        let late = Self.promise()
        let exact = Self.promise()
        let waiting = Self.promise()
        list.add(late, deadline: now - .milliseconds(5))
        list.add(waiting, deadline: now + .seconds(1))
        list.add(exact, deadline: now)
        let swept = list.sweep(now: now, resolution: .milliseconds(10))
        #expect(swept.due.count == 2)
        #expect(swept.due.contains { $0 === late } && swept.due.contains { $0 === exact })
        #expect(list.entries.count == 1 && list.entries[0].promise === waiting)
    }

    @Test("A write already settled (acknowledged) leaves the list at the next sweep and is not timed out")
    func settledLeave() {
        let now = ContinuousClock.now
        var list = AckDeadlineList()
        let answered = Self.promise()
        list.add(answered, deadline: now - .seconds(1))
        #expect(answered.fulfil(.acknowledged))
        let swept = list.sweep(now: now, resolution: .milliseconds(10))
        #expect(swept.due.isEmpty, "an acknowledged write past its deadline must not time out")
        #expect(swept.next == nil && list.isEmpty)
    }

    @Test("The next look is at the earliest deadline, but never later than the resolution")
    func nextLook() {
        let now = ContinuousClock.now
        var list = AckDeadlineList()
        list.add(Self.promise(), deadline: now + .milliseconds(4))
        list.add(Self.promise(), deadline: now + .milliseconds(2))
        #expect(list.sweep(now: now, resolution: .milliseconds(10)).next == now + .milliseconds(2))
        var far = AckDeadlineList()
        far.add(Self.promise(), deadline: now + .seconds(5))
        #expect(far.sweep(now: now, resolution: .milliseconds(10)).next == now + .milliseconds(10))
        var empty = AckDeadlineList()
        #expect(empty.sweep(now: now, resolution: .milliseconds(10)).next == nil)
    }

    @Test("Through the shared sweeper: a write times out after its timeout, not before, by itself")
    func sharedSweeperTimesOut() async {
        let clock = ContinuousClock()
        let start = clock.now
        let outcome = await Self.promise().outcome(timeout: .milliseconds(50))
        let waited = clock.now - start
        #expect(outcome == .timedOut)
        #expect(waited >= .milliseconds(50), "timed out early: \(waited)")
        // A generous bound (a loaded CI machine): what matters is that it ends by itself.
        #expect(waited < .seconds(5), "timed out late: \(waited)")
    }

    @Test("Writes with a long timeout do not delay a later write's short one, and an ack still wins")
    func shortAfterLong() async {
        let long = Self.promise()
        let answered = Self.promise()
        async let longOutcome = long.outcome(timeout: .seconds(30))
        async let answeredOutcome = answered.outcome(timeout: .seconds(30))
        let clock = ContinuousClock()
        let start = clock.now
        #expect(await Self.promise().outcome(timeout: .milliseconds(20)) == .timedOut)
        #expect(clock.now - start < .seconds(5))
        #expect(answered.fulfil(.acknowledged))
        #expect(await answeredOutcome == .acknowledged)
        #expect(long.fulfil(.brokerUnavailable(reason: "test over")))
        #expect(await longOutcome == .brokerUnavailable(reason: "test over"))
    }
}
