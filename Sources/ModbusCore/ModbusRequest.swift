import NIOCore

/// A decoded, validated Modbus request PDU.
///
/// Produced by ``ModbusRequest/parse(_:)``, which applies the Modbus Application Protocol's
/// order of checks (V1.1b3 §4.5 and the per-function state diagrams in §6): quantity and byte
/// count first (03 illegal data value), then the address range (02 illegal data address).
/// Whether a function code is served at all (01) is the server's decision and is checked before.
///
/// Bit values (coils) are carried as `UInt16` 0 or 1, the same representation the server's
/// handlers use, so no conversion is needed on the way to a handler.
public enum ModbusRequest: Sendable, Hashable {
    /// FC1 to FC4: read `count` consecutive values of `area` from `address`.
    case read(area: ModbusArea, address: UInt16, count: Int)
    /// FC5: write one coil; the reply echoes the request.
    case writeSingleCoil(address: UInt16, value: Bool)
    /// FC6: write one holding register; the reply echoes the request.
    case writeSingleRegister(address: UInt16, value: UInt16)
    /// FC15: write consecutive coils, each value 0 or 1.
    case writeMultipleCoils(address: UInt16, values: [UInt16])
    /// FC16: write consecutive holding registers.
    case writeMultipleRegisters(address: UInt16, values: [UInt16])
    /// FC22: `result = (current & andMask) | (orMask & ~andMask)`; the reply echoes the request.
    case maskWriteRegister(address: UInt16, andMask: UInt16, orMask: UInt16)
    /// FC23: write `writeValues` at `writeAddress`, then read `readCount` registers at `readAddress`.
    case readWriteMultipleRegisters(readAddress: UInt16, readCount: Int, writeAddress: UInt16, writeValues: [UInt16])
    /// FC43 / MEI 14: read device identification.
    case readDeviceIdentification(code: ModbusDeviceIDReadCode, objectID: UInt8)
    /// FC8 sub-function 0: return query data (echo). `pdu` is the whole request PDU, echoed as is.
    case diagnosticsReturnQueryData(pdu: ByteBuffer)

    /// The function code of this request.
    public var functionCode: ModbusFunctionCode {
        switch self {
        case .read(let area, _, _):
            switch area {
            case .coil: .readCoils
            case .discreteInput: .readDiscreteInputs
            case .holdingRegister: .readHoldingRegisters
            case .inputRegister: .readInputRegisters
            }
        case .writeSingleCoil: .writeSingleCoil
        case .writeSingleRegister: .writeSingleRegister
        case .writeMultipleCoils: .writeMultipleCoils
        case .writeMultipleRegisters: .writeMultipleRegisters
        case .maskWriteRegister: .maskWriteRegister
        case .readWriteMultipleRegisters: .readWriteMultipleRegisters
        case .readDeviceIdentification: .encapsulatedInterfaceTransport
        case .diagnosticsReturnQueryData: .diagnostics
        }
    }
}

/// Quantity limits per function code (Modbus Application Protocol V1.1b3 §6).
public enum ModbusQuantityLimits {
    /// FC1 / FC2: bits per read.
    public static let readBits = 1...2000
    /// FC3 / FC4: registers per read.
    public static let readRegisters = 1...125
    /// FC15: coils per write.
    public static let writeCoils = 1...1968
    /// FC16: registers per write.
    public static let writeRegisters = 1...123
    /// FC23: registers read.
    public static let readWriteRead = 1...125
    /// FC23: registers written.
    public static let readWriteWrite = 1...121
    /// The address space: start + quantity may not exceed this.
    public static let addressSpace = 65536
}

/// The MEI type of Read Device Identification inside FC43.
public let modbusMEIReadDeviceIdentification: UInt8 = 0x0E

/// Diagnostics sub-function 0, return query data.
public let modbusDiagnosticsReturnQueryData: UInt16 = 0x0000

extension ModbusRequest {
    /// Function codes this library can decode. Anything else is answered 01 by the server.
    public static let supportedFunctionCodes: Set<ModbusFunctionCode> = [
        .readCoils, .readDiscreteInputs, .readHoldingRegisters, .readInputRegisters,
        .writeSingleCoil, .writeSingleRegister, .writeMultipleCoils, .writeMultipleRegisters,
        .maskWriteRegister, .readWriteMultipleRegisters, .encapsulatedInterfaceTransport, .diagnostics,
    ]

    /// Decodes and validates a request PDU.
    ///
    /// Returns the exception code to answer with when the request is not acceptable, following
    /// the order 01 (function, including an unsupported FC8 sub-function or FC43 MEI type)
    /// → 03 (quantity, byte count, value, PDU length) → 02 (address range).
    /// A PDU that is shorter or longer than its function code demands is a 03: its data cannot be
    /// interpreted, which is what illegal data value reports.
    public static func parse(_ pdu: ByteBuffer) -> Result<ModbusRequest, ModbusExceptionCode> {
        var pdu = pdu
        let pduStart = pdu.readerIndex
        guard let byte = pdu.readInteger(as: UInt8.self) else { return .failure(.illegalFunction) }
        let function = ModbusFunctionCode(rawValue: byte)
        switch function {
        case .readCoils, .readDiscreteInputs, .readHoldingRegisters, .readInputRegisters:
            return parseRead(function, &pdu)
        case .writeSingleCoil:
            guard pdu.readableBytes == 4, let (address, value) = pdu.readMultipleIntegers(as: (UInt16, UInt16).self)
            else { return .failure(.illegalDataValue) }
            switch value {
            case 0xFF00: return .success(.writeSingleCoil(address: address, value: true))
            case 0x0000: return .success(.writeSingleCoil(address: address, value: false))
            default: return .failure(.illegalDataValue)
            }
        case .writeSingleRegister:
            guard pdu.readableBytes == 4, let (address, value) = pdu.readMultipleIntegers(as: (UInt16, UInt16).self)
            else { return .failure(.illegalDataValue) }
            return .success(.writeSingleRegister(address: address, value: value))
        case .writeMultipleCoils:
            return parseWriteMultipleCoils(&pdu)
        case .writeMultipleRegisters:
            guard let (address, count, byteCount) = pdu.readMultipleIntegers(as: (UInt16, UInt16, UInt8).self),
                ModbusQuantityLimits.writeRegisters.contains(Int(count)),
                Int(byteCount) == 2 * Int(count), pdu.readableBytes == Int(byteCount)
            else { return .failure(.illegalDataValue) }
            guard fitsAddressSpace(address, Int(count)) else { return .failure(.illegalDataAddress) }
            return .success(.writeMultipleRegisters(address: address, values: pdu.readRegisters(Int(count))))
        case .maskWriteRegister:
            guard pdu.readableBytes == 6,
                let (address, andMask, orMask) = pdu.readMultipleIntegers(as: (UInt16, UInt16, UInt16).self)
            else { return .failure(.illegalDataValue) }
            return .success(.maskWriteRegister(address: address, andMask: andMask, orMask: orMask))
        case .readWriteMultipleRegisters:
            guard
                let (readAddress, readCount, writeAddress, writeCount, byteCount) = pdu.readMultipleIntegers(
                    as: (UInt16, UInt16, UInt16, UInt16, UInt8).self
                ),
                ModbusQuantityLimits.readWriteRead.contains(Int(readCount)),
                ModbusQuantityLimits.readWriteWrite.contains(Int(writeCount)),
                Int(byteCount) == 2 * Int(writeCount), pdu.readableBytes == Int(byteCount)
            else { return .failure(.illegalDataValue) }
            guard fitsAddressSpace(readAddress, Int(readCount)), fitsAddressSpace(writeAddress, Int(writeCount))
            else { return .failure(.illegalDataAddress) }
            return .success(
                .readWriteMultipleRegisters(
                    readAddress: readAddress,
                    readCount: Int(readCount),
                    writeAddress: writeAddress,
                    writeValues: pdu.readRegisters(Int(writeCount))
                )
            )
        case .encapsulatedInterfaceTransport:
            guard let meiType = pdu.readInteger(as: UInt8.self), meiType == modbusMEIReadDeviceIdentification
            else { return .failure(.illegalFunction) }
            guard pdu.readableBytes == 2, let (rawCode, objectID) = pdu.readMultipleIntegers(as: (UInt8, UInt8).self),
                let code = ModbusDeviceIDReadCode(rawValue: rawCode)
            else { return .failure(.illegalDataValue) }
            return .success(.readDeviceIdentification(code: code, objectID: objectID))
        case .diagnostics:
            guard let subFunction = pdu.readInteger(as: UInt16.self) else { return .failure(.illegalDataValue) }
            guard subFunction == modbusDiagnosticsReturnQueryData else { return .failure(.illegalFunction) }
            pdu.moveReaderIndex(to: pduStart)
            return .success(.diagnosticsReturnQueryData(pdu: pdu))
        default:
            return .failure(.illegalFunction)
        }
    }

    private static func parseRead(
        _ function: ModbusFunctionCode,
        _ pdu: inout ByteBuffer
    ) -> Result<ModbusRequest, ModbusExceptionCode> {
        let area: ModbusArea
        let limits: ClosedRange<Int>
        switch function {
        case .readCoils: (area, limits) = (.coil, ModbusQuantityLimits.readBits)
        case .readDiscreteInputs: (area, limits) = (.discreteInput, ModbusQuantityLimits.readBits)
        case .readHoldingRegisters: (area, limits) = (.holdingRegister, ModbusQuantityLimits.readRegisters)
        default: (area, limits) = (.inputRegister, ModbusQuantityLimits.readRegisters)
        }
        guard pdu.readableBytes == 4, let (address, count) = pdu.readMultipleIntegers(as: (UInt16, UInt16).self),
            limits.contains(Int(count))
        else { return .failure(.illegalDataValue) }
        guard fitsAddressSpace(address, Int(count)) else { return .failure(.illegalDataAddress) }
        return .success(.read(area: area, address: address, count: Int(count)))
    }

    private static func parseWriteMultipleCoils(_ pdu: inout ByteBuffer) -> Result<ModbusRequest, ModbusExceptionCode> {
        guard let (address, count, byteCount) = pdu.readMultipleIntegers(as: (UInt16, UInt16, UInt8).self),
            ModbusQuantityLimits.writeCoils.contains(Int(count)),
            Int(byteCount) == (Int(count) + 7) / 8, pdu.readableBytes == Int(byteCount)
        else { return .failure(.illegalDataValue) }
        guard fitsAddressSpace(address, Int(count)) else { return .failure(.illegalDataAddress) }
        let values = pdu.withUnsafeReadableBytes { bytes in
            [UInt16](unsafeUninitializedCapacity: Int(count)) { out, initialized in
                for index in 0..<Int(count) {
                    out[index] = UInt16((bytes[index >> 3] >> UInt8(index & 7)) & 1)
                }
                initialized = Int(count)
            }
        }
        return .success(.writeMultipleCoils(address: address, values: values))
    }

    @inline(__always)
    static func fitsAddressSpace(_ address: UInt16, _ count: Int) -> Bool {
        Int(address) + count <= ModbusQuantityLimits.addressSpace
    }
}

extension ByteBuffer {
    /// Reads `count` big-endian registers; the caller has checked that they are there.
    fileprivate mutating func readRegisters(_ count: Int) -> [UInt16] {
        var values = [UInt16]()
        values.reserveCapacity(count)
        for _ in 0..<count { values.append(readInteger(as: UInt16.self)!) }
        return values
    }
}
