import ModbusCore
import NIOCore
import Testing

/// One object of a Read Device Identification reply.
struct DeviceIDObject: Equatable, CustomStringConvertible {
    var id: UInt8
    var value: [UInt8]
    var description: String { "0x\(String(id, radix: 16)):\(value.count)B" }
}

/// A decoded Read Device Identification reply PDU.
struct DeviceIDReply {
    var readCode: UInt8
    var conformity: UInt8
    var moreFollows: UInt8
    var nextObjectID: UInt8
    var objects: [DeviceIDObject]
    var pduLength: Int
}

enum ReplyError: Error { case malformed(String) }

/// Decodes a reply PDU strictly: header fields, `count` objects, no trailing bytes.
func decodeReply(_ pdu: ByteBuffer) throws -> DeviceIDReply {
    var pdu = pdu
    let length = pdu.readableBytes
    guard
        let (function, mei, code, conformity, more, next, count) = pdu.readMultipleIntegers(
            as: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8).self
        )
    else { throw ReplyError.malformed("header shorter than 7 bytes") }
    guard function == 0x2B, mei == 0x0E else { throw ReplyError.malformed("function \(function) MEI \(mei)") }
    var objects: [DeviceIDObject] = []
    for _ in 0..<count {
        guard let (id, objectLength) = pdu.readMultipleIntegers(as: (UInt8, UInt8).self),
            let value = pdu.readBytes(length: Int(objectLength))
        else { throw ReplyError.malformed("object truncated") }
        objects.append(DeviceIDObject(id: id, value: value))
    }
    guard pdu.readableBytes == 0 else { throw ReplyError.malformed("\(pdu.readableBytes) trailing bytes") }
    return DeviceIDReply(
        readCode: code,
        conformity: conformity,
        moreFollows: more,
        nextObjectID: next,
        objects: objects,
        pduLength: length
    )
}

/// Runs the responder and returns the exception code, or the decoded reply.
func respond(
    _ identification: ModbusDeviceIdentification,
    _ code: ModbusDeviceIDReadCode,
    _ objectID: UInt8
) throws -> DeviceIDReply {
    var out = ByteBuffer()
    let exception = ModbusDeviceIdentificationResponder(identification).writeResponse(
        code: code,
        objectID: objectID,
        into: &out
    )
    guard exception == nil else { throw exception! }
    return try decodeReply(out)
}

func object(_ id: UInt8, _ string: String) -> DeviceIDObject { DeviceIDObject(id: id, value: Array(string.utf8)) }

let basicIdentity = ModbusDeviceIdentification(vendorName: "ACME", productCode: "MB-1", majorMinorRevision: "1.2")

let fullIdentity = ModbusDeviceIdentification(
    vendorName: "ACME",
    productCode: "MB-1",
    majorMinorRevision: "1.2",
    vendorURL: "https://acme.example",
    productName: "Bridge",
    modelName: "B1",
    userApplicationName: "plant",
    privateObjects: [0x80: [0x01, 0x02], 0xFF: [0x09]]
)

let basicObjects = [object(0, "ACME"), object(1, "MB-1"), object(2, "1.2")]
let regularObjects =
    basicObjects + [object(3, "https://acme.example"), object(4, "Bridge"), object(5, "B1"), object(6, "plant")]

/// Five private objects of 100 bytes each: three replies in extended stream access.
let bigPrivateIdentity = ModbusDeviceIdentification(
    vendorName: "ACME",
    productCode: "MB-1",
    majorMinorRevision: "1.2",
    privateObjects: Dictionary(
        uniqueKeysWithValues: (0x80...0x84).map { (UInt8($0), [UInt8](repeating: UInt8($0), count: 100)) }
    )
)

@Suite("Read device identification: stream access")
struct DeviceIdentificationStreamTests {
    @Test("Basic stream (code 1) returns objects 0...2 only")
    func basicStream() throws {
        let reply = try respond(fullIdentity, .basic, 0)
        #expect(reply.readCode == 1)
        #expect(reply.objects == basicObjects, "code 1 reaches objects 0x00...0x02 only")
        #expect(reply.moreFollows == 0)
        #expect(reply.nextObjectID == 0)
    }

    @Test("Regular stream (code 2) returns objects 0...6 that are set, no private ones")
    func regularStream() throws {
        #expect(try respond(fullIdentity, .regular, 0).objects == regularObjects)
        let partial = ModbusDeviceIdentification(
            vendorName: "V",
            productCode: "P",
            majorMinorRevision: "R",
            productName: "N",
            privateObjects: [0x90: [1]]
        )
        #expect(
            try respond(partial, .regular, 0).objects == [
                object(0, "V"), object(1, "P"), object(2, "R"), object(4, "N"),
            ],
            "unset optional objects are skipped"
        )
    }

    @Test("Extended stream (code 3) includes private objects 0x80...0xFF in id order")
    func extendedStream() throws {
        let reply = try respond(fullIdentity, .extended, 0)
        #expect(reply.readCode == 3)
        #expect(
            reply.objects == regularObjects + [
                DeviceIDObject(id: 0x80, value: [1, 2]), DeviceIDObject(id: 0xFF, value: [9]),
            ]
        )
        #expect(reply.moreFollows == 0)
    }

    @Test("Stream access starting at an existing object id starts there")
    func startsAtObjectID() throws {
        #expect(try respond(fullIdentity, .basic, 1).objects == [object(1, "MB-1"), object(2, "1.2")])
        #expect(try respond(fullIdentity, .regular, 5).objects == [object(5, "B1"), object(6, "plant")])
        #expect(try respond(fullIdentity, .extended, 0xFF).objects == [DeviceIDObject(id: 0xFF, value: [9])])
    }

    @Test("Stream access at an object id that does not exist restarts at object 0")
    func unknownObjectRestarts() throws {
        #expect(try respond(basicIdentity, .regular, 4).objects == basicObjects, "object 4 not set")
        #expect(try respond(fullIdentity, .regular, 0x10).objects == regularObjects, "0x10 is reserved")
        #expect(try respond(fullIdentity, .extended, 0x81).objects.first?.id == 0, "private 0x81 not set")
    }

    @Test("Stream access at an object id outside the category restarts at object 0")
    func outsideCategoryRestarts() throws {
        #expect(try respond(fullIdentity, .basic, 5).objects == basicObjects, "object 5 exists but is not basic")
        #expect(try respond(fullIdentity, .basic, 3).objects == basicObjects, "object 3 exists but is not basic")
        #expect(
            try respond(fullIdentity, .regular, 0x80).objects == regularObjects,
            "private 0x80 exists but is not regular"
        )
    }

    @Test("Large extended stream: more follows 0xFF with the next object id, objects never split")
    func moreFollows() throws {
        let first = try respond(bigPrivateIdentity, .extended, 0)
        #expect(first.moreFollows == 0xFF, "the reply would exceed 253 bytes")
        #expect(first.pduLength <= ModbusTCPLimits.maxPDULength)
        // 7 header + 17 basic + 2 × 102 = 228; a third 102-byte object would make 330.
        #expect(first.objects.map(\.id) == [0, 1, 2, 0x80, 0x81])
        #expect(first.nextObjectID == 0x82, "next object id = first object not included")
        for object in first.objects where object.id >= 0x80 {
            #expect(object.value == [UInt8](repeating: object.id, count: 100), "objects are never split")
        }

        let second = try respond(bigPrivateIdentity, .extended, first.nextObjectID)
        #expect(second.objects.map(\.id) == [0x82, 0x83])
        #expect(second.moreFollows == 0xFF)
        #expect(second.nextObjectID == 0x84)

        let third = try respond(bigPrivateIdentity, .extended, second.nextObjectID)
        #expect(third.objects.map(\.id) == [0x84])
        #expect(third.objects.first?.value == [UInt8](repeating: 0x84, count: 100))
        #expect(third.moreFollows == 0, "last reply: no more follows")
        #expect(third.nextObjectID == 0)
    }

    @Test("Following more-follows to the end yields every object exactly once, each reply ≤ 253 bytes")
    func moreFollowsCollectsAll() throws {
        let identities = [
            bigPrivateIdentity,
            ModbusDeviceIdentification(
                vendorName: String(repeating: "v", count: 244),
                productCode: String(repeating: "p", count: 244),
                majorMinorRevision: "1",
                vendorURL: String(repeating: "u", count: 120),
                productName: String(repeating: "n", count: 121),
                privateObjects: Dictionary(
                    uniqueKeysWithValues: (0x80...0xFF).map {
                        (UInt8($0), [UInt8](repeating: 0, count: Int($0 - 0x80)))
                    }
                )
            ),
        ]
        for identity in identities {
            var collected: [DeviceIDObject] = []
            var next: UInt8 = 0
            for _ in 0..<200 {
                let reply = try respond(identity, .extended, next)
                #expect(reply.pduLength <= ModbusTCPLimits.maxPDULength, "PDU at most 253 bytes")
                #expect(!reply.objects.isEmpty, "every reply carries at least one object")
                collected += reply.objects
                guard reply.moreFollows == 0xFF else {
                    #expect(reply.moreFollows == 0)
                    break
                }
                #expect(reply.nextObjectID > reply.objects.last!.id)
                next = reply.nextObjectID
            }
            #expect(collected == identity.objects.map { DeviceIDObject(id: $0.id, value: $0.value) })
        }
    }

    @Test("Objects of the maximum length (244 bytes) give exactly 253-byte replies, one object each")
    func maximumObjects() throws {
        let identity = ModbusDeviceIdentification(
            vendorName: String(repeating: "a", count: 244),
            productCode: String(repeating: "b", count: 244),
            majorMinorRevision: String(repeating: "c", count: 244)
        )
        #expect(throws: Never.self) { try identity.validate() }
        var next: UInt8 = 0
        for expectedID in [UInt8(0), 1, 2] {
            let reply = try respond(identity, .basic, next)
            #expect(reply.objects.map(\.id) == [expectedID])
            #expect(reply.pduLength == 253)
            #expect(reply.moreFollows == (expectedID == 2 ? 0 : 0xFF))
            next = reply.nextObjectID
        }
    }
}

@Suite("Read device identification: individual access and conformity")
struct DeviceIdentificationIndividualTests {
    @Test("Individual access (code 4) returns exactly the requested object")
    func individualExisting() throws {
        let reply = try respond(fullIdentity, .individual, 4)
        #expect(reply.readCode == 4)
        #expect(reply.objects == [object(4, "Bridge")])
        #expect(reply.moreFollows == 0)
        #expect(
            try respond(fullIdentity, .individual, 0xFF).objects == [DeviceIDObject(id: 0xFF, value: [9])],
            "private object"
        )
        #expect(try respond(basicIdentity, .individual, 0).objects == [object(0, "ACME")])
    }

    @Test(
        "Individual access of a missing object is illegal data address (02)",
        arguments: [UInt8(3), 0x07, 0x7F, 0x80, 0xFE]
    )
    func individualMissing(objectID: UInt8) {
        var out = ByteBuffer()
        let exception = ModbusDeviceIdentificationResponder(basicIdentity).writeResponse(
            code: .individual,
            objectID: objectID,
            into: &out
        )
        #expect(exception == .illegalDataAddress)
        #expect(out.readableBytes == 0, "nothing written when answering with an exception")
    }

    @Test("Conformity level 0x81 with only basic objects, 0x82 with regular, 0x83 with private")
    func conformityLevel() throws {
        #expect(basicIdentity.conformityLevel == 0x81)
        #expect(
            ModbusDeviceIdentification(vendorName: "a", productCode: "b", majorMinorRevision: "c", modelName: "m")
                .conformityLevel == 0x82
        )
        #expect(
            ModbusDeviceIdentification(
                vendorName: "a",
                productCode: "b",
                majorMinorRevision: "c",
                privateObjects: [0x80: []]
            ).conformityLevel == 0x83
        )
        #expect(fullIdentity.conformityLevel == 0x83)
        #expect(try respond(basicIdentity, .basic, 0).conformity == 0x81, "reply carries the conformity level")
        #expect(
            try respond(
                ModbusDeviceIdentification(vendorName: "a", productCode: "b", majorMinorRevision: "c", vendorURL: "u"),
                .regular,
                0
            ).conformity == 0x82
        )
        #expect(try respond(fullIdentity, .individual, 0).conformity == 0x83)
    }

    @Test("Responder appends after existing bytes in the buffer")
    func appends() throws {
        var out = ByteBuffer(bytes: [0xAA, 0xBB])
        let exception = ModbusDeviceIdentificationResponder(bigPrivateIdentity).writeResponse(
            code: .extended,
            objectID: 0,
            into: &out
        )
        #expect(exception == nil)
        #expect(out.readBytes(length: 2) == [0xAA, 0xBB])
        let reply = try decodeReply(out)
        #expect(reply.moreFollows == 0xFF, "more-follows patched at the reply's header, not at buffer offset 0")
        #expect(reply.nextObjectID == 0x82)
        #expect(reply.objects.count == 5)
    }
}

@Suite("Read device identification: validation")
struct DeviceIdentificationValidationTests {
    @Test("validate() accepts a well-formed identity")
    func validIdentity() {
        #expect(throws: Never.self) { try fullIdentity.validate() }
        #expect(throws: Never.self) { try bigPrivateIdentity.validate() }
    }

    @Test("validate() rejects a private object id below 0x80", arguments: [UInt8(0x00), 0x07, 0x7F])
    func privateIDTooLow(id: UInt8) {
        let identity = ModbusDeviceIdentification(
            vendorName: "a",
            productCode: "b",
            majorMinorRevision: "c",
            privateObjects: [id: [1]]
        )
        #expect(throws: ModbusDeviceIdentification.ValidationError.self) { try identity.validate() }
    }

    @Test("validate() rejects an object longer than 244 bytes, accepts 244")
    func objectTooLong() {
        #expect(ModbusDeviceIdentification.maxObjectLength == 244, "253 PDU − 7 header − id − length")
        let ok = ModbusDeviceIdentification(
            vendorName: "a",
            productCode: "b",
            majorMinorRevision: "c",
            privateObjects: [0x80: [UInt8](repeating: 0, count: 244)]
        )
        #expect(throws: Never.self) { try ok.validate() }
        let tooLongPrivate = ModbusDeviceIdentification(
            vendorName: "a",
            productCode: "b",
            majorMinorRevision: "c",
            privateObjects: [0x80: [UInt8](repeating: 0, count: 245)]
        )
        #expect(throws: ModbusDeviceIdentification.ValidationError.self) { try tooLongPrivate.validate() }
        let tooLongVendor = ModbusDeviceIdentification(
            vendorName: String(repeating: "x", count: 245),
            productCode: "b",
            majorMinorRevision: "c"
        )
        #expect(throws: ModbusDeviceIdentification.ValidationError.self) { try tooLongVendor.validate() }
        let tooLongUTF8 = ModbusDeviceIdentification(
            vendorName: "a",
            productCode: "b",
            majorMinorRevision: "c",
            userApplicationName: String(repeating: "é", count: 123)
        )
        #expect(throws: ModbusDeviceIdentification.ValidationError.self, "the limit counts UTF-8 bytes, not characters")
        {
            try tooLongUTF8.validate()
        }
    }

    @Test("objects lists mandatory, set optional, then private objects in id order")
    func objectsOrder() {
        #expect(fullIdentity.objects.map(\.id) == [0, 1, 2, 3, 4, 5, 6, 0x80, 0xFF])
        #expect(basicIdentity.objects.map(\.id) == [0, 1, 2])
    }
}
