import NIOCore

/// The read device code of a Read Device Identification request (FC43 / MEI 14).
public enum ModbusDeviceIDReadCode: UInt8, Sendable, Hashable {
    /// 01: stream access to the basic objects (0x00...0x02).
    case basic = 1
    /// 02: stream access to the basic and regular objects (0x00...0x7F).
    case regular = 2
    /// 03: stream access to all objects, private ones included (0x00...0xFF).
    case extended = 3
    /// 04: one object, by id.
    case individual = 4

    /// The highest object id that stream access with this code reaches.
    var highestObjectID: UInt8 {
        switch self {
        case .basic: 0x02
        case .regular: 0x7F
        case .extended, .individual: 0xFF
        }
    }
}

/// The identity a server reports through Read Device Identification (FC43 / MEI 14).
///
/// Objects 0...2 are mandatory (the basic level); 3...6 are the standard optional objects of the
/// regular level; 0x80...0xFF are private objects of the extended level. Values are sent as the
/// UTF-8 bytes of the strings; each object must fit in one reply (at most
/// ``ModbusDeviceIdentification/maxObjectLength`` bytes), because objects are never split.
public struct ModbusDeviceIdentification: Sendable, Hashable {
    /// Object 0x00, VendorName (mandatory).
    public var vendorName: String
    /// Object 0x01, ProductCode (mandatory).
    public var productCode: String
    /// Object 0x02, MajorMinorRevision (mandatory).
    public var majorMinorRevision: String
    /// Object 0x03, VendorUrl.
    public var vendorURL: String?
    /// Object 0x04, ProductName.
    public var productName: String?
    /// Object 0x05, ModelName.
    public var modelName: String?
    /// Object 0x06, UserApplicationName.
    public var userApplicationName: String?
    /// Private objects, ids 0x80...0xFF, sent as raw bytes.
    public var privateObjects: [UInt8: [UInt8]]

    /// The largest object value that fits in a reply: a 253-byte PDU minus the 7-byte reply
    /// header and the object's own id and length bytes.
    public static let maxObjectLength = ModbusTCPLimits.maxPDULength - 7 - 2

    /// Creates an identity. Optional objects left `nil` are not reported.
    public init(
        vendorName: String,
        productCode: String,
        majorMinorRevision: String,
        vendorURL: String? = nil,
        productName: String? = nil,
        modelName: String? = nil,
        userApplicationName: String? = nil,
        privateObjects: [UInt8: [UInt8]] = [:]
    ) {
        self.vendorName = vendorName
        self.productCode = productCode
        self.majorMinorRevision = majorMinorRevision
        self.vendorURL = vendorURL
        self.productName = productName
        self.modelName = modelName
        self.userApplicationName = userApplicationName
        self.privateObjects = privateObjects
    }

    /// A problem that makes an identity impossible to serve.
    public struct ValidationError: Error, Hashable, Sendable, CustomStringConvertible {
        /// What is wrong and how to fix it.
        public var description: String
    }

    /// All objects in id order, as bytes.
    public var objects: [(id: UInt8, value: [UInt8])] {
        var result: [(id: UInt8, value: [UInt8])] = [
            (0x00, Array(vendorName.utf8)), (0x01, Array(productCode.utf8)), (0x02, Array(majorMinorRevision.utf8)),
        ]
        let optional: [(UInt8, String?)] = [
            (0x03, vendorURL), (0x04, productName), (0x05, modelName), (0x06, userApplicationName),
        ]
        for case (let id, let value?) in optional { result.append((id, Array(value.utf8))) }
        for id in privateObjects.keys.sorted() { result.append((id, privateObjects[id]!)) }
        return result
    }

    /// Checks that every object can be served: private ids in 0x80...0xFF and no value longer than
    /// ``maxObjectLength`` bytes.
    public func validate() throws(ValidationError) {
        for id in privateObjects.keys where id < 0x80 {
            throw ValidationError(
                description:
                    "device identification: private object id 0x\(String(id, radix: 16)) must be in 0x80...0xFF"
            )
        }
        for object in objects where object.value.count > Self.maxObjectLength {
            throw ValidationError(
                description:
                    "device identification: object 0x\(String(object.id, radix: 16)) is \(object.value.count) bytes; at most \(Self.maxObjectLength) fit in a reply, shorten it"
            )
        }
    }

    /// The conformity level byte: the highest category that has objects, with bit 0x80 set
    /// because individual access is supported too.
    public var conformityLevel: UInt8 {
        if !privateObjects.isEmpty { return 0x83 }
        if vendorURL != nil || productName != nil || modelName != nil || userApplicationName != nil { return 0x82 }
        return 0x81
    }
}

/// The server's side of Read Device Identification: a precomputed object table that answers
/// requests without allocating.
public struct ModbusDeviceIdentificationResponder: Sendable {
    private let objects: [(id: UInt8, value: [UInt8])]
    private let conformityLevel: UInt8

    /// Prepares the answers for `identification`, which must have passed `validate()`.
    public init(_ identification: ModbusDeviceIdentification) {
        self.objects = identification.objects
        self.conformityLevel = identification.conformityLevel
    }

    /// Appends the reply PDU for a request, or returns the exception code to answer with instead
    /// (02 for an unknown object in individual access).
    public func writeResponse(
        code: ModbusDeviceIDReadCode,
        objectID: UInt8,
        into buffer: inout ByteBuffer
    ) -> ModbusExceptionCode? {
        let header = 7  // FC, MEI, code, conformity, more follows, next object id, number of objects
        if code == .individual {
            guard let object = objects.first(where: { $0.id == objectID }) else { return .illegalDataAddress }
            writeHeader(code: code, moreFollows: false, nextObjectID: 0, count: 1, into: &buffer)
            writeObject(object, into: &buffer)
            return nil
        }
        let highest = code.highestObjectID
        // An object id that names no object of this category restarts the stream at object 0.
        let startID = objects.contains(where: { $0.id == objectID && $0.id <= highest }) ? objectID : 0
        let headerIndex = buffer.writerIndex
        writeHeader(code: code, moreFollows: false, nextObjectID: 0, count: 0, into: &buffer)
        var used = header
        var count: UInt8 = 0
        for object in objects where object.id >= startID && object.id <= highest {
            let size = 2 + object.value.count
            if used + size > ModbusTCPLimits.maxPDULength {
                // Objects are never split: say where to continue.
                buffer.setMultipleIntegers(UInt8(0xFF), object.id, count, at: headerIndex + 4)
                return nil
            }
            writeObject(object, into: &buffer)
            used += size
            count += 1
        }
        buffer.setInteger(count, at: headerIndex + 6)
        return nil
    }

    private func writeHeader(
        code: ModbusDeviceIDReadCode,
        moreFollows: Bool,
        nextObjectID: UInt8,
        count: UInt8,
        into buffer: inout ByteBuffer
    ) {
        buffer.writeMultipleIntegers(
            ModbusFunctionCode.encapsulatedInterfaceTransport.rawValue,
            modbusMEIReadDeviceIdentification,
            code.rawValue,
            conformityLevel,
            moreFollows ? UInt8(0xFF) : 0,
            nextObjectID,
            count
        )
    }

    private func writeObject(_ object: (id: UInt8, value: [UInt8]), into buffer: inout ByteBuffer) {
        buffer.writeMultipleIntegers(object.id, UInt8(object.value.count))
        buffer.writeBytes(object.value)
    }
}
