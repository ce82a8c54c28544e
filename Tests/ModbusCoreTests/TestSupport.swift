import ModbusCore
import NIOCore

/// Big-endian bytes of a 16-bit value.
func be(_ value: UInt16) -> [UInt8] { [UInt8(value >> 8), UInt8(truncatingIfNeeded: value)] }

/// A buffer holding exactly `bytes`.
func buffer(_ bytes: [UInt8]) -> ByteBuffer { ByteBuffer(bytes: bytes) }

/// The wire bytes of an MBAP header with arbitrary (possibly invalid) fields.
func mbapHeader(transactionID: UInt16, protocolID: UInt16 = 0, length: UInt16, unitID: UInt8) -> [UInt8] {
    be(transactionID) + be(protocolID) + be(length) + [unitID]
}

/// The wire bytes of a valid frame carrying `pdu`.
func frameBytes(transactionID: UInt16, unitID: UInt8, pdu: [UInt8]) -> [UInt8] {
    mbapHeader(transactionID: transactionID, length: UInt16(pdu.count + 1), unitID: unitID) + pdu
}

/// A decoded frame, as the decoder should produce it.
func frame(transactionID: UInt16, unitID: UInt8, pdu: [UInt8]) -> ModbusTCPFrame {
    ModbusTCPFrame(transactionID: transactionID, unitID: unitID, pdu: ByteBuffer(bytes: pdu))
}

/// Parses a request PDU given as bytes.
func parse(_ bytes: [UInt8]) -> Result<ModbusRequest, ModbusExceptionCode> {
    ModbusRequest.parse(ByteBuffer(bytes: bytes))
}

/// The exception code of a failed parse, or nil if it succeeded.
func parseFailure(_ bytes: [UInt8]) -> ModbusExceptionCode? {
    if case .failure(let code) = parse(bytes) { return code }
    return nil
}

/// The request of a successful parse, or nil if it failed.
func parseSuccess(_ bytes: [UInt8]) -> ModbusRequest? {
    if case .success(let request) = parse(bytes) { return request }
    return nil
}
