import Foundation
import MQTTTestSupport
import Testing

/// `mqtt-modbus-bridge validate`, run as the built executable.
@Suite("The validate command")
struct ValidateCommandTests {
    /// The repository root, from this file's path.
    static let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    /// The `mqtt-modbus-bridge` executable `swift build --build-tests` put next to the test bundle.
    static func executable() throws -> URL {
        let candidates = [
            Bundle.module.bundleURL.deletingLastPathComponent().appendingPathComponent("mqtt-modbus-bridge"),
            repositoryRoot.appendingPathComponent(".build/debug/mqtt-modbus-bridge"),
        ]
        let found = candidates.first { FileManager.default.isExecutableFile(atPath: $0.path) }
        return try #require(
            found,
            "mqtt-modbus-bridge is not built; run `swift build --build-tests` (looked in \(candidates.map(\.path)))"
        )
    }

    /// Broken configurations, each with every error `validate` must print for it
    /// (`file:line:column: error:` and the start of the message).
    static let brokenConfigurations: [(name: String, yaml: String, errors: [String])] = [
        (
            "ack-and-keys.yaml",
            """
            broker:
              protocol: mqtt311
              password: secret
            units:
              - id: 1
                points:
                  - name: boiler_temperature
                    area: input_register
                    address: 0
                    type: float32
                    stat_topic: plant/boiler/temperature
                  - name: boiler_setpoint
                    area: holding_register
                    address: 0
                    type: int16
                    state_topic: plant/boiler/setpoint
                    command_topic: plant/boiler/setpoint/set

            """,
            [
                "ack-and-keys.yaml:2:13: error: broker.protocol is mqtt311, but 1 writable point (first: 'boiler_setpoint' at line 12) uses the default ack mode mqtt5",
                "ack-and-keys.yaml:3:13: error: a password needs a 'username'",
                "ack-and-keys.yaml:11:9: error: unknown key 'stat_topic' in point 'boiler_temperature' (fix: did you mean 'state_topic'?)",
            ]
        ),
        (
            "points.yaml",
            """
            units:
              - id: 1
                points:
                  - name: pump_running
                    area: coil
                    address: 0
                    type: float32
                    state_topic: plant/pump/#/running
                  - name: level
                    area: holding_register
                    address: 10
                    type: int32
                    state_topic: plant/level
                  - name: flow
                    area: holding_register
                    address: 11
                    type: int16
                    state_topic: plant/flow
                  - name: level
                    area: input_register
                    address: 65535
                    type: float32
                    state_topic: plant/other
              - id: 300
                points: []

            """,
            [
                "points.yaml:7:15: error: type float32 does not fit area coil",
                "points.yaml:8:22: error: 'state_topic': invalid topic 'plant/pump/#/running': '#' must be the last level",
                "points.yaml:16:18: error: point 'flow' (holding_register 11) overlaps point 'level' (holding_register 10...11) defined at line 9",
                "points.yaml:19:15: error: point name 'level' is already used by the point at line 9",
                "points.yaml:21:18: error: point 'level' needs addresses 65535...65536, past the last Modbus address 65535",
                "points.yaml:24:9: error: 'id' must be in 0...255, found 300",
            ]
        ),
        (
            "acks.yaml",
            """
            units:
              - id: 1
                points:
                  - name: valve
                    area: coil
                    address: 0
                    command_topic: plant/valve/set
                    ack: { mode: correlation_id }
                  - name: sp
                    area: holding_register
                    address: 0
                    type: int16
                    command_topic: plant/sp/set
                    ack: { mode: broker }
                    qos: 0
                  - name: t
                    area: input_register
                    address: 0
                    type: int16
                    state_topic: plant/t
                    command_topic: plant/t/set
                    on_missing: { value: 70000 }

            """,
            [
                "acks.yaml:8:22: error: ack mode correlation_id needs 'response_topic'",
                "acks.yaml:8:22: error: ack mode correlation_id needs the id in the command, but a plain payload cannot carry it",
                "acks.yaml:15:14: error: ack mode broker needs QoS 1 or 2",
                "acks.yaml:21:24: error: 'command_topic' on a read-only area: input_register cannot be written over Modbus",
                "acks.yaml:22:30: error: on_missing value: 70000 is outside the range of int16",
            ]
        ),
        ("syntax.yaml", "units:\n  - id: 1\n    points: [\n", ["syntax.yaml:4:1: error: invalid YAML"]),
        ("empty.yaml", "", ["empty.yaml:1:1: error: the configuration is empty"]),
    ]

    @Test("broken configurations: every error, with file, line and column, in one run; exit status 1")
    func brokenConfigurations() async throws {
        let executable = try Self.executable()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "e2e-validate-\(UUID().uuidString)"
        )
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        for config in Self.brokenConfigurations {
            try config.yaml.write(to: directory.appendingPathComponent(config.name), atomically: true, encoding: .utf8)
        }
        let demo = Self.repositoryRoot.appendingPathComponent("examples/configs/demo.yaml").path
        let result = try await runProgram(
            executable,
            ["validate"] + Self.brokenConfigurations.map(\.name) + [demo],
            in: directory
        )

        #expect(result.status == 1, "\(result.output)")
        let lines = result.output.split(separator: "\n").map(String.init)
        for config in Self.brokenConfigurations {
            let reported = lines.filter { $0.hasPrefix("\(config.name):") && $0.contains(": error: ") }
            #expect(
                reported.count == config.errors.count,
                "\(config.name): every error once, nothing else:\n\(reported.joined(separator: "\n"))"
            )
            for expected in config.errors {
                #expect(
                    reported.contains { $0.hasPrefix(expected) },
                    "missing: \(expected)\nprinted:\n\(reported.joined(separator: "\n"))"
                )
            }
            #expect(lines.contains("\(config.name): \(config.errors.count) error(s)"))
        }
        #expect(lines.contains { $0.hasPrefix("\(demo): OK") }, "a valid file in the same run is still checked")
    }

    @Test("every configuration under examples/ validates")
    func examplesValidate() async throws {
        let executable = try Self.executable()
        let examples = Self.repositoryRoot.appendingPathComponent("examples")
        let enumerator = try #require(FileManager.default.enumerator(at: examples, includingPropertiesForKeys: nil))
        let files = enumerator.compactMap { $0 as? URL }.filter { ["yaml", "yml"].contains($0.pathExtension) }.map(
            \.path
        ).sorted()
        try #require(files.count >= 2, "found \(files)")
        // The examples of ExamplesEndToEndTests must be among them (a renamed file fails here).
        for name in ExamplesEndToEndTests.exampleFiles {
            #expect(files.contains { $0.hasSuffix("/examples/configs/\(name)") }, "\(name) missing from \(files)")
        }
        let result = try await runProgram(executable, ["validate"] + files)
        #expect(result.status == 0, "\(result.output)")
        for file in files {
            #expect(result.output.contains("\(file): OK"), "\(file):\n\(result.output)")
        }
        // Examples are copied: each one gives every point a max_age or a device, and no other
        // warning either.
        #expect(!result.output.contains(": warning: "), "\(result.output)")
    }
}

/// Runs a program to completion (at most 30 s) and returns its exit status and combined output.
func runProgram(
    _ executable: URL,
    _ arguments: [String],
    in directory: URL? = nil
) async throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = executable
    process.arguments = arguments
    if let directory { process.currentDirectoryURL = directory }
    let outputFile = FileManager.default.temporaryDirectory.appendingPathComponent("e2e-run-\(UUID().uuidString).log")
    _ = FileManager.default.createFile(atPath: outputFile.path, contents: nil)
    let handle = try FileHandle(forWritingTo: outputFile)
    defer {
        try? handle.close()
        try? FileManager.default.removeItem(at: outputFile)
    }
    process.standardOutput = handle
    process.standardError = handle
    process.standardInput = FileHandle.nullDevice
    let exited = TestLock<CheckedContinuation<Int32, Never>?>(nil)
    let status = TestLock<Int32?>(nil)
    process.terminationHandler = { process in
        let code = process.terminationStatus
        let waiter = exited.withLock { waiter -> CheckedContinuation<Int32, Never>? in
            status.withLock { $0 = code }
            defer { waiter = nil }
            return waiter
        }
        waiter?.resume(returning: code)
    }
    try runWithDefaultSignalMask(process)
    let pid = process.processIdentifier
    let code: Int32 = try await withTimeout(
        .seconds(30),
        "\(executable.lastPathComponent) \(arguments.joined(separator: " "))"
    ) {
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let known = exited.withLock { waiter -> Int32? in
                    if let code = status.withLock({ $0 }) { return code }
                    waiter = continuation
                    return nil
                }
                if let known { continuation.resume(returning: known) }
            }
        } onCancel: {
            // The termination handler then resumes the waiter.
            kill(pid, SIGKILL)
        }
    }
    return (code, (try? String(contentsOf: outputFile, encoding: .utf8)) ?? "")
}
