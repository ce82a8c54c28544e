import ModbusCore
import NIOCore
import NIOEmbedded
import NIOTestUtils
import Testing

@Suite("MBAP frame decoder")
struct FrameDecoderTests {
    /// A mix of realistic frames: FC3 read, FC16 write, FC43 device id, a 1-byte PDU, a 253-byte PDU.
    static let sampleFrames: [(bytes: [UInt8], frame: ModbusTCPFrame)] = {
        let pdus: [(UInt16, UInt8, [UInt8])] = [
            (0x0001, 0x11, [0x03, 0x00, 0x6B, 0x00, 0x03]),
            (0xABCD, 0xFF, [0x10, 0x00, 0x01, 0x00, 0x02, 0x04, 0x00, 0x0A, 0x01, 0x02]),
            (0x0000, 0x00, [0x2B, 0x0E, 0x01, 0x00]),
            (0xFFFF, 0x01, [0x07]),
            (0x1234, 0x7F, [0x17] + (0..<252).map { UInt8(truncatingIfNeeded: $0) }),
        ]
        return pdus.map { tid, unit, pdu in
            (frameBytes(transactionID: tid, unitID: unit, pdu: pdu), frame(transactionID: tid, unitID: unit, pdu: pdu))
        }
    }()

    @Test("ByteToMessageDecoderVerifier: frames decode identically byte-by-byte, one by one and all at once")
    func verifier() throws {
        let pairs = Self.sampleFrames.map { (buffer($0.bytes), [$0.frame]) }
        try ByteToMessageDecoderVerifier.verifyDecoder(
            inputOutputPairs: pairs,
            decoderFactory: { ModbusTCPFrameDecoder() }
        )
    }

    @Test("ByteToMessageDecoderVerifier: one input holding two frames yields both, in order")
    func verifierTwoFramesPerInput() throws {
        let first = Self.sampleFrames[0]
        let second = Self.sampleFrames[1]
        let third = Self.sampleFrames[3]
        let pairs: [(ByteBuffer, [ModbusTCPFrame])] = [
            (buffer(first.bytes + second.bytes), [first.frame, second.frame]),
            (buffer(third.bytes), [third.frame]),
        ]
        try ByteToMessageDecoderVerifier.verifyDecoder(
            inputOutputPairs: pairs,
            decoderFactory: { ModbusTCPFrameDecoder() }
        )
    }

    @Test("Many pipelined frames in one buffer all come out, in order, through ByteToMessageHandler")
    func manyFramesInOneBuffer() throws {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(ModbusTCPFrameDecoder()))
        var all: [UInt8] = []
        var expected: [ModbusTCPFrame] = []
        for index in 0..<50 {
            let pdu: [UInt8] = [0x03] + be(UInt16(index)) + be(1)
            all += frameBytes(transactionID: UInt16(index), unitID: UInt8(index % 3), pdu: pdu)
            expected.append(frame(transactionID: UInt16(index), unitID: UInt8(index % 3), pdu: pdu))
        }
        try channel.writeInbound(buffer(all))
        for want in expected {
            let got = try channel.readInbound(as: ModbusTCPFrame.self)
            #expect(got == want, "pipelined frames: each one decoded in order with its own transaction id")
        }
        #expect(try channel.readInbound(as: ModbusTCPFrame.self) == nil, "no extra frame")
        #expect(try channel.finish().isClean)
    }

    @Test("A frame split into many pieces is emitted once, only after its last byte")
    func frameSplitInManyPieces() throws {
        let sample = Self.sampleFrames[1]
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(ModbusTCPFrameDecoder()))
        var remaining = sample.bytes[...]
        var pieceSize = 1
        while !remaining.isEmpty {
            let piece = Array(remaining.prefix(pieceSize))
            remaining = remaining.dropFirst(pieceSize)
            try channel.writeInbound(buffer(piece))
            if !remaining.isEmpty {
                #expect(try channel.readInbound(as: ModbusTCPFrame.self) == nil, "incomplete frame must not be emitted")
            }
            pieceSize += 1
        }
        #expect(try channel.readInbound(as: ModbusTCPFrame.self) == sample.frame)
        #expect(try channel.readInbound(as: ModbusTCPFrame.self) == nil)
        #expect(try channel.finish().isClean)
    }

    @Test("A short read returns nil and consumes nothing, for every prefix of a frame")
    func shortReadConsumesNothing() throws {
        let bytes = frameBytes(transactionID: 7, unitID: 1, pdu: [0x06, 0x00, 0x01, 0x00, 0x03])
        for cut in 0..<bytes.count {
            var input = buffer(Array(bytes[..<cut]))
            let before = input.readerIndex
            #expect(try ModbusTCPFrameDecoder.decodeFrame(from: &input) == nil, "prefix of \(cut) bytes is incomplete")
            #expect(input.readerIndex == before, "nothing consumed on a short read")
        }
    }

    @Test("decodeFrame consumes exactly one frame and leaves the next in the buffer")
    func consumesExactlyOneFrame() throws {
        let first = frameBytes(transactionID: 1, unitID: 2, pdu: [0x01, 0x00, 0x00, 0x00, 0x08])
        let second = frameBytes(transactionID: 2, unitID: 2, pdu: [0x05, 0x00, 0x01, 0xFF, 0x00])
        var input = buffer(first + second)
        let decoded = try ModbusTCPFrameDecoder.decodeFrame(from: &input)
        #expect(decoded == frame(transactionID: 1, unitID: 2, pdu: [0x01, 0x00, 0x00, 0x00, 0x08]))
        #expect(input.readableBytes == second.count)
        #expect(
            try ModbusTCPFrameDecoder.decodeFrame(from: &input)
                == frame(transactionID: 2, unitID: 2, pdu: [0x05, 0x00, 0x01, 0xFF, 0x00])
        )
        #expect(input.readableBytes == 0)
    }

    @Test("decodeFrame works when the buffer's reader index is not 0")
    func decodesAtNonZeroReaderIndex() throws {
        var input = buffer(
            [0xEE, 0xEE, 0xEE] + frameBytes(transactionID: 0x0102, unitID: 9, pdu: [0x04, 0x00, 0x00, 0x00, 0x02])
        )
        input.moveReaderIndex(forwardBy: 3)
        let decoded = try ModbusTCPFrameDecoder.decodeFrame(from: &input)
        #expect(decoded == frame(transactionID: 0x0102, unitID: 9, pdu: [0x04, 0x00, 0x00, 0x00, 0x02]))
        #expect(input.readableBytes == 0)
    }

    @Test("Maximum frame: MBAP length 254 (PDU 253 bytes, ADU 260) decodes")
    func maximumFrame() throws {
        let pdu: [UInt8] = [0x10] + [UInt8](repeating: 0xA5, count: 252)
        let bytes = frameBytes(transactionID: 42, unitID: 1, pdu: pdu)
        #expect(bytes.count == ModbusTCPLimits.maxADULength)
        #expect(Array(bytes[4..<6]) == [0x00, 0xFE], "MBAP length 254 = unit id + 253-byte PDU")
        var input = buffer(bytes)
        let decoded = try ModbusTCPFrameDecoder.decodeFrame(from: &input)
        #expect(decoded == frame(transactionID: 42, unitID: 1, pdu: pdu))
        #expect(decoded?.pdu.readableBytes == 253)
    }

    @Test("Minimum frame: MBAP length 2 (unit id + function code) decodes")
    func minimumFrame() throws {
        var input = buffer(mbapHeader(transactionID: 3, length: 2, unitID: 0xFF) + [0x2B])
        let decoded = try ModbusTCPFrameDecoder.decodeFrame(from: &input)
        #expect(decoded == frame(transactionID: 3, unitID: 0xFF, pdu: [0x2B]))
        #expect(decoded?.pdu.readableBytes == 1)
    }

    @Test("Protocol id ≠ 0 throws ModbusFramingError", arguments: [UInt16(1), 0x0100, 0xFFFF])
    func protocolIDNotZero(protocolID: UInt16) throws {
        var input = buffer(
            mbapHeader(transactionID: 0x0A0B, protocolID: protocolID, length: 6, unitID: 1) + [0x03, 0, 0, 0, 1]
        )
        #expect(throws: ModbusFramingError(reason: .protocolIdentifier(protocolID), transactionID: 0x0A0B)) {
            try ModbusTCPFrameDecoder.decodeFrame(from: &input)
        }
    }

    @Test("Protocol id ≠ 0 throws as soon as 6 header bytes are there, before unit id and body")
    func protocolIDCheckedEarly() throws {
        let header = mbapHeader(transactionID: 5, protocolID: 2, length: 6, unitID: 1)
        var five = buffer(Array(header[..<5]))
        #expect(
            try ModbusTCPFrameDecoder.decodeFrame(from: &five) == nil,
            "5 bytes: protocol id and length not both known yet"
        )
        var six = buffer(Array(header[..<6]))
        #expect(throws: ModbusFramingError.self, "6 bytes are enough to reject the header") {
            try ModbusTCPFrameDecoder.decodeFrame(from: &six)
        }
    }

    @Test(
        "MBAP length outside 2...254 throws ModbusFramingError with only 6 header bytes",
        arguments: [UInt16(0), 1, 255, 0xFFFF]
    )
    func badLength(length: UInt16) throws {
        var input = buffer(Array(mbapHeader(transactionID: 0x4321, length: length, unitID: 1)[..<6]))
        #expect(throws: ModbusFramingError(reason: .length(length), transactionID: 0x4321)) {
            try ModbusTCPFrameDecoder.decodeFrame(from: &input)
        }
    }

    @Test("A bad header fails the channel pipeline with ModbusFramingError")
    func badHeaderThroughHandler() throws {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(ModbusTCPFrameDecoder()))
        #expect(throws: ModbusFramingError.self) {
            try channel.writeInbound(buffer(mbapHeader(transactionID: 1, protocolID: 1, length: 6, unitID: 1)))
        }
        _ = try? channel.finish()
    }

    @Test("A good frame before a bad header is still delivered")
    func goodFrameBeforeBadHeader() throws {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(ModbusTCPFrameDecoder()))
        let good = frameBytes(transactionID: 1, unitID: 1, pdu: [0x03, 0x00, 0x00, 0x00, 0x01])
        let bad = mbapHeader(transactionID: 2, length: 300, unitID: 1)
        #expect(throws: ModbusFramingError.self) {
            try channel.writeInbound(buffer(good + bad))
        }
        #expect(
            try channel.readInbound(as: ModbusTCPFrame.self)
                == frame(transactionID: 1, unitID: 1, pdu: [0x03, 0x00, 0x00, 0x00, 0x01])
        )
        _ = try? channel.finish()
    }

    @Test("Framing error descriptions name the bad value and the transaction")
    func framingErrorDescription() {
        let protocolError = ModbusFramingError(reason: .protocolIdentifier(7), transactionID: 99)
        #expect(protocolError.description.contains("7"))
        #expect(protocolError.description.contains("99"))
        let lengthError = ModbusFramingError(reason: .length(300), transactionID: 12)
        #expect(lengthError.description.contains("300"))
        #expect(lengthError.description.contains("2...254"))
    }
}

@Suite("MBAP frame encoder")
struct FrameEncoderTests {
    @Test("Encoded header: transaction id, protocol id 0, MBAP length = PDU + 1, unit id")
    func headerLayout() {
        var out = ByteBuffer()
        out.writeModbusTCPFrame(frame(transactionID: 0xBEEF, unitID: 0x11, pdu: [0x83, 0x02]))
        #expect(
            Array(out.readableBytesView) == [0xBE, 0xEF, 0x00, 0x00, 0x00, 0x03, 0x11, 0x83, 0x02],
            "exception reply: MBAP length 3 (unit id + 2-byte PDU)"
        )
    }

    @Test("writeMBAPHeader writes PDU length + 1")
    func mbapHeaderOnly() {
        var out = ByteBuffer()
        out.writeMBAPHeader(transactionID: 1, unitID: 2, pduLength: 253)
        #expect(Array(out.readableBytesView) == [0x00, 0x01, 0x00, 0x00, 0x00, 0xFE, 0x02])
    }

    @Test("Round trip: encode then decode gives the same frame", arguments: [1, 2, 5, 100, 253])
    func roundTrip(pduLength: Int) throws {
        let pdu: [UInt8] = [0x03] + (1..<pduLength).map { UInt8(truncatingIfNeeded: $0 * 7) }
        let original = frame(transactionID: UInt16(pduLength * 257), unitID: UInt8(pduLength), pdu: pdu)
        var wire = ByteBuffer()
        wire.writeModbusTCPFrame(original)
        #expect(wire.readableBytes == ModbusTCPLimits.mbapHeaderLength + pduLength)
        #expect(wire.getInteger(at: 4, as: UInt16.self) == UInt16(pduLength + 1), "MBAP length = PDU + 1")
        #expect(wire.getInteger(at: 2, as: UInt16.self) == 0, "protocol id 0")
        let decoded = try ModbusTCPFrameDecoder.decodeFrame(from: &wire)
        #expect(decoded == original)
        #expect(wire.readableBytes == 0)
    }

    @Test("Round trip through a channel: ModbusTCPFrameEncoder then ModbusTCPFrameDecoder")
    func roundTripThroughChannel() throws {
        let frames = [
            frame(transactionID: 1, unitID: 1, pdu: [0x03, 0x06, 0x00, 0x01, 0x00, 0x02, 0x00, 0x03]),
            frame(transactionID: 2, unitID: 0xFF, pdu: [0x86, 0x02]),
        ]
        let encoder = EmbeddedChannel(handler: MessageToByteHandler(ModbusTCPFrameEncoder()))
        var wire = ByteBuffer()
        for original in frames {
            try encoder.writeOutbound(original)
            var chunk = try #require(try encoder.readOutbound(as: ByteBuffer.self))
            wire.writeBuffer(&chunk)
        }
        #expect(try encoder.finish().isClean)
        let decoder = EmbeddedChannel(handler: ByteToMessageHandler(ModbusTCPFrameDecoder()))
        try decoder.writeInbound(wire)
        for original in frames {
            #expect(try decoder.readInbound(as: ModbusTCPFrame.self) == original)
        }
        #expect(try decoder.finish().isClean)
    }

    @Test("Encoding writes only the PDU's readable bytes, not bytes before its reader index")
    func encodesReadableBytesOnly() {
        var pdu = buffer([0xAA, 0xBB, 0x06, 0x00, 0x01, 0x00, 0x02])
        pdu.moveReaderIndex(forwardBy: 2)
        var out = ByteBuffer()
        out.writeModbusTCPFrame(ModbusTCPFrame(transactionID: 1, unitID: 1, pdu: pdu))
        #expect(
            Array(out.readableBytesView) == [0x00, 0x01, 0x00, 0x00, 0x00, 0x06, 0x01, 0x06, 0x00, 0x01, 0x00, 0x02]
        )
    }
}
