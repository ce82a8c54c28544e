import Foundation
import ModbusCore
import NIOCore
import Testing

@testable import MQTTModbusBridge
@testable import MQTTModbusBridgeConfiguration
@testable import ModbusTCPServer

/// Quality and last-command registers, and unit aliases: the configuration, its errors, and what
/// the cache answers. No broker: the end-to-end tests cover the wire.
@Suite("Status registers and unit aliases")
struct StatusRegisterTests {
    static let yaml = """
        modbus:
          unknown_unit: exception
        devices:
          - name: plug
            availability: { topic: plug/LWT }
        units:
          - id: 1
            aliases: [0, 255]
            device: plug
            points:
              - { name: power, area: input_register, address: 0, type: uint16, state_topic: plug/power, max_age: 2s,
                  quality: { area: input_register, address: 100 } }
              - { name: relay, area: coil, address: 0, state_topic: plug/relay, command_topic: plug/relay/set,
                  quality: { area: discrete_input, address: 0 },
                  last_command: { area: holding_register, address: 100 } }
              - { name: flag, area: holding_register, address: 5, type: bit, bit: 3, state_topic: plug/flag,
                  quality: { area: holding_register, address: 101 } }
          - id: 2
            points:
              - { name: other, area: input_register, address: 0, type: uint16, state_topic: o, max_age: 1m }
        """

    // MARK: Configuration

    @Test("quality, last_command, aliases and unknown_unit load as written")
    func loads() throws {
        let configuration = try BridgeConfiguration.parse(yaml: Self.yaml, file: "test.yaml")
        let power = try #require(configuration.point(named: "power"))
        #expect(power.quality?.area == .inputRegister)
        #expect(power.quality?.address == 100)
        #expect(power.quality?.location.line == 12, "where quality: was written")
        #expect(power.lastCommand == nil)
        let relay = try #require(configuration.point(named: "relay"))
        #expect(relay.quality?.area == .discreteInput)
        #expect(
            relay.lastCommand
                == StatusRegister(area: .holdingRegister, address: 100, location: relay.lastCommand!.location)
        )
        #expect(configuration.unit(id: 1)?.aliases == [0, 255])
        #expect(configuration.unitIDs == [0, 1, 2, 255], "aliases are answered")
        #expect(configuration.modbus.unknownUnit == .exception)
        let ignoring = try BridgeConfiguration.parse(
            yaml: "modbus: { unknown_unit: ignore }\n"
                + singlePoint("      - { name: a, area: coil, address: 0, state_topic: a, max_age: 1m }"),
            file: "test.yaml"
        )
        #expect(ignoring.modbus.unknownUnit == .ignore)
        #expect(ignoring.warnings.isEmpty, "\(ignoring.warnings)")
        #expect(ModbusListenerSettings().unknownUnit == .exception, "0B by default")
    }

    @Test("The encodings: quality codes, discrete input 1 = fresh, last command high byte outcome, low byte code")
    func encodings() {
        #expect(PointQuality.allCases.map(\.rawValue) == [0, 1, 2, 3, 4])
        #expect(PointQuality.fresh.registerValue(in: .discreteInput) == 1)
        for quality in PointQuality.allCases where quality != .fresh {
            #expect(quality.registerValue(in: .discreteInput) == 0)
            #expect(quality.registerValue(in: .holdingRegister) == quality.rawValue)
        }
        #expect(LastCommandStatus.none.registerValue == 0)
        #expect(LastCommandStatus(.acknowledged).registerValue == 0x0100)
        #expect(LastCommandStatus(.rejected(code: .serverDeviceBusy, reason: "busy")).registerValue == 0x0206)
        #expect(LastCommandStatus(.timedOut).registerValue == 0x030B)
        #expect(LastCommandStatus(.brokerUnavailable(reason: "gone")).registerValue == 0x040A)
        #expect(
            LastCommandStatus(outcome: .deviceOffline, exceptionCode: .gatewayTargetDeviceFailedToRespond).registerValue
                == 0x050B
        )
        #expect(LastCommandStatus(outcome: .notSent, exceptionCode: .illegalDataValue).registerValue == 0x0603)
    }

    // MARK: Errors

    @Test("A quality register in a coil is an error: masters may write coils")
    func qualityInCoil() {
        expectSingleError(
            singlePoint(
                """
                      - name: a
                        area: input_register
                        address: 0
                        type: uint16
                        state_topic: a
                        max_age: 1m
                        quality: { area: coil, address: 0 } #!
                """
            ),
            "a quality register cannot be in area coil",
            fix: "use discrete_input, holding_register, input_register"
        )
    }

    @Test("A last-command register in a bit area is an error: it holds 16 bits")
    func lastCommandInBits() {
        expectSingleError(
            singlePoint(
                """
                      - name: a
                        area: holding_register
                        address: 0
                        type: uint16
                        command_topic: a/set
                        last_command: { area: discrete_input, address: 0 } #!
                """
            ),
            "a last-command register cannot be in area discrete_input",
            fix: "use holding_register, input_register"
        )
    }

    @Test("last_command on a read-only point is an error")
    func lastCommandNeedsCommandTopic() {
        expectSingleError(
            singlePoint(
                """
                      - name: a
                        area: input_register
                        address: 0
                        type: uint16
                        state_topic: a
                        max_age: 1m
                        last_command: { area: input_register, address: 9 } #!
                """
            ),
            "'last_command' needs a 'command_topic'",
            fix: "add command_topic, or remove last_command"
        )
    }

    @Test("A status register must have an area and an address, and nothing else")
    func statusRegisterKeys() {
        let errors = configurationErrors(
            singlePoint(
                """
                      - name: a
                        area: input_register
                        address: 0
                        type: uint16
                        state_topic: a
                        max_age: 1m
                        quality: { area: input_register, adress: 7 }
                """
            )
        )
        #expect(errors.count == 1, "\(errors)")
        #expect(errors.first?.message.contains("unknown key 'adress'") == true, "\(errors)")
        #expect(errors.first?.fix?.contains("did you mean 'address'?") == true)
        #expect(errors.first?.line == 10)
    }

    @Test("A quality register on another point's address is an error naming both, with a fix")
    func qualityOverlapsPoint() throws {
        let yaml = singlePoint(
            """
                  - { name: a, area: input_register, address: 0, type: float32, state_topic: a, max_age: 1m }
                  - name: b
                    area: input_register
                    address: 2
                    type: uint16
                    state_topic: b
                    max_age: 1m
                    quality: { area: input_register, address: 1 } #!
            """
        )
        let error = try #require(
            expectSingleError(
                yaml,
                "the quality register of point 'b' (input_register 1) overlaps point 'a' (input_register 0...1) defined at line 4, in unit 1",
                fix: "move it to a free address"
            )
        )
        #expect(error.column > 0)
    }

    @Test("A point placed on an earlier status register is reported at the point")
    func pointOverlapsStatusRegister() {
        let yaml = singlePoint(
            """
                  - name: a
                    area: holding_register
                    address: 0
                    type: uint16
                    command_topic: a/set
                    last_command: { area: holding_register, address: 10 }
                  - { name: b, area: holding_register, address: 10, type: uint16, command_topic: b/set } #!
            """
        )
        expectSingleError(
            yaml,
            "point 'b' (holding_register 10) overlaps the last-command register of point 'a' (holding_register 10) defined at line 9",
            fix: "move one of them"
        )
    }

    @Test("Two status registers on one address are an error")
    func statusRegistersCollide() {
        let yaml = singlePoint(
            """
                  - name: a
                    area: holding_register
                    address: 0
                    type: uint16
                    command_topic: a/set
                    quality: { area: input_register, address: 50 }
                    last_command: { area: input_register, address: 50 } #!
            """
        )
        expectSingleError(
            yaml,
            "the last-command register of point 'a' (input_register 50) overlaps the quality register of point 'a'"
        )
    }

    @Test("An alias that is another unit's id is an error naming that unit's line")
    func aliasIsAnotherUnitID() {
        let yaml = """
            units:
              - id: 1
                aliases: [0, 2] #!
                points:
                  - { name: a, area: coil, address: 0, state_topic: a, max_age: 1m }
              - id: 2
                points:
                  - { name: b, area: coil, address: 0, state_topic: b, max_age: 1m }
            """
        expectSingleError(yaml, "unit 1: alias 2 is the id of the unit at line 6", fix: "remove the alias")
    }

    @Test("An alias of two units is an error at the second")
    func aliasOfTwoUnits() {
        let yaml = """
            units:
              - id: 1
                aliases: [255]
                points:
                  - { name: a, area: coil, address: 0, state_topic: a, max_age: 1m }
              - id: 2
                aliases: [255] #!
                points:
                  - { name: b, area: coil, address: 0, state_topic: b, max_age: 1m }
            """
        expectSingleError(
            yaml,
            "unit 2: alias 255 is already an alias of unit 1 (line 3)",
            fix: "keep the alias on one unit only"
        )
    }

    @Test("An alias that is the unit's own id, listed twice, or out of range is an error")
    func badAliases() {
        let own = """
            units:
              - id: 1
                aliases: [1] #!
                points:
                  - { name: a, area: coil, address: 0, state_topic: a, max_age: 1m }
            """
        expectSingleError(own, "unit 1: alias 1 is the unit's own id", fix: "remove it")
        let twice = """
            units:
              - id: 1
                aliases: [0, 0] #!
                points:
                  - { name: a, area: coil, address: 0, state_topic: a, max_age: 1m }
            """
        expectSingleError(twice, "unit 1: alias 0 is listed twice")
        let range = """
            units:
              - id: 1
                aliases: [256] #!
                points:
                  - { name: a, area: coil, address: 0, state_topic: a, max_age: 1m }
            """
        expectSingleError(range, "'aliases' must be in 0...255, found 256")
    }

    @Test("unknown_unit takes exception or ignore")
    func unknownUnitChoice() {
        let yaml =
            "modbus:\n  unknown_unit: silent #!\n"
            + singlePoint("      - { name: a, area: coil, address: 0, state_topic: a, max_age: 1m }")
        expectSingleError(yaml, "'unknown_unit' must be one of exception, ignore, found 'silent'")
    }

    // MARK: The cache

    struct Fixture {
        let map: RegisterMap
        let cache: PointCache
        let power: Int
        let relay: Int
        let flag: Int
        let plug: Int

        init() throws {
            let configuration = try BridgeConfiguration.parse(yaml: StatusRegisterTests.yaml, file: "test.yaml")
            map = RegisterMap(configuration)
            cache = PointCache(map: map)
            power = try #require(map.index(of: "power"))
            relay = try #require(map.index(of: "relay"))
            flag = try #require(map.index(of: "flag"))
            plug = try #require(map.deviceOfPoint[power])
        }

        /// The value register's answer and the quality register's, read as the server reads them.
        func powerRead() throws -> (value: ModbusExceptionCode?, quality: UInt16) {
            let value = exception { _ = try read(cache, unit: 1, .inputRegister, 0, 1) }
            return (value, try read(cache, unit: 1, .inputRegister, 100, 1)[0])
        }
    }

    @Test(
        "Quality follows missing → fresh → stale → device offline → online → connection lost, and agrees with the value"
    )
    func qualityTransitions() throws {
        let fixture = try Fixture()
        let cache = fixture.cache
        // Never received: the value answers 0B, the quality register answers (it never throws).
        #expect(try fixture.powerRead() == (.gatewayTargetDeviceFailedToRespond, PointQuality.missing.rawValue))

        let start = PointCache.now()
        cache.update(point: fixture.power, image: .words([42]), at: start)
        #expect(try fixture.powerRead() == (nil, PointQuality.fresh.rawValue))
        #expect(cache.quality(of: fixture.power, at: start + 1_000_000_000) == .fresh)
        #expect(cache.quality(of: fixture.power, at: start + 3_000_000_000) == .stale, "older than max_age 2s")

        cache.setAvailability(device: fixture.plug, online: false)
        #expect(try fixture.powerRead() == (.gatewayTargetDeviceFailedToRespond, PointQuality.deviceOffline.rawValue))
        cache.setAvailability(device: fixture.plug, online: true)
        #expect(try fixture.powerRead() == (nil, PointQuality.fresh.rawValue), "back online, the value is current")

        cache.invalidateAll()
        #expect(try fixture.powerRead() == (.gatewayTargetDeviceFailedToRespond, PointQuality.connectionLost.rawValue))
        #expect(cache.quality(of: fixture.relay) == .missing, "never received before the loss: still missing")
        cache.update(point: fixture.power, image: .words([43]))
        #expect(try fixture.powerRead() == (nil, PointQuality.fresh.rawValue))
    }

    @Test("The value answers exactly when its quality is fresh, at every moment of a value's life")
    func qualityNeverDisagrees() throws {
        let fixture = try Fixture()
        let cache = fixture.cache
        let start = PointCache.now()
        cache.update(point: fixture.power, image: .words([1]), at: start)
        for step in 0...40 {
            let time = start + UInt64(step) * 100_000_000
            #expect(
                cache.isFresh(point: fixture.power, at: time) == (cache.quality(of: fixture.power, at: time) == .fresh)
            )
        }
        cache.setAvailability(device: fixture.plug, online: false)
        #expect(!cache.isFresh(point: fixture.power) && cache.quality(of: fixture.power) == .deviceOffline)
    }

    @Test("A discrete-input quality reads 1 only while fresh; a bit point's quality is its own")
    func discreteQuality() throws {
        let fixture = try Fixture()
        let cache = fixture.cache
        #expect(try read(cache, unit: 1, .discreteInput, 0, 1) == [0])
        cache.update(point: fixture.relay, image: .words([1]))
        #expect(try read(cache, unit: 1, .discreteInput, 0, 1) == [1])
        #expect(try read(cache, unit: 1, .holdingRegister, 101, 1) == [PointQuality.missing.rawValue])
        cache.update(point: fixture.flag, image: .bit(position: 3, value: true))
        #expect(try read(cache, unit: 1, .holdingRegister, 100, 2) == [0, PointQuality.fresh.rawValue])
        cache.setAvailability(device: fixture.plug, online: false)
        #expect(try read(cache, unit: 1, .discreteInput, 0, 1) == [0])
    }

    @Test("The last-command register holds the recorded status; 0 before any write")
    func lastCommandRegister() throws {
        let fixture = try Fixture()
        #expect(try read(fixture.cache, unit: 1, .holdingRegister, 100, 1) == [0])
        fixture.cache.recordCommand(point: fixture.relay, LastCommandStatus(.timedOut))
        #expect(try read(fixture.cache, unit: 1, .holdingRegister, 100, 1) == [0x030B])
        fixture.cache.recordCommand(point: fixture.relay, LastCommandStatus(.acknowledged))
        #expect(try read(fixture.cache, unit: 1, .holdingRegister, 100, 1) == [0x0100])
    }

    @Test("Status registers refuse writes with 02, like read-only points")
    func statusRegistersAreReadOnly() throws {
        let fixture = try Fixture()
        let planner = WritePlanner(map: fixture.map, cache: fixture.cache)
        for address: UInt16 in [100, 101] {
            #expect(
                exception { _ = try planner.plan(unit: 1, area: .holdingRegister, address: address, values: [0]) }
                    == .illegalDataAddress
            )
        }
        #expect(
            exception { _ = try planner.plan(unit: 1, area: .holdingRegister, address: 99, values: [0, 0]) }
                == .illegalDataAddress,
            "a range that reaches one is refused whole"
        )
    }

    @Test("An alias answers with its unit's points; other units are unknown (0B)")
    func aliases() throws {
        let fixture = try Fixture()
        fixture.cache.update(point: fixture.power, image: .words([42]))
        for unit: UInt8 in [1, 0, 255] {
            #expect(try read(fixture.cache, unit: unit, .inputRegister, 0, 1) == [42])
            #expect(try read(fixture.cache, unit: unit, .inputRegister, 100, 1) == [0])
        }
        #expect(
            exception { _ = try read(fixture.cache, unit: 3, .inputRegister, 0, 1) }
                == .gatewayTargetDeviceFailedToRespond
        )
        #expect(
            exception { _ = try read(fixture.cache, unit: 2, .inputRegister, 0, 1) }
                == .gatewayTargetDeviceFailedToRespond,
            "unit 2 keeps its own points (not received yet)"
        )
    }
}
