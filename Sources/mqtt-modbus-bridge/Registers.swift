import ArgumentParser
import MQTTModbusBridgeConfiguration
import ModbusCore

/// `registers`: the register map for the SCADA engineer.
struct Registers: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "Print the register map (unit, area, address, type, order, scale, access, topics) as Markdown or CSV; a point's quality and last-command registers are rows of type quality and last_command."
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
            // The unit column stays a number, for the tools that import the CSV; aliases follow
            // the Markdown table.
            let unitText = "\(unit.id)"
            for area in ModbusArea.allCases {
                // Points and status registers, in address order.
                var areaRows: [(address: Int, row: [String])] = []
                for point in unit.points(in: area) {
                    areaRows.append(
                        (
                            Int(point.address),
                            [
                                unitText, area.configurationName,
                                "\(point.address)" + (point.bitPosition.map { ".\($0)" } ?? ""),
                                area.modiconReference(point.address), "\(point.registerCount)", point.name,
                                "\(point.type)", "\(point.byteOrder)", Self.number(point.scale),
                                Self.number(point.offset), point.isWritable ? "read/write" : "read",
                                point.stateTopic ?? "", point.command?.topic ?? "",
                                point.command.map { "\($0.ack.mode) \(DurationSyntax.format($0.ack.timeout))" } ?? "",
                            ]
                        )
                    )
                }
                for point in unit.points {
                    let status: [(StatusRegister?, String)] = [
                        (point.quality, "quality"), (point.lastCommand, "last_command"),
                    ]
                    for case (let register?, let kind) in status where register.area == area {
                        areaRows.append(
                            (
                                Int(register.address),
                                [
                                    unitText, area.configurationName, "\(register.address)",
                                    area.modiconReference(register.address), "1", "\(point.name).\(kind)", kind, "", "",
                                    "", "read", "", "", "",
                                ]
                            )
                        )
                    }
                }
                rows += areaRows.sorted { $0.address < $1.address }.map(\.row)
            }
        }
        switch format {
        case .markdown:
            print("| " + header.joined(separator: " | ") + " |")
            print("|" + header.map { _ in "---" }.joined(separator: "|") + "|")
            for row in rows {
                print("| " + row.map { $0.replacingOccurrences(of: "|", with: "\\|") }.joined(separator: " | ") + " |")
            }
            for unit in configuration.units.sorted(by: { $0.id < $1.id }) where !unit.aliases.isEmpty {
                print("")
                print("Unit \(unit.id) also answers as unit \(unit.aliases.map(String.init).joined(separator: ", ")).")
            }
            for device in configuration.devices where device.profile != nil {
                print("")
                for line in device.profileSummary { print(line) }
            }
        case .csv:
            print(header.map(Self.csvField).joined(separator: ","))
            for row in rows { print(row.map(Self.csvField).joined(separator: ",")) }
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
