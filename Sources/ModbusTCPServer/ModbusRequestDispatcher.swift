import Logging
import ModbusCore
import NIOCore
import Synchronization

/// Turns request frames into reply frames by calling the host's handlers.
///
/// Pure with respect to the network: it writes bytes into a buffer and never touches a channel,
/// so a connection can batch the replies of several pipelined requests into one write. What a
/// request takes is its ``ModbusRequestPlan``; this type carries plans out, inline when every
/// handler a plan calls is synchronous, in a task otherwise.
struct ModbusRequestDispatcher: Sendable {
    let read: ModbusReadHandler
    let write: ModbusWriteHandler?
    let units: ModbusUnitFilter
    let identification: ModbusDeviceIdentificationResponder
    let observer: ModbusRequestObserver?
    let logger: Logger

    /// What became of a request handled on the event loop.
    enum Outcome {
        /// The reply frame was appended.
        case answered
        /// The request is not answered (a unit outside the filter, with
        /// ``ModbusUnknownUnitResponse/noResponse``); nothing was appended.
        case unanswered
        /// A handler may suspend; nothing was appended. Call ``answerAsynchronously``.
        case suspend(ModbusRequestPlan)
    }

    /// A handler broke its contract (wrong number of values, a bit that is not 0 or 1).
    struct HandlerContractViolation: Error, CustomStringConvertible {
        var description: String
    }

    // MARK: - Synchronous path (on the event loop)

    /// Appends the reply frame for `frame` to `out`, unless a handler may suspend.
    ///
    /// - Parameter access: the role of a TLS connection, checked before anything but the unit
    ///   filter; `nil` on a plain listener.
    func answerSynchronously(
        _ frame: ModbusTCPFrame,
        into out: inout ByteBuffer,
        access: ModbusConnectionAccess? = nil
    ) -> Outcome {
        if !units.serves(frame.unitID), units.unknownUnitResponse == .noResponse {
            observer?.observe(frame.unitID, functionCode(of: frame), .unanswered)
            return .unanswered
        }
        let function = functionCode(of: frame)
        let plan: ModbusRequestPlan
        switch validate(frame, access: access) {
        case .failure(let code):
            writeFrame(frame, into: &out) { $0.writeModbusExceptionPDU(function: function, code: code) }
            observer?.observe(frame.unitID, function, .exception(code))
            return .answered
        case .success(let request):
            plan = ModbusRequestPlan(request, unitID: frame.unitID)
        }
        guard canRunSynchronously(plan) else { return .suspend(plan) }
        var outcome = ModbusRequestOutcome.ok
        writeFrame(frame, into: &out) { out in
            let pduStart = out.writerIndex
            do {
                try runSynchronously(plan, into: &out)
            } catch {
                out.moveWriterIndex(to: pduStart)
                let code = exceptionCode(for: error, plan, frame)
                out.writeModbusExceptionPDU(function: function, code: code)
                outcome = .exception(code)
            }
        }
        observer?.observe(frame.unitID, function, outcome)
        return .answered
    }

    /// The function code byte of a request (0 for an empty PDU, which the assembler refuses).
    private func functionCode(of frame: ModbusTCPFrame) -> UInt8 {
        frame.pdu.getInteger(at: frame.pdu.readerIndex, as: UInt8.self) ?? 0
    }

    /// The checks before any handler runs: unit filter (0B), the TLS client's role (01), served
    /// function code (01), then the request's own validation (03, then 02).
    ///
    /// The role comes before the request's validation: a request the role may not make is
    /// answered 01 whatever its data, so a refused client learns nothing from 02 and 03.
    private func validate(
        _ frame: ModbusTCPFrame,
        access: ModbusConnectionAccess?
    ) -> Result<ModbusRequest, ModbusExceptionCode> {
        guard units.serves(frame.unitID) else { return .failure(.gatewayTargetDeviceFailedToRespond) }
        if let access, !access.permits(unitID: frame.unitID, functionCode: functionCode(of: frame), logger: logger) {
            return .failure(.illegalFunction)
        }
        let function = ModbusFunctionCode(rawValue: frame.pdu.getInteger(at: frame.pdu.readerIndex) ?? 0)
        if function.isWrite && write == nil { return .failure(.illegalFunction) }
        return ModbusRequest.parse(frame.pdu)
    }

    private func canRunSynchronously(_ plan: ModbusRequestPlan) -> Bool {
        (!plan.callsReadHandler || read.isSynchronous)
            && (!plan.callsWriteHandler || (write?.isSynchronous ?? true))
    }

    /// The plan's steps with the synchronous handlers; the values of the last read go straight
    /// into the reply when the read handler can put them there.
    private func runSynchronously(_ plan: ModbusRequestPlan, into out: inout ByteBuffer) throws {
        if let write = plan.write {
            try writeSynchronously(write)
        }
        if let maskWrite = plan.maskWrite {
            let current = try readArraySynchronously(maskWrite.read)
            try writeSynchronously(maskWrite.write(current: current[0]))
        }
        if case .values(let request) = plan.reply {
            try readSynchronously(request, into: &out)
        } else {
            try plan.writeFixedReply(identification: identification, into: &out)
        }
    }

    /// Appends the read reply PDU, the values written in place by an in-place handler.
    private func readSynchronously(_ request: ModbusReadRequest, into out: inout ByteBuffer) throws {
        switch read.kind {
        case .syncInPlace(let body):
            let isBits = request.area.isBitArea
            out.writeMultipleIntegers(
                request.functionCode.rawValue,
                UInt8(truncatingIfNeeded: isBits ? (request.count + 7) / 8 : request.count * 2)
            )
            var values = ModbusReadValues(buffer: out, isBits: isBits, expected: request.count)
            // `values` holds the only reference to the storage, so the handler's appends do not
            // copy it.
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

    /// Carries out a plan whose handlers may suspend and returns the complete reply frame.
    func answerAsynchronously(
        _ frame: ModbusTCPFrame,
        plan: ModbusRequestPlan,
        allocator: ByteBufferAllocator
    ) async -> ByteBuffer {
        var out = allocator.buffer(capacity: ModbusTCPLimits.maxADULength)
        let values: Result<[UInt16], any Error>
        do {
            values = .success(try await runAsynchronously(plan))
        } catch {
            values = .failure(error)
        }
        var outcome = ModbusRequestOutcome.ok
        writeFrame(frame, into: &out) { out in
            let pduStart = out.writerIndex
            do {
                if case .values(let request) = plan.reply {
                    Self.writeReadReply(request, try values.get(), into: &out)
                } else {
                    _ = try values.get()
                    try plan.writeFixedReply(identification: identification, into: &out)
                }
            } catch {
                out.moveWriterIndex(to: pduStart)
                let code = exceptionCode(for: error, plan, frame)
                out.writeModbusExceptionPDU(function: plan.functionCode.rawValue, code: code)
                outcome = .exception(code)
            }
        }
        observer?.observe(frame.unitID, plan.functionCode.rawValue, outcome)
        return out
    }

    /// The plan's steps, awaiting the handlers that may suspend. Returns the values of the last
    /// read, if the reply carries values.
    private func runAsynchronously(_ plan: ModbusRequestPlan) async throws -> [UInt16] {
        if let write = plan.write {
            try await writeAsynchronously(write)
        }
        if let maskWrite = plan.maskWrite {
            let current = try await readArrayAsynchronously(maskWrite.read)
            try await writeAsynchronously(maskWrite.write(current: current[0]))
        }
        if case .values(let request) = plan.reply {
            return try await readArrayAsynchronously(request)
        }
        return []
    }

    private func readArrayAsynchronously(_ request: ModbusReadRequest) async throws -> [UInt16] {
        guard case .async(let body) = read.kind else { return try readArraySynchronously(request) }
        let values = try await body(request)
        try Self.check(values, for: request)
        return values
    }

    private func writeAsynchronously(_ request: ModbusWriteRequest) async throws {
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
                description: "read handler returned \(values.count) values for \(request.count) requested"
            )
        }
        if request.area.isBitArea, let bad = values.first(where: { $0 > 1 }) {
            throw HandlerContractViolation(description: "read handler returned bit value \(bad); bits must be 0 or 1")
        }
    }

    /// Maps a handler's error to the code on the wire: a Modbus exception with a code App §7
    /// defines keeps its code; an undefined code (0 included) and anything else is logged at
    /// error level and becomes 04.
    private func exceptionCode(
        for error: any Error,
        _ plan: ModbusRequestPlan,
        _ frame: ModbusTCPFrame
    ) -> ModbusExceptionCode {
        let code: ModbusExceptionCode?
        switch error {
        case let exception as ModbusException: code = exception.code
        case let exceptionCode as ModbusExceptionCode: code = exceptionCode
        default: code = nil
        }
        if let code, code.isDefined {
            logger.debug(
                "handler answered with an exception",
                metadata: ["function": "\(plan.functionCode)", "unit": "\(frame.unitID)", "exception": "\(error)"]
            )
            return code
        }
        // A code Modbus does not define (0 included) would reach a master that cannot interpret
        // it: it is a handler bug like any other error.
        if let code {
            logger.error(
                "handler threw an exception code Modbus does not define; answering server device failure (04)",
                metadata: [
                    "function": "\(plan.functionCode)", "unit": "\(frame.unitID)",
                    "transaction": "\(frame.transactionID)", "code": "\(code)", "error": "\(String(reflecting: error))",
                ]
            )
            return .serverDeviceFailure
        }
        logger.error(
            "handler failed; answering server device failure (04)",
            metadata: [
                "function": "\(plan.functionCode)", "unit": "\(frame.unitID)",
                "transaction": "\(frame.transactionID)", "error": "\(String(reflecting: error))",
            ]
        )
        return .serverDeviceFailure
    }
}

extension ModbusRequestDispatcher {
    /// The dispatcher of a server with `configuration`'s unit filter and device identity.
    init(
        configuration: ModbusServerConfiguration,
        read: ModbusReadHandler,
        write: ModbusWriteHandler?,
        observer: ModbusRequestObserver? = nil,
        logger: Logger
    ) {
        self.init(
            read: read,
            write: write,
            units: ModbusUnitFilter(configuration.unitIDs, unknownUnitResponse: configuration.unknownUnitResponse),
            identification: ModbusDeviceIdentificationResponder(configuration.deviceIdentification),
            observer: observer,
            logger: logger
        )
    }
}

/// Which unit ids a server answers, and how it treats the others: a 256-bit set in atomics, so
/// the check costs a load per request and a host can change the set while connections are open
/// (``ModbusServer/setUnits(_:unknownUnitResponse:)``).
final class ModbusUnitFilter: Sendable {
    private let word0: Atomic<UInt64>
    private let word1: Atomic<UInt64>
    private let word2: Atomic<UInt64>
    private let word3: Atomic<UInt64>
    private let silentForUnknown: Atomic<Bool>

    /// `nil` serves every unit id, including 0 and 0xFF.
    init(_ units: Set<UInt8>?, unknownUnitResponse: ModbusUnknownUnitResponse = .exception) {
        let words = Self.words(units)
        word0 = Atomic(words.0)
        word1 = Atomic(words.1)
        word2 = Atomic(words.2)
        word3 = Atomic(words.3)
        silentForUnknown = Atomic(unknownUnitResponse == .noResponse)
    }

    /// Replaces the set. A request being answered while this runs sees the old set or the new
    /// one for its unit.
    func replace(with units: Set<UInt8>?, unknownUnitResponse: ModbusUnknownUnitResponse) {
        let words = Self.words(units)
        word0.store(words.0, ordering: .relaxed)
        word1.store(words.1, ordering: .relaxed)
        word2.store(words.2, ordering: .relaxed)
        word3.store(words.3, ordering: .relaxed)
        silentForUnknown.store(unknownUnitResponse == .noResponse, ordering: .relaxed)
    }

    /// How a unit outside the set is answered now.
    var unknownUnitResponse: ModbusUnknownUnitResponse {
        silentForUnknown.load(ordering: .relaxed) ? .noResponse : .exception
    }

    func serves(_ unit: UInt8) -> Bool {
        let word: UInt64
        switch unit >> 6 {
        case 0: word = word0.load(ordering: .relaxed)
        case 1: word = word1.load(ordering: .relaxed)
        case 2: word = word2.load(ordering: .relaxed)
        default: word = word3.load(ordering: .relaxed)
        }
        return word & (UInt64(1) << UInt64(unit & 63)) != 0
    }

    private static func words(_ units: Set<UInt8>?) -> (UInt64, UInt64, UInt64, UInt64) {
        guard let units else { return (.max, .max, .max, .max) }
        var words: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
        for unit in units {
            let bit = UInt64(1) << UInt64(unit & 63)
            switch unit >> 6 {
            case 0: words.0 |= bit
            case 1: words.1 |= bit
            case 2: words.2 |= bit
            default: words.3 |= bit
            }
        }
        return words
    }
}
