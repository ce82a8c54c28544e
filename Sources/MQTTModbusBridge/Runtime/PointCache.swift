import Dispatch
import MQTTModbusBridgeConfiguration
import ModbusCore
import ModbusTCPServer
import Synchronization

/// The register image of every point, decoded once when its message arrives, so that a Modbus
/// read is a lookup under a lock and never suspends.
///
/// Words of all points live in one flat array; each point also has the monotonic time of its
/// last good value (0: never received, or invalidated). Thread-safe: MQTT messages update it on
/// the MQTT loop's consumer task while event-loop threads read it.
final class PointCache: Sendable {
    let map: RegisterMap
    /// The map as the read path walks it.
    private let readIndex: ReadIndex
    private let offsets: [Int]
    /// The image a missing or stale point reads as, when its policy substitutes a value.
    private let substitutes: [RegisterImage?]
    private let maxAges: [UInt64?]
    /// For each device, its silence limit in nanoseconds.
    private let silences: [UInt64?]
    private let state: Mutex<Storage>

    private struct Storage: ~Copyable {
        var words: [UInt16]
        var updated: [UInt64]
        /// Per point: it had a value when the broker connection was lost, and none came since
        /// (what its quality register tells from "never received").
        var lost: [Bool]
        /// Per point: ``LastCommandStatus/registerValue`` of its last write.
        var lastCommand: [UInt16]
        /// Per device: its availability topic said offline (and has not said online since).
        var offline: [Bool]
        /// Per device: the monotonic time of its last message (0: none since start or since the
        /// broker connection was lost).
        var lastSeen: [UInt64]
        /// Per point: when its last value arrived (0: never). Unlike `updated`, not cleared when
        /// the broker connection is lost, so a status page can tell "stale" from "never received".
        var received: [UInt64]
    }

    init(map: RegisterMap) {
        self.map = map
        self.readIndex = ReadIndex(map: map)
        var offsets: [Int] = []
        var total = 0
        for point in map.points {
            offsets.append(total)
            total += point.registerCount
        }
        self.offsets = offsets
        self.substitutes = map.points.map { point in
            guard case .substitute(let value) = point.onMissing else { return nil }
            return try? RegisterEncoder(point: point).encode(value)
        }
        self.maxAges = map.points.map { point in point.maxAge.map(Self.nanoseconds) }
        self.silences = map.devices.map { device in device.silence.map(Self.nanoseconds) }
        self.state = Mutex(
            Storage(
                words: [UInt16](repeating: 0, count: total),
                updated: [UInt64](repeating: 0, count: map.points.count),
                lost: [Bool](repeating: false, count: map.points.count),
                lastCommand: [UInt16](repeating: LastCommandStatus.none.registerValue, count: map.points.count),
                offline: [Bool](repeating: false, count: map.devices.count),
                lastSeen: [UInt64](repeating: 0, count: map.devices.count),
                received: [UInt64](repeating: 0, count: map.points.count)
            )
        )
    }

    static func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

    private static func nanoseconds(_ duration: Duration) -> UInt64 {
        UInt64(duration.components.seconds) * 1_000_000_000 + UInt64(duration.components.attoseconds / 1_000_000_000)
    }

    // MARK: Devices

    /// A device's availability topic said online (`true`) or offline (`false`); either way the
    /// device was heard from.
    func setAvailability(device index: Int, online: Bool, at time: UInt64 = PointCache.now()) {
        state.withLock { storage in
            storage.offline[index] = !online
            storage.lastSeen[index] = max(time, 1)
        }
    }

    /// A message from the device arrived that did not update a point (one that could not be
    /// decoded): the device is not silent. ``update(point:image:at:)`` does this itself.
    func deviceSeen(_ index: Int, at time: UInt64 = PointCache.now()) {
        state.withLock { $0.lastSeen[index] = max(time, 1) }
    }

    /// Whether the device counts as offline now: its availability topic said so, or it has been
    /// silent for longer than its silence limit (or not heard from at all, with a limit set).
    func isDeviceOffline(_ index: Int, at time: UInt64 = PointCache.now()) -> Bool {
        state.withLock { isOffline(index, $0, time) }
    }

    private func isOffline(_ index: Int, _ storage: borrowing Storage, _ time: UInt64) -> Bool {
        if storage.offline[index] { return true }
        guard let silence = silences[index] else { return false }
        let seen = storage.lastSeen[index]
        if seen == 0 { return true }
        return time > seen && time - seen > silence
    }

    /// Stores a point's new image and marks it fresh; its device was heard from.
    func update(point index: Int, image: RegisterImage, at time: UInt64 = PointCache.now()) {
        state.withLock { storage in
            store(image, of: index, in: &storage)
            storage.updated[index] = max(time, 1)
            storage.received[index] = max(time, 1)
            storage.lost[index] = false
            if let device = map.deviceOfPoint[index] { storage.lastSeen[device] = max(time, 1) }
        }
    }

    private func store(_ image: RegisterImage, of index: Int, in storage: inout Storage) {
        let offset = offsets[index]
        switch image {
        case .words(let words):
            for (position, word) in words.enumerated() { storage.words[offset + position] = word }
        case .bit(_, let value):
            storage.words[offset] = value ? 1 : 0
        }
    }

    /// When the point was last updated or invalidated, as a token for
    /// ``update(point:image:ifUnchangedSince:)``.
    func lastUpdate(of index: Int) -> UInt64 {
        state.withLock { $0.updated[index] }
    }

    /// Stores a point's image only if nothing updated or invalidated the point since `token`
    /// (``lastUpdate(of:)``): a written value must not overwrite a state the device reported
    /// while the write waited for its acknowledgement.
    func update(point index: Int, image: RegisterImage, ifUnchangedSince token: UInt64) {
        state.withLock { storage in
            guard storage.updated[index] == token else { return }
            store(image, of: index, in: &storage)
            storage.updated[index] = max(Self.now(), token + 1, 1)
            storage.received[index] = storage.updated[index]
            storage.lost[index] = false
        }
    }

    /// Marks one point as having no value (its source said the value is null or not good):
    /// reads follow its missing-value policy until a new value arrives.
    func invalidate(point index: Int) {
        state.withLock { $0.updated[index] = 0 }
    }

    /// Marks every point as not current (the broker connection is gone): reads follow each
    /// point's missing-value policy until a fresh message arrives.
    func invalidateAll() {
        state.withLock { storage in
            for index in storage.updated.indices {
                if storage.updated[index] != 0 { storage.lost[index] = true }
                storage.updated[index] = 0
            }
            // What the devices said is unknown until their (retained) availability comes again.
            for index in storage.offline.indices {
                storage.offline[index] = false
                storage.lastSeen[index] = 0
            }
        }
    }

    /// What a status page shows of a point: its stored registers (the last value received,
    /// whatever its freshness), how long ago that value arrived, and its freshness now, decided
    /// as a Modbus read decides it.
    func status(of index: Int, at time: UInt64 = PointCache.now()) -> CachedPointStatus {
        state.withLock { storage in
            let received = storage.received[index]
            let freshness = PointFreshness(quality(index, storage, time))
            let offset = offsets[index]
            return CachedPointStatus(
                registers: received == 0 ? [] : Array(storage.words[offset..<offset + map.points[index].registerCount]),
                age: received == 0 ? nil : .nanoseconds(Int64(time > received ? time - received : 0)),
                freshness: freshness
            )
        }
    }

    /// How many points have no value (never received since start or since the broker connection
    /// was lost), and how many have one that reads may not serve (older than its `max_age`, or
    /// its device is offline): both answer their missing-value policy. One pass under the lock.
    func freshnessCounts(at time: UInt64 = PointCache.now()) -> (stale: Int, missing: Int) {
        state.withLock { storage in
            var stale = 0
            var missing = 0
            for index in storage.updated.indices {
                if storage.updated[index] == 0 {
                    missing += 1
                } else if !isFresh(index, storage, time) {
                    stale += 1
                }
            }
            return (stale, missing)
        }
    }

    /// Whether a point has a current value.
    func isFresh(point index: Int, at time: UInt64 = PointCache.now()) -> Bool {
        state.withLock { isFresh(index, $0, time) }
    }

    /// The current register of a group of bit points, or `nil` if any of them has no current value.
    func currentRegister(of entry: RegisterMap.Entry) -> UInt16? {
        let time = Self.now()
        return state.withLock { storage -> UInt16? in
            var register: UInt16 = 0
            for index in entry.points {
                guard isFresh(index, storage, time), let position = map.points[index].bitPosition else { return nil }
                if storage.words[offsets[index]] != 0 { register |= 1 << UInt16(position) }
            }
            return register
        }
    }

    /// The point's quality now, as its quality register reports it.
    func quality(of index: Int, at time: UInt64 = PointCache.now()) -> PointQuality {
        state.withLock { quality(index, $0, time) }
    }

    /// The one freshness rule: a value is current exactly when its quality is fresh, so a
    /// quality register can never disagree with what its value answers.
    private func isFresh(_ index: Int, _ storage: borrowing Storage, _ time: UInt64) -> Bool {
        quality(index, storage, time) == .fresh
    }

    private func quality(_ index: Int, _ storage: borrowing Storage, _ time: UInt64) -> PointQuality {
        // A point of a device that is gone has no current value, however recent its last one.
        if let device = map.deviceOfPoint[index], isOffline(device, storage, time) { return .deviceOffline }
        let updated = storage.updated[index]
        guard updated != 0 else { return storage.lost[index] ? .connectionLost : .missing }
        guard let maxAge = maxAges[index] else { return .fresh }
        // A reader takes the clock before the lock, so an update can land in between and be
        // newer than `time`: that value is fresh (the unsigned difference would wrap to "stale").
        return time <= updated || time - updated <= maxAge ? .fresh : .stale
    }

    // MARK: Reload

    /// Takes over from `old`, the cache of the map this one replaces, what each point and
    /// device of ``ReloadPlan`` keeps: a kept point its words, times and last command; a
    /// converted point its value, decoded by its old definition and encoded by its new one (a
    /// changed scale, say), or nothing if that fails; a kept device its availability and the
    /// time it was last heard from. Called before the new map is put in force, while no message
    /// is handled (the caller holds the ingest lock).
    func carry(from old: PointCache, points carry: [ReloadPlan.PointCarry], devices: [Int?]) {
        struct Taken {
            var words: [UInt16]
            var updated: UInt64
            var received: UInt64
            var lost: Bool
            var lastCommand: UInt16
        }
        let (taken, deviceStates) = old.state.withLock { storage in
            let taken = carry.map { decision -> Taken? in
                let index: Int
                switch decision {
                case .keep(let oldIndex), .convert(let oldIndex): index = oldIndex
                case .none: return nil
                }
                let offset = old.offsets[index]
                return Taken(
                    words: Array(storage.words[offset..<offset + old.map.points[index].registerCount]),
                    updated: storage.updated[index],
                    received: storage.received[index],
                    lost: storage.lost[index],
                    lastCommand: storage.lastCommand[index]
                )
            }
            let deviceStates = devices.map { index in index.map { (storage.offline[$0], storage.lastSeen[$0]) } }
            return (taken, deviceStates)
        }
        var images: [RegisterImage?] = []
        images.reserveCapacity(carry.count)
        for (index, decision) in carry.enumerated() {
            guard let value = taken[index], value.received != 0 else {
                images.append(nil)
                continue
            }
            switch decision {
            case .keep: images.append(.words(value.words))
            case .convert(let oldIndex):
                images.append(Self.convert(value.words, from: old.map.points[oldIndex], to: map.points[index]))
            case .none: images.append(nil)
            }
        }
        state.withLock { storage in
            // The last write stays what its register says, whatever becomes of the value.
            for (index, value) in taken.enumerated() {
                if let value { storage.lastCommand[index] = value.lastCommand }
            }
            for (index, image) in images.enumerated() {
                guard let image, let value = taken[index] else { continue }
                store(image, of: index, in: &storage)
                storage.updated[index] = value.updated
                storage.received[index] = value.received
                storage.lost[index] = value.lost
            }
            for (index, deviceState) in deviceStates.enumerated() {
                guard let (offline, lastSeen) = deviceState else { continue }
                storage.offline[index] = offline
                storage.lastSeen[index] = lastSeen
            }
        }
    }

    /// The words of a value stored by `old`'s definition, re-encoded by `new`'s: `nil` when
    /// the value cannot be decoded or does not fit the new definition.
    private static func convert(
        _ words: [UInt16],
        from old: PointConfiguration,
        to new: PointConfiguration
    )
        -> RegisterImage?
    {
        if old.bitPosition != nil || new.bitPosition != nil {
            guard old.bitPosition != nil, new.bitPosition != nil, let word = words.first else { return nil }
            return .bit(position: new.bitPosition!, value: word != 0)
        }
        if old.area.isBitArea || new.area.isBitArea {
            guard old.area.isBitArea == new.area.isBitArea else { return nil }
            return .words(words)
        }
        guard let value = try? RegisterDecoder(point: old).decode(words) else { return nil }
        return try? RegisterEncoder(point: new).encode(value)
    }

    // MARK: Last commands

    /// Records how the last write to a point ended, for its last-command register. Called before
    /// the Modbus reply is sent, so a master that reads after the reply sees this write.
    func recordCommand(point index: Int, _ status: LastCommandStatus) {
        state.withLock { $0.lastCommand[index] = status.registerValue }
    }

    /// The last-command register of a point.
    func lastCommand(of index: Int) -> UInt16 {
        state.withLock { $0.lastCommand[index] }
    }

    /// Appends the values of `count` addresses of `area` from `address` to `values`.
    ///
    /// The Modbus read path, run on an event loop for every read request: it works on
    /// ``ReadIndex`` (plain numbers, no reference counting) and takes the lock once.
    ///
    /// - Throws: ``ModbusException``: 02 for an unmapped address (unless the unit fills gaps),
    ///   the point's policy code for a missing or stale value, 0B for an unknown unit.
    func read(unit: UInt8, area: ModbusArea, address: UInt16, count: Int, into values: inout ModbusReadValues) throws {
        let table = readIndex.table(unit: unit, area: area)
        guard table.served else {
            throw ModbusException(.gatewayTargetDeviceFailedToRespond, "unit \(unit) is not configured")
        }
        var current = Int(address)
        let end = current + count
        var entryIndex = readIndex.firstEntry(endingAfter: current, in: table)
        let time = Self.now()
        try state.withLock { storage throws(ModbusException) in
            while current < end {
                if entryIndex < table.end, readIndex.entries[entryIndex].start <= current {
                    let entry = readIndex.entries[entryIndex]
                    let stop = min(entry.end, end)
                    switch entry.kind {
                    case .word:
                        let index = entry.point
                        if isFresh(index, storage, time) {
                            let offset = offsets[index] - entry.start
                            for address in current..<stop { values.append(storage.words[offset + address]) }
                        } else {
                            let image = try substitute(index)
                            for address in current..<stop { values.append(image.word(at: address - entry.start)) }
                        }
                    case .bits:
                        values.append(try composedRegister(entry, storage, time))
                    case .quality:
                        // Always answerable: its job is to say why the value is not.
                        values.append(quality(entry.point, storage, time).registerValue(in: area))
                    case .lastCommand:
                        values.append(storage.lastCommand[entry.point])
                    }
                    current = stop
                    entryIndex += 1
                } else {
                    let gapEnd = min(entryIndex < table.end ? readIndex.entries[entryIndex].start : end, end)
                    guard table.fillGaps else {
                        throw ModbusException(.illegalDataAddress, "no point at \(area) \(current) of unit \(unit)")
                    }
                    for _ in current..<gapEnd { values.append(0) }
                    current = gapEnd
                }
            }
        }
    }

    /// The register of bit points: each bit from its point (or substitute); other bits 0.
    private func composedRegister(
        _ entry: ReadIndex.Entry,
        _ storage: borrowing Storage,
        _ time: UInt64
    ) throws(ModbusException) -> UInt16 {
        var register: UInt16 = 0
        for slot in entry.bits {
            let index = readIndex.bitPoints[slot]
            let bitIsSet: Bool
            if isFresh(index, storage, time) {
                bitIsSet = storage.words[offsets[index]] != 0
            } else {
                bitIsSet = try substitute(index).word(at: 0) != 0
            }
            if bitIsSet { register |= 1 << UInt16(readIndex.bitPositions[slot]) }
        }
        return register
    }

    private func substitute(_ index: Int) throws(ModbusException) -> RegisterImage {
        if let image = substitutes[index] { return image }
        let point = map.points[index]
        if case .exception(let code) = point.onMissing {
            throw ModbusException(code, "point \(point.name) has no current value")
        }
        throw ModbusException(.gatewayTargetDeviceFailedToRespond, "point \(point.name) has no current value")
    }
}

extension RegisterImage {
    /// The register at `position` of the image: a bit image is 1 or 0 at every position, a
    /// shorter word image reads as 0 past its end.
    fileprivate func word(at position: Int) -> UInt16 {
        switch self {
        case .words(let words): position < words.count ? words[position] : 0
        case .bit(_, let value): value ? 1 : 0
        }
    }
}

/// Whether a point's value can be served as live now: its ``PointQuality`` (what a quality
/// register reports) in the words of the status page and its JSON.
public enum PointFreshness: String, Sendable, Hashable, Codable, CaseIterable {
    /// A value arrived and is within its `max_age`; its device (if any) is online.
    case fresh
    /// A value arrived, but it is older than `max_age`.
    case stale
    /// No value has arrived since start.
    case missing
    /// The point's device said it is offline, or has been silent longer than its `silence`.
    case deviceOffline = "device_offline"
    /// A value arrived, but the broker connection was lost since, and none has arrived after.
    case connectionLost = "connection_lost"

    /// The freshness a quality register reports as `quality`.
    init(_ quality: PointQuality) {
        switch quality {
        case .fresh: self = .fresh
        case .stale: self = .stale
        case .missing: self = .missing
        case .deviceOffline: self = .deviceOffline
        case .connectionLost: self = .connectionLost
        }
    }
}

/// One point's entry in the cache, for a status page.
struct CachedPointStatus: Sendable, Hashable {
    /// The registers of the last value received (empty: none yet).
    var registers: [UInt16]
    /// Time since that value arrived.
    var age: Duration?
    var freshness: PointFreshness
}
