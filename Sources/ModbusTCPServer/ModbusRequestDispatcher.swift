import Logging
import ModbusCore
import NIOCore

/// Turns request frames into reply frames by calling the host's handlers.
///
/// Pure with respect to the network: it writes bytes into a buffer and never touches a channel,
/// so a connection can batch the replies of several pipelined requests into one write.
struct ModbusRequestDispatcher: Sendable {
    let read: ModbusReadHandler
    let write: ModbusWriteHandler?
    let units: ModbusUnitFilter
    let identification: ModbusDeviceIdentificationResponder
    let logger: Logger

    /// What became of a request handled on the event loop.
    enum Outcome {
        /// The reply frame was appended.
        case answered
        /// A handler must suspend; nothing was appended. Call ``answerAsynchronously``.
        case suspend(ModbusRequest)
    }

    /// A handler broke its contract (wrong number of values, a bit that is not 0 or 1).
    struct HandlerContractViolation: Error, CustomStringConvertible {
        var description: String
    }

    // MARK: - Synchronous path (on the event loop)

    /// Appends the reply frame for `frame` to `out`, unless a handler must suspend.
    func answerSynchronously(_ frame: ModbusTCPFrame, into out: inout ByteBuffer) -> Outcome {
        let function = frame.pdu.getInteger(at: frame.pdu.readerIndex, as: UInt8.self) ?? 0
        let request: ModbusRequest
        switch validate(frame) {
        case .failure(let code):
            writeFrame(frame, into: &out) { $0.writeModbusExceptionPDU(function: function, code: code) }
            return .answered
        case .success(let valid):
            request = valid
        }
        guard canAnswerSynchronously(request) else { return .suspend(request) }
        writeFrame(frame, into: &out) { out in
            let pduStart = out.writerIndex
            do {
                try executeSynchronously(request, unitID: frame.unitID, into: &out)
            } catch {
                out.moveWriterIndex(to: pduStart)
                out.writeModbusExceptionPDU(function: function, code: exceptionCode(for: error, request, frame))
            }
        }
        return .answered
    }

    /// The checks before any handler runs: unit filter (0B), served function code (01), then the
    /// request's own validation (03, then 02).
    private func validate(_ frame: ModbusTCPFrame) -> Result<ModbusRequest, ModbusExceptionCode> {
        guard units.serves(frame.unitID) else { return .failure(.gatewayTargetDeviceFailedToRespond) }
        let function = ModbusFunctionCode(rawValue: frame.pdu.getInteger(at: frame.pdu.readerIndex) ?? 0)
        if function.isWrite && write == nil { return .failure(.illegalFunction) }
        return ModbusRequest.parse(frame.pdu)
    }

    private func canAnswerSynchronously(_ request: ModbusRequest) -> Bool {
        switch request {
        case .read:
            read.isSynchronous
        case .writeSingleCoil, .writeSingleRegister, .writeMultipleCoils, .writeMultipleRegisters:
            write?.isSynchronous ?? true
        case .maskWriteRegister, .readWriteMultipleRegisters:
            read.isSynchronous && (write?.isSynchronous ?? true)
        case .readDeviceIdentification, .diagnosticsReturnQueryData:
            true
        }
    }

    private func executeSynchronously(_ request: ModbusRequest, unitID: UInt8, into out: inout ByteBuffer) throws {
        switch request {
        case .read(let area, let address, let count):
            try readSynchronously(
                ModbusReadRequest(unitID: unitID, functionCode: request.functionCode, area: area, address: address, count: count),
                into: &out)
        case .readWriteMultipleRegisters(let readAddress, let readCount, let writeAddress, let values):
            // The specification orders the write before the read.
            try writeSynchronously(ModbusWriteRequest(
                unitID: unitID, functionCode: .readWriteMultipleRegisters, area: .holdingRegister,
                address: writeAddress, values: values))
            try readSynchronously(
                ModbusReadRequest(
                    unitID: unitID, functionCode: .readWriteMultipleRegisters, area: .holdingRegister,
                    address: readAddress, count: readCount),
                into: &out)
        case .maskWriteRegister(let address, let andMask, let orMask):
            let current = try readArraySynchronously(ModbusReadRequest(
                unitID: unitID, functionCode: .maskWriteRegister, area: .holdingRegister, address: address, count: 1))
            try writeSynchronously(ModbusWriteRequest(
                unitID: unitID, functionCode: .maskWriteRegister, area: .holdingRegister, address: address,
                values: [Self.maskWrite(current[0], andMask: andMask, orMask: orMask)],
                mask: ModbusRegisterMask(andMask: andMask, orMask: orMask)))
            writeReply(for: request, into: &out)
        case .writeSingleCoil, .writeSingleRegister, .writeMultipleCoils, .writeMultipleRegisters:
            try writeSynchronously(Self.writeRequest(for: request, unitID: unitID)!)
            writeReply(for: request, into: &out)
        case .readDeviceIdentification(let code, let objectID):
            if let failure = identification.writeResponse(code: code, objectID: objectID, into: &out) { throw failure }
        case .diagnosticsReturnQueryData(let pdu):
            out.writeImmutableBuffer(pdu)
        }
    }

    private func readSynchronously(_ request: ModbusReadRequest, into out: inout ByteBuffer) throws {
        switch read.kind {
        case .syncInPlace(let body):
            let isBits = request.area.isBitArea
            out.writeMultipleIntegers(
                request.functionCode.rawValue,
                UInt8(truncatingIfNeeded: isBits ? (request.count + 7) / 8 : request.count * 2))
            var values = ModbusReadValues(buffer: out, isBits: isBits, expected: request.count)
            out = ByteBuffer()
            var thrown: (any Error)?
            do { try body(request, &values) } catch { thrown = error }
            let (buffer, problem) = values.finish()
            out = buffer
            if let thrown { throw thrown }
            if let problem { throw HandlerContractViolation(description: problem) }
        case .sync, .async:
            let values = try readArraySynchronously(request)
            Self.writeReadReply(request, values, into: &out)
        }
    }

    private func readArraySynchronously(_ request: ModbusReadRequest) throws -> [UInt16] {
        let values: [UInt16]
        switch read.kind {
        case .sync(let body):
            values = try body(request)
        case .syncInPlace:
            var buffer = ByteBuffer()
            try readSynchronously(request, into: &buffer)
            return Self.unpackReadReply(request, buffer)
        case .async:
            preconditionFailure("an async read handler is never called on the event loop")
        }
        try Self.check(values, for: request)
        return values
    }

    private func writeSynchronously(_ request: ModbusWriteRequest) throws {
        guard case .sync(let body) = write?.kind else {
            preconditionFailure("an async write handler is never called on the event loop")
        }
        try body(request)
    }

    // MARK: - Asynchronous path (off the event loop)

    /// Runs a request whose handlers may suspend and returns its complete reply frame.
    func answerAsynchronously(
        _ frame: ModbusTCPFrame,
        request: ModbusRequest,
        allocator: ByteBufferAllocator
    ) async -> ByteBuffer {
        let function = request.functionCode.rawValue
        var out = allocator.buffer(capacity: ModbusTCPLimits.maxADULength)
        let reply: Result<ModbusAsyncReply, any Error>
        do {
            reply = .success(try await executeAsynchronously(request, unitID: frame.unitID))
        } catch {
            reply = .failure(error)
        }
        writeFrame(frame, into: &out) { out in
            switch reply {
            case .success(.registersOrBits(let readRequest, let values)):
                Self.writeReadReply(readRequest, values, into: &out)
            case .success(.fixed):
                writeReply(for: request, into: &out)
            case .failure(let error):
                out.writeModbusExceptionPDU(function: function, code: exceptionCode(for: error, request, frame))
            }
        }
        return out
    }

    private enum ModbusAsyncReply {
        case registersOrBits(ModbusReadRequest, [UInt16])
        case fixed
    }

    private func executeAsynchronously(_ request: ModbusRequest, unitID: UInt8) async throws -> ModbusAsyncReply {
        switch request {
        case .read(let area, let address, let count):
            let readRequest = ModbusReadRequest(
                unitID: unitID, functionCode: request.functionCode, area: area, address: address, count: count)
            return .registersOrBits(readRequest, try await readArray(readRequest))
        case .readWriteMultipleRegisters(let readAddress, let readCount, let writeAddress, let values):
            try await writeValues(ModbusWriteRequest(
                unitID: unitID, functionCode: .readWriteMultipleRegisters, area: .holdingRegister,
                address: writeAddress, values: values))
            let readRequest = ModbusReadRequest(
                unitID: unitID, functionCode: .readWriteMultipleRegisters, area: .holdingRegister,
                address: readAddress, count: readCount)
            return .registersOrBits(readRequest, try await readArray(readRequest))
        case .maskWriteRegister(let address, let andMask, let orMask):
            let current = try await readArray(ModbusReadRequest(
                unitID: unitID, functionCode: .maskWriteRegister, area: .holdingRegister, address: address, count: 1))
            try await writeValues(ModbusWriteRequest(
                unitID: unitID, functionCode: .maskWriteRegister, area: .holdingRegister, address: address,
                values: [Self.maskWrite(current[0], andMask: andMask, orMask: orMask)],
                mask: ModbusRegisterMask(andMask: andMask, orMask: orMask)))
            return .fixed
        case .writeSingleCoil, .writeSingleRegister, .writeMultipleCoils, .writeMultipleRegisters:
            try await writeValues(Self.writeRequest(for: request, unitID: unitID)!)
            return .fixed
        case .readDeviceIdentification, .diagnosticsReturnQueryData:
            preconditionFailure("\(request.functionCode) is always answered on the event loop")
        }
    }

    private func readArray(_ request: ModbusReadRequest) async throws -> [UInt16] {
        guard case .async(let body) = read.kind else { return try readArraySynchronously(request) }
        let values = try await body(request)
        try Self.check(values, for: request)
        return values
    }

    private func writeValues(_ request: ModbusWriteRequest) async throws {
        switch write?.kind {
        case .async(let body): try await body(request)
        case .sync(let body): try body(request)
        case nil: throw ModbusExceptionCode.illegalFunction
        }
    }

    // MARK: - Encoding helpers

    /// Writes an MBAP header, lets `body` append the PDU, then fills in the length.
    private func writeFrame(_ frame: ModbusTCPFrame, into out: inout ByteBuffer, _ body: (inout ByteBuffer) -> Void) {
        let frameStart = out.writerIndex
        out.writeMBAPHeader(transactionID: frame.transactionID, unitID: frame.unitID, pduLength: 0)
        body(&out)
        out.setInteger(UInt16(truncatingIfNeeded: out.writerIndex - frameStart - 6), at: frameStart + 4)
    }

    /// The replies of writes, which are fixed by the request alone.
    private func writeReply(for request: ModbusRequest, into out: inout ByteBuffer) {
        switch request {
        case .writeSingleCoil(let address, let value):
            out.writeMultipleIntegers(ModbusFunctionCode.writeSingleCoil.rawValue, address, value ? UInt16(0xFF00) : 0)
        case .writeSingleRegister(let address, let value):
            out.writeMultipleIntegers(ModbusFunctionCode.writeSingleRegister.rawValue, address, value)
        case .writeMultipleCoils(let address, let values), .writeMultipleRegisters(let address, let values):
            out.writeModbusWriteMultiplePDU(function: request.functionCode, address: address, count: values.count)
        case .maskWriteRegister(let address, let andMask, let orMask):
            out.writeMultipleIntegers(ModbusFunctionCode.maskWriteRegister.rawValue, address, andMask, orMask)
        case .read, .readWriteMultipleRegisters, .readDeviceIdentification, .diagnosticsReturnQueryData:
            preconditionFailure("\(request.functionCode) has no fixed reply")
        }
    }

    private static func writeReadReply(_ request: ModbusReadRequest, _ values: [UInt16], into out: inout ByteBuffer) {
        if request.area.isBitArea {
            out.writeModbusReadBitsPDU(function: request.functionCode, bits: values)
        } else {
            out.writeModbusReadRegistersPDU(function: request.functionCode, registers: values)
        }
    }

    /// Reads values back out of a reply PDU (used when FC22 meets an in-place read handler).
    private static func unpackReadReply(_ request: ModbusReadRequest, _ buffer: ByteBuffer) -> [UInt16] {
        var buffer = buffer
        buffer.moveReaderIndex(forwardBy: 2)
        return (0..<request.count).map { _ in buffer.readInteger(as: UInt16.self)! }
    }

    private static func check(_ values: [UInt16], for request: ModbusReadRequest) throws {
        guard values.count == request.count else {
            throw HandlerContractViolation(
                description: "read handler returned \(values.count) values for \(request.count) requested")
        }
        if request.area.isBitArea, let bad = values.first(where: { $0 > 1 }) {
            throw HandlerContractViolation(description: "read handler returned bit value \(bad); bits must be 0 or 1")
        }
    }

    static func maskWrite(_ current: UInt16, andMask: UInt16, orMask: UInt16) -> UInt16 {
        (current & andMask) | (orMask & ~andMask)
    }

    private static func writeRequest(for request: ModbusRequest, unitID: UInt8) -> ModbusWriteRequest? {
        switch request {
        case .writeSingleCoil(let address, let value):
            ModbusWriteRequest(unitID: unitID, functionCode: .writeSingleCoil, area: .coil, address: address, values: [value ? 1 : 0])
        case .writeSingleRegister(let address, let value):
            ModbusWriteRequest(
                unitID: unitID, functionCode: .writeSingleRegister, area: .holdingRegister, address: address, values: [value])
        case .writeMultipleCoils(let address, let values):
            ModbusWriteRequest(unitID: unitID, functionCode: .writeMultipleCoils, area: .coil, address: address, values: values)
        case .writeMultipleRegisters(let address, let values):
            ModbusWriteRequest(
                unitID: unitID, functionCode: .writeMultipleRegisters, area: .holdingRegister, address: address, values: values)
        default:
            nil
        }
    }

    /// Maps a handler's error to the code on the wire: a Modbus exception keeps its code, anything
    /// else is logged at error level and becomes 04.
    private func exceptionCode(for error: any Error, _ request: ModbusRequest, _ frame: ModbusTCPFrame) -> ModbusExceptionCode {
        let code: ModbusExceptionCode?
        switch error {
        case let exception as ModbusException: code = exception.code
        case let exceptionCode as ModbusExceptionCode: code = exceptionCode
        default: code = nil
        }
        if let code, code.rawValue != 0 {
            logger.debug(
                "handler answered with an exception",
                metadata: ["function": "\(request.functionCode)", "unit": "\(frame.unitID)", "exception": "\(error)"])
            return code
        }
        logger.error(
            "handler failed; answering server device failure (04)",
            metadata: [
                "function": "\(request.functionCode)", "unit": "\(frame.unitID)",
                "transaction": "\(frame.transactionID)", "error": "\(String(reflecting: error))",
            ])
        return .serverDeviceFailure
    }
}

/// Which unit ids a server answers; a 256-bit set so the check costs nothing per request.
struct ModbusUnitFilter: Sendable {
    private var words: (UInt64, UInt64, UInt64, UInt64)

    /// `nil` serves every unit id, including 0 and 0xFF.
    init(_ units: Set<UInt8>?) {
        guard let units else {
            words = (.max, .max, .max, .max)
            return
        }
        words = (0, 0, 0, 0)
        for unit in units {
            let bit = UInt64(1) << UInt64(unit & 63)
            switch unit >> 6 {
            case 0: words.0 |= bit
            case 1: words.1 |= bit
            case 2: words.2 |= bit
            default: words.3 |= bit
            }
        }
    }

    func serves(_ unit: UInt8) -> Bool {
        let word: UInt64
        switch unit >> 6 {
        case 0: word = words.0
        case 1: word = words.1
        case 2: word = words.2
        default: word = words.3
        }
        return word & (UInt64(1) << UInt64(unit & 63)) != 0
    }
}
