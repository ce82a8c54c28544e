import NIOCore

/// The rules of one connection's life, kept apart from its I/O: when to answer queued requests,
/// when to pass a read on, when to shut the output and when to close.
///
/// ``ModbusConnectionHandler`` reports every event to it (a request arrived, an asynchronous
/// handler finished, the socket's writability changed, NIO asks for a read, the server asks the
/// connection to stop, a timer fired, an error) and carries out the actions it returns. The
/// handler keeps the queue of frames, the output buffer and the timers; the machine only counts
/// and decides. A value type with no I/O, so each rule is tested alone, and the conditions the
/// rules combine cannot drift apart in the handler.
///
/// The life of a connection (``Phase``):
/// - **serving** → **draining** when the server stops, or straight on to **closingOutput** if
///   nothing is left to answer;
/// - **draining** → **closingOutput** once nothing is left to answer;
/// - **closingOutput** → **halfClosed** when NIO reports the output shut;
/// - any phase → **closed** on an error, the idle timeout, the client's close or the end of the
///   linger.
///
/// While serving or draining, three things vary independently of one another: whether an
/// asynchronous handler is running (later requests wait, so replies stay in order), whether the
/// socket can take more output (answering stops while it cannot), and, while serving, whether a
/// read is held back (the queue is full or the output blocked).
struct ModbusConnectionStateMachine {
    /// What the handler must do after an event.
    enum Action: Hashable {
        /// Nothing.
        case none
        /// Pass a read on to the channel: the one NIO asked for, or one held back earlier.
        case read
        /// Answer queued requests now, within the budget of one ``AnsweringTurn``. After an
        /// asynchronous handler finished, its reply goes out first: it answers the head of the
        /// queue.
        case answerQueued
        /// Answer the rest of the queue in a later event-loop turn, then report
        /// ``continuationStarted()``.
        case scheduleContinuation
        /// Write what is buffered, then shut the output down: NIO sends FIN once every reply
        /// handed to the channel is written, and reports `ChannelEvent.outputClosed`.
        case closeOutput
        /// The output is shut: stop the idle check, and report ``lingerEnded()`` after the linger
        /// unless the client closes first.
        case startLinger
        /// Close the channel.
        case close
        /// Close the channel because it made no progress for the idle timeout.
        case closeIdleConnection
        /// Report ``idleCheckFired(now:)`` at this deadline.
        case scheduleIdleCheck(at: NIODeadline)
    }

    /// One or two actions, to run in order. A fixed-size value, so that reporting an event
    /// allocates nothing.
    struct Actions: Hashable {
        private(set) var first = Action.none
        private(set) var second = Action.none

        /// No action.
        init() {}

        /// `first`, then `second`.
        init(_ first: Action, _ second: Action = .none) {
            self.first = first
            self.second = second
        }

        fileprivate mutating func append(_ action: Action) {
            if first == .none {
                first = action
            } else {
                precondition(second == .none, "an event leads to at most two actions")
                second = action
            }
        }
    }

    /// The requests one event-loop turn may still answer. A turn starts with each
    /// ``Action/answerQueued`` (or continuation) and is a value of its own, so a turn started
    /// while another runs (a write can make the channel writable again at once) has its own budget.
    struct AnsweringTurn {
        /// Requests this turn may still answer.
        fileprivate(set) var budget = ModbusConnectionStateMachine.requestsPerTurn

        /// A fresh turn.
        init() {}
    }

    /// Where a connection is in its life; see the diagram in the type's documentation.
    enum Phase: Hashable {
        /// Reading requests and answering them.
        case serving
        /// Asked to stop: answering what was received, reading and dropping what arrives.
        case draining
        /// Every reply handed to the channel; the output shuts once they are written.
        case closingOutput
        /// Output shut: waiting for the client to close, or for the linger to end.
        case halfClosed
        /// Closed or closing: every event is absorbed.
        case closed
    }

    /// Requests answered synchronously per event-loop turn before other connections get theirs:
    /// one read can hold thousands of pipelined requests, and answering them all at once would
    /// keep every other connection on the event loop waiting.
    static let requestsPerTurn = 256

    /// How long the connection may make no progress before it is closed; `nil`: for ever.
    let idleTimeout: TimeAmount?
    /// Requests queued at which reading stops until the queue shrinks.
    let maxQueuedRequests: Int
    /// When the connection last made progress: requests arrived, a handler finished, the client
    /// read replies.
    private(set) var lastActivity: NIODeadline
    private var state = State.serving(Work())

    private enum State {
        case serving(Work)
        case draining(Work)
        case closingOutput
        case halfClosed
        case closed
    }

    /// The answering side of a connection that still answers requests (serving or draining).
    private struct Work {
        /// Requests received and not answered yet (the handler holds them).
        var queuedRequests = 0
        var handler = HandlerState.idle
        var output = OutputState.writable
        var reads = ReadState.flowing
        /// A later event-loop turn will go on answering the queue.
        var continuationScheduled = false
        /// Requests arrived since the last read completed.
        var receivedSinceReadCompleted = false

        /// Nothing left to answer: the point at which a draining connection shuts its output.
        var isIdle: Bool { handler == .idle && queuedRequests == 0 }
    }

    private enum HandlerState {
        case idle
        /// A request waits for an asynchronous handler; the requests behind it wait too.
        case awaitingAsyncHandler
    }

    private enum OutputState {
        case writable
        /// The socket takes no more for now: answering stops (a client that does not read its
        /// replies gets no more work done for it), and so does reading.
        case blocked
    }

    private enum ReadState {
        case flowing
        /// NIO asked for a read that was not passed on; it is, as soon as reading may go on.
        case held
    }

    /// - Parameters:
    ///   - idleTimeout: close after this long without progress; `nil` never.
    ///   - maxQueuedRequests: stop reading while this many requests wait (at least 1).
    ///   - now: the time the connection opens.
    init(idleTimeout: TimeAmount?, maxQueuedRequests: Int, now: NIODeadline) {
        self.idleTimeout = idleTimeout
        self.maxQueuedRequests = max(1, maxQueuedRequests)
        self.lastActivity = now
    }

    // MARK: Observing

    /// Where the connection is in its life.
    var phase: Phase {
        switch state {
        case .serving: .serving
        case .draining: .draining
        case .closingOutput: .closingOutput
        case .halfClosed: .halfClosed
        case .closed: .closed
        }
    }

    /// Whether requests that arrive are queued: not once the connection stops (they are read and
    /// dropped, see ``quiesceRequested()``) or closes.
    var acceptsRequests: Bool {
        if case .serving = state { true } else { false }
    }

    /// Whether the channel is closed or closing: nothing more is written.
    var isClosed: Bool {
        if case .closed = state { true } else { false }
    }

    /// Whether the server, not the client, keeps further bytes from arriving: a handler is at
    /// work, or reading is held back (queue full, output blocked). A request left incomplete at
    /// the end of the last read is then not the client's delay.
    var isWaitingOnServer: Bool {
        guard case .serving(let work) = state else { return false }
        return work.handler != .idle || mustHoldReads(work, draining: false)
    }

    /// Requests received and not answered yet.
    var queuedRequests: Int {
        switch state {
        case .serving(let work), .draining(let work): work.queuedRequests
        case .closingOutput, .halfClosed, .closed: 0
        }
    }

    // MARK: Events

    /// The handler joined the channel: the connection starts now, and so does its idle timeout.
    mutating func handlerAdded(now: NIODeadline) -> Action {
        lastActivity = now
        guard let idleTimeout else { return .none }
        return .scheduleIdleCheck(at: now + idleTimeout)
    }

    /// A request was cut out of the byte stream and goes to the back of the handler's queue.
    /// Call only while ``acceptsRequests``.
    mutating func requestReceived() {
        guard case .serving(var work) = state else { return }
        work.queuedRequests += 1
        work.receivedSinceReadCompleted = true
        state = .serving(work)
    }

    /// A read from the socket completed. Returns whether requests arrived in it: that is progress,
    /// now recorded, for the idle timeout and for choosing which idle connection to close.
    mutating func readCompleted(now: NIODeadline) -> Bool {
        let received = modifyWork { work in
            defer { work.receivedSinceReadCompleted = false }
            return work.receivedSinceReadCompleted
        }
        guard received == true else { return false }
        lastActivity = now
        return true
    }

    /// Whether the request at the head of the queue is answered now, in `turn`. When it is, it
    /// leaves the queue. Not while a handler runs (replies stay in order), the output is blocked,
    /// the turn's budget is spent or the connection has closed.
    mutating func dequeueRequest(in turn: inout AnsweringTurn) -> Bool {
        modifyWork { work in
            guard work.queuedRequests > 0, work.handler == .idle, work.output == .writable, turn.budget > 0 else {
                return false
            }
            work.queuedRequests -= 1
            turn.budget -= 1
            return true
        } ?? false
    }

    /// The request just dequeued needs an asynchronous handler; the requests behind it wait.
    mutating func asyncHandlerStarted() {
        modifyWork { $0.handler = .awaitingAsyncHandler }
    }

    /// An answering turn stopped (queue empty, handler started, output blocked or budget spent).
    ///
    /// Schedules a continuation when the budget ran out with requests left; passes on a held
    /// read if reading may go on; and once a draining connection has nothing left to answer,
    /// shuts its output.
    mutating func answeringTurnEnded(_ turn: AnsweringTurn) -> Actions {
        switch state {
        case .serving(var work):
            let actions = endTurn(turn, &work, draining: false)
            state = .serving(work)
            return actions
        case .draining(var work):
            var actions = endTurn(turn, &work, draining: true)
            if work.isIdle {
                state = .closingOutput
                actions.append(.closeOutput)
            } else {
                state = .draining(work)
            }
            return actions
        case .closingOutput, .halfClosed, .closed:
            return Actions()
        }
    }

    /// The turn scheduled by ``Action/scheduleContinuation`` began.
    mutating func continuationStarted() -> Action {
        modifyWork { work in
            work.continuationScheduled = false
            return .answerQueued
        } ?? .none
    }

    /// The asynchronous handler of the request at the head of the queue finished, reply ready.
    /// Unless the connection closed meanwhile, that reply goes out, then the queue behind it.
    mutating func asyncHandlerFinished(now: NIODeadline) -> Action {
        guard modifyWork({ $0.handler = .idle }) != nil else { return .none }
        lastActivity = now
        return .answerQueued
    }

    /// NIO asks for a read. It is held back while serving with the queue full or the output
    /// blocked, so a slow client costs bounded memory. Never while stopping: reading goes on,
    /// dropping what arrives, so that the client's close is seen.
    mutating func readRequested() -> Action {
        switch state {
        case .serving(var work):
            guard mustHoldReads(work, draining: false) else { return .read }
            work.reads = .held
            state = .serving(work)
            return .none
        case .draining, .closingOutput, .halfClosed:
            return .read
        case .closed:
            return .none
        }
    }

    /// The socket's writability changed. Writable again means the client read replies: progress,
    /// and answering (and reading) may go on.
    mutating func writabilityChanged(isWritable: Bool, now: NIODeadline) -> Action {
        if case .closed = state { return .none }
        if isWritable { lastActivity = now }
        let answers = modifyWork { work in
            work.output = isWritable ? .writable : .blocked
            return isWritable
        }
        return answers == true ? .answerQueued : .none
    }

    /// The server stops (`ChannelShouldQuiesceEvent`): answer every request received, then shut
    /// the output; what arrives from now on is read and dropped.
    mutating func quiesceRequested() -> Actions {
        switch state {
        case .serving(var work), .draining(var work):
            var actions = Actions()
            if work.reads == .held {
                work.reads = .flowing
                actions.append(.read)
            }
            if work.isIdle {
                state = .closingOutput
                actions.append(.closeOutput)
            } else {
                state = .draining(work)
            }
            return actions
        case .closingOutput, .halfClosed, .closed:
            return Actions()
        }
    }

    /// NIO reports the output shut: every reply is written and the client was sent FIN.
    ///
    /// The client normally closes its side once it has read them, and NIO then closes the
    /// channel. One that does not is closed after a linger, not at once: closing with unread
    /// input makes the kernel reset the connection, and a reset makes the client's system
    /// discard replies it has not read yet.
    mutating func outputClosed() -> Action {
        guard case .closingOutput = state else { return .none }
        state = .halfClosed
        return .startLinger
    }

    /// The linger after the output was shut ended without the client closing.
    mutating func lingerEnded() -> Action {
        guard case .halfClosed = state else { return .none }
        state = .closed
        return .close
    }

    /// The idle check scheduled earlier fired.
    ///
    /// A connection times out unless a handler is at work for it. Requests queued behind a
    /// socket the client does not read do not count as work: such a client makes no progress,
    /// and must not hold a connection for ever. Checking only when the connection could have
    /// become idle, rather than on every request, costs a busy connection nothing.
    mutating func idleCheckFired(now: NIODeadline) -> Action {
        guard let idleTimeout else { return .none }
        let mayTimeOut: Bool
        switch state {
        case .serving(let work), .draining(let work):
            mayTimeOut = work.handler == .idle
        case .closingOutput:
            mayTimeOut = true
        case .halfClosed, .closed:
            // Half-closed: the linger bounds what is left of the connection's life.
            return .none
        }
        if mayTimeOut && now - lastActivity >= idleTimeout {
            state = .closed
            return .closeIdleConnection
        }
        // While a handler runs the connection is not idle: look again a full timeout later.
        return .scheduleIdleCheck(at: mayTimeOut ? lastActivity + idleTimeout : now + idleTimeout)
    }

    /// An error reached the handler (a framing error, a socket error): the connection closes.
    mutating func errorCaught() -> Action {
        if case .closed = state { return .none }
        state = .closed
        return .close
    }

    /// The channel closed, whoever closed it.
    mutating func channelInactive() {
        state = .closed
    }

    // MARK: Rules shared by serving and draining

    /// Applies `change` to the work of a serving or draining connection, which stays in its
    /// phase; `nil` in any other phase.
    private mutating func modifyWork<Result>(_ change: (inout Work) -> Result) -> Result? {
        switch state {
        case .serving(var work):
            let result = change(&work)
            state = .serving(work)
            return result
        case .draining(var work):
            let result = change(&work)
            state = .draining(work)
            return result
        case .closingOutput, .halfClosed, .closed:
            return nil
        }
    }

    private func endTurn(_ turn: AnsweringTurn, _ work: inout Work, draining: Bool) -> Actions {
        var actions = Actions()
        if turn.budget == 0, work.queuedRequests > 0, work.handler == .idle, !work.continuationScheduled {
            work.continuationScheduled = true
            actions.append(.scheduleContinuation)
        }
        if work.reads == .held, !mustHoldReads(work, draining: draining) {
            work.reads = .flowing
            actions.append(.read)
        }
        return actions
    }

    private func mustHoldReads(_ work: Work, draining: Bool) -> Bool {
        !draining && (work.queuedRequests >= maxQueuedRequests || work.output == .blocked)
    }
}
