import Foundation
import MQTTModbusBridge
import Testing

/// `explain` and `registers`, run as the program, on the demo configuration.
@Suite("The explain and registers commands")
struct ExplainRegistersCommandTests {
    static let demo = ValidateCommandTests.repositoryRoot.appendingPathComponent("examples/configs/demo.yaml").path

    @Test("explain: a payload becomes the point's register words, in its byte order")
    func explainPayload() async throws {
        let result = try await runProgram(
            try ValidateCommandTests.executable(),
            [
                "explain", "-c", Self.demo, "--point", "boiler_burner_starts", "--payload",
                #"{"burner": {"starts": 123456}}"#,
            ]
        )
        #expect(result.status == 0, "\(result.output)")
        // 123456 = 0x0001E240; CDAB puts the low word first.
        #expect(result.output.contains("input register 20: 57920 (0xE240)"), "\(result.output)")
        #expect(result.output.contains("input register 21: 1 (0x0001)"), "\(result.output)")
    }

    @Test("explain: a payload that cannot be decoded says why and exits 1")
    func explainBadPayload() async throws {
        let result = try await runProgram(
            try ValidateCommandTests.executable(),
            ["explain", "-c", Self.demo, "--point", "boiler_pressure", "--payload", #"{"pressure": "high"}"#]
        )
        #expect(result.status == 1)
        #expect(result.output.contains("cannot be used: 'high' is not a number"), "\(result.output)")
    }

    @Test("explain: register words become the command a write publishes, with its topic and ack")
    func explainRegisters() async throws {
        let result = try await runProgram(
            try ValidateCommandTests.executable(),
            ["explain", "-c", Self.demo, "--point", "boiler_setpoint", "--registers", "0x00D7"]
        )
        #expect(result.status == 0, "\(result.output)")
        #expect(result.output.contains("registers 215 → value 21.5"), "\(result.output)")
        #expect(
            result.output.contains("publish to demo/boiler/setpoint/set (QoS 1, ack mqtt5, timeout 3s):\n  21.5\n"),
            "\(result.output)"
        )
    }

    @Test("registers: the map as CSV and Markdown, one row per point, with Modicon references")
    func registersTable() async throws {
        let executable = try ValidateCommandTests.executable()
        let csv = try await runProgram(executable, ["registers", "-c", Self.demo, "--format", "csv"])
        #expect(csv.status == 0, "\(csv.output)")
        let lines = csv.output.split(separator: "\n").map(String.init)
        #expect(
            lines.first
                == "unit,area,address,reference,registers,name,type,order,scale,offset,access,state topic,command topic,ack"
        )
        #expect(
            lines.contains(
                "1,holding_register,0,400001,1,boiler_setpoint,int16,ABCD,10,0,read/write,demo/boiler/setpoint,demo/boiler/setpoint/set,mqtt5 3s"
            )
        )
        #expect(
            lines.contains(
                "1,input_register,20,300021,2,boiler_burner_starts,uint32,CDAB,1,0,read,demo/boiler/counters,,"
            )
        )
        let demo = try BridgeConfiguration.load(path: Self.demo)
        let pointCount = demo.points.count
        #expect(lines.count == 1 + pointCount, "one row per point (\(pointCount)):\n\(csv.output)")

        let markdown = try await runProgram(executable, ["registers", "-c", Self.demo])
        #expect(markdown.status == 0)
        let rows = markdown.output.split(separator: "\n")
        // After the table, what each profile device expanded to (blank lines are not rows here).
        let profileLines = demo.devices.map(\.profileSummary.count).reduce(0, +)
        #expect(profileLines > 0, "the demo has a profile device")
        #expect(rows.count == 2 + pointCount + profileLines, "\(markdown.output)")
        #expect(rows.contains("device hall_light: profile tasmota"))
        #expect(
            rows.contains(
                "| 1 | holding_register | 0 | 400001 | 1 | boiler_setpoint | int16 | ABCD | 10 | 0 | read/write | demo/boiler/setpoint | demo/boiler/setpoint/set | mqtt5 3s |"
            )
        )
    }

    static let reference = ValidateCommandTests.repositoryRoot.appendingPathComponent(
        "examples/configs/complete-reference.yaml"
    ).path

    @Test("registers and explain show a point's quality and last-command registers, and a unit's aliases")
    func statusRegisters() async throws {
        let executable = try ValidateCommandTests.executable()
        let csv = try await runProgram(executable, ["registers", "-c", Self.reference, "--format", "csv"])
        #expect(csv.status == 0, "\(csv.output)")
        let lines = csv.output.split(separator: "\n").map(String.init)
        #expect(
            lines.contains("1,input_register,1000,301001,1,boiler_temperature.quality,quality,,,,read,,,"),
            "\(csv.output)"
        )
        #expect(
            lines.contains { $0.contains(",holding_register,1000,401001,1,boiler_setpoint.last_command,last_command,") }
        )
        #expect(lines.contains { $0.contains(",discrete_input,0,100001,1,burner_enable.quality,quality,") })

        let markdown = try await runProgram(executable, ["registers", "-c", Self.reference])
        #expect(markdown.output.hasSuffix("\nUnit 1 also answers as unit 0, 255.\n"), "\(markdown.output)")

        let explained = try await runProgram(
            executable,
            ["explain", "-c", Self.reference, "--point", "boiler_setpoint", "--registers", "215"]
        )
        #expect(explained.status == 0, "\(explained.output)")
        #expect(
            explained.output.contains(
                "  last-command register: holding register 1000, read-only (high byte: 0 no write yet, 1 acknowledged, 2 refused, 3 timed out, 4 broker unavailable, 5 device offline, 6 not sent; low byte: the exception code answered, 0 for none)"
            ),
            "\(explained.output)"
        )
        #expect(explained.output.contains("  unit 1 also answers as unit 0, 255\n"), "\(explained.output)")
        #expect(
            explained.output.contains(
                "  quality register: holding register 1001, read-only (0 fresh, 1 stale, 2 missing, 3 device offline, 4 connection lost)"
            ),
            "\(explained.output)"
        )
    }

    @Test("explain and registers show what a device profile expanded to")
    func profileExpansion() async throws {
        let examples = ValidateCommandTests.repositoryRoot.appendingPathComponent("examples/configs")
        let tasmota = examples.appendingPathComponent("tasmota-profile.yaml").path
        let explain = try await runProgram(
            try ValidateCommandTests.executable(),
            ["explain", "-c", tasmota, "--point", "burner", "--registers", "1"]
        )
        #expect(explain.status == 0, "\(explain.output)")
        for line in [
            "device boiler_board: profile tasmota",
            "availability: tele/boiler_board/LWT (online Online, offline Offline)",
            "refresh: cmnd/boiler_board/POWER2 (empty payload)",
            "state: stat/boiler_board/RESULT (json at POWER2, words ON and OFF, documents without it ignored)",
            "state also: stat/boiler_board/POWER2 (plain, words ON and OFF)",
            "commands: cmnd/boiler_board/POWER2 (plain, words ON and OFF), ack state_echo, not retained",
            "publish to cmnd/boiler_board/POWER2 (QoS 1, ack state_echo, timeout 5s):\n  ON\n",
        ] {
            #expect(explain.output.contains(line), "\(line) in \(explain.output)")
        }
        let shelly = examples.appendingPathComponent("shelly-gen2-switch.yaml").path
        let registers = try await runProgram(try ValidateCommandTests.executable(), ["registers", "-c", shelly])
        #expect(registers.status == 0, "\(registers.output)")
        for line in [
            "| 1 | coil | 0 | 000001 | 1 | output | bool | ABCD | 1 | 0 | read/write | shellyplus1pm-a8032ab1/status/switch:0 | shellyplus1pm-a8032ab1/rpc | correlation_id 5s |",
            "device shellyplus1pm-a8032ab1: profile shelly_gen2", "replies: shelly-bridge/rpc",
            #"refresh: shellyplus1pm-a8032ab1/rpc {"id":"refresh:shellyplus1pm-a8032ab1:switch:0","src":"shelly-bridge","method":"Switch.GetStatus","params":{"id":0}}"#,
        ] {
            #expect(registers.output.contains(line), "\(line) in \(registers.output)")
        }
    }
}
