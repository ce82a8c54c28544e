import ModbusCore
import Testing

@testable import MQTTModbusBridgeConfiguration

/// `modbus.allowed_clients` and `modbus.read_only` as the loader reads them.
@Suite("Modbus access settings")
struct AccessSettingsTests {
    static let points = """
        units:
          - id: 1
            points:
              - { name: t, area: input_register, address: 0, type: int16, state_topic: t, max_age: 1m }
        """

    @Test("allowed_clients and read_only load as written; absent, every address may connect and write")
    func loads() throws {
        let configuration = try #require(
            validConfiguration(
                """
                modbus:
                  allowed_clients: [10.0.0.0/8, 192.168.1.20, "fd00::/8"]
                  read_only: true
                """ + "\n" + Self.points
            )
        )
        #expect(
            configuration.modbus.allowedClients?.map(\.description) == [
                "10.0.0.0/8", "192.168.1.20/32", "fd00:0:0:0:0:0:0:0/8",
            ]
        )
        #expect(configuration.modbus.readOnly)
        let defaults = try #require(validConfiguration(Self.points))
        #expect(defaults.modbus.allowedClients == nil)
        #expect(!defaults.modbus.readOnly)
    }

    @Test("event_loop_threads loads as written, is absent by default, and must be 1...1024")
    func eventLoopThreads() throws {
        let configured = try #require(validConfiguration("modbus: { event_loop_threads: 3 }\n" + Self.points))
        #expect(configured.modbus.eventLoopThreads == 3)
        #expect(try #require(validConfiguration(Self.points)).modbus.eventLoopThreads == nil)
        expectSingleError(
            "modbus: { event_loop_threads: 0 }   #!\n" + Self.points,
            "'event_loop_threads' must be in 1...1024, found 0"
        )
    }

    @Test("a host name or a malformed range is an error on its line, with the fix")
    func malformedRange() {
        let error = expectSingleError(
            """
            modbus:
              allowed_clients:
                - 10.0.0.0/8
                - scada.plant.local   #!
            """ + "\n" + Self.points,
            "'scada.plant.local' is not an address or a range",
            fix: "CIDR"
        )
        #expect(error != nil)
        expectSingleError(
            """
            modbus:
              allowed_clients: [10.0.0.0/33]   #!
            """ + "\n" + Self.points,
            "'10.0.0.0/33' is not an address or a range"
        )
    }

    @Test("an empty allow-list is refused: it would let no master in")
    func emptyList() {
        expectSingleError(
            """
            modbus:
              allowed_clients: []   #!
            """ + "\n" + Self.points,
            "lets no master connect",
            fix: "remove the key"
        )
    }
}

/// `broker.password_env`, and the rule that a password comes from one place.
@Suite("Broker password sources")
struct PasswordSourceTests {
    static let points = AccessSettingsTests.points

    @Test("password_env names a variable; the variable's value is read when the service is created")
    func environment() throws {
        let configuration = try #require(
            validConfiguration("broker: { username: u, password_env: MQTT_PASSWORD }\n" + Self.points)
        )
        #expect(configuration.broker.password == .environment(name: "MQTT_PASSWORD"))
    }

    @Test("two sources at once are refused")
    func twoSources() {
        expectSingleError(
            """
            broker:
              username: u
              password: a
              password_env: MQTT_PASSWORD   #!
            """ + "\n" + Self.points,
            "'password' and 'password_env' are both set",
            fix: "keep one"
        )
    }

    @Test("a value where the variable's name belongs is refused, without echoing it as a name")
    func valueInsteadOfName() {
        let error = expectSingleError(
            """
            broker:
              username: u
              password_env: "hunter2!"   #!
            """ + "\n" + Self.points,
            "must name an environment variable",
            fix: "MQTT_PASSWORD"
        )
        #expect(error.map { !"\($0)".contains("hunter2") } ?? false, "the value is not repeated")
    }
}
