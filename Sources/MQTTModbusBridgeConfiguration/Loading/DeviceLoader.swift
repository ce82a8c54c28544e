import Yams

extension ConfigurationLoader {
    static let deviceKeys =
        ["name", "availability", "silence", "offline_writes", "profile", "refresh", "sparkplug"]
        + profileDeviceKeys.map(\.key)
    static let availabilityKeys = ["topic", "online", "offline", "path"]
    static let offlineWriteChoices: [(String, OfflineWritePolicy)] = OfflineWritePolicy.allCases.map {
        ($0.rawValue, $0)
    }

    /// The `devices:` list.
    func parseDevices(_ entry: Entry) -> [DeviceConfiguration] {
        guard let nodes = reader.sequence(entry) else { return [] }
        var devices: [DeviceConfiguration] = []
        for node in nodes {
            if let device = parseDevice(node, fallback: entry.mark) {
                devices.append(device)
            }
        }
        return devices
    }

    private func parseDevice(_ node: Node, fallback: Mark?) -> DeviceConfiguration? {
        guard var view = reader.mapping(node, context: "device", allowed: Self.deviceKeys, at: fallback) else {
            return nil
        }
        let nameEntry = reader.required(view, "name", fix: "add 'name: <unique device name>'")
        guard let nameEntry, let name = reader.string(nameEntry), !name.isEmpty else { return nil }
        view.context = "device '\(name)'"
        if let earlier = deviceMarks[name] {
            diagnostics.error(
                "device name '\(name)' is already used by the device at line \(earlier.line)",
                at: nameEntry.mark,
                fix: "give every device its own name"
            )
        } else if let mark = nameEntry.mark {
            deviceMarks[name] = mark
        }
        var device = DeviceConfiguration(name: name, location: location(of: node))
        device.availability = parseProfile(view, name: name)
        if let entry = view["availability"] {
            device.availability = parseAvailability(entry, context: "\(view.context) availability")
        }
        if let entry = view["refresh"] {
            device.refresh = parseRefresh(entry, context: view.context)
            profiles[name]?.refreshWritten = true
        }
        if let entry = view["silence"], let silence = reader.duration(entry) {
            if silence <= .zero {
                diagnostics.error(
                    "'silence' must be positive, found \(entry.value.scalarText ?? "")",
                    at: entry.mark,
                    fix: "the longest quiet time the device may have, e.g. 5m; remove it to not watch silence"
                )
            } else {
                device.silence = silence
            }
        }
        if let entry = view["sparkplug"] {
            device.sparkplug = parseSparkplugSource(entry, device: name)
            for key in ["profile", "availability"] where view.has(key) {
                diagnostics.error(
                    "'\(key)' does not apply to Sparkplug device '\(name)': its births and death certificates say "
                        + "whether it is online",
                    at: view[key]!.keyNode.mark,
                    fix: "remove \(key)"
                )
            }
        }
        if let policy = reader.choice(view["offline_writes"], Self.offlineWriteChoices) {
            device.offlineWrites = policy
        }
        return device
    }

    private func parseAvailability(_ entry: Entry, context: String) -> AvailabilitySettings? {
        guard let view = reader.mapping(entry.value, context: context, allowed: Self.availabilityKeys, at: entry.mark)
        else { return nil }
        guard
            let topicEntry = reader.required(view, "topic", fix: "add 'topic:' (where the device says online/offline)"),
            let topic = reader.string(topicEntry), checkTopicName(topic, topicEntry)
        else { return nil }
        var settings = AvailabilitySettings(topic: topic)
        if let words = reader.words(view["online"]) { settings.onlineWords = words }
        if let words = reader.words(view["offline"]) { settings.offlineWords = words }
        let online = Set(settings.onlineWords.map { $0.lowercased() })
        if let word = online.intersection(settings.offlineWords.map { $0.lowercased() }).sorted().first {
            diagnostics.error(
                "'\(word)' is both an online and an offline word",
                at: (view["online"] ?? view["offline"] ?? entry).mark,
                fix: "a word can mean only one of online and offline: remove it from one list"
            )
            return nil
        }
        if view.has("path") {
            guard let path = parseJSONPathField(view["path"]) else { return nil }
            settings.path = path
        }
        return settings
    }

    /// The device a point (or unit) names, checked against `devices:`.
    func resolveDevice(_ entry: Entry?, context: String) -> String? {
        guard let entry, let name = reader.string(entry) else { return nil }
        guard deviceMarks[name] != nil else {
            let suggestion = YAMLReader.closest(to: name, in: Array(deviceMarks.keys).sorted())
            diagnostics.error(
                "\(context): no device named '\(name)'",
                at: entry.mark,
                fix: suggestion.map { "did you mean '\($0)'?" } ?? "add it to 'devices:' with its availability topic"
            )
            return nil
        }
        return name
    }

    /// Points nothing can make stale: no `max_age` and no device that watches its availability.
    /// One warning names them all (at the first one): a dead device's last value would be served
    /// for ever.
    func freshnessWarnings(units: [UnitConfiguration], devices: [DeviceConfiguration]) -> [ConfigurationError] {
        let watched = Set(devices.filter(\.watchesAvailability).map(\.name))
        let unwatched = units.flatMap(\.points).filter { point in
            point.stateTopic != nil && point.maxAge == nil && !(point.device.map(watched.contains) ?? false)
        }
        guard let first = unwatched.first else { return [] }
        let names = unwatched.prefix(10).map(\.name).joined(separator: ", ")
        let more = unwatched.count > 10 ? " and \(unwatched.count - 10) more" : ""
        return [
            ConfigurationError(
                file: diagnostics.file,
                line: first.location.line,
                column: first.location.column,
                message:
                    "\(unwatched.count) point(s) can never go stale (no max_age, no device availability or silence): "
                    + "if their device dies, Modbus keeps reading its last value: \(names)\(more)",
                fix: "set max_age (for all points: defaults.max_age), or give them a device with availability: or "
                    + "silence: (devices:)",
                severity: .warning
            )
        ]
    }
}
