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
        let pointCount = try BridgeConfiguration.load(path: Self.demo).points.count
        #expect(lines.count == 1 + pointCount, "one row per point (\(pointCount)):\n\(csv.output)")

        let markdown = try await runProgram(executable, ["registers", "-c", Self.demo])
        #expect(markdown.status == 0)
        let rows = markdown.output.split(separator: "\n")
        #expect(rows.count == 2 + pointCount)
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
}
