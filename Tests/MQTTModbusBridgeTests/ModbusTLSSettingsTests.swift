import ModbusCore
import Testing

@testable import MQTTModbusBridge
@testable import MQTTModbusBridgeConfiguration

/// `modbus.tls` (the Modbus/TCP Security listener and its role map) as the loader reads and
/// checks it, and what a reload may change of it.
@Suite("Modbus/TCP Security settings")
struct ModbusTLSSettingsTests {
    static let points = """
        units:
          - id: 1
            points:
              - { name: t, area: holding_register, address: 0, type: int16, state_topic: t, command_topic: t/set, max_age: 1m }
          - id: 2
            points:
              - { name: c, area: coil, address: 0, type: bool, state_topic: c, command_topic: c/set, max_age: 1m }
        """

    static func yaml(_ tls: String, modbus: String = "") -> String {
        "modbus:\n" + modbus + "  tls:\n" + tls + "\n" + points
    }

    static let full = """
            port: 8802
            certificate: certs/server.crt
            key: /etc/bridge/server.key
            ca: certs/ca.crt
            default_role: viewer
            handshake_timeout: 3s
            roles:
              operator: { read: all, write: all }
              viewer: { read: all }
              line1: { units: [1], read: [holding_register, coil], write: [holding_register], function_codes: [3, 6, 16] }
        """

    @Test("a full modbus.tls section loads as written; relative paths follow the file; the port defaults to 802")
    func loads() throws {
        let configuration = try ConfigurationLoader(file: "/etc/bridge/bridge.yaml", baseDirectory: "/etc/bridge")
            .load(yaml: Self.yaml(Self.full))
        let tls = try #require(configuration.modbus.tls)
        #expect(tls.port == 8802 && tls.host == nil)
        #expect(tls.certificateFile == "/etc/bridge/certs/server.crt")
        #expect(tls.keyFile == "/etc/bridge/server.key")
        #expect(tls.caFile == "/etc/bridge/certs/ca.crt")
        #expect(tls.defaultRole == "viewer")
        #expect(tls.handshakeTimeout == .seconds(3))
        #expect(tls.roles["operator"] == .fullAccess)
        #expect(tls.roles["viewer"] == .readOnly)
        #expect(
            tls.roles["line1"]
                == ModbusRolePermissions(
                    units: [1],
                    readableAreas: [.holdingRegister, .coil],
                    writableAreas: [.holdingRegister],
                    functionCodes: [3, 6, 16]
                )
        )
        #expect(configuration.modbus.plainListener)

        let minimal = try #require(
            validConfiguration(
                Self.yaml(
                    "    certificate: s.crt\n    key: s.key\n    ca: ca.crt\n    roles: { viewer: { read: all } }"
                )
            )
        )
        #expect(minimal.modbus.tls?.port == 802 && minimal.modbus.tls?.defaultRole == nil)
        #expect(try #require(validConfiguration(Self.points)).modbus.tls == nil)
    }

    @Test("the listener's settings and the roles reach the server's configuration")
    func serverConfiguration() throws {
        let configuration = try #require(validConfiguration(Self.yaml(Self.full, modbus: "  host: 127.0.0.1\n")))
        let tls = try #require(configuration.modbus.tls)
        let listener = MQTTModbusBridgeService.listenerConfiguration(configuration, tls: tls)
        #expect(listener.host == "127.0.0.1" && listener.port == 8802)
        #expect(listener.tls?.authorization == tls.authorization)
        #expect(listener.tls?.handshakeTimeout == .seconds(3))
        #expect(listener.unitIDs == [1, 2])
        #expect(MQTTModbusBridgeService.listenerConfiguration(configuration, tls: nil).tls == nil)
    }

    @Test("missing files and roles are errors with a fix")
    func requiredKeys() {
        expectSingleError(
            Self.yaml("    key: s.key   #!\n    ca: ca.crt\n    roles: { viewer: { read: all } }"),
            "modbus.tls is missing 'certificate'",
            fix: "PEM"
        )
        expectSingleError(
            Self.yaml("    certificate: s.crt   #!\n    key: s.key\n    ca: ca.crt"),
            "modbus.tls is missing 'roles'",
            fix: "at least one role"
        )
        expectSingleError(
            Self.yaml("    certificate: s.crt\n    key: s.key\n    ca: ca.crt\n    roles: {}   #!"),
            "'roles' is empty"
        )
    }

    @Test(
        "bad roles are errors on their line: an area no function code writes, an unknown area, an unserved function code, an undefined default role"
    )
    func roleErrors() {
        let base = "    certificate: s.crt\n    key: s.key\n    ca: ca.crt\n"
        expectSingleError(
            Self.yaml(base + "    roles:\n      r:\n        write: [input_register]   #!"),
            "no function code writes input_registers",
            fix: "only coil and holding_register"
        )
        expectSingleError(
            Self.yaml(base + "    roles:\n      r:\n        read: [holding_registers]   #!"),
            "must be one of coil, discrete_input, holding_register, input_register",
            fix: "did you mean 'holding_register'?"
        )
        expectSingleError(
            Self.yaml(base + "    roles:\n      r:\n        read: all\n        function_codes: [3, 7]   #!"),
            "'function_codes' lists 7, which the server does not serve"
        )
        expectSingleError(
            Self.yaml(base + "    default_role: operater   #!\n    roles: { operator: { read: all } }"),
            "'default_role' names 'operater', which is not in modbus.tls.roles",
            fix: "did you mean 'operator'?"
        )
        expectSingleError(
            Self.yaml(base + "    roles:\n      r:\n        read: everything   #!"),
            "'read' must be all, none or a list of areas"
        )
        expectSingleError(
            Self.yaml(base + "    roles:\n      r:\n        units: [1, 300]   #!\n        read: all"),
            "must be in 0...255"
        )
        expectSingleError(
            Self.yaml(base + "    roles:\n      r:\n        reads: all   #!"),
            "'reads'"
        )
    }

    @Test("the TLS listener on the plain one's port is an error; plain_listener: false needs tls")
    func listenerClashes() {
        expectSingleError(
            "modbus:\n  port: 1502\n  tls:   #!\n    port: 1502\n    certificate: s.crt\n    key: s.key\n    ca: ca.crt\n    roles: { r: { read: all } }\n"
                + Self.points,
            "modbus.tls.port 1502 is the plain listener's port"
        )
        expectSingleError(
            "modbus:\n  plain_listener: false   #!\n" + Self.points,
            "leaves the bridge with no Modbus listener"
        )
        let tlsOnly = validConfiguration(
            "modbus:\n  plain_listener: false\n  port: 1502\n  tls:\n    port: 1502\n    certificate: s.crt\n    key: s.key\n    ca: ca.crt\n    roles: { r: { read: all } }\n"
                + Self.points
        )
        #expect(tlsOnly?.modbus.plainListener == false)
    }

    @Test("warnings: a role that may do nothing, a listed function code its areas forbid, a unit no unit answers")
    func warnings() throws {
        let configuration = try #require(
            validConfiguration(
                Self.yaml(
                    "    certificate: s.crt\n    key: s.key\n    ca: ca.crt\n    roles:\n      idle: { units: [1] }\n      w: { read: all, function_codes: [3, 6] }\n      far: { units: [9], read: all }"
                )
            )
        )
        let warnings = configuration.warnings.map(\.message)
        #expect(warnings.contains { $0.contains("role 'idle' has neither 'read' nor 'write'") }, "\(warnings)")
        #expect(warnings.contains { $0.contains("lists FC6, which writes holding_registers") }, "\(warnings)")
        #expect(
            warnings.contains { $0.contains("lists unit 9, which no unit of this configuration answers") },
            "\(warnings)"
        )
    }

    @Test(
        "a reload may change the roles and the files; the TLS listener's socket, adding or removing it, and plain_listener are refused"
    )
    func reloadRules() throws {
        let base = try #require(validConfiguration(Self.yaml(Self.full)))
        var live = base
        live.modbus.tls?.roles["viewer"] = ModbusRolePermissions(readableAreas: [.coil])
        live.modbus.tls?.defaultRole = nil
        live.modbus.tls?.certificateFile = "/elsewhere/new.crt"
        live.modbus.tls?.keyFile = "/elsewhere/new.key"
        live.modbus.tls?.caFile = "/elsewhere/ca.crt"
        #expect(ReloadPlan.refusals(base, live).isEmpty, "\(ReloadPlan.refusals(base, live))")

        var moved = base
        moved.modbus.tls?.port = 9802
        moved.modbus.tls?.host = "127.0.0.1"
        moved.modbus.tls?.handshakeTimeout = .seconds(4)
        let refusals = ReloadPlan.refusals(base, moved)
        #expect(refusals.count == 3, "\(refusals)")
        #expect(refusals.contains { $0.hasPrefix("modbus.tls.port changed (8802 → 9802)") }, "\(refusals)")
        #expect(refusals.contains { $0.hasPrefix("modbus.tls.host changed") }, "\(refusals)")
        #expect(refusals.contains { $0.hasPrefix("modbus.tls.handshake_timeout changed") }, "\(refusals)")

        var removed = base
        removed.modbus.tls = nil
        #expect(ReloadPlan.refusals(base, removed).first?.hasPrefix("modbus.tls removed") == true)
        #expect(ReloadPlan.refusals(removed, base).first?.hasPrefix("modbus.tls added") == true)
        var tlsOnly = base
        tlsOnly.modbus.plainListener = false
        #expect(ReloadPlan.refusals(base, tlsOnly).first?.hasPrefix("modbus.plain_listener changed") == true)
    }
}
