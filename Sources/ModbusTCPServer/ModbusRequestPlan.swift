import ModbusCore
import NIOCore

/// What answering one validated request takes: the calls of the host's handlers, in order, and
/// what the reply carries.
///
/// Each function code is described here and nowhere else. ``ModbusRequestDispatcher`` carries a
/// plan out on the event loop when every handler it calls is synchronous, and in a task when one
/// may suspend; both do the same steps in the same order:
/// 1. ``write``: FC5, FC6, FC15, FC16, and FC23, which writes before it reads;
/// 2. ``maskWrite``: FC22 reads the register and writes it back with the masks applied;
/// 3. the read whose values the reply carries (``Reply/values(_:)``): FC1 to FC4, and FC23.
struct ModbusRequestPlan: Sendable {
    /// What the reply carries, after the handlers have run.
    enum Reply: Sendable {
        /// The values of this read, the last step (FC1 to FC4, FC23).
        case values(ModbusReadRequest)
        /// The echo of ``ModbusRequestPlan/write`` (FC5, FC6) or its address and quantity (FC15,
        /// FC16).
        case writeEcho
        /// The echo of FC22: address and masks.
        case maskWriteEcho
        /// FC43/14, answered from the configuration without a handler.
        case deviceIdentification(code: ModbusDeviceIDReadCode, objectID: UInt8)
        /// FC8/00: the request PDU, echoed as is, without a handler.
        case echo(ByteBuffer)
    }

    /// FC22's read-modify-write of one holding register.
    struct MaskWrite: Sendable {
        /// The register's current value.
        var read: ModbusReadRequest
        /// What the request changes.
        var mask: ModbusRegisterMask

        /// The write that stores `(current AND and) OR (or AND NOT and)`, carrying the masks so a
        /// host can tell which bits the master meant to change.
        func write(current: UInt16) -> ModbusWriteRequest {
            ModbusWriteRequest(
                unitID: read.unitID,
                functionCode: .maskWriteRegister,
                area: .holdingRegister,
                address: read.address,
                values: [Self.apply(mask, to: current)],
                mask: mask
            )
        }

        /// The masked value, as the specification defines it.
        static func apply(_ mask: ModbusRegisterMask, to current: UInt16) -> UInt16 {
            (current & mask.andMask) | (mask.orMask & ~mask.andMask)
        }
    }

    /// The request's function code, for the reply and the log.
    var functionCode: ModbusFunctionCode
    /// The first step: a write.
    var write: ModbusWriteRequest?
    /// The second step: FC22's read-modify-write.
    var maskWrite: MaskWrite?
    /// What the reply carries, read last if it is values.
    var reply: Reply

    /// The plan for `request`, from unit `unitID`.
    init(_ request: ModbusRequest, unitID: UInt8) {
        functionCode = request.functionCode
        switch request {
        case .read(let area, let address, let count):
            reply = .values(
                ModbusReadRequest(
                    unitID: unitID,
                    functionCode: functionCode,
                    area: area,
                    address: address,
                    count: count
                )
            )
        case .writeSingleCoil(let address, let value):
            write = ModbusWriteRequest(
                unitID: unitID,
                functionCode: functionCode,
                area: .coil,
                address: address,
                values: [value ? 1 : 0]
            )
            reply = .writeEcho
        case .writeSingleRegister(let address, let value):
            write = ModbusWriteRequest(
                unitID: unitID,
                functionCode: functionCode,
                area: .holdingRegister,
                address: address,
                values: [value]
            )
            reply = .writeEcho
        case .writeMultipleCoils(let address, let values):
            write = ModbusWriteRequest(
                unitID: unitID,
                functionCode: functionCode,
                area: .coil,
                address: address,
                values: values
            )
            reply = .writeEcho
        case .writeMultipleRegisters(let address, let values):
            write = ModbusWriteRequest(
                unitID: unitID,
                functionCode: functionCode,
                area: .holdingRegister,
                address: address,
                values: values
            )
            reply = .writeEcho
        case .maskWriteRegister(let address, let andMask, let orMask):
            maskWrite = MaskWrite(
                read: ModbusReadRequest(
                    unitID: unitID,
                    functionCode: functionCode,
                    area: .holdingRegister,
                    address: address,
                    count: 1
                ),
                mask: ModbusRegisterMask(andMask: andMask, orMask: orMask)
            )
            reply = .maskWriteEcho
        case .readWriteMultipleRegisters(let readAddress, let readCount, let writeAddress, let values):
            // The specification orders the write before the read.
            write = ModbusWriteRequest(
                unitID: unitID,
                functionCode: functionCode,
                area: .holdingRegister,
                address: writeAddress,
                values: values
            )
            reply = .values(
                ModbusReadRequest(
                    unitID: unitID,
                    functionCode: functionCode,
                    area: .holdingRegister,
                    address: readAddress,
                    count: readCount
                )
            )
        case .readDeviceIdentification(let code, let objectID):
            reply = .deviceIdentification(code: code, objectID: objectID)
        case .diagnosticsReturnQueryData(let pdu):
            reply = .echo(pdu)
        }
    }

    /// Whether a step calls the read handler.
    var callsReadHandler: Bool {
        if maskWrite != nil { return true }
        if case .values = reply { return true }
        return false
    }

    /// Whether a step calls the write handler.
    var callsWriteHandler: Bool { write != nil || maskWrite != nil }

    /// Appends the reply PDU of a request whose reply does not carry values.
    ///
    /// - Throws: the exception code device identification answers with (02 for an unknown
    ///   object in individual access).
    func writeFixedReply(
        identification: ModbusDeviceIdentificationResponder,
        into out: inout ByteBuffer
    ) throws {
        switch reply {
        case .writeEcho:
            guard let write else { preconditionFailure("a write echo needs a write") }
            switch write.functionCode {
            case .writeSingleCoil:
                let value: UInt16 = write.values[0] != 0 ? 0xFF00 : 0x0000
                out.writeMultipleIntegers(write.functionCode.rawValue, write.address, value)
            case .writeSingleRegister:
                out.writeMultipleIntegers(write.functionCode.rawValue, write.address, write.values[0])
            default:
                out.writeModbusWriteMultiplePDU(
                    function: write.functionCode,
                    address: write.address,
                    count: write.values.count
                )
            }
        case .maskWriteEcho:
            guard let maskWrite else { preconditionFailure("a mask write echo needs a mask write") }
            out.writeMultipleIntegers(
                functionCode.rawValue,
                maskWrite.read.address,
                maskWrite.mask.andMask,
                maskWrite.mask.orMask
            )
        case .deviceIdentification(let code, let objectID):
            if let failure = identification.writeResponse(code: code, objectID: objectID, into: &out) { throw failure }
        case .echo(let pdu):
            out.writeImmutableBuffer(pdu)
        case .values:
            preconditionFailure("\(functionCode)'s reply carries the values read")
        }
    }
}
