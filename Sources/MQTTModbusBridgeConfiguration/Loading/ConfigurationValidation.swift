import ModbusCore
import Yams

/// Checks that need every point: unique names, no overlapping registers, the protocol the ack
/// modes need.
extension ConfigurationLoader {
    func validateAcrossPoints(units: [UnitConfiguration]) {
        checkDuplicateNames()
        checkUnitAliases()
        checkOverlaps()
        checkDefaultAckModeAgainstProtocol()
    }

    private func checkDuplicateNames() {
        var firstLine: [String: Int] = [:]
        for (name, mark, line) in pointNames {
            if let earlier = firstLine[name] {
                diagnostics.error(
                    "point name '\(name)' is already used by the point at line \(earlier)",
                    at: mark,
                    fix: "names must be unique in the file (they name metrics and log lines); rename one"
                )
            } else {
                firstLine[name] = line
            }
        }
    }

    /// An alias answers one unit's points: it may not be that unit's own id, another unit's id,
    /// or another unit's alias (a request would have two sets of points to answer from).
    private func checkUnitAliases() {
        var firstAlias: [UInt8: (unit: UInt8, line: Int)] = [:]
        for (alias, mark, unit) in unitAliases {
            if alias == unit {
                diagnostics.error(
                    "unit \(unit): alias \(alias) is the unit's own id",
                    at: mark,
                    fix: "remove it from aliases"
                )
            } else if let other = unitIDMarks[alias] {
                diagnostics.error(
                    "unit \(unit): alias \(alias) is the id of the unit at line \(other.line)",
                    at: mark,
                    fix: "a unit id answers one unit's points: remove the alias, or give the other unit another id"
                )
            } else if let earlier = firstAlias[alias], earlier.unit != unit {
                diagnostics.error(
                    "unit \(unit): alias \(alias) is already an alias of unit \(earlier.unit) (line \(earlier.line))",
                    at: mark,
                    fix: "a unit id answers one unit's points: keep the alias on one unit only"
                )
            } else if firstAlias[alias] == nil {
                firstAlias[alias] = (unit, mark?.line ?? 0)
            }
        }
    }

    private enum Occupant {
        case whole(Int)
        case bits([Int: Int])  // bit position → span index
    }

    /// What occupies addresses of a unit and area: a point's value, or one of its status
    /// registers.
    private struct Span {
        var unit: UInt8
        var area: ModbusArea
        var addresses: ClosedRange<Int>
        var bitPosition: Int?
        /// `point 'a'` or `the quality register of point 'a'`.
        var label: String
        /// `holding_register 0...1`.
        var place: String
        var line: Int
        var mark: Mark?
    }

    /// Every point's value and status registers, as spans of addresses.
    private func occupiedSpans() -> [Span] {
        var spans: [Span] = []
        for loaded in loadedPoints {
            let point = loaded.point
            spans.append(
                Span(
                    unit: point.unitID,
                    area: point.area,
                    addresses: point.addressRange,
                    bitPosition: point.bitPosition,
                    label: "point '\(point.name)'",
                    place: Self.describeSpan(point),
                    line: point.location.line,
                    mark: loaded.addressMark
                )
            )
            let status: [(StatusRegister?, String, Mark?)] = [
                (point.quality, "quality", loaded.qualityMark),
                (point.lastCommand, "last-command", loaded.lastCommandMark),
            ]
            for case (let register?, let kind, let mark) in status {
                spans.append(
                    Span(
                        unit: point.unitID,
                        area: register.area,
                        addresses: Int(register.address)...Int(register.address),
                        label: "the \(kind) register of point '\(point.name)'",
                        place: "\(register.area.configurationName) \(register.address)",
                        line: mark?.line ?? point.location.line,
                        mark: mark
                    )
                )
            }
        }
        return spans
    }

    private func checkOverlaps() {
        struct GroupKey: Hashable {
            var unit: UInt8
            var area: ModbusArea
        }
        let spans = occupiedSpans()
        var groups: [GroupKey: [Int]] = [:]
        for (index, span) in spans.enumerated() {
            groups[GroupKey(unit: span.unit, area: span.area), default: []].append(index)
        }
        for key in groups.keys.sorted(by: { ($0.unit, $0.area.rawValue) < ($1.unit, $1.area.rawValue) }) {
            // "Later" means later in the file; template instances keep their expansion order.
            let members = groups[key]!.enumerated().sorted {
                (spans[$0.element].line, $0.offset) < (spans[$1.element].line, $1.offset)
            }.map(\.element)
            var occupied: [Int: Occupant] = [:]
            for index in members {
                let span = spans[index]
                var conflict: Int?
                for address in span.addresses {
                    switch (occupied[address], span.bitPosition) {
                    case (nil, _): continue
                    case (.whole(let other)?, _): conflict = other
                    case (.bits(let bits)?, let position?): conflict = bits[position]
                    case (.bits(let bits)?, nil): conflict = bits.values.min()
                    }
                    if conflict != nil { break }
                }
                if let conflict {
                    let other = spans[conflict]
                    diagnostics.error(
                        "\(span.label) (\(span.place)) overlaps \(other.label) (\(other.place)) defined at line \(other.line), in unit \(span.unit)",
                        at: span.mark,
                        fix: span.label.hasPrefix("point")
                            ? "move one of them: each register (or bit of a register) belongs to one point"
                            : "move it to a free address: a status register needs an address of its own"
                    )
                    continue
                }
                for address in span.addresses {
                    if let position = span.bitPosition {
                        if case .bits(var bits)? = occupied[address] {
                            bits[position] = index
                            occupied[address] = .bits(bits)
                        } else {
                            occupied[address] = .bits([position: index])
                        }
                    } else {
                        occupied[address] = .whole(index)
                    }
                }
            }
        }
    }

    static func describeSpan(_ point: PointConfiguration) -> String {
        let area = point.area.configurationName
        if let position = point.bitPosition { return "\(area) \(point.address) bit \(position)" }
        if point.registerCount == 1 { return "\(area) \(point.address)" }
        return "\(area) \(point.address)...\(Int(point.address) + point.registerCount - 1)"
    }

    private func checkDefaultAckModeAgainstProtocol() {
        guard protocolVersion == .mqtt311 else { return }
        let affected = loadedPoints.filter { loaded in
            if case .builtIn? = loaded.ackModeSource, loaded.point.command?.ack.mode == .mqtt5 { return true }
            return false
        }
        guard let first = affected.first else { return }
        diagnostics.error(
            "broker.protocol is mqtt311, but \(affected.count) writable point\(affected.count == 1 ? "" : "s") (first: '\(first.point.name)' at line \(first.point.location.line)) \(affected.count == 1 ? "uses" : "use") the default ack mode mqtt5, which needs MQTT 5 request/response",
            at: protocolMark,
            fix:
                "set defaults.ack.mode (correlation_id, state_echo or broker) or ack.mode on each point, or use protocol: mqtt5"
        )
    }
}
