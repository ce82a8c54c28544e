import ModbusCore

/// ``RegisterMap``'s layout as the Modbus read path walks it, for every read request on an event
/// loop: plain numbers in flat arrays, found by unit id and area without hashing, and nothing a
/// read has to retain or release (``RegisterMap/Entry`` holds an array of points, and its units
/// are a dictionary of dictionaries).
struct ReadIndex: Sendable {
    /// What an entry's addresses answer.
    enum Kind: UInt8, Sendable {
        /// One point's value words.
        case word
        /// A register composed of bit points (``Entry/bits`` in ``bitPoints``).
        case bits
        /// A point's quality register.
        case quality
        /// A point's last-command register.
        case lastCommand
    }

    /// One register range of ``RegisterMap/Entry``.
    struct Entry: Sendable, Hashable {
        var start: Int
        var end: Int
        var kind: Kind
        /// The point (for `word`, `quality` and `lastCommand`).
        var point: Int
        /// Positions in ``bitPoints`` and ``bitPositions`` (for `bits`).
        var bits: Range<Int>
    }

    /// The entries of one unit id and area: ``entries``[start..<end], in address order.
    struct Table: Sendable, Hashable {
        var start = 0
        var end = 0
        /// The unit id is configured.
        var served = false
        var fillGaps = false
    }

    /// Every table's entries, one table after the other.
    let entries: [Entry]
    /// The points of every bit register, and each one's bit.
    let bitPoints: [Int]
    let bitPositions: [Int]
    /// 256 unit ids × 4 areas.
    private let tables: [Table]

    init(map: RegisterMap) {
        var entries: [Entry] = []
        // Exactly: one entry per register range of every unit id (aliases repeat their unit's).
        entries.reserveCapacity(map.units.values.reduce(0) { $0 + $1.areas.values.reduce(0) { $0 + $1.count } })
        var bitPoints: [Int] = []
        var bitPositions: [Int] = []
        var tables = [Table](repeating: Table(), count: 256 * ModbusArea.allCases.count)
        for (unit, layout) in map.units {
            for area in ModbusArea.allCases {
                let start = entries.count
                for entry in layout.areas[area] ?? [] {
                    let kind: Kind
                    switch entry.role {
                    case .quality: kind = .quality
                    case .lastCommand: kind = .lastCommand
                    case .value:
                        kind = entry.points.count == 1 && map.points[entry.points[0]].bitPosition == nil ? .word : .bits
                    }
                    let bitsStart = bitPoints.count
                    if kind == .bits {
                        for index in entry.points {
                            // A point without a bit position cannot share a register; keep it out.
                            guard let position = map.points[index].bitPosition else { continue }
                            bitPoints.append(index)
                            bitPositions.append(position)
                        }
                    }
                    entries.append(
                        Entry(
                            start: entry.start,
                            end: entry.end,
                            kind: kind,
                            point: entry.points[0],
                            bits: bitsStart..<bitPoints.count
                        )
                    )
                }
                tables[Self.slot(unit, area)] = Table(
                    start: start,
                    end: entries.count,
                    served: true,
                    fillGaps: layout.fillGaps
                )
            }
        }
        self.entries = entries
        self.bitPoints = bitPoints
        self.bitPositions = bitPositions
        self.tables = tables
    }

    private static func slot(_ unit: UInt8, _ area: ModbusArea) -> Int {
        Int(unit) &* 4 &+ Int(area.rawValue)
    }

    /// The entries of `unit` and `area` (not ``Table/served`` when the unit is not configured).
    func table(unit: UInt8, area: ModbusArea) -> Table {
        tables[Self.slot(unit, area)]
    }

    /// The position in ``entries`` of the first entry of `table` that ends after `address`
    /// (``Table/end`` if none does).
    func firstEntry(endingAfter address: Int, in table: Table) -> Int {
        var low = table.start
        var high = table.end
        while low < high {
            let middle = (low + high) / 2
            if entries[middle].end <= address { low = middle + 1 } else { high = middle }
        }
        return low
    }
}
