import ModbusCore
import Yams

/// Checks that need every point: unique names, no overlapping registers, the protocol the ack
/// modes need.
extension ConfigurationLoader {
    func validateAcrossPoints(units: [UnitConfiguration]) {
        checkDuplicateNames()
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

    private enum Occupant {
        case whole(Int)
        case bits([Int: Int])  // bit position → point index
    }

    private func checkOverlaps() {
        struct GroupKey: Hashable {
            var unit: UInt8
            var area: ModbusArea
        }
        var groups: [GroupKey: [Int]] = [:]
        for (index, loaded) in loadedPoints.enumerated() {
            groups[GroupKey(unit: loaded.point.unitID, area: loaded.point.area), default: []].append(index)
        }
        for key in groups.keys.sorted(by: { ($0.unit, $0.area.rawValue) < ($1.unit, $1.area.rawValue) }) {
            // "Later" means later in the file; template instances keep their expansion order.
            let members = groups[key]!.enumerated().sorted {
                ($0.element.line(in: loadedPoints), $0.offset) < ($1.element.line(in: loadedPoints), $1.offset)
            }.map(\.element)
            var occupied: [Int: Occupant] = [:]
            for index in members {
                let point = loadedPoints[index].point
                var conflict: Int?
                for address in point.addressRange {
                    switch (occupied[address], point.bitPosition) {
                    case (nil, _): continue
                    case (.whole(let other)?, _): conflict = other
                    case (.bits(let bits)?, let position?): conflict = bits[position]
                    case (.bits(let bits)?, nil): conflict = bits.values.min()
                    }
                    if conflict != nil { break }
                }
                if let conflict {
                    let other = loadedPoints[conflict].point
                    diagnostics.error(
                        "point '\(point.name)' (\(Self.describeSpan(point))) overlaps point '\(other.name)' (\(Self.describeSpan(other))) defined at line \(other.location.line), in unit \(point.unitID)",
                        at: loadedPoints[index].addressMark,
                        fix: "move one of them: each register (or bit of a register) belongs to one point"
                    )
                    continue
                }
                for address in point.addressRange {
                    if let position = point.bitPosition {
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

extension Int {
    fileprivate func line(in points: [LoadedPoint]) -> Int { points[self].point.location.line }
}
