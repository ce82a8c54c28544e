import ArgumentParser
import MQTTModbusBridgeConfiguration
import ModbusCore

/// `registers`: the register map for the SCADA engineer.
struct Registers: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the register map (unit, area, address, type, order, scale, access, topics) as Markdown or CSV."
    )

    enum Format: String, ExpressibleByArgument, CaseIterable {
        case markdown, csv
    }

    @Option(name: .shortAndLong, help: "The topic-map configuration file (YAML).")
    var config: String

    @Option(help: "Output format: markdown or csv.")
    var format: Format = .markdown

    func run() throws {
        let configuration = try loadConfiguration(config)
        let header = [
            "unit", "area", "address", "reference", "registers", "name", "type", "order", "scale", "offset", "access",
            "state topic", "command topic", "ack",
        ]
        var rows: [[String]] = []
        for unit in configuration.units.sorted(by: { $0.id < $1.id }) {
            for area in ModbusArea.allCases {
                for point in unit.points(in: area) {
                    rows.append([
                        "\(unit.id)", Self.areaName(area),
                        "\(point.address)" + (point.bitPosition.map { ".\($0)" } ?? ""),
                        area.modiconReference(point.address), "\(point.registerCount)", point.name, "\(point.type)",
                        "\(point.byteOrder)", Self.number(point.scale), Self.number(point.offset),
                        point.isWritable ? "read/write" : "read", point.stateTopic ?? "", point.command?.topic ?? "",
                        point.command.map { "\($0.ack.mode) \(DurationSyntax.format($0.ack.timeout))" } ?? "",
                    ])
                }
            }
        }
        switch format {
        case .markdown:
            print("| " + header.joined(separator: " | ") + " |")
            print("|" + header.map { _ in "---" }.joined(separator: "|") + "|")
            for row in rows {
                print("| " + row.map { $0.replacingOccurrences(of: "|", with: "\\|") }.joined(separator: " | ") + " |")
            }
        case .csv:
            print(header.map(Self.csvField).joined(separator: ","))
            for row in rows { print(row.map(Self.csvField).joined(separator: ",")) }
        }
    }

    static func areaName(_ area: ModbusArea) -> String {
        switch area {
        case .coil: "coil"
        case .discreteInput: "discrete_input"
        case .holdingRegister: "holding_register"
        case .inputRegister: "input_register"
        }
    }

    static func number(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e15 ? String(Int64(value)) : String(value)
    }

    static func csvField(_ text: String) -> String {
        text.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" })
            ? "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : text
    }
}
