import MQTTModbusBridgeConfiguration
import ModbusCore

/// Where every point of a configuration sits: for each unit and area, the register ranges in
/// address order, so that a Modbus request finds its points by binary search.
///
/// Bit points (`type: bit`) share a register with other bit points of the same address; they
/// form one entry whose register value is composed of their bits.
struct RegisterMap: Sendable {
    /// One register range: a point, or the bit points of one register, or a point's status
    /// register.
    struct Entry: Sendable {
        /// What the entry's addresses answer.
        enum Role: Sendable, Hashable {
            /// The point's value (or, for bit points, their register).
            case value
            /// The point's ``PointQuality``, computed at read time.
            case quality
            /// The ``LastCommandStatus`` of the point's last write.
            case lastCommand
        }

        var start: Int
        var count: Int
        /// Indices into ``points``; more than one only for bit points sharing a register.
        var points: [Int]
        var role: Role = .value
        var end: Int { start + count }
    }

    /// A unit's entries per area, plus its gap policy.
    struct UnitLayout: Sendable {
        var fillGaps: Bool
        var areas: [ModbusArea: [Entry]]
    }

    let points: [PointConfiguration]
    let units: [UInt8: UnitLayout]
    /// The configuration's devices, in file order.
    let devices: [DeviceConfiguration]
    /// For each point, the index of its device in ``devices``; `nil`: none.
    let deviceOfPoint: [Int?]

    init(_ configuration: BridgeConfiguration) {
        var points: [PointConfiguration] = []
        // Exactly: a point is several hundred bytes, and doubling would leave up to half unused.
        points.reserveCapacity(configuration.units.reduce(0) { $0 + $1.points.count })
        var units: [UInt8: UnitLayout] = [:]
        for unit in configuration.units {
            var layout = UnitLayout(fillGaps: unit.fillGaps, areas: [:])
            let unitStart = points.count
            for area in ModbusArea.allCases {
                var entries: [Entry] = []
                for point in unit.points(in: area) {
                    let index = points.count
                    points.append(point)
                    if point.bitPosition != nil, let last = entries.last, last.start == Int(point.address),
                        points[last.points[0]].bitPosition != nil
                    {
                        entries[entries.count - 1].points.append(index)
                    } else {
                        entries.append(Entry(start: Int(point.address), count: point.registerCount, points: [index]))
                    }
                }
                layout.areas[area] = entries
            }
            // Status registers may sit in another area than their point's value, so they join
            // once every point of the unit has its index. Validation keeps them clear of the
            // rest, so sorting by address keeps the entries disjoint and in order.
            for index in unitStart..<points.count {
                let status: [(StatusRegister?, Entry.Role)] = [
                    (points[index].quality, .quality), (points[index].lastCommand, .lastCommand),
                ]
                for case (let register?, let role) in status {
                    layout.areas[register.area, default: []].append(
                        Entry(start: Int(register.address), count: 1, points: [index], role: role)
                    )
                }
            }
            for area in ModbusArea.allCases { layout.areas[area]?.sort { $0.start < $1.start } }
            // An alias answers with the same points: one layout, several ids.
            for id in unit.answeredIDs { units[id] = layout }
        }
        self.points = points
        self.units = units
        self.devices = configuration.devices
        let deviceIndex = Dictionary(
            configuration.devices.enumerated().map { ($1.name, $0) },
            uniquingKeysWith: { first, _ in first }
        )
        self.deviceOfPoint = points.map { point in point.device.flatMap { deviceIndex[$0] } }
    }

    /// The entries of a unit and area, and whether gaps read as zero.
    func layout(unit: UInt8, area: ModbusArea) -> (entries: [Entry], fillGaps: Bool)? {
        guard let layout = units[unit] else { return nil }
        return (layout.areas[area] ?? [], layout.fillGaps)
    }

    /// The index of the first entry that ends after `address`.
    static func firstEntry(endingAfter address: Int, in entries: [Entry]) -> Int {
        var low = 0
        var high = entries.count
        while low < high {
            let middle = (low + high) / 2
            if entries[middle].end <= address { low = middle + 1 } else { high = middle }
        }
        return low
    }

    /// The index of the point named `name`.
    func index(of name: String) -> Int? {
        points.firstIndex { $0.name == name }
    }
}
