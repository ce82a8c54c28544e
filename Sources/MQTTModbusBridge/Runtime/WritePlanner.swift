import MQTTModbusBridgeConfiguration
import ModbusCore

/// One point's share of a Modbus write: the value to command.
struct PlannedPointWrite: Sendable, Hashable {
    var point: Int
    var value: PointValue
    var image: RegisterImage
}

/// Splits a Modbus write into point writes, refusing what cannot be applied whole.
///
/// A write must cover every point it touches completely (a write to half of a float32 would
/// have to invent the other half) and may only touch writable points; otherwise it is answered
/// 02 and nothing is published.
///
/// A register of bit points commands only the bits that change (FC22 mask writes and FC6 of a
/// status word touch one bit, not sixteen devices); when the current bits are not known, every
/// bit is commanded. An FC22 mask write commands only the bits its masks change. A bit that
/// would change on a point without a command topic, or a bit set that no point maps (it would
/// read back 0), refuses the whole write (02).
struct WritePlanner: Sendable {
    let map: RegisterMap
    let cache: PointCache

    /// - Parameter changedBits: for an FC22 mask write, the bits the master changes; the other
    ///   bits of a register of bit points are not commanded, whatever the cache holds for them.
    func plan(
        unit: UInt8,
        area: ModbusArea,
        address: UInt16,
        values: [UInt16],
        changedBits: UInt16? = nil
    ) throws -> [PlannedPointWrite] {
        guard let (entries, _) = map.layout(unit: unit, area: area) else {
            throw ModbusException(.gatewayTargetDeviceFailedToRespond, "unit \(unit) is not configured")
        }
        let start = Int(address)
        let end = start + values.count
        var current = start
        var entryIndex = RegisterMap.firstEntry(endingAfter: current, in: entries)
        var planned: [PlannedPointWrite] = []
        while current < end {
            guard entryIndex < entries.count, entries[entryIndex].start <= current else {
                throw ModbusException(.illegalDataAddress, "no point at \(area) \(current) of unit \(unit)")
            }
            let entry = entries[entryIndex]
            // Status registers only report; like any read-only point they refuse writes.
            guard entry.role == .value else {
                let kind = entry.role == .quality ? "quality" : "last-command"
                throw ModbusException(
                    .illegalDataAddress,
                    "\(area) \(entry.start) is the \(kind) register of \(map.points[entry.points[0]].name) (read-only)"
                )
            }
            guard entry.start >= start, entry.end <= end else {
                let point = map.points[entry.points[0]]
                throw ModbusException(
                    .illegalDataAddress,
                    "the write covers only part of \(point.name) (\(area) \(entry.start)...\(entry.end - 1))"
                )
            }
            let words = Array(values[(entry.start - start)..<(entry.end - start)])
            let isBitRegister = map.points[entry.points[0]].bitPosition != nil
            if isBitRegister {
                // Bits no point maps always read 0; setting one could never be applied.
                let mapped = entry.points.reduce(UInt16(0)) { mask, index in
                    mask | (map.points[index].bitPosition.map { UInt16(1) << UInt16($0) } ?? 0)
                }
                let unmapped = words[0] & ~mapped & (changedBits ?? 0xFFFF)
                guard unmapped == 0 else {
                    throw ModbusException(
                        .illegalDataAddress,
                        "\(area) \(entry.start) of unit \(unit): no point maps bit mask 0x\(String(unmapped, radix: 16, uppercase: true))"
                    )
                }
            }
            // Only bit points share a register (validation), so only they have current bits to compare.
            let currentBits = isBitRegister ? cache.currentRegister(of: entry) : nil
            for index in entry.points {
                let point = map.points[index]
                if let position = point.bitPosition {
                    let bit = UInt16(1) << UInt16(position)
                    if let changedBits, changedBits & bit == 0 { continue }  // a mask write leaves it alone
                    if let currentBits, (currentBits ^ words[0]) & bit == 0 { continue }  // it does not change
                }
                guard point.isWritable else {
                    throw ModbusException(.illegalDataAddress, "\(point.name) is read-only (no command_topic)")
                }
                let image: RegisterImage
                if let position = point.bitPosition {
                    image = .bit(position: position, value: words[0] & (1 << UInt16(position)) != 0)
                } else {
                    image = .words(words)
                }
                let value: PointValue
                do {
                    // A bit point decodes its bit from the whole register.
                    value = try RegisterDecoder(point: point).decode(words)
                } catch {
                    throw ModbusException(.illegalDataValue, "\(point.name): \(error)")
                }
                planned.append(PlannedPointWrite(point: index, value: value, image: image))
            }
            current = entry.end
            entryIndex += 1
        }
        return planned
    }
}
