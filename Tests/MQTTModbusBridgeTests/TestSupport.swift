import Foundation
import MQTTTestSupport
import ModbusCore
import NIOCore
import Testing

@testable import MQTTModbusBridge
@testable import MQTTModbusBridgeConfiguration
@testable import ModbusTCPServer

/// The errors of a configuration that must not load.
func configurationErrors(_ yaml: String, sourceLocation: SourceLocation = #_sourceLocation) -> [ConfigurationError] {
    do {
        let configuration = try BridgeConfiguration.parse(yaml: yaml, file: "test.yaml")
        Issue.record(
            "expected errors, but the configuration loaded with \(configuration.points.count) points",
            sourceLocation: sourceLocation
        )
        return []
    } catch {
        return error.errors
    }
}

/// The 1-based number of the line that contains `marker` (`#!` by default).
func markedLine(_ marker: String = "#!", in yaml: String) -> Int {
    let lines = yaml.split(separator: "\n", omittingEmptySubsequences: false)
    guard let index = lines.firstIndex(where: { $0.contains(marker) }) else { return -1 }
    return index + 1
}

/// Expects exactly one error, on the line marked `#!`, whose message contains `message` (and
/// whose fix contains `fix`).
@discardableResult
func expectSingleError(
    _ yaml: String,
    _ message: String,
    fix: String? = nil,
    sourceLocation: SourceLocation = #_sourceLocation
) -> ConfigurationError? {
    let errors = configurationErrors(yaml, sourceLocation: sourceLocation)
    guard errors.count == 1, let error = errors.first else {
        Issue.record(
            "expected one error containing \"\(message)\", got \(errors.count):\n\(ConfigurationErrors(errors))",
            sourceLocation: sourceLocation
        )
        return nil
    }
    #expect(error.message.contains(message), "message: \(error.message)", sourceLocation: sourceLocation)
    #expect(error.line == markedLine(in: yaml), "\(error)", sourceLocation: sourceLocation)
    #expect(error.file == "test.yaml", sourceLocation: sourceLocation)
    if let fix {
        #expect(error.fix?.contains(fix) == true, "fix: \(error.fix ?? "none")", sourceLocation: sourceLocation)
    }
    return error
}

/// Loads a configuration that must be valid.
func validConfiguration(_ yaml: String, sourceLocation: SourceLocation = #_sourceLocation) -> BridgeConfiguration? {
    do {
        return try BridgeConfiguration.parse(yaml: yaml, file: "test.yaml")
    } catch {
        Issue.record("unexpected errors:\n\(error)", sourceLocation: sourceLocation)
        return nil
    }
}

/// A one-point configuration around `point` (indented as a list item under `points:`).
func singlePoint(_ point: String, broker: String = "", defaults: String = "") -> String {
    var yaml = ""
    if !broker.isEmpty { yaml += "broker:\n" + broker + "\n" }
    if !defaults.isEmpty { yaml += "defaults:\n" + defaults + "\n" }
    yaml += "units:\n  - id: 1\n    points:\n" + point
    return yaml
}

/// The directory `examples/configs` of the package.
let exampleConfigsDirectory: String = {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("examples/configs").path
}()

/// A Modbus read from the cache, as the server's in-place read path makes it.
func read(_ cache: PointCache, unit: UInt8, _ area: ModbusArea, _ address: UInt16, _ count: Int) throws -> [UInt16] {
    var bytes = ByteBuffer()
    var values = ModbusReadValues(buffer: bytes, isBits: false, expected: count)
    bytes = ByteBuffer()
    try cache.read(unit: unit, area: area, address: address, count: count, into: &values)
    let (buffer, problem) = values.finish()
    #expect(problem == nil)
    var reader = buffer
    return (0..<count).map { _ in reader.readInteger(as: UInt16.self)! }
}

/// The Modbus exception `body` throws (04 for any other error), or `nil`.
func exception(_ body: () throws -> Void) -> ModbusExceptionCode? {
    do {
        try body()
        return nil
    } catch let error as ModbusException {
        return error.code
    } catch {
        return .serverDeviceFailure
    }
}
