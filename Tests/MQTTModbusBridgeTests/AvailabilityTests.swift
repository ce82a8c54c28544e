import Foundation
import ModbusCore
import NIOCore
import Testing

@testable import MQTTModbusBridge
@testable import MQTTModbusBridgeConfiguration
@testable import ModbusTCPServer

/// Devices, availability and silence: the configuration, the payload words, and what the cache
/// answers while a device is offline. No broker: the end-to-end tests cover the wire.
@Suite("Device availability")
struct AvailabilityTests {
    static let yaml = """
        devices:
          - name: plug
            availability: { topic: z2m/plug/availability, path: state }
          - name: meter
            silence: 2s
          - name: loner
            offline_writes: publish
        units:
          - id: 1
            device: plug
            points:
              - { name: power, area: input_register, address: 0, type: uint16, state_topic: z2m/plug/power }
              - { name: energy, area: input_register, address: 1, type: uint16, state_topic: m/e, device: meter }
          - id: 2
            points:
              - { name: free, area: input_register, address: 0, type: uint16, state_topic: f, max_age: 1m }
        """

    @Test("Devices load, a unit's device applies to its points, and a point can name another")
    func devicesLoad() throws {
        let configuration = try BridgeConfiguration.parse(yaml: Self.yaml, file: "test.yaml")
        #expect(configuration.devices.map(\.name) == ["plug", "meter", "loner"])
        let plug = try #require(configuration.device(named: "plug"))
        #expect(plug.availability?.topic == "z2m/plug/availability")
        #expect(plug.availability?.onlineWords == ["online", "true"])
        #expect(plug.availability?.path == (try JSONPath(parsing: "state")))
        #expect(plug.offlineWrites == .refuse)
        #expect(configuration.device(named: "meter")?.silence == .seconds(2))
        #expect(configuration.device(named: "loner")?.offlineWrites == .publish)
        #expect(configuration.point(named: "power")?.device == "plug")
        #expect(configuration.point(named: "energy")?.device == "meter")
        #expect(configuration.point(named: "free")?.device == nil)
        #expect(configuration.freshnessWarnings.isEmpty, "\(configuration.freshnessWarnings)")
    }

    // MARK: Errors

    @Test("A point naming an unknown device is an error with the closest name suggested")
    func unknownDevice() {
        let yaml = """
            devices:
              - name: boiler
            units:
              - id: 1
                points:
                  - { name: a, area: coil, address: 0, state_topic: a, device: boilr } #!
            """
        expectSingleError(yaml, "point 'a': no device named 'boilr'", fix: "did you mean 'boiler'?")
    }

    @Test("A unit naming an unknown device is an error")
    func unknownUnitDevice() {
        let yaml = """
            units:
              - id: 1
                device: nowhere #!
                points:
                  - { name: a, area: coil, address: 0, state_topic: a, max_age: 1m }
            """
        expectSingleError(yaml, "unit 1: no device named 'nowhere'", fix: "add it to 'devices:'")
    }

    @Test("Two devices with one name are an error")
    func duplicateDevice() {
        let yaml = """
            devices:
              - name: d
              - name: d #!
            units:
              - id: 1
                points:
                  - { name: a, area: coil, address: 0, state_topic: a, max_age: 1m }
            """
        expectSingleError(yaml, "device name 'd' is already used by the device at line 2")
    }

    @Test("A word that means both online and offline is an error")
    func overlappingWords() {
        let yaml = """
            devices:
              - name: d
                availability:
                  topic: d/online
                  online: [up, yes] #!
                  offline: [down, YES]
            units:
              - id: 1
                points:
                  - { name: a, area: coil, address: 0, state_topic: a, max_age: 1m }
            """
        expectSingleError(yaml, "'yes' is both an online and an offline word")
    }

    @Test("An availability topic must be a topic name and silence must be positive")
    func badTopicAndSilence() {
        let yaml = """
            devices:
              - name: d
                availability: { topic: "d/+/online" }
                silence: 0s
            units:
              - id: 1
                points:
                  - { name: a, area: coil, address: 0, state_topic: a, max_age: 1m }
            """
        let errors = configurationErrors(yaml)
        #expect(errors.count == 2, "\(errors)")
        #expect(errors.contains { $0.message.contains("'topic'") && $0.line == 3 })
        #expect(errors.contains { $0.message.contains("'silence' must be positive") && $0.line == 4 })
    }

    @Test("An unknown device key suggests the closest")
    func unknownKey() {
        let yaml = """
            devices:
              - name: d
                silense: 5m #!
            units:
              - id: 1
                points:
                  - { name: a, area: coil, address: 0, state_topic: a, max_age: 1m }
            """
        expectSingleError(yaml, "unknown key 'silense'", fix: "did you mean 'silence'?")
    }

    // MARK: The stance on stale data

    @Test("Points that can never go stale are named in one freshness warning")
    func freshnessWarning() throws {
        let yaml = """
            devices:
              - name: unwatched
            units:
              - id: 1
                points:
                  - { name: a, area: coil, address: 0, state_topic: a }
                  - { name: b, area: coil, address: 1, state_topic: b, max_age: 1m }
                  - { name: c, area: coil, address: 2, state_topic: c, device: unwatched }
                  - { name: d, area: coil, address: 3, command_topic: d/set }
            """
        let configuration = try #require(validConfiguration(yaml))
        #expect(configuration.warnings.isEmpty, "the other warnings are unaffected")
        try #require(configuration.freshnessWarnings.count == 1)
        let warning = configuration.freshnessWarnings[0]
        #expect(warning.severity == .warning)
        #expect(warning.message.contains("2 point(s) can never go stale"))
        #expect(warning.message.hasSuffix(": a, c"), "command-only points have nothing to go stale")
        #expect(warning.line == 6, "at the first point")
        #expect(warning.fix?.contains("max_age") == true)
    }

    @Test("Every example sets max_age or a watched device for every point")
    func examplesAreNeverStaleForever() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: exampleConfigsDirectory).filter {
            $0.hasSuffix(".yaml")
        }
        #expect(!files.isEmpty)
        for file in files.sorted() {
            let configuration = try BridgeConfiguration.load(path: exampleConfigsDirectory + "/" + file)
            #expect(configuration.freshnessWarnings.isEmpty, "\(file): \(configuration.freshnessWarnings)")
        }
    }

    // MARK: Payload words

    @Test("Availability payloads: words without case, JSON at the path, plain text beside JSON, others unknown")
    func availabilityWords() throws {
        let tasmota = AvailabilitySettings(topic: "t", onlineWords: ["Online"], offlineWords: ["Offline"])
        #expect(tasmota.isOnline(payload: Array("Online".utf8)) == true)
        #expect(tasmota.isOnline(payload: Array("offline".utf8)) == false)
        #expect(tasmota.isOnline(payload: Array(" Offline\n".utf8)) == false)
        #expect(tasmota.isOnline(payload: Array("rebooting".utf8)) == nil)
        #expect(tasmota.isOnline(payload: []) == nil)

        let z2m = AvailabilitySettings(topic: "t", path: try JSONPath(parsing: "state"))
        #expect(z2m.isOnline(payload: Array(#"{"state":"online"}"#.utf8)) == true)
        #expect(z2m.isOnline(payload: Array(#"{"state":"offline"}"#.utf8)) == false)
        #expect(z2m.isOnline(payload: Array("online".utf8)) == true, "the older plain-text form")
        #expect(z2m.isOnline(payload: Array(#"{"other":1}"#.utf8)) == nil)

        let shelly = AvailabilitySettings(topic: "t")
        #expect(shelly.isOnline(payload: Array("true".utf8)) == true)
        #expect(shelly.isOnline(payload: Array("false".utf8)) == false)
    }

    // MARK: The cache

    @Test("An offline device's fresh values answer the missing-value policy at once, and come back online")
    func offlineDevice() throws {
        let configuration = try BridgeConfiguration.parse(yaml: Self.yaml, file: "test.yaml")
        let map = RegisterMap(configuration)
        let cache = PointCache(map: map)
        let power = try #require(map.index(of: "power"))
        let plug = try #require(map.deviceOfPoint[power])
        cache.update(point: power, image: .words([42]))
        #expect(try read(cache, unit: 1, .inputRegister, 0, 1) == [42], "availability not known yet: not offline")

        cache.setAvailability(device: plug, online: false)
        #expect(cache.isDeviceOffline(plug))
        #expect(exception { _ = try read(cache, unit: 1, .inputRegister, 0, 1) } == .gatewayTargetDeviceFailedToRespond)

        cache.setAvailability(device: plug, online: true)
        #expect(
            try read(cache, unit: 1, .inputRegister, 0, 1) == [42],
            "the value is still current once the device is back"
        )

        cache.setAvailability(device: plug, online: false)
        cache.invalidateAll()
        #expect(!cache.isDeviceOffline(plug), "after a broker loss the device's state is unknown again")
    }

    @Test("A device silent for longer than its limit is offline until it is heard from")
    func silentDevice() throws {
        let configuration = try BridgeConfiguration.parse(yaml: Self.yaml, file: "test.yaml")
        let map = RegisterMap(configuration)
        let cache = PointCache(map: map)
        let energy = try #require(map.index(of: "energy"))
        let meter = try #require(map.deviceOfPoint[energy])
        #expect(cache.isDeviceOffline(meter), "with a silence limit, a device never heard from is offline")

        let start = PointCache.now()
        cache.deviceSeen(meter, at: start)
        cache.update(point: energy, image: .words([7]), at: start)
        #expect(!cache.isDeviceOffline(meter, at: start + 1_999_000_000))
        #expect(cache.isDeviceOffline(meter, at: start + 2_001_000_000))
        #expect(cache.isFresh(point: energy, at: start + 1_000_000_000))
        #expect(!cache.isFresh(point: energy, at: start + 3_000_000_000), "a silent device's value is missing")

        cache.deviceSeen(meter, at: start + 3_000_000_000)
        #expect(!cache.isDeviceOffline(meter, at: start + 3_500_000_000))
    }
}
