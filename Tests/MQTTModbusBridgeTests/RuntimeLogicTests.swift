import Foundation
import ModbusCore
import NIOCore
import Testing

@testable import MQTTModbusBridge
@testable import MQTTModbusBridgeConfiguration
@testable import ModbusTCPServer

/// The bridge's pure runtime logic — register map, cache, write planning, ack evaluation —
/// without a broker or a socket.
@Suite("Bridge runtime logic")
struct RuntimeLogicTests {
    static let yaml = """
        broker: { host: 127.0.0.1, port: 1883 }
        units:
          - id: 1
            points:
              - { name: temp, area: input_register, address: 0, type: float32, state_topic: t/temp }
              - { name: level, area: input_register, address: 4, type: int16, scale: 10, state_topic: t/level, max_age: 50ms }
              - { name: sub, area: input_register, address: 5, type: uint16, state_topic: t/sub, on_missing: { value: 7 } }
              - { name: sp, area: holding_register, address: 0, type: int32, state_topic: t/sp, command_topic: t/sp/set }
              - { name: b0, area: holding_register, address: 10, type: bit, bit: 0, state_topic: t/b0, command_topic: t/b0/set }
              - { name: b3, area: holding_register, address: 10, type: bit, bit: 3, state_topic: t/b3, command_topic: t/b3/set }
              - { name: ro, area: holding_register, address: 11, type: uint16, state_topic: t/ro }
          - id: 2
            fill_gaps: true
            points:
              - { name: c1, area: coil, address: 3, type: bool, state_topic: u/c1, command_topic: u/c1/set }
        """

    func fixture() throws -> (RegisterMap, PointCache) {
        let configuration = try BridgeConfiguration.parse(yaml: Self.yaml, file: "runtime.yaml")
        let map = RegisterMap(configuration)
        return (map, PointCache(map: map))
    }

    @Test("A value never received answers the point's policy: 0B by default, or the substitute")
    func missingValues() throws {
        let (map, cache) = try fixture()
        #expect(exception { _ = try read(cache, unit: 1, .inputRegister, 0, 2) } == .gatewayTargetDeviceFailedToRespond)
        #expect(try read(cache, unit: 1, .inputRegister, 5, 1) == [7], "substitute value")
        let temp = try #require(map.index(of: "temp"))
        cache.update(point: temp, image: .words([0x41AC, 0x0000]))
        #expect(try read(cache, unit: 1, .inputRegister, 0, 2) == [0x41AC, 0])
        #expect(try read(cache, unit: 1, .inputRegister, 1, 1) == [0], "a read may cover part of a value")
    }

    @Test("Reads across unmapped addresses answer 02, unless the unit fills gaps")
    func gaps() throws {
        let (map, cache) = try fixture()
        cache.update(point: try #require(map.index(of: "temp")), image: .words([1, 2]))
        #expect(
            exception { _ = try read(cache, unit: 1, .inputRegister, 0, 3) } == .illegalDataAddress,
            "address 2 is unmapped"
        )
        #expect(exception { _ = try read(cache, unit: 1, .inputRegister, 100, 1) } == .illegalDataAddress)
        cache.update(point: try #require(map.index(of: "c1")), image: .words([1]))
        #expect(try read(cache, unit: 2, .coil, 0, 6) == [0, 0, 0, 1, 0, 0], "fill_gaps reads unmapped coils as 0")
        #expect(
            exception { _ = try read(cache, unit: 9, .coil, 0, 1) } == .gatewayTargetDeviceFailedToRespond,
            "unknown unit"
        )
    }

    @Test("max_age makes an old value stale; invalidation (broker lost) makes every value stale")
    func staleness() throws {
        let (map, cache) = try fixture()
        let level = try #require(map.index(of: "level"))
        let temp = try #require(map.index(of: "temp"))
        cache.update(point: level, image: .words([215]), at: PointCache.now() - 100_000_000)  // 100 ms ago
        #expect(exception { _ = try read(cache, unit: 1, .inputRegister, 4, 1) } == .gatewayTargetDeviceFailedToRespond)
        cache.update(point: level, image: .words([216]))
        #expect(try read(cache, unit: 1, .inputRegister, 4, 1) == [216])
        cache.update(point: temp, image: .words([1, 2]))
        cache.invalidateAll()
        #expect(exception { _ = try read(cache, unit: 1, .inputRegister, 0, 2) } == .gatewayTargetDeviceFailedToRespond)
        #expect(
            try read(cache, unit: 1, .inputRegister, 5, 1) == [7],
            "stale with a substitute policy reads the substitute"
        )
    }

    @Test("A value stored after a reader took the clock (a read racing an update) is fresh, not stale")
    func updateNewerThanReadClock() throws {
        let (map, cache) = try fixture()
        let level = try #require(map.index(of: "level"))
        // The read handler takes the time before the cache's lock; an MQTT update may take the
        // lock in between with a later timestamp. Simulated with an update stamped 1 ms ahead.
        cache.update(point: level, image: .words([217]), at: PointCache.now() + 1_000_000)
        #expect(try read(cache, unit: 1, .inputRegister, 4, 1) == [217])
        #expect(cache.isFresh(point: level, at: PointCache.now()))
    }

    @Test("Bit points compose one register")
    func bitPoints() throws {
        let (map, cache) = try fixture()
        cache.update(point: try #require(map.index(of: "b0")), image: .bit(position: 0, value: true))
        #expect(exception { _ = try read(cache, unit: 1, .holdingRegister, 10, 1) } != nil, "b3 has no value yet")
        cache.update(point: try #require(map.index(of: "b3")), image: .bit(position: 3, value: true))
        #expect(try read(cache, unit: 1, .holdingRegister, 10, 1) == [0b1001])
    }

    @Test("The read path's index holds every entry of the register map, per unit id and area, in address order")
    func readIndexMirrorsTheMap() throws {
        let (map, _) = try fixture()
        let index = ReadIndex(map: map)
        for unit in UInt8.min...UInt8.max {
            for area in ModbusArea.allCases {
                let table = index.table(unit: unit, area: area)
                guard let (entries, fillGaps) = map.layout(unit: unit, area: area) else {
                    #expect(!table.served, "unit \(unit) is not configured")
                    continue
                }
                #expect(table.served && table.fillGaps == fillGaps)
                let indexed = Array(index.entries[table.start..<table.end])
                #expect(indexed.map(\.start) == entries.map(\.start) && indexed.map(\.end) == entries.map(\.end))
                for (mine, entry) in zip(indexed, entries) {
                    switch mine.kind {
                    case .word: #expect(entry.role == .value && entry.points == [mine.point])
                    case .bits: #expect(Array(index.bitPoints[mine.bits]) == entry.points)
                    case .quality: #expect(entry.role == .quality && entry.points == [mine.point])
                    case .lastCommand: #expect(entry.role == .lastCommand && entry.points == [mine.point])
                    }
                }
                for address in 0..<14 {
                    #expect(
                        index.firstEntry(endingAfter: address, in: table) - table.start
                            == RegisterMap.firstEntry(endingAfter: address, in: entries)
                    )
                }
            }
        }
        let b3 = try #require(map.index(of: "b3"))
        let slot = try #require(index.bitPoints.firstIndex(of: b3))
        #expect(index.bitPositions[slot] == 3)
    }

    @Test(
        "One read across a value, a bit register and an unmapped address answers 02; within the values it answers them"
    )
    func readAcrossKinds() throws {
        let (map, cache) = try fixture()
        cache.update(point: try #require(map.index(of: "sp")), image: .words([0x0001, 0x86A0]))
        cache.update(point: try #require(map.index(of: "b0")), image: .bit(position: 0, value: true))
        cache.update(point: try #require(map.index(of: "b3")), image: .bit(position: 3, value: false))
        cache.update(point: try #require(map.index(of: "ro")), image: .words([42]))
        #expect(try read(cache, unit: 1, .holdingRegister, 10, 2) == [0b0001, 42])
        #expect(try read(cache, unit: 1, .holdingRegister, 1, 1) == [0x86A0], "the second word of a value")
        #expect(exception { _ = try read(cache, unit: 1, .holdingRegister, 0, 11) } == .illegalDataAddress)
    }

    @Test("Write planning: whole points only, writable points only, changed bits only")
    func planning() throws {
        let (map, cache) = try fixture()
        let planner = WritePlanner(map: map, cache: cache)
        let sp = try #require(map.index(of: "sp"))
        let planned = try planner.plan(unit: 1, area: .holdingRegister, address: 0, values: [0, 215])
        #expect(planned == [PlannedPointWrite(point: sp, value: .integer(215), image: .words([0, 215]))])
        func code(_ body: () throws -> Void) -> ModbusExceptionCode? { exception(body) }
        #expect(
            code { _ = try planner.plan(unit: 1, area: .holdingRegister, address: 1, values: [5]) }
                == .illegalDataAddress,
            "half of an int32: 02"
        )
        #expect(
            code { _ = try planner.plan(unit: 1, area: .holdingRegister, address: 0, values: [0, 1, 2]) }
                == .illegalDataAddress,
            "address 2 is unmapped: 02"
        )
        #expect(
            code { _ = try planner.plan(unit: 1, area: .holdingRegister, address: 11, values: [1]) }
                == .illegalDataAddress,
            "a point without command topic is read-only: 02"
        )
        // Bits: unknown current value → every bit is commanded; known → only the changed ones.
        #expect(try planner.plan(unit: 1, area: .holdingRegister, address: 10, values: [0b1000]).count == 2)
        cache.update(point: try #require(map.index(of: "b0")), image: .bit(position: 0, value: true))
        cache.update(point: try #require(map.index(of: "b3")), image: .bit(position: 3, value: false))
        let bits = try planner.plan(unit: 1, area: .holdingRegister, address: 10, values: [0b1001])
        #expect(bits.map { map.points[$0.point].name } == ["b3"] && bits.first?.value == .bool(true))
        // A bit no point maps cannot be set (it would read back 0), known current value or not.
        #expect(
            code { _ = try planner.plan(unit: 1, area: .holdingRegister, address: 10, values: [0b1011]) }
                == .illegalDataAddress
        )
        #expect(
            code { _ = try planner.plan(unit: 1, area: .holdingRegister, address: 10, values: [0x8000]) }
                == .illegalDataAddress
        )
        // FC22 changing bit 3 only: bit 0 is not commanded even when its current value is
        // unknown (a substitute may have stood in for it in the read before the mask write).
        cache.invalidateAll()
        let masked = try planner.plan(
            unit: 1,
            area: .holdingRegister,
            address: 10,
            values: [0b1000],
            changedBits: 0b1000
        )
        #expect(masked.map { map.points[$0.point].name } == ["b3"])
        // An unmapped bit the mask write does not touch does not matter; one it sets does.
        #expect(
            try planner.plan(unit: 1, area: .holdingRegister, address: 10, values: [0b1000], changedBits: 0b1000).count
                == 1
        )
        #expect(
            code {
                _ = try planner.plan(
                    unit: 1,
                    area: .holdingRegister,
                    address: 10,
                    values: [0b0010],
                    changedBits: 0b0010
                )
            } == .illegalDataAddress
        )
    }

    @Test(
        "Ack codes: only 01, 02, 03, 04, 06, 0A, 0B are answered; 99, 0, 05, 08 and other codes become 04, reported"
    )
    func ackCodesTheBridgeAnswers() {
        let settings = AckSettings(mode: .correlationID, responseTopic: "dev/ack")
        func read(_ text: String, _ properties: [(name: String, value: String)] = []) -> AckPayloadEvaluator.Reading {
            AckPayloadEvaluator.read(payload: Array(text.utf8), userProperties: properties, settings: settings)
        }
        for code in [0x01, 0x02, 0x03, 0x04, 0x06, 0x0A, 0x0B] {
            let reading = read(#"{"ok": false, "code": \#(code)}"#)
            #expect(reading.outcome.exceptionCode == ModbusExceptionCode(rawValue: UInt8(code)), "code \(code)")
            #expect(reading.unanswerableCode == nil)
        }
        for code in [0x05, 0x07, 0x08, 0x09, 0x0C, 99, 0xFF] {
            let reading = read(#"{"ok": false, "code": \#(code)}"#)
            #expect(reading.outcome.exceptionCode == .serverDeviceFailure, "code \(code) becomes 04")
            #expect(reading.unanswerableCode == UInt8(code), "the device's code \(code) is reported")
            #expect(
                AckPayloadEvaluator.evaluate(
                    payload: Array(#"{"ok": false, "code": \#(code)}"#.utf8),
                    settings: settings
                )
                    == reading.outcome
            )
        }
        // Hexadecimal text, an MQTT 5 user property, and the device's text kept in the reason.
        #expect(
            read(#"{"ok": false, "code": "0x63", "error": "jammed"}"#).outcome.exceptionCode == .serverDeviceFailure
        )
        if case .rejected(_, let reason) = read(#"{"ok": false, "code": "0x63", "error": "jammed"}"#).outcome {
            #expect(reason.contains("jammed") && reason.contains("0x63"), "\(reason)")
        } else {
            Issue.record("a refusal naming 99 is a refusal")
        }
        #expect(read("", [("modbus_exception", "99")]).unanswerableCode == 99)
        #expect(read("", [("modbus_exception", "99")]).outcome.exceptionCode == .serverDeviceFailure)
        // Outside 1...255 (0, 256, -1) a code is no code: the refusal is 04 with nothing to report.
        for text in ["0", "256", "-1"] {
            let reading = read(#"{"ok": false, "code": \#(text)}"#)
            #expect(reading.outcome.exceptionCode == .serverDeviceFailure)
            #expect(reading.unanswerableCode == nil)
        }
        // A success that names a code is still a success.
        #expect(read(#"{"ok": true, "code": 99}"#).outcome == .acknowledged)
        // The metrics' outcome labels are the same set.
        for code in ModbusExceptionCode.bridgeAnswers {
            #expect(code.isBridgeAnswer && code.isDefined, "\(code)")
        }
        #expect(!ModbusExceptionCode.acknowledge.isBridgeAnswer && ModbusExceptionCode.acknowledge.isDefined)
        #expect(!ModbusExceptionCode(rawValue: 99).isDefined && !ModbusExceptionCode(rawValue: 0).isDefined)
    }

    @Test("Ack payloads: empty, JSON success/error/code, text, user properties")
    func ackEvaluation() {
        let settings = AckSettings(mode: .mqtt5)
        func evaluate(_ text: String, _ properties: [(name: String, value: String)] = []) -> WriteOutcome {
            AckPayloadEvaluator.evaluate(payload: Array(text.utf8), userProperties: properties, settings: settings)
        }
        #expect(evaluate("") == .acknowledged)
        #expect(evaluate(#"{"ok": true}"#) == .acknowledged)
        #expect(evaluate("OK") == .acknowledged)
        #expect(
            evaluate(#"{"ok": false, "error": "locked"}"#) == .rejected(code: .serverDeviceFailure, reason: "locked")
        )
        #expect(
            evaluate(#"{"error": "out of range", "code": 3}"#)
                == .rejected(code: .illegalDataValue, reason: "out of range")
        )
        #expect(evaluate(#"{"ok": false, "code": "0x06"}"#).exceptionCode == .serverDeviceBusy)
        #expect(evaluate("motor jammed") == .rejected(code: .serverDeviceFailure, reason: "motor jammed"))
        #expect(
            evaluate("", [("error", "denied"), ("modbus_exception", "1")])
                == .rejected(code: .illegalFunction, reason: "denied")
        )
        #expect(
            AckPayloadEvaluator.correlationID(
                in: Array(#"{"id": "abc-7", "ok": true}"#.utf8),
                at: AckSettings.defaultIDField
            ) == "abc-7"
        )
    }

    /// Found by Fuzz/FuzzAckEvaluator: a payload of white space, or an empty error text, refused
    /// with an empty reason, which left logs and the write log with nothing to say.
    @Test("A blank refusal still refuses, with the general reason")
    func blankRefusalsHaveAReason() {
        let settings = AckSettings(mode: .mqtt5)
        let general = "the device refused the command"
        for (payload, properties) in [
            (" ", []), ("\n\t", []), (#"{"ok": false, "error": ""}"#, []), (#"{"error": "  "}"#, []),
            ("", [(name: "error", value: "")]), (#"{"code": 6, "error": " "}"#, []),
        ] as [(String, [(name: String, value: String)])] {
            let outcome = AckPayloadEvaluator.evaluate(
                payload: Array(payload.utf8),
                userProperties: properties,
                settings: settings
            )
            guard case .rejected(_, let reason) = outcome else {
                Issue.record("'\(payload)' read as \(outcome)")
                continue
            }
            #expect(reason == general, "'\(payload)'")
        }
    }

    @Test("A multi-point write: broker unreachable beats a refusal, which beats a timeout")
    func combinedOutcome() {
        let refused = WriteOutcome.rejected(code: .illegalDataValue, reason: "no")
        #expect(WriteOutcome.combined([.acknowledged, .acknowledged]) == .acknowledged)
        #expect(WriteOutcome.combined([.acknowledged, .timedOut]).exceptionCode == .gatewayTargetDeviceFailedToRespond)
        #expect(WriteOutcome.combined([.timedOut, refused]) == refused)
        #expect(
            WriteOutcome.combined([refused, .brokerUnavailable(reason: "down")]).exceptionCode
                == .gatewayPathUnavailable
        )
    }

    @Test("An ack promise is fulfilled once: the first outcome wins, later ones change nothing")
    func promiseFulfilledOnce() async {
        let promise = AckPromise(settings: AckSettings(mode: .mqtt5))
        #expect(promise.fulfil(.timedOut))
        #expect(!promise.fulfil(.acknowledged), "a late ack after the timeout changes nothing")
        #expect(await promise.outcome(timeout: .seconds(5)) == .timedOut)
        let tracker = AckTracker()
        let key = AckTracker.Key.correlationID("x")
        _ = tracker.register(key, settings: AckSettings(mode: .correlationID))
        #expect(tracker.take(key) != nil)
        #expect(tracker.take(key) == nil, "taken once; a second (late) ack finds nothing")
    }

    @Test("a Shelly's reply to the bridge's own GetStatus is a status reply, not an ack nobody waits for")
    func statusRepliesAreNotStrayAcks() throws {
        let yaml = """
            broker: { client_id: plant-bridge }
            devices:
              - { name: shelly1, profile: shelly_gen2 }
            units:
              - id: 1
                device: shelly1
                points:
                  - { name: output, area: coil, address: 0, field: output }
            """
        let routes = MessageRoutes(map: RegisterMap(try BridgeConfiguration.parse(yaml: yaml, file: "shelly.yaml")))
        let refresh =
            #"{"id":"refresh:shelly1:switch:0","src":"shelly1","dst":"plant-bridge","result":{"output":true}}"#
        #expect(routes.isStatusReply(topic: "plant-bridge/rpc", payload: Array(refresh.utf8)))
        // A command's reply (its id is a correlation id), another topic, and no JSON are not.
        let command = #"{"id":"c-1","src":"shelly1","dst":"plant-bridge","result":{"was_on":false}}"#
        #expect(!routes.isStatusReply(topic: "plant-bridge/rpc", payload: Array(command.utf8)))
        #expect(!routes.isStatusReply(topic: "shelly1/status/switch:0", payload: Array(refresh.utf8)))
        #expect(!routes.isStatusReply(topic: "plant-bridge/rpc", payload: Array("refresh".utf8)))
        #expect(routes.correlationIDFields(forAckTopic: "plant-bridge/rpc").isEmpty == false, "still an ack topic")
    }
}

@Suite("The command connection's settings and filters")
struct CommandConnectionLogicTests {
    @Test("command_connection is separate by default, shared when asked; a wrong word names the choices")
    func setting() throws {
        let point = "units:\n  - { id: 1, points: [{ name: a, area: coil, address: 0, state_topic: a, max_age: 1m }] }"
        let byDefault = try #require(validConfiguration(point))
        #expect(byDefault.broker.commandConnection == .separate)
        #expect(byDefault.broker.commandClientID == "mqtt-modbus-bridge-cmd")
        let shared = try #require(
            validConfiguration("broker: { client_id: plant, command_connection: shared }\n" + point)
        )
        #expect(shared.broker.commandConnection == .shared)
        #expect(shared.broker.commandClientID == "plant-cmd")
        expectSingleError(
            """
            broker:
              command_connection: seperate   #!
            \(point)
            """,
            "'command_connection' must be one of separate, shared"
        )
    }

    @Test("only ack topics that carry nothing else go to the command connection")
    func commandFilters() throws {
        let yaml = """
            units:
              - id: 1
                points:
                  - { name: sp, area: holding_register, address: 0, type: int16, command_topic: dev/sp/set,
                      ack: { mode: mqtt5 } }
                  - { name: valve, area: coil, address: 0, command_topic: dev/valve/set, payload: { format: json, path: value },
                      ack: { mode: correlation_id, response_topic: dev/acks, timeout: 2s } }
                  - { name: shared, area: holding_register, address: 1, type: int16, state_topic: dev/report,
                      command_topic: dev/shared/set, payload: { format: json, path: value }, ack: { mode: correlation_id, response_topic: dev/report } }
                  - { name: echo, area: holding_register, address: 2, type: int16, state_topic: dev/echo,
                      command_topic: dev/echo/set, ack: { mode: state_echo } }
            """
        let routes = MessageRoutes(map: RegisterMap(try BridgeConfiguration.parse(yaml: yaml, file: "acks.yaml")))
        #expect(Set(routes.ackFilters) == ["dev/sp/set/response", "dev/acks", "dev/report"])
        // dev/report is also a state topic: it stays with the telemetry.
        #expect(routes.commandFilters == ["dev/sp/set/response", "dev/acks"])
        #expect(Set(routes.subscriptions.map(\.topic)).isSuperset(of: routes.commandFilters))
    }
}
