import ModbusCore
import Synchronization
import Testing

@testable import ModbusTCPServer

/// The request observer sees every request once with the outcome on the wire, and the unit set
/// can change under open connections.
@Suite("Request observer and live unit set")
struct RequestObserverTests {
    /// What the observer saw, in order.
    final class Observed: Sendable {
        private let requests = Mutex<[ModbusObservedRequest]>([])
        var observer: ModbusRequestObserver {
            ModbusRequestObserver { request in self.requests.withLock { $0.append(request) } }
        }
        var all: [ModbusObservedRequest] { requests.withLock { $0 } }
    }

    @Test(
        "Every request is observed once with its outcome, handler or not, in each handler form",
        arguments: HandlerForm.allCases
    )
    func everyRequestObserved(form: HandlerForm) async throws {
        let store = TestStore(limit: 100)
        let observed = Observed()
        try await withServer(
            .loopback { $0.unitIDs = [1] },
            read: form.read(store),
            write: form.write(store),
            observer: observed.observer
        ) { _, port in
            let client = try RawModbusClient(port: port)
            #expect(try await client.request(ModbusFrames.read(0x03, address: 0, count: 2)) == [0x03, 4, 0, 0, 0, 1])
            #expect(try await client.request(ModbusFrames.read(0x03, address: 99, count: 2)) == [0x83, 0x02])
            #expect(try await client.request(ModbusFrames.read(0x03, address: 0, count: 0)) == [0x83, 0x03])
            #expect(try await client.request([0x41, 0]) == [0xC1, 0x01])
            #expect(try await client.request(ModbusFrames.read(0x04, address: 0, count: 1), unit: 7) == [0x84, 0x0B])
            #expect(try await client.request([0x08, 0, 0, 0x12, 0x34]) == [0x08, 0, 0, 0x12, 0x34])
            #expect(try await client.request([0x06, 0, 5, 0, 9]) == [0x06, 0, 5, 0, 9])
            #expect(try await client.request([0x2B, 0x0E, 1, 0]).prefix(3) == [0x2B, 0x0E, 1])
        }
        let expected: [ModbusObservedRequest] = [
            .init(unitID: 1, functionCode: 3, outcome: .ok),
            .init(unitID: 1, functionCode: 3, outcome: .exception(.illegalDataAddress)),
            .init(unitID: 1, functionCode: 3, outcome: .exception(.illegalDataValue)),
            .init(unitID: 1, functionCode: 0x41, outcome: .exception(.illegalFunction)),
            .init(unitID: 7, functionCode: 4, outcome: .exception(.gatewayTargetDeviceFailedToRespond)),
            .init(unitID: 1, functionCode: 8, outcome: .ok),
            .init(unitID: 1, functionCode: 6, outcome: .ok),
            .init(unitID: 1, functionCode: 0x2B, outcome: .ok),
        ]
        #expect(observed.all == expected)
    }

    @Test("An unanswered request (unknown unit, noResponse) is observed as unanswered")
    func unansweredObserved() async throws {
        let store = TestStore()
        let observed = Observed()
        try await withServer(
            .loopback {
                $0.unitIDs = [1]
                $0.unknownUnitResponse = .noResponse
            },
            read: .sync { try store.read($0) },
            write: nil,
            observer: observed.observer
        ) { _, port in
            let client = try RawModbusClient(port: port)
            let read = ModbusFrames.read(0x03, address: 0, count: 1)
            try await client.send(ModbusFrames.frame(read, unit: 9, transaction: 1))
            #expect(try await client.request(read, unit: 1, transaction: 2) == [0x03, 2, 0, 0])
        }
        #expect(
            observed.all == [
                .init(unitID: 9, functionCode: 3, outcome: .unanswered),
                .init(unitID: 1, functionCode: 3, outcome: .ok),
            ]
        )
    }

    @Test("setUnits changes the answered units and the unknown-unit answer on an open connection")
    func unitsChangeLive() async throws {
        let store = TestStore()
        try await withServer(.loopback { $0.unitIDs = [1] }, read: .sync { try store.read($0) }, write: nil) {
            server,
            port in
            let client = try RawModbusClient(port: port)
            let read = ModbusFrames.read(0x03, address: 1, count: 1)
            #expect(try await client.request(read, unit: 2) == [0x83, 0x0B])
            server.setUnits([1, 2], unknownUnitResponse: .exception)
            #expect(try await client.request(read, unit: 2) == [0x03, 2, 0, 1])
            #expect(try await client.request(read, unit: 1) == [0x03, 2, 0, 1])
            server.setUnits([2], unknownUnitResponse: .noResponse)
            // Unit 1 is now not answered at all: the next answer is the one to transaction 8.
            try await client.send(ModbusFrames.frame(read, unit: 1, transaction: 7))
            let reply = try await client.request(read, unit: 2, transaction: 8)
            #expect(reply == [0x03, 2, 0, 1])
            server.setUnits(nil, unknownUnitResponse: .exception)
            #expect(try await client.request(read, unit: 0xFF) == [0x03, 2, 0, 1])
        }
    }
}
