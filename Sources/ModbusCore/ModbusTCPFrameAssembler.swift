import NIOCore

/// Cuts Modbus TCP frames out of a byte stream that arrives in reads of any size, keeping between
/// reads only the bytes of the one frame a read ended in.
///
/// Frames are decoded where they lie in each read; only a frame split across reads is copied
/// (its head kept from one read, completed from the next). What is kept never exceeds one frame
/// (at most 260 bytes), however the stream is cut: keeping the read buffer itself and appending
/// the next read to it would keep every byte it ever held, so a client whose writes never end on
/// a frame boundary could grow it without limit.
///
/// ```swift
/// while let frame = try assembler.nextFrame(from: &bytes) { handle(frame) }
/// assembler.keepRemainder(of: &bytes)
/// ```
public struct ModbusTCPFrameAssembler: Sendable {
    private var partial: ByteBuffer?

    /// An assembler with nothing kept.
    public init() {}

    /// Bytes of an incomplete frame kept from earlier reads.
    public var bufferedByteCount: Int { partial?.readableBytes ?? 0 }

    /// The storage those bytes occupy (what a connection costs between reads).
    public var bufferedCapacity: Int { partial?.capacity ?? 0 }

    /// The next whole frame: the one begun in an earlier read, completed from the head of `bytes`,
    /// or the next one in `bytes`. `nil` when `bytes` holds no further whole frame; then call
    /// ``keepRemainder(of:)``.
    ///
    /// - Throws: ``ModbusFramingError`` when a header cannot be trusted (the stream cannot be
    ///   resynchronised: close the connection).
    public mutating func nextFrame(from bytes: inout ByteBuffer) throws -> ModbusTCPFrame? {
        guard var head = partial.take() else { return try ModbusTCPFrameDecoder.decodeFrame(from: &bytes) }
        func take(_ count: Int) {
            guard count > 0, var slice = bytes.readSlice(length: min(count, bytes.readableBytes)) else { return }
            head.writeBuffer(&slice)
        }
        // The header first: its length field says how long the frame is. An invalid length makes
        // decodeFrame throw; capping it keeps the copy within one frame until then.
        take(Self.headerLength - head.readableBytes)
        if let length = head.getInteger(at: head.readerIndex + 4, as: UInt16.self) {
            take(Self.headerLength + Int(min(length, ModbusTCPLimits.maxLengthField)) - head.readableBytes)
        }
        if let frame = try ModbusTCPFrameDecoder.decodeFrame(from: &head) { return frame }
        partial = head
        return nil
    }

    /// Keeps the unread bytes of `bytes` (less than one frame) for the next read, as a copy: the
    /// read buffer itself is not retained.
    public mutating func keepRemainder(of bytes: inout ByteBuffer) {
        guard bytes.readableBytes > 0 else { return }
        if partial != nil {
            // nextFrame(from:) stopped before the kept frame was complete, so it took all of
            // `bytes`; anything left here would be a misuse. Append rather than lose it.
            partial!.writeBuffer(&bytes)
            return
        }
        var rest = ByteBufferAllocator().buffer(capacity: bytes.readableBytes)
        rest.writeBuffer(&bytes)
        partial = rest
    }

    /// Transaction id, protocol id and length: the bytes before a frame's unit id.
    private static let headerLength = 6
}
