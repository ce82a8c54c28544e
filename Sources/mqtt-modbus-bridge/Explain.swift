import ArgumentParser
import Foundation
import MQTTModbusBridgeConfiguration

/// `explain`: how a payload maps to registers, and how registers map to a command.
struct Explain: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "Show the register words a sample payload becomes, or the command a write of register words publishes.",
        discussion: """
            Examples:
              mqtt-modbus-bridge explain -c demo.yaml --point boiler_temperature --payload '{"value": 21.5}'
              mqtt-modbus-bridge explain -c demo.yaml --point boiler_setpoint --registers 0x00D7
            """
    )

    @Option(name: .shortAndLong, help: "The topic-map configuration file (YAML).")
    var config: String

    @Option(help: "The point's name.")
    var point: String

    @Option(help: "A state payload to decode (as received on the point's state topic).")
    var payload: String?

    @Option(help: "Register words (or 0/1 for a coil) to encode as a command, comma-separated; decimal or 0x hex.")
    var registers: String?

    func validate() throws {
        if (payload == nil) == (registers == nil) {
            throw ValidationError("give exactly one of --payload and --registers")
        }
    }

    func run() throws {
        let configuration = try loadConfiguration(config)
        guard let point = configuration.point(named: point) else {
            let names = configuration.points.map(\.name).prefix(20).joined(separator: ", ")
            throw ValidationError("no point named '\(self.point)'; points: \(names)")
        }
        print(
            "point \(point.name): unit \(point.unitID), \(point.area) \(point.address), \(point.type), order \(point.byteOrder), scale \(point.scale), offset \(point.offset)"
        )
        if let aliases = configuration.unit(id: point.unitID)?.aliases, !aliases.isEmpty {
            print("  unit \(point.unitID) also answers as unit \(aliases.map(String.init).joined(separator: ", "))")
        }
        if let device = point.device.flatMap(configuration.device(named:)), device.profile != nil {
            for line in device.profileSummary { print("  " + line) }
            for line in point.topicSummary { print("  " + line) }
        }
        if let quality = point.quality {
            let codes =
                quality.area.isBitArea
                ? "1 fresh, 0 otherwise"
                : PointQuality.allCases.map { "\($0.rawValue) \($0)" }.joined(separator: ", ")
            print("  quality register: \(quality.area) \(quality.address), read-only (\(codes))")
        }
        if let lastCommand = point.lastCommand {
            let codes = LastCommandStatus.Outcome.allCases.map { "\($0.rawValue) \($0)" }.joined(separator: ", ")
            print(
                "  last-command register: \(lastCommand.area) \(lastCommand.address), read-only (high byte: \(codes); low byte: the exception code answered, 0 for none)"
            )
        }
        if let payload {
            do {
                let value = try PayloadDecoder(point: point).decode(Array(payload.utf8))
                let image = try RegisterEncoder(point: point).encode(value)
                print("payload \(payload) → value \(value)")
                switch image {
                case .words(let words):
                    for (offset, word) in words.enumerated() {
                        print(
                            "  \(point.area) \(Int(point.address) + offset): \(word) (0x\(String(format: "%04X", word)))"
                        )
                    }
                case .bit(let position, let value):
                    print("  \(point.area) \(point.address) bit \(position): \(value ? 1 : 0)")
                }
            } catch {
                print("payload \(payload) cannot be used: \(error)")
                throw ExitCode(1)
            }
        }
        if let registers {
            let words = try registers.split(separator: ",").map { text -> UInt16 in
                let trimmed = text.trimmingCharacters(in: .whitespaces).lowercased()
                guard let word = trimmed.hasPrefix("0x") ? UInt16(trimmed.dropFirst(2), radix: 16) : UInt16(trimmed)
                else {
                    throw ValidationError("'\(text)' is not a register value (0...65535 or 0x0000...0xFFFF)")
                }
                return word
            }
            do {
                let value = try RegisterDecoder(point: point).decode(words)
                print("registers \(words.map { String($0) }.joined(separator: ", ")) → value \(value)")
                guard let command = point.command else {
                    print("  \(point.name) is read-only: Modbus writes to it are refused (02)")
                    return
                }
                let bytes = try CommandEncoder(point: point).encode(value, correlationID: "EXAMPLE-ID")
                print(
                    "  publish to \(command.topic) (QoS \(command.qos.rawValue), ack \(command.ack.mode), timeout \(DurationSyntax.format(command.ack.timeout))):"
                )
                print("  \(String(decoding: bytes, as: UTF8.self))")
            } catch {
                print("registers cannot be written to \(point.name): \(error)")
                throw ExitCode(1)
            }
        }
    }
}
