import NIOCore
import Testing

@testable import ModbusTCPServer

/// The connection's rules, event by event, without a channel or a socket.
@Suite("Connection state machine: each transition and the rules it combines")
struct ConnectionStateMachineTests {
    typealias Machine = ModbusConnectionStateMachine
    typealias Actions = ModbusConnectionStateMachine.Actions

    static let start = NIODeadline.uptimeNanoseconds(1_000_000_000)
    static func at(_ seconds: Int64) -> NIODeadline { start + .seconds(seconds) }

    static func machine(idleTimeout: TimeAmount? = .seconds(10), maxQueued: Int = 64) -> Machine {
        var machine = Machine(idleTimeout: idleTimeout, maxQueuedRequests: maxQueued, now: .uptimeNanoseconds(0))
        _ = machine.handlerAdded(now: start)
        return machine
    }

    /// Queues `count` requests, as one read that completes at `now`.
    static func receive(_ count: Int, into machine: inout Machine, now: NIODeadline = start) {
        for _ in 0..<count { machine.requestReceived() }
        _ = machine.readCompleted(now: now)
    }

    /// How many requests a turn answered, and what its end asked for.
    struct Turn: Equatable {
        var answered: Int
        var actions: Actions
        init(_ answered: Int, _ actions: Actions) {
            self.answered = answered
            self.actions = actions
        }
    }

    /// Runs one answering turn as the handler does. `startsAsyncHandler` says which answers (by
    /// their index in the turn) need a handler that suspends.
    static func answerTurn(_ machine: inout Machine, startsAsyncHandler: (Int) -> Bool = { _ in false }) -> Turn {
        var turn = Machine.AnsweringTurn()
        var answered = 0
        while machine.dequeueRequest(in: &turn) {
            if startsAsyncHandler(answered) { machine.asyncHandlerStarted() }
            answered += 1
        }
        return Turn(answered, machine.answeringTurnEnded(turn))
    }

    // MARK: Serving

    @Test("A new connection serves: it schedules its idle check, passes reads on and answers what arrives")
    func serving() {
        var machine = Machine(idleTimeout: .seconds(10), maxQueuedRequests: 64, now: .uptimeNanoseconds(0))
        #expect(machine.handlerAdded(now: Self.start) == .scheduleIdleCheck(at: Self.at(10)))
        #expect(machine.phase == .serving && machine.acceptsRequests)
        #expect(machine.readRequested() == .read)
        Self.receive(3, into: &machine)
        #expect(machine.queuedRequests == 3)
        #expect(Self.answerTurn(&machine) == Turn(3, Actions()))
        #expect(machine.queuedRequests == 0)
    }

    @Test("A turn answers at most 256 requests; the rest is answered in a continuation, scheduled once")
    func budgetPerTurn() {
        var machine = Self.machine(maxQueued: 1000)
        Self.receive(300, into: &machine)
        let first = Self.answerTurn(&machine)
        #expect(first.answered == Machine.requestsPerTurn)
        #expect(first.actions == Actions(.scheduleContinuation))
        // Another turn spending its budget before the continuation ran does not schedule a second one.
        Self.receive(300, into: &machine)
        #expect(Self.answerTurn(&machine) == Turn(256, Actions()))
        #expect(machine.continuationStarted() == .answerQueued)
        let second = Self.answerTurn(&machine)
        #expect(second.answered == 88 && second.actions == Actions())
    }

    @Test("A turn that spends its budget on the last queued request schedules no continuation")
    func budgetSpentExactly() {
        var machine = Self.machine(maxQueued: 1000)
        Self.receive(256, into: &machine)
        #expect(Self.answerTurn(&machine) == Turn(256, Actions()))
    }

    @Test("A request waiting for an async handler holds the requests behind it until the handler finishes")
    func asyncHandlerHoldsQueue() {
        var machine = Self.machine()
        Self.receive(3, into: &machine)
        let turn = Self.answerTurn(&machine, startsAsyncHandler: { $0 == 0 })
        #expect(turn.answered == 1 && turn.actions == Actions(), "no continuation while a handler runs")
        #expect(Self.answerTurn(&machine).answered == 0, "still waiting")
        #expect(machine.asyncHandlerFinished(now: Self.at(1)) == .answerQueued)
        #expect(Self.answerTurn(&machine).answered == 2)
    }

    @Test("A turn that spends its budget on a request with an async handler schedules no continuation")
    func budgetSpentOnAsyncHandler() {
        var machine = Self.machine(maxQueued: 1000)
        Self.receive(300, into: &machine)
        let turn = Self.answerTurn(&machine, startsAsyncHandler: { $0 == 255 })
        #expect(turn.answered == 256 && turn.actions == Actions())
    }

    // MARK: Flow control

    @Test("Output blocked: answering stops and reads are held; writable again resumes both")
    func outputBlocked() {
        var machine = Self.machine()
        #expect(machine.writabilityChanged(isWritable: false, now: Self.at(1)) == .none)
        Self.receive(2, into: &machine)
        #expect(Self.answerTurn(&machine) == Turn(0, Actions()), "no answers while the socket takes no more")
        #expect(machine.readRequested() == .none, "the read is held")
        #expect(machine.writabilityChanged(isWritable: true, now: Self.at(2)) == .answerQueued)
        #expect(Self.answerTurn(&machine) == Turn(2, Actions(.read)), "the held read is passed on")
        #expect(machine.readRequested() == .read)
    }

    @Test("Output blocked in the middle of a turn stops that turn")
    func outputBlockedMidTurn() {
        var machine = Self.machine()
        Self.receive(5, into: &machine)
        var turn = Machine.AnsweringTurn()
        let first = machine.dequeueRequest(in: &turn)
        let second = machine.dequeueRequest(in: &turn)
        #expect(first && second)
        // A write of the replies filled the socket.
        _ = machine.writabilityChanged(isWritable: false, now: Self.at(1))
        let third = machine.dequeueRequest(in: &turn)
        #expect(!third)
        #expect(machine.answeringTurnEnded(turn) == Actions())
        #expect(machine.queuedRequests == 3)
    }

    @Test("A full queue holds reads; they resume once a turn shrinks the queue")
    func fullQueueHoldsReads() {
        var machine = Self.machine(maxQueued: 4)
        _ = machine.writabilityChanged(isWritable: false, now: Self.at(0))
        Self.receive(4, into: &machine)
        #expect(machine.readRequested() == .none)
        _ = machine.writabilityChanged(isWritable: true, now: Self.at(1))
        #expect(Self.answerTurn(&machine) == Turn(4, Actions(.read)))
    }

    @Test("A turn that spends its budget and shrinks a full queue asks for a continuation and the held read")
    func continuationAndRead() {
        var machine = Self.machine(maxQueued: 300)
        Self.receive(300, into: &machine)
        #expect(machine.readRequested() == .none)
        #expect(Self.answerTurn(&machine) == Turn(256, Actions(.scheduleContinuation, .read)))
    }

    @Test("Writable again counts as progress for the idle timeout; blocked does not")
    func writabilityIsProgress() {
        var machine = Self.machine()
        _ = machine.writabilityChanged(isWritable: false, now: Self.at(3))
        #expect(machine.lastActivity == Self.start)
        _ = machine.writabilityChanged(isWritable: true, now: Self.at(4))
        #expect(machine.lastActivity == Self.at(4))
    }

    @Test("A read completing counts as progress only when requests arrived in it")
    func readCompletedIsProgress() {
        var machine = Self.machine()
        #expect(machine.readCompleted(now: Self.at(1)) == false)
        #expect(machine.lastActivity == Self.start)
        machine.requestReceived()
        #expect(machine.readCompleted(now: Self.at(2)) == true)
        #expect(machine.lastActivity == Self.at(2))
        #expect(machine.readCompleted(now: Self.at(3)) == false, "reported once per read")
    }

    // MARK: Graceful stop

    @Test("Quiesce with nothing to answer shuts the output at once")
    func quiesceIdle() {
        var machine = Self.machine()
        #expect(machine.quiesceRequested() == Actions(.closeOutput))
        #expect(machine.phase == .closingOutput && !machine.acceptsRequests)
    }

    @Test("Quiesce while a handler runs: draining; the output is shut only once it finished and the queue is answered")
    func quiesceWhileHandlerRuns() {
        var machine = Self.machine()
        Self.receive(2, into: &machine)
        _ = Self.answerTurn(&machine, startsAsyncHandler: { $0 == 0 })
        #expect(machine.quiesceRequested() == Actions())
        #expect(machine.phase == .draining && !machine.acceptsRequests, "what arrives now is dropped")
        #expect(machine.quiesceRequested() == Actions(), "a second request to stop changes nothing")
        #expect(machine.asyncHandlerFinished(now: Self.at(1)) == .answerQueued)
        #expect(Self.answerTurn(&machine) == Turn(1, Actions(.closeOutput)), "the last reply, then the output shuts")
        #expect(machine.phase == .closingOutput)
    }

    @Test("Reads are not held while draining: the held read is passed on, and later ones too")
    func noHeldReadsWhileDraining() {
        var machine = Self.machine(maxQueued: 2)
        _ = machine.writabilityChanged(isWritable: false, now: Self.at(0))
        Self.receive(2, into: &machine)
        #expect(machine.readRequested() == .none)
        #expect(machine.quiesceRequested() == Actions(.read), "requests left: no close yet")
        #expect(machine.readRequested() == .read, "queue full and output blocked, but draining")
        #expect(machine.writabilityChanged(isWritable: true, now: Self.at(1)) == .answerQueued)
        #expect(Self.answerTurn(&machine) == Turn(2, Actions(.closeOutput)))
    }

    @Test("Quiesce with a read held and nothing queued: the read is passed on and the output shut")
    func quiesceWithHeldReadAndEmptyQueue() {
        var machine = Self.machine()
        _ = machine.writabilityChanged(isWritable: false, now: Self.at(0))
        #expect(machine.readRequested() == .none)
        #expect(machine.quiesceRequested() == Actions(.read, .closeOutput))
    }

    @Test("Draining with more than a turn's budget queued: continuations first, the output shut after the last")
    func drainingOverSeveralTurns() {
        var machine = Self.machine(maxQueued: 1000)
        Self.receive(300, into: &machine)
        _ = machine.writabilityChanged(isWritable: false, now: Self.at(0))
        _ = machine.quiesceRequested()
        _ = machine.writabilityChanged(isWritable: true, now: Self.at(1))
        #expect(Self.answerTurn(&machine) == Turn(256, Actions(.scheduleContinuation)))
        #expect(machine.phase == .draining)
        #expect(machine.continuationStarted() == .answerQueued)
        #expect(Self.answerTurn(&machine) == Turn(44, Actions(.closeOutput)))
    }

    @Test("Output shut: the linger starts; a client that does not close is closed when it ends")
    func linger() {
        var machine = Self.machine()
        #expect(machine.outputClosed() == .none, "not ours: the output was not being shut")
        _ = machine.quiesceRequested()
        #expect(machine.readRequested() == .read, "reading goes on to see the client's close")
        #expect(machine.outputClosed() == .startLinger)
        #expect(machine.phase == .halfClosed)
        #expect(machine.readRequested() == .read)
        #expect(machine.idleCheckFired(now: Self.at(60)) == .none, "the linger bounds what is left")
        #expect(machine.lingerEnded() == .close)
        #expect(machine.phase == .closed)
    }

    @Test("The client closing while the output shuts ends the connection; the linger then does nothing")
    func clientClosesFirst() {
        var machine = Self.machine()
        _ = machine.quiesceRequested()
        _ = machine.outputClosed()
        machine.channelInactive()
        #expect(machine.lingerEnded() == .none)
    }

    // MARK: Idle timeout

    @Test("Idle timeout: a connection without progress for the timeout is closed")
    func idleTimeout() {
        var machine = Self.machine()
        #expect(machine.idleCheckFired(now: Self.at(10)) == .closeIdleConnection)
        #expect(machine.phase == .closed)
    }

    @Test("Idle timeout: progress moves the next check to a full timeout after it")
    func idleTimeoutAfterProgress() {
        var machine = Self.machine()
        Self.receive(1, into: &machine, now: Self.at(4))
        _ = Self.answerTurn(&machine)
        #expect(machine.idleCheckFired(now: Self.at(10)) == .scheduleIdleCheck(at: Self.at(14)))
        #expect(machine.idleCheckFired(now: Self.at(14)) == .closeIdleConnection)
    }

    @Test("Idle timeout does not fire while a handler runs; it looks again a full timeout later")
    func idleTimeoutWhileHandlerRuns() {
        var machine = Self.machine()
        Self.receive(1, into: &machine)
        _ = Self.answerTurn(&machine, startsAsyncHandler: { _ in true })
        #expect(machine.idleCheckFired(now: Self.at(10)) == .scheduleIdleCheck(at: Self.at(20)))
        #expect(machine.idleCheckFired(now: Self.at(20)) == .scheduleIdleCheck(at: Self.at(30)))
        _ = machine.asyncHandlerFinished(now: Self.at(25))
        #expect(machine.idleCheckFired(now: Self.at(30)) == .scheduleIdleCheck(at: Self.at(35)))
    }

    @Test("Idle timeout fires while the output is blocked with requests queued: such a client makes no progress")
    func idleTimeoutWhileOutputBlocked() {
        var machine = Self.machine()
        Self.receive(5, into: &machine)
        _ = machine.writabilityChanged(isWritable: false, now: Self.at(0))
        #expect(machine.idleCheckFired(now: Self.at(10)) == .closeIdleConnection)
    }

    @Test("Idle timeout also closes a stopping connection whose client does not read its last replies")
    func idleTimeoutWhileOutputShuts() {
        var machine = Self.machine()
        _ = machine.quiesceRequested()
        #expect(machine.idleCheckFired(now: Self.at(10)) == .closeIdleConnection)
    }

    @Test("Without an idle timeout no check is scheduled")
    func noIdleTimeout() {
        var machine = Machine(idleTimeout: nil, maxQueuedRequests: 64, now: Self.start)
        #expect(machine.handlerAdded(now: Self.start) == .none)
        #expect(machine.idleCheckFired(now: Self.at(1_000_000)) == .none)
    }

    // MARK: Errors and closing

    @Test("An error closes the connection, once")
    func error() {
        var machine = Self.machine()
        Self.receive(2, into: &machine)
        #expect(machine.errorCaught() == .close)
        #expect(machine.errorCaught() == .none)
        #expect(machine.isClosed)
    }

    @Test("Closed absorbs everything")
    func closedAbsorbs() {
        var machine = Self.machine()
        Self.receive(3, into: &machine)
        _ = Self.answerTurn(&machine, startsAsyncHandler: { $0 == 0 })
        machine.channelInactive()
        #expect(machine.isClosed && !machine.acceptsRequests && machine.queuedRequests == 0)
        machine.requestReceived()
        #expect(machine.readCompleted(now: Self.at(1)) == false)
        #expect(Self.answerTurn(&machine) == Turn(0, Actions()))
        #expect(machine.asyncHandlerFinished(now: Self.at(1)) == .none, "the reply has nowhere to go")
        #expect(machine.continuationStarted() == .none)
        #expect(machine.readRequested() == .none)
        #expect(machine.writabilityChanged(isWritable: true, now: Self.at(2)) == .none)
        #expect(machine.writabilityChanged(isWritable: false, now: Self.at(2)) == .none)
        #expect(machine.quiesceRequested() == Actions())
        #expect(machine.outputClosed() == .none)
        #expect(machine.lingerEnded() == .none)
        #expect(machine.idleCheckFired(now: Self.at(100)) == .none)
        #expect(machine.errorCaught() == .none)
        #expect(machine.phase == .closed)
    }
}
