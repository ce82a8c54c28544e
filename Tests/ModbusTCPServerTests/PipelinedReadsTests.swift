import ModbusCore
import NIOCore
import Testing

@testable import ModbusTCPServer

/// Which pipelined requests are answered together, and in what order their replies go out.
@Suite("Pipelined reads answered as one group (no I/O)")
struct PipelinedReadsTests {
    static func frame(_ pdu: [UInt8], transaction: UInt16) -> ModbusTCPFrame {
        ModbusTCPFrame(transactionID: transaction, unitID: 1, pdu: ByteBuffer(bytes: pdu))
    }

    static func plan(_ request: ModbusRequest) -> ModbusRequestPlan { ModbusRequestPlan(request, unitID: 1) }

    @Test("Only a read starts a group; FC23 and FC22 read as well as write, so they do not")
    func whatStartsAGroup() {
        for area in [ModbusArea.coil, .discreteInput, .holdingRegister, .inputRegister] {
            #expect(ModbusPipelinedReads.mayStart(Self.plan(.read(area: area, address: 0, count: 1))))
        }
        #expect(!ModbusPipelinedReads.mayStart(Self.plan(.writeSingleRegister(address: 0, value: 1))))
        #expect(!ModbusPipelinedReads.mayStart(Self.plan(.writeMultipleCoils(address: 0, values: [1]))))
        #expect(!ModbusPipelinedReads.mayStart(Self.plan(.maskWriteRegister(address: 0, andMask: 1, orMask: 0))))
        #expect(
            !ModbusPipelinedReads.mayStart(
                Self.plan(.readWriteMultipleRegisters(readAddress: 0, readCount: 1, writeAddress: 0, writeValues: [1]))
            )
        )
        #expect(!ModbusPipelinedReads.mayStart(Self.plan(.readDeviceIdentification(code: .basic, objectID: 0))))
    }

    @Test("Reads FC1 to FC4 join a group by function code; writes, FC23, FC43 and an empty PDU do not")
    func whatJoinsAGroup() {
        let group = ModbusPipelinedReads(
            first: Self.frame([3, 0, 0, 0, 1], transaction: 0),
            plan: Self.plan(.read(area: .holdingRegister, address: 0, count: 1))
        )
        for function: UInt8 in 1...4 {
            #expect(group.mayJoin(Self.frame([function, 0, 0, 0, 1], transaction: 1)))
        }
        // A read that validation will refuse (quantity 0) joins too: it is answered 03 and changes nothing.
        #expect(group.mayJoin(Self.frame([3, 0, 0, 0, 0], transaction: 1)))
        for pdu: [UInt8] in [[5, 0, 0, 0xFF, 0], [6, 0, 0, 0, 1], [15], [16], [22], [23], [43, 14, 1, 0], []] {
            #expect(!group.mayJoin(Self.frame(pdu, transaction: 1)), "\(pdu)")
        }
    }

    @Test("A group holds at most maximumCount requests")
    func bounded() {
        var group = ModbusPipelinedReads(
            first: Self.frame([3, 0, 0, 0, 1], transaction: 0),
            plan: Self.plan(.read(area: .holdingRegister, address: 0, count: 1))
        )
        let read = Self.frame([3, 0, 0, 0, 1], transaction: 1)
        while group.mayJoin(read) { group.append(answered: ByteBuffer(bytes: [1])) }
        #expect(group.entries.count == ModbusPipelinedReads.maximumCount)
    }

    @Test("Replies come out in request order, answered and pending interleaved")
    func replyOrder() {
        let readPlan = Self.plan(.read(area: .holdingRegister, address: 0, count: 1))
        var group = ModbusPipelinedReads(first: Self.frame([3, 0, 0, 0, 1], transaction: 0), plan: readPlan)
        group.append(answered: ByteBuffer(bytes: [0xA1]))
        group.append(Self.frame([3, 0, 1, 0, 1], transaction: 2), plan: readPlan)
        group.append(answered: ByteBuffer(bytes: [0xA3]))
        #expect(group.pending.map(\.frame.transactionID) == [0, 2])
        let replies = group.replies(pendingReplies: [ByteBuffer(bytes: [0xB0]), ByteBuffer(bytes: [0xB2])])
        #expect(replies.map { Array($0.readableBytesView) } == [[0xB0], [0xA1], [0xB2], [0xA3]])
    }
}
