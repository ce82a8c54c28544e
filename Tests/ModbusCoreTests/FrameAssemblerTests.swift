import MQTTTestSupport
import ModbusCore
import NIOCore
import Testing

@Suite("MBAP frame assembler")
struct FrameAssemblerTests {

    /// `count` frames with PDUs of 1...253 bytes, as bytes and as the frames they must give.
    static func stream(_ count: Int, generator: inout SplitMix64) -> (bytes: [UInt8], frames: [ModbusTCPFrame]) {
        var bytes: [UInt8] = []
        var frames: [ModbusTCPFrame] = []
        for index in 0..<count {
            let pdu = (0..<Int.random(in: 1...253, using: &generator)).map { _ in
                UInt8.random(in: 0...255, using: &generator)
            }
            let transaction = UInt16(truncatingIfNeeded: index)
            bytes += frameBytes(transactionID: transaction, unitID: UInt8(index % 256), pdu: pdu)
            frames.append(frame(transactionID: transaction, unitID: UInt8(index % 256), pdu: pdu))
        }
        return (bytes, frames)
    }

    /// Feeds `bytes` in reads cut by `cut` (the length of the next read) and returns the frames.
    static func assemble(
        _ bytes: [UInt8],
        cut: (Int) -> Int,
        check: (ModbusTCPFrameAssembler) -> Void = { _ in }
    ) throws -> [ModbusTCPFrame] {
        var assembler = ModbusTCPFrameAssembler()
        var frames: [ModbusTCPFrame] = []
        var offset = 0
        while offset < bytes.count {
            let length = min(cut(offset), bytes.count - offset)
            var read = ByteBuffer(bytes: bytes[offset..<(offset + length)])
            offset += length
            while let frame = try assembler.nextFrame(from: &read) { frames.append(frame) }
            assembler.keepRemainder(of: &read)
            #expect(read.readableBytes == 0)
            check(assembler)
        }
        #expect(assembler.bufferedByteCount == 0, "nothing left over at the end of whole frames")
        return frames
    }

    @Test("frames cut into reads of any size come out whole and in order", arguments: [1, 2, 5, 6, 7, 13, 260, 4096])
    func fixedCuts(readSize: Int) throws {
        var generator = SplitMix64(seed: UInt64(readSize))
        let (bytes, frames) = Self.stream(200, generator: &generator)
        #expect(try Self.assemble(bytes) { _ in readSize } == frames)
    }

    @Test("random cuts: whole frames in order; what is kept between reads never exceeds one frame")
    func randomCuts() throws {
        var generator = SplitMix64(seed: 0x5EED)
        let (bytes, frames) = Self.stream(2_000, generator: &generator)
        var cuts = SplitMix64(seed: 42)
        var largestKept = 0
        let assembled = try Self.assemble(
            bytes,
            cut: { _ in Int.random(in: 1...700, using: &cuts) },
            check: { assembler in largestKept = max(largestKept, assembler.bufferedCapacity) }
        )
        #expect(assembled == frames)
        #expect(largestKept <= 512, "kept storage \(largestKept) bytes")
    }

    @Test("a stream whose reads never end on a frame boundary does not grow what is kept")
    func neverAligned() throws {
        // 12-byte FC3 requests sent in 1,000-byte writes: 1000 = 83 × 12 + 4, so every read but
        // a few ends inside a frame. 3 MB in all.
        let request = frameBytes(transactionID: 1, unitID: 1, pdu: [0x03, 0x00, 0x00, 0x00, 0x0A])
        let bytes = Array([[UInt8]](repeating: request, count: 250_000).joined())
        var largestKept = 0
        var count = 0
        var assembler = ModbusTCPFrameAssembler()
        var offset = 0
        while offset < bytes.count {
            let end = min(offset + 1000, bytes.count)
            var read = ByteBuffer(bytes: bytes[offset..<end])
            offset = end
            while try assembler.nextFrame(from: &read) != nil { count += 1 }
            assembler.keepRemainder(of: &read)
            largestKept = max(largestKept, assembler.bufferedCapacity)
        }
        #expect(count == 250_000)
        #expect(largestKept <= 16, "kept storage \(largestKept) bytes for at most 11 bytes of a frame")
    }

    @Test("a bad header split across reads is reported as soon as its six bytes are there")
    func badHeaderAcrossReads() throws {
        var assembler = ModbusTCPFrameAssembler()
        var first = ByteBuffer(bytes: [0x00, 0x01, 0x00])  // transaction 1, then half a protocol id
        #expect(try assembler.nextFrame(from: &first) == nil)
        assembler.keepRemainder(of: &first)
        var second = ByteBuffer(bytes: [0x07, 0x00, 0x06, 0x01, 0x03])  // protocol id 7
        #expect(throws: ModbusFramingError.self) { try assembler.nextFrame(from: &second) }

        var lengthAssembler = ModbusTCPFrameAssembler()
        var head = ByteBuffer(bytes: [0x00, 0x01, 0x00, 0x00, 0x01])
        #expect(try lengthAssembler.nextFrame(from: &head) == nil)
        lengthAssembler.keepRemainder(of: &head)
        var tail = ByteBuffer(bytes: [0x00] + [UInt8](repeating: 0, count: 300))  // length 256 > 254
        #expect(throws: ModbusFramingError.self) { try lengthAssembler.nextFrame(from: &tail) }
    }
}
