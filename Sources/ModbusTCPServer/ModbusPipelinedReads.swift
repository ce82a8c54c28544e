import ModbusCore
import NIOCore

/// A read whose handler suspends, together with the reads a client pipelined right behind it,
/// answered as one group: the suspended handlers run concurrently and the replies still go out
/// in request order.
///
/// Only reads (FC1 to FC4) are grouped. A read changes nothing, so reads may run beside each
/// other in any order; a write, and anything after it, waits until the group is answered, so
/// writes still take effect in request order and a read behind a write sees that write.
struct ModbusPipelinedReads: Sendable {
    /// One request of the group, in request order.
    enum Entry: Sendable {
        /// Answered on the event loop while the group was formed (a synchronous handler, or an
        /// exception found by validation): the reply frame.
        case answered(ByteBuffer)
        /// Its handler may suspend: the index of its reply among ``pending``'s.
        case pending(Int)
    }

    /// A request whose handler runs in the group's task.
    struct PendingRead: Sendable {
        var frame: ModbusTCPFrame
        var plan: ModbusRequestPlan
    }

    /// The most requests one group holds, so that one client's pipeline cannot start an
    /// unbounded number of handler calls at once.
    static let maximumCount = 32

    /// The function codes of the reads that are grouped: FC1 to FC4.
    static let readFunctionCodes: ClosedRange<UInt8> = 1...4

    private(set) var entries: [Entry] = []
    private(set) var pending: [PendingRead] = []

    /// A group that starts with `frame`, whose handler suspends.
    init(first frame: ModbusTCPFrame, plan: ModbusRequestPlan) {
        entries.reserveCapacity(4)
        append(frame, plan: plan)
    }

    /// Whether a request may join a group: a read (FC1 to FC4) while the group has room.
    /// Decided on the function code alone, before validation, since a read that fails
    /// validation is answered with an exception and changes nothing either.
    func mayJoin(_ frame: ModbusTCPFrame) -> Bool {
        entries.count < Self.maximumCount && Self.isRead(frame)
    }

    /// Whether `frame` is a read request (FC1 to FC4).
    static func isRead(_ frame: ModbusTCPFrame) -> Bool {
        guard let function = frame.pdu.getInteger(at: frame.pdu.readerIndex, as: UInt8.self) else {
            return false
        }
        return readFunctionCodes.contains(function)
    }

    /// Whether `plan` may start a group: a read (FC1 to FC4), whose plan writes nothing.
    static func mayStart(_ plan: ModbusRequestPlan) -> Bool {
        readFunctionCodes.contains(plan.functionCode.rawValue)
    }

    /// Adds a request whose handler suspends.
    mutating func append(_ frame: ModbusTCPFrame, plan: ModbusRequestPlan) {
        entries.append(.pending(pending.count))
        pending.append(PendingRead(frame: frame, plan: plan))
    }

    /// Adds a request answered already.
    mutating func append(answered reply: ByteBuffer) {
        entries.append(.answered(reply))
    }

    /// The reply frames in request order, given the replies of ``pending`` in its order.
    func replies(pendingReplies: [ByteBuffer]) -> [ByteBuffer] {
        precondition(pendingReplies.count == pending.count, "one reply per pending read")
        return entries.map { entry in
            switch entry {
            case .answered(let reply): reply
            case .pending(let index): pendingReplies[index]
            }
        }
    }
}
