import NIOCore

/// Splits a TCP byte stream into Modbus TCP frames.
///
/// NIO's `LengthFieldBasedFrameDecoder` cannot frame MBAP (the length field sits at offset 4 and
/// counts the unit id), hence this small decoder. It checks the protocol identifier and the length
/// as soon as the first six bytes are there, so a bad header closes the stream without waiting for
/// a body that may never come. On a short read it leaves the buffer untouched and waits for more.
public struct ModbusTCPFrameDecoder: ByteToMessageDecoder, Sendable {
    public typealias InboundOut = ModbusTCPFrame

    /// Creates a decoder.
    public init() {}

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let frame = try Self.decodeFrame(from: &buffer) else { return .needMoreData }
        context.fireChannelRead(Self.wrapInboundOut(frame))
        return .continue
    }

    public mutating func decodeLast(
        context: ChannelHandlerContext,
        buffer: inout ByteBuffer,
        seenEOF: Bool
    ) throws -> DecodingState {
        // A partial frame at EOF is simply dropped: there is nobody left to answer.
        try decode(context: context, buffer: &buffer)
    }

    /// Decodes one frame from the front of `buffer`, or returns `nil` (consuming nothing) if the
    /// frame is not complete yet.
    ///
    /// - Throws: ``ModbusFramingError`` when the header cannot be trusted.
    @inlinable
    public static func decodeFrame(from buffer: inout ByteBuffer) throws -> ModbusTCPFrame? {
        let start = buffer.readerIndex
        guard let transactionID = buffer.getInteger(at: start, as: UInt16.self),
            let protocolID = buffer.getInteger(at: start + 2, as: UInt16.self),
            let length = buffer.getInteger(at: start + 4, as: UInt16.self)
        else { return nil }
        guard protocolID == 0 else {
            throw ModbusFramingError(reason: .protocolIdentifier(protocolID), transactionID: transactionID)
        }
        guard length >= ModbusTCPLimits.minLengthField, length <= ModbusTCPLimits.maxLengthField else {
            throw ModbusFramingError(reason: .length(length), transactionID: transactionID)
        }
        let total = 6 + Int(length)
        guard buffer.readableBytes >= total else { return nil }
        let unitID = buffer.getInteger(at: start + 6, as: UInt8.self)!
        let pdu = buffer.getSlice(at: start + 7, length: Int(length) - 1)!
        buffer.moveReaderIndex(forwardBy: total)
        return ModbusTCPFrame(transactionID: transactionID, unitID: unitID, pdu: pdu)
    }
}

/// Writes Modbus TCP frames, computing the MBAP length from the PDU.
public struct ModbusTCPFrameEncoder: MessageToByteEncoder, Sendable {
    public typealias OutboundIn = ModbusTCPFrame

    /// Creates an encoder.
    public init() {}

    public func encode(data: ModbusTCPFrame, out: inout ByteBuffer) throws {
        out.writeModbusTCPFrame(data)
    }
}

extension ByteBuffer {
    /// Appends a complete frame (MBAP header and PDU).
    @inlinable
    public mutating func writeModbusTCPFrame(_ frame: ModbusTCPFrame) {
        writeMBAPHeader(transactionID: frame.transactionID, unitID: frame.unitID, pduLength: frame.pdu.readableBytes)
        writeImmutableBuffer(frame.pdu)
    }

    /// Appends an MBAP header for a PDU of `pduLength` bytes.
    @inlinable
    public mutating func writeMBAPHeader(transactionID: UInt16, unitID: UInt8, pduLength: Int) {
        writeMultipleIntegers(transactionID, UInt16(0), UInt16(truncatingIfNeeded: pduLength + 1), unitID)
    }
}
