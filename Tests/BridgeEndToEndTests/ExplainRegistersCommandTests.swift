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
}
