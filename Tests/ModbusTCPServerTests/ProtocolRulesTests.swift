import Logging
import ModbusTCPServer
import Synchronization
import Testing

/// docs/design.md §3, rule by rule, over a raw socket, through each handler form.
@Suite("Modbus rules on the wire")
struct ProtocolRulesTests {
    // MARK: MBAP

    @Test(
        "MBAP: transaction id and unit id are echoed, protocol id 0, length = unit + PDU",
        arguments: HandlerForm.allCases
    )
    func headerEcho(form: HandlerForm) async throws {
        let store = TestStore()
        try await withServer(read: form.read(store), write: form.write(store)) { _, port in
            let client = try RawModbusClient(port: port)
            for (transaction, unit) in [(UInt16(0), UInt8(1)), (0xFFFF, 0xFF), (0xABCD, 0), (7, 247)] {
                try await client.send(
                    ModbusFrames.frame(
                        ModbusFrames.read(0x03, address: 5, count: 2),
                        unit: unit,
                        transaction: transaction
                    )
                )
                let reply = try await client.receiveFrame()
                #expect(
                    reply == [
                        UInt8(transaction >> 8), UInt8(transaction & 0xFF), 0, 0, 0, 7, unit, 0x03, 4, 0, 5, 0, 6,
                    ],
                    "MBAP rule: echo transaction \(transaction) and unit \(unit); length 7 = unit + 6-byte PDU"
                )
            }
        }
    }

    @Test("MBAP: protocol id ≠ 0 closes that connection; other connections keep being served")
    func protocolIDNotZero() async throws {
        let store = TestStore()
        try await withServer(read: .sync { try store.read($0) }, write: nil) { _, port in
            let healthy = try RawModbusClient(port: port)
            #expect(try await healthy.request(ModbusFrames.read(0x03, address: 0, count: 1)) == [0x03, 2, 0, 0])
            let bad = try RawModbusClient(port: port)
            try await bad.send(ModbusFrames.frame(ModbusFrames.read(0x03, address: 0, count: 1), protocolID: 1))
            #expect(
                await bad.waitForClose(),
                "MBAP rule: protocol id 1 makes the stream untrusted; the connection is closed"
            )
            #expect(
                try await healthy.request(ModbusFrames.read(0x03, address: 1, count: 1)) == [0x03, 2, 0, 1],
                "the other connection is still served"
            )
        }
    }

    @Test("MBAP: length outside 2...254 closes the connection", arguments: [0, 1, 255, 256, 0xFFFF])
    func lengthOutOfRange(length: Int) async throws {
        let store = TestStore()
        try await withServer(read: .sync { try store.read($0) }, write: nil) { _, port in
            let client = try RawModbusClient(port: port)
            try await client.send([0, 1, 0, 0, UInt8(length >> 8), UInt8(length & 0xFF), 1, 0x03, 0, 0, 0, 1])
            #expect(await client.waitForClose(), "MBAP rule: length \(length) is outside 2...254; connection closed")
            let other = try RawModbusClient(port: port)
            #expect(try await other.request(ModbusFrames.read(0x03, address: 0, count: 1)) == [0x03, 2, 0, 0])
        }
    }

    @Test("MBAP: the largest valid frame (length 254) is accepted")
    func largestFrame() async throws {
        let store = TestStore()
        try await withServer(read: .sync { try store.read($0) }, write: .sync { try store.write($0) }) { _, port in
            let client = try RawModbusClient(port: port)
            // FC16 with 123 registers: PDU 6 + 246 = 252 bytes (MBAP length 253). FC8 echo of 252 bytes: length 254.
            let echo: [UInt8] = [0x08, 0x00, 0x00] + [UInt8](repeating: 0xA5, count: 250)
            #expect(try await client.request(echo) == echo, "FC8/00 echoes a maximal 253-byte PDU")
            let values = (0..<123).map { UInt16($0 * 3) }
            #expect(
                try await client.request(ModbusFrames.writeRegisters(address: 10, values: values)) == [
                    0x10, 0, 10, 0, 123,
                ]
            )
            #expect(store.value(.holdingRegister, 132) == 122 * 3)
        }
    }

    // MARK: Order of checks

    @Test(
        "Order: unsupported function codes answer 01",
        arguments: [UInt8(0x07), 0x0B, 0x0C, 0x11, 0x14, 0x15, 0x18, 0x41, 0x7F]
    )
    func unsupportedFunction(function: UInt8) async throws {
        let store = TestStore()
        try await withServer(read: .sync { try store.read($0) }, write: .sync { try store.write($0) }) { _, port in
            let client = try RawModbusClient(port: port)
            #expect(
                try await client.request([function, 0, 0, 0, 1]) == [function | 0x80, 0x01],
                "FC \(function) is not supported: 01"
            )
        }
    }

    @Test("Order: 01 before 03 before 02 before 04", arguments: HandlerForm.allCases)
    func orderOfChecks(form: HandlerForm) async throws {
        let store = TestStore(limit: 100)
        try await withServer(read: form.read(store), write: nil) { _, port in
            let client = try RawModbusClient(port: port)
            // A write FC without a write handler is 01 even when its value is also illegal.
            #expect(try await client.request([0x05, 0, 0, 0x12, 0x34]) == [0x85, 0x01], "01 comes before 03")
            // Quantity 0 at an address that would also overflow: 03, not 02.
            #expect(
                try await client.request(ModbusFrames.read(0x03, address: 0xFFFF, count: 0)) == [0x83, 0x03],
                "03 before 02"
            )
            #expect(
                try await client.request(ModbusFrames.read(0x03, address: 0xFFF0, count: 126)) == [0x83, 0x03],
                "03 before 02"
            )
            // Valid quantity, address + quantity > 65536: 02 without calling the handler.
            #expect(
                try await client.request(ModbusFrames.read(0x03, address: 0xFFFF, count: 2)) == [0x83, 0x02],
                "address + quantity > 65536: 02"
            )
            #expect(try await client.request(ModbusFrames.read(0x01, address: 0xFFFF, count: 2)) == [0x81, 0x02])
            // What the handler says exists: it throws 02 beyond its store.
            #expect(
                try await client.request(ModbusFrames.read(0x03, address: 99, count: 2)) == [0x83, 0x02],
                "handler's 02 reaches the wire"
            )
            #expect(try await client.request(ModbusFrames.read(0x03, address: 99, count: 1)) == [0x03, 2, 0, 99])
        }
    }

    // MARK: Reads

    @Test("FC1/FC2: quantity 1...2000, bits LSB first, last byte zero-padded", arguments: HandlerForm.allCases)
    func readBits(form: HandlerForm) async throws {
        let store = TestStore(limit: 4000)
        try await withServer(read: form.read(store), write: nil) { _, port in
            let client = try RawModbusClient(port: port)
            // Pattern: address % 3 == 0 is on. Addresses 0...9 → 1,0,0,1,0,0,1,0 | 0,1 → 0x49, 0x02
            #expect(try await client.request(ModbusFrames.read(0x01, address: 0, count: 10)) == [0x01, 2, 0x49, 0x02])
            #expect(try await client.request(ModbusFrames.read(0x02, address: 1, count: 1)) == [0x02, 1, 0x00])
            #expect(try await client.request(ModbusFrames.read(0x02, address: 3, count: 1)) == [0x02, 1, 0x01])
            let full = try await client.request(ModbusFrames.read(0x01, address: 0, count: 2000))
            #expect(full.count == 2 + 250 && full[1] == 250, "2000 bits fit in 250 bytes")
            #expect(
                try await client.request(ModbusFrames.read(0x01, address: 0, count: 2001)) == [0x81, 0x03],
                "2001 bits: 03"
            )
            #expect(
                try await client.request(ModbusFrames.read(0x02, address: 0, count: 0)) == [0x82, 0x03],
                "0 bits: 03"
            )
        }
    }

    @Test("FC3/FC4: quantity 1...125", arguments: HandlerForm.allCases)
    func readRegisters(form: HandlerForm) async throws {
        let store = TestStore()
        try await withServer(read: form.read(store), write: nil) { _, port in
            let client = try RawModbusClient(port: port)
            let reply = try await client.request(ModbusFrames.read(0x04, address: 300, count: 125))
            #expect(reply.count == 252 && reply[0] == 0x04 && reply[1] == 250)
            #expect(
                Array(reply[2...3]) == [0x01, 0x2C] && Array(reply[250...251]) == [0x01, 0xA8],
                "registers big-endian: 300 and 424"
            )
            #expect(try await client.request(ModbusFrames.read(0x04, address: 0, count: 126)) == [0x84, 0x03])
            #expect(try await client.request(ModbusFrames.read(0x03, address: 0, count: 0)) == [0x83, 0x03])
            #expect(try await client.request([0x03, 0, 0, 0]) == [0x83, 0x03], "a truncated PDU is 03")
            #expect(try await client.request([0x03, 0, 0, 0, 1, 9]) == [0x83, 0x03], "a PDU with extra bytes is 03")
        }
    }

    // MARK: Writes

    @Test("FC5: only 0xFF00 and 0x0000; the reply echoes the request", arguments: HandlerForm.allCases)
    func writeSingleCoil(form: HandlerForm) async throws {
        let store = TestStore()
        try await withServer(read: form.read(store), write: form.write(store)) { _, port in
            let client = try RawModbusClient(port: port)
            #expect(try await client.request([0x05, 0, 7, 0xFF, 0x00]) == [0x05, 0, 7, 0xFF, 0x00])
            #expect(store.value(.coil, 7) == 1)
            #expect(try await client.request([0x05, 0, 7, 0x00, 0x00]) == [0x05, 0, 7, 0x00, 0x00])
            #expect(store.value(.coil, 7) == 0)
            for bad: [UInt8] in [[0x00, 0xFF], [0x12, 0x34], [0xFF, 0xFF], [0x00, 0x01]] {
                #expect(try await client.request([0x05, 0, 7] + bad) == [0x85, 0x03], "FC5 value \(bad) is 03")
            }
            #expect(store.value(.coil, 7) == 0, "a refused write changes nothing")
        }
    }

    @Test("FC6: the reply echoes the request", arguments: HandlerForm.allCases)
    func writeSingleRegister(form: HandlerForm) async throws {
        let store = TestStore()
        try await withServer(read: form.read(store), write: form.write(store)) { _, port in
            let client = try RawModbusClient(port: port)
            #expect(try await client.request([0x06, 0, 9, 0xBE, 0xEF]) == [0x06, 0, 9, 0xBE, 0xEF])
            #expect(store.value(.holdingRegister, 9) == 0xBEEF)
            #expect(
                try await client.request([0x06, 0x03, 0xE8, 0, 1]) == [0x86, 0x02],
                "handler's 02 for address 1000"
            )
        }
    }

    @Test("FC15: quantity 1...1968, byte count ceil(N/8)", arguments: HandlerForm.allCases)
    func writeMultipleCoils(form: HandlerForm) async throws {
        let store = TestStore(limit: 3000)
        try await withServer(read: form.read(store), write: form.write(store)) { _, port in
            let client = try RawModbusClient(port: port)
            let bits = [true, false, true, true, false, false, true, true, true, false]
            #expect(try await client.request(ModbusFrames.writeCoils(address: 20, bits: bits)) == [0x0F, 0, 20, 0, 10])
            #expect((20..<30).map { store.value(.coil, $0) } == bits.map { $0 ? 1 : 0 })
            let most = [Bool](repeating: true, count: 1968)
            #expect(
                try await client.request(ModbusFrames.writeCoils(address: 0, bits: most)) == [0x0F, 0, 0, 0x07, 0xB0]
            )
            let tooMany = [Bool](repeating: true, count: 1969)
            #expect(
                try await client.request(ModbusFrames.writeCoils(address: 0, bits: tooMany)) == [0x8F, 0x03],
                "1969 coils: 03"
            )
            #expect(
                try await client.request([0x0F, 0, 0, 0, 10, 1, 0xFF]) == [0x8F, 0x03],
                "byte count 1 for 10 coils: 03"
            )
            #expect(
                try await client.request([0x0F, 0, 0, 0, 10, 2, 0xFF]) == [0x8F, 0x03],
                "PDU shorter than its byte count: 03"
            )
            #expect(
                try await client.request([0x0F, 0xFF, 0xFF, 0, 2, 1, 0x03]) == [0x8F, 0x02],
                "address + quantity > 65536: 02"
            )
        }
    }

    @Test("FC16: quantity 1...123, byte count 2N", arguments: HandlerForm.allCases)
    func writeMultipleRegisters(form: HandlerForm) async throws {
        let store = TestStore()
        try await withServer(read: form.read(store), write: form.write(store)) { _, port in
            let client = try RawModbusClient(port: port)
            #expect(
                try await client.request(ModbusFrames.writeRegisters(address: 40, values: [1, 0xFFFF])) == [
                    0x10, 0, 40, 0, 2,
                ]
            )
            #expect(store.value(.holdingRegister, 41) == 0xFFFF)
            // 124 registers cannot fit in a frame; the quantity alone decides.
            #expect(try await client.request([0x10, 0, 0, 0, 124, 248, 0, 1]) == [0x90, 0x03], "124 registers: 03")
            #expect(
                try await client.request([0x10, 0, 0, 0, 2, 3, 0, 1, 0]) == [0x90, 0x03],
                "byte count 3 for 2 registers: 03"
            )
            #expect(try await client.request([0x10, 0, 0, 0, 0, 0]) == [0x90, 0x03], "quantity 0: 03")
            #expect(
                try await client.request([0x10, 0xFF, 0xFF, 0, 2, 4, 0, 1, 0, 2]) == [0x90, 0x02],
                "past 65535: 02"
            )
        }
    }

    @Test("FC22: result = (current AND and) OR (or AND NOT and); the reply echoes", arguments: HandlerForm.allCases)
    func maskWrite(form: HandlerForm) async throws {
        let store = TestStore()
        store.set(.holdingRegister, 4, 0x12)
        try await withServer(read: form.read(store), write: form.write(store)) { _, port in
            let client = try RawModbusClient(port: port)
            // The specification's example: current 0x12, and 0xF2, or 0x25 → 0x17.
            #expect(try await client.request([0x16, 0, 4, 0, 0xF2, 0, 0x25]) == [0x16, 0, 4, 0, 0xF2, 0, 0x25])
            #expect(store.value(.holdingRegister, 4) == 0x17)
            // The write handler also gets the masks, so a host can tell which bits the master changes.
            let write = try #require(store.writes.withLock { $0.last })
            #expect(write.functionCode == .maskWriteRegister && write.values == [0x17])
            #expect(write.mask == ModbusRegisterMask(andMask: 0xF2, orMask: 0x25) && write.mask?.changedBits == 0xFF0D)
            #expect(try await client.request([0x16, 0, 4, 0, 0xF2, 0]) == [0x96, 0x03], "short PDU: 03")
            #expect(try await client.request([0x16, 0x03, 0xE8, 0, 0, 0, 0]) == [0x96, 0x02], "handler's 02")
        }
    }

    @Test("FC23: write before read, read 1...125, write 1...121", arguments: HandlerForm.allCases)
    func readWriteMultiple(form: HandlerForm) async throws {
        let store = TestStore()
        try await withServer(read: form.read(store), write: form.write(store)) { _, port in
            let client = try RawModbusClient(port: port)
            // Write 2 registers at 10, read 3 at 9: the read sees the new values.
            let request: [UInt8] = [0x17, 0, 9, 0, 3, 0, 10, 0, 2, 4, 0xAA, 0xAA, 0xBB, 0xBB]
            #expect(
                try await client.request(request) == [0x17, 6, 0, 9, 0xAA, 0xAA, 0xBB, 0xBB],
                "the write happens before the read"
            )
            let writeTooMany: [UInt8] = [0x17, 0, 0, 0, 1, 0, 0, 0, 122, 244, 0, 1]
            #expect(try await client.request(writeTooMany) == [0x97, 0x03], "write quantity 122: 03")
            #expect(
                try await client.request([0x17, 0, 0, 0, 126, 0, 0, 0, 1, 2, 0, 0]) == [0x97, 0x03],
                "read quantity 126: 03"
            )
            #expect(
                try await client.request([0x17, 0, 0, 0, 1, 0, 0, 0, 1, 3, 0, 0]) == [0x97, 0x03],
                "byte count ≠ 2 × write quantity: 03"
            )
            #expect(
                try await client.request([0x17, 0xFF, 0xFF, 0, 2, 0, 0, 0, 1, 2, 0, 0]) == [0x97, 0x02],
                "read range past 65535: 02"
            )
        }
    }

    @Test("No write handler: every write function code answers 01")
    func noWriteHandler() async throws {
        let store = TestStore()
        try await withServer(read: .sync { try store.read($0) }, write: nil) { _, port in
            let client = try RawModbusClient(port: port)
            let writes: [[UInt8]] = [
                [0x05, 0, 0, 0xFF, 0], [0x06, 0, 0, 0, 1], ModbusFrames.writeCoils(address: 0, bits: [true]),
                ModbusFrames.writeRegisters(address: 0, values: [1]), [0x16, 0, 0, 0, 0, 0, 0],
                [0x17, 0, 0, 0, 1, 0, 0, 0, 1, 2, 0, 0],
            ]
            for write in writes {
                #expect(
                    try await client.request(write) == [write[0] | 0x80, 0x01],
                    "FC \(write[0]) without write handler: 01"
                )
            }
            #expect(store.writes.withLock { $0.isEmpty })
        }
    }

    // MARK: Handler errors

    @Test(
        "Handler exceptions go on the wire as their codes; other errors are logged and answered 04",
        arguments: HandlerForm.allCases
    )
    func handlerErrors(form: HandlerForm) async throws {
        struct Unexpected: Error {}
        let codes: [ModbusExceptionCode] = [
            .illegalFunction, .illegalDataAddress, .illegalDataValue, .serverDeviceFailure, .serverDeviceBusy,
            .gatewayPathUnavailable, .gatewayTargetDeviceFailedToRespond,
        ]
        let failure: @Sendable (UInt16) throws -> Never = { address in
            if Int(address) < codes.count { throw ModbusException(codes[Int(address)], "test") }
            if address == 100 { throw codes[1] }  // a bare code is thrown as is
            throw Unexpected()
        }
        let read: ModbusReadHandler
        let write: ModbusWriteHandler
        switch form {
        case .sync:
            read = .sync { try failure($0.address) }
            write = .sync { try failure($0.address) }
        case .syncInPlace:
            read = .syncInPlace { request, values in
                values.append(1)
                try failure(request.address)
            }
            write = .sync { try failure($0.address) }
        case .async:
            read = .async { try failure($0.address) }
            write = .async { try failure($0.address) }
        }
        let logs = LogCapture()
        try await withServer(read: read, write: write, logger: logs.logger("test.server")) { _, port in
            let client = try RawModbusClient(port: port)
            for (index, code) in codes.enumerated() {
                #expect(
                    try await client.request(ModbusFrames.read(0x03, address: index, count: 1)) == [
                        0x83, code.rawValue,
                    ]
                )
                #expect(try await client.request([0x06, 0, UInt8(index), 0, 0]) == [0x86, code.rawValue])
            }
            #expect(try await client.request(ModbusFrames.read(0x03, address: 100, count: 1)) == [0x83, 0x02])
            #expect(
                try await client.request(ModbusFrames.read(0x04, address: 200, count: 1)) == [0x84, 0x04],
                "other errors: 04"
            )
            #expect(try await client.request([0x06, 0, 200, 0, 0]) == [0x86, 0x04])
            #expect(logs.messages(at: .error).count == 2, "each unexpected error is logged at error level")
        }
    }

    @Test(
        "A thrown code Modbus does not define (0, 07, 09, 0C, 0x63, 0xFF) goes on the wire as 04, logged; 05 and 08 are kept",
        arguments: HandlerForm.allCases
    )
    func undefinedExceptionCodes(form: HandlerForm) async throws {
        // Address → the code the handler throws; the last two are defined (App §7) and kept.
        let thrown: [UInt8] = [0x00, 0x07, 0x09, 0x0C, 0x63, 0xFF, 0x05, 0x08]
        let failure: @Sendable (UInt16) throws -> Never = { address in
            let code = ModbusExceptionCode(rawValue: thrown[Int(address)])
            // Both ways of throwing a code: wrapped and bare.
            if address % 2 == 0 { throw ModbusException(code, "test") }
            throw code
        }
        let read: ModbusReadHandler
        let write: ModbusWriteHandler
        switch form {
        case .sync:
            read = .sync { try failure($0.address) }
            write = .sync { try failure($0.address) }
        case .syncInPlace:
            read = .syncInPlace { request, _ in try failure(request.address) }
            write = .sync { try failure($0.address) }
        case .async:
            read = .async { try failure($0.address) }
            write = .async { try failure($0.address) }
        }
        let logs = LogCapture()
        try await withServer(read: read, write: write, logger: logs.logger("test.server")) { _, port in
            let client = try RawModbusClient(port: port)
            for (index, code) in thrown.enumerated() {
                let expected = ModbusExceptionCode(rawValue: code).isDefined ? code : 0x04
                #expect(
                    try await client.request(ModbusFrames.read(0x03, address: index, count: 1)) == [0x83, expected],
                    "read, thrown \(code)"
                )
                #expect(
                    try await client.request([0x06, 0, UInt8(index), 0, 0]) == [0x86, expected],
                    "write, thrown \(code)"
                )
            }
            let errors = logs.messages(at: .error)
            #expect(errors.count == 12, "each undefined code is logged at error level: \(errors.map(\.message))")
            #expect(errors.contains { $0.metadata["code"]?.contains("0x63") == true }, "the log names the code")
        }
    }

    @Test(
        "A read handler returning the wrong number of values, or a bit that is not 0/1, is 04",
        arguments: HandlerForm.allCases
    )
    func wrongValueCount(form: HandlerForm) async throws {
        let wrong: @Sendable (ModbusReadRequest) -> [UInt16] = { request in
            request.address == 0
                ? [UInt16](repeating: 1, count: request.count + 1)
                : request.address == 1
                    ? [UInt16](repeating: 1, count: request.count - 1) : [UInt16](repeating: 2, count: request.count)
        }
        let read: ModbusReadHandler =
            switch form {
            case .sync: .sync(wrong)
            case .syncInPlace: .syncInPlace { request, values in values.append(contentsOf: wrong(request)) }
            case .async: .async(wrong)
            }
        let logs = LogCapture()
        try await withServer(read: read, write: nil, logger: logs.logger("test.server")) { _, port in
            let client = try RawModbusClient(port: port)
            #expect(
                try await client.request(ModbusFrames.read(0x03, address: 0, count: 3)) == [0x83, 0x04],
                "too many values: 04"
            )
            #expect(
                try await client.request(ModbusFrames.read(0x03, address: 1, count: 3)) == [0x83, 0x04],
                "too few values: 04"
            )
            #expect(
                try await client.request(ModbusFrames.read(0x03, address: 2, count: 3)) == [0x03, 6, 0, 2, 0, 2, 0, 2],
                "registers may be 2"
            )
            #expect(
                try await client.request(ModbusFrames.read(0x01, address: 2, count: 3)) == [0x81, 0x04],
                "a bit value of 2: 04"
            )
            #expect(logs.messages(at: .error).count == 3)
        }
    }

    // MARK: Units

    @Test("Unit ids 0 and 0xFF are answered when no filter is set")
    func unitsWithoutFilter() async throws {
        let store = TestStore()
        try await withServer(read: .sync { try store.read($0) }, write: nil) { _, port in
            let client = try RawModbusClient(port: port)
            for unit: UInt8 in [0, 1, 0xF7, 0xFF] {
                #expect(
                    try await client.request(ModbusFrames.read(0x03, address: 0, count: 1), unit: unit) == [
                        0x03, 2, 0, 0,
                    ]
                )
            }
        }
    }

    @Test("Unit filter: other units get 0B, also for write and unsupported function codes")
    func unitFilter() async throws {
        let store = TestStore()
        let seenUnits = Mutex<Set<UInt8>>([])
        try await withServer(
            .loopback { $0.unitIDs = [3, 17] },
            read: .sync { request in
                seenUnits.withLock { _ = $0.insert(request.unitID) }
                return try store.read(request)
            },
            write: nil
        ) { _, port in
            let client = try RawModbusClient(port: port)
            #expect(
                try await client.request(ModbusFrames.read(0x03, address: 0, count: 1), unit: 3) == [0x03, 2, 0, 0]
            )
            #expect(
                try await client.request(ModbusFrames.read(0x03, address: 0, count: 1), unit: 17) == [0x03, 2, 0, 0]
            )
            for unit: UInt8 in [0, 1, 0xFF] {
                #expect(
                    try await client.request(ModbusFrames.read(0x03, address: 0, count: 1), unit: unit) == [0x83, 0x0B]
                )
                #expect(try await client.request([0x41, 0], unit: unit) == [0xC1, 0x0B])
            }
            #expect(seenUnits.withLock { $0 } == [3, 17], "handlers see the unit id")
        }
    }

    @Test(
        "Unit filter with noResponse: other units get no reply at all, and the requests behind them are answered in order"
    )
    func unitFilterWithoutResponse() async throws {
        let store = TestStore()
        try await withServer(
            .loopback {
                $0.unitIDs = [3]
                $0.unknownUnitResponse = .noResponse
            },
            read: .sync { try store.read($0) },
            write: nil
        ) { _, port in
            let client = try RawModbusClient(port: port)
            // Pipelined in one write: unit 9 (not served), unit 3, unit 0xFF (not served), unit 3.
            let read = ModbusFrames.read(0x03, address: 2, count: 1)
            try await client.send(
                ModbusFrames.frame(read, unit: 9, transaction: 1) + ModbusFrames.frame(read, unit: 3, transaction: 2)
                    + ModbusFrames.frame([0x41, 0], unit: 0xFF, transaction: 3)
                    + ModbusFrames.frame(read, unit: 3, transaction: 4)
            )
            let first = try await client.receiveFrame()
            let second = try await client.receiveFrame()
            #expect(Array(first.prefix(2)) == [0, 2] && Array(first[6...]) == [3, 0x03, 2, 0, 2], "\(first)")
            #expect(Array(second.prefix(2)) == [0, 4] && Array(second[6...]) == [3, 0x03, 2, 0, 2], "\(second)")
            // Nothing else comes: a request answered after these would still be on its way, so
            // the connection is checked to be idle and alive with one more served request.
            #expect(try await client.request(read, unit: 3, transaction: 5) == [0x03, 2, 0, 2])
        }
    }

    // MARK: Diagnostics and device identification

    @Test("FC8/00 echoes the request; other sub-functions answer 01")
    func diagnostics() async throws {
        let store = TestStore()
        try await withServer(read: .sync { try store.read($0) }, write: nil) { _, port in
            let client = try RawModbusClient(port: port)
            #expect(try await client.request([0x08, 0, 0, 0xA5, 0x37]) == [0x08, 0, 0, 0xA5, 0x37])
            #expect(try await client.request([0x08, 0, 1, 0, 0]) == [0x88, 0x01])
            #expect(try await client.request([0x08, 0]) == [0x88, 0x03], "no room for a sub-function: 03")
        }
    }

    @Test("FC43/14: basic, regular, extended, individual, restart at 0, 02, 03, more-follows")
    func deviceIdentification() async throws {
        let store = TestStore()
        let identity = ModbusDeviceIdentification(
            vendorName: "Acme",
            productCode: "GW-1",
            majorMinorRevision: "2.3",
            vendorURL: "https://acme.example",
            productName: "Gateway",
            modelName: "G1",
            userApplicationName: "tests",
            privateObjects: [0x80: [UInt8](repeating: 0x41, count: 120), 0x81: [UInt8](repeating: 0x42, count: 120)]
        )
        try await withServer(
            .loopback { $0.deviceIdentification = identity },
            read: .sync { try store.read($0) },
            write: nil
        ) {
            _,
            port in
            let client = try RawModbusClient(port: port)
            let basic = try await client.request([0x2B, 0x0E, 1, 0])
            #expect(
                basic == [0x2B, 0x0E, 1, 0x83, 0, 0, 3, 0, 4] + Array("Acme".utf8) + [1, 4] + Array("GW-1".utf8) + [
                    2, 3,
                ] + Array("2.3".utf8)
            )
            let regular = try await client.request([0x2B, 0x0E, 2, 0])
            #expect(regular[6] == 7 && regular[4] == 0, "regular: objects 0...6, nothing more follows")
            let individual = try await client.request([0x2B, 0x0E, 4, 5])
            #expect(individual == [0x2B, 0x0E, 4, 0x83, 0, 0, 1, 5, 2] + Array("G1".utf8))
            #expect(
                try await client.request([0x2B, 0x0E, 4, 0x90]) == [0xAB, 0x02],
                "individual access to a missing object: 02"
            )
            #expect(try await client.request([0x2B, 0x0E, 5, 0]) == [0xAB, 0x03], "read device id code 5: 03")
            #expect(try await client.request([0x2B, 0x0E, 0, 0]) == [0xAB, 0x03], "read device id code 0: 03")
            #expect(try await client.request([0x2B, 0x0D, 1, 0]) == [0xAB, 0x01], "another MEI type: 01")
            let restarted = try await client.request([0x2B, 0x0E, 1, 0x50])
            #expect(restarted == basic, "an unknown object id in stream access restarts at 0")
            let first = try await client.request([0x2B, 0x0E, 3, 0])
            #expect(first.count <= 253 && first[4] == 0xFF && first[5] == 0x81, "more follows; continue at 0x81")
            let second = try await client.request([0x2B, 0x0E, 3, 0x81])
            #expect(
                second[4] == 0 && second[6] == 1 && second[7] == 0x81 && second.count == 7 + 2 + 120,
                "the rest, unsplit"
            )
        }
    }

    // MARK: Exception format

    @Test("An exception reply is FC | 0x80 plus the code, MBAP length 3")
    func exceptionFormat() async throws {
        let store = TestStore()
        try await withServer(read: .sync { try store.read($0) }, write: nil) { _, port in
            let client = try RawModbusClient(port: port)
            try await client.send(
                ModbusFrames.frame(ModbusFrames.read(0x03, address: 0, count: 200), unit: 9, transaction: 77)
            )
            #expect(try await client.receiveFrame() == [0, 77, 0, 0, 0, 3, 9, 0x83, 0x03])
        }
    }
}
