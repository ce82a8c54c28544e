import NIOCore

/// One Modbus TCP application data unit: the MBAP header's fields and the PDU.
///
/// The protocol identifier is not stored: a frame whose protocol identifier is not 0 is never
/// decoded (see ``ModbusTCPFrameDecoder``), and encoding always writes 0.
public struct ModbusTCPFrame: Sendable, Hashable {
    /// Chosen by the client, echoed unchanged in the reply.
    public var transactionID: UInt16
    /// The unit (slave) identifier, echoed unchanged in the reply.
    public var unitID: UInt8
    /// Function code and data. Between 1 and ``ModbusTCPLimits/maxPDULength`` bytes.
    public var pdu: ByteBuffer

    /// Creates a frame.
    public init(transactionID: UInt16, unitID: UInt8, pdu: ByteBuffer) {
        self.transactionID = transactionID
        self.unitID = unitID
        self.pdu = pdu
    }
}

/// Size limits of Modbus TCP (Modbus Messaging on TCP/IP Implementation Guide V1.0b §3.1.3).
public enum ModbusTCPLimits {
    /// The MBAP header: transaction id (2), protocol id (2), length (2), unit id (1).
    public static let mbapHeaderLength = 7
    /// The largest PDU: function code plus 252 bytes of data.
    public static let maxPDULength = 253
    /// The largest ADU: MBAP header plus the largest PDU.
    public static let maxADULength = mbapHeaderLength + maxPDULength
    /// The MBAP length field counts the unit id and the PDU: at least unit id + function code.
    public static let minLengthField: UInt16 = 2
    /// The MBAP length field's largest valid value: unit id + the largest PDU.
    public static let maxLengthField: UInt16 = 1 + UInt16(maxPDULength)
}

/// A frame header that cannot be trusted, which leaves the byte stream unsynchronised.
///
/// The only safe reaction is to close that connection; the server keeps serving the others.
public struct ModbusFramingError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What was wrong with the header.
    public struct Reason: Hashable, Sendable {
        fileprivate enum Base: Hashable, Sendable {
            case protocolIdentifier(UInt16)
            case length(UInt16)
        }
        fileprivate var base: Base

        /// The protocol identifier was not 0 (Modbus).
        public static func protocolIdentifier(_ value: UInt16) -> Self { Self(base: .protocolIdentifier(value)) }
        /// The length field was outside 2...254.
        public static func length(_ value: UInt16) -> Self { Self(base: .length(value)) }
    }

    /// What was wrong.
    public var reason: Reason
    /// The transaction id of the offending header, for logs.
    public var transactionID: UInt16

    /// Creates a framing error.
    public init(reason: Reason, transactionID: UInt16) {
        self.reason = reason
        self.transactionID = transactionID
    }

    public var description: String {
        switch reason.base {
        case .protocolIdentifier(let value):
            "MBAP protocol identifier \(value) is not 0 (transaction \(transactionID)); stream cannot be trusted"
        case .length(let value):
            "MBAP length \(value) outside \(ModbusTCPLimits.minLengthField)...\(ModbusTCPLimits.maxLengthField) (transaction \(transactionID)); stream cannot be trusted"
        }
    }
}
