import Yams

extension ConfigurationLoader {
    static let sparkplugSourceKeys = ["group_id", "edge_node_id", "device_id"]
    static let sparkplugHostKeys = ["host_id", "rebirth_interval"]
    /// Point keys of a Sparkplug point.
    static let sparkplugPointKeys = ["metric", "datatype"]
    /// Point keys a Sparkplug point cannot have: its metric says where the value comes from and
    /// how commands travel.
    static let sparkplugExcludedPointKeys = [
        "state_topic", "command_topic", "command_template", "command_retain", "command_payload", "payload", "qos",
    ]
    static let sparkplugDataTypeChoices = SparkplugDataType.allCases.map { ($0.description, $0) }

    /// The top-level `sparkplug:` section: the bridge's role as a Sparkplug host application.
    func parseSparkplugHost(_ entry: Entry) -> SparkplugHostSettings {
        var settings = SparkplugHostSettings()
        guard
            let view = reader.mapping(
                entry.value,
                context: "sparkplug",
                allowed: Self.sparkplugHostKeys,
                at: entry.mark
            )
        else { return settings }
        if let idEntry = view["host_id"], let id = reader.string(idEntry) {
            if SparkplugSource.isValidID(id) {
                settings.hostID = id
            } else {
                diagnostics.error(
                    "'host_id' '\(id)' is not a Sparkplug id: it may not contain '/', '+' or '#'",
                    at: idEntry.mark,
                    fix: "name the host application with letters, digits, '-' or '_', e.g. scada-bridge"
                )
            }
        }
        if let intervalEntry = view["rebirth_interval"], let interval = positiveDuration(intervalEntry) {
            settings.rebirthInterval = interval
            if settings.hostID == nil {
                diagnostics.error(
                    "'rebirth_interval' only applies to a host application (sparkplug.host_id)",
                    at: intervalEntry.mark,
                    fix: "add host_id: <name> (only if this bridge is the primary host), or remove rebirth_interval"
                )
            }
        }
        return settings
    }

    /// `sparkplug: { group_id, edge_node_id, device_id }` on a device.
    func parseSparkplugSource(_ entry: Entry, device name: String) -> SparkplugSource? {
        guard
            let view = reader.mapping(
                entry.value,
                context: "device '\(name)' sparkplug",
                allowed: Self.sparkplugSourceKeys,
                at: entry.mark
            )
        else { return nil }
        func id(_ key: String, required: Bool) -> String?? {
            guard let idEntry = required ? reader.required(view, key, fix: "add '\(key): <Sparkplug id>'") : view[key]
            else { return required ? nil : .some(nil) }
            guard let text = reader.string(idEntry) else { return nil }
            guard SparkplugSource.isValidID(text) else {
                diagnostics.error(
                    "'\(key)' '\(text)' is not a Sparkplug id: it may not contain '/', '+' or '#'",
                    at: idEntry.mark,
                    fix: "write the id exactly as the edge node publishes it (one topic level)"
                )
                return nil
            }
            return .some(text)
        }
        guard case .some(let group?) = id("group_id", required: true),
            case .some(let node?) = id("edge_node_id", required: true),
            case .some(let device) = id("device_id", required: false)
        else { return nil }
        let source = SparkplugSource(groupID: group, edgeNodeID: node, deviceID: device)
        if let earlier = sparkplugSourceDevices[source] {
            let what = device.map { "device '\($0)' of edge node '\(node)'" } ?? "edge node '\(node)'"
            diagnostics.error(
                "Sparkplug \(what) in group '\(group)' is already the source of device '\(earlier)'",
                at: entry.mark,
                fix: "describe each Sparkplug device once: put all its points on device '\(earlier)'"
            )
            return nil
        }
        sparkplugSourceDevices[source] = name
        sparkplugDevices[name] = source
        return source
    }

    /// Expands a point of a Sparkplug device (`metric:`): the command topic (DCMD or NCMD) of a
    /// writable point and its state-echo acknowledgement; the metric goes to
    /// ``PointConfiguration/sparkplug``. A point with Sparkplug keys whose device is not a
    /// Sparkplug device gets an error and loses those keys. `nil` when the point is neither.
    func expandSparkplug(_ node: Node, unitDevice: String?) -> (Node?, ProfileFinish?)? {
        guard case .mapping(let mapping) = node else { return nil }
        let pairs = Array(mapping)
        let deviceName = pairs.first { $0.key.scalarText == "device" }?.value.scalarText ?? unitDevice
        let source = deviceName.flatMap { sparkplugDevices[$0] }
        let written = pairs.filter { Self.sparkplugPointKeys.contains($0.key.scalarText ?? "") }
        guard let source, let deviceName else {
            guard !written.isEmpty else { return nil }
            for pair in written {
                diagnostics.error(
                    "'\(pair.key.scalarText ?? "")' is a key of Sparkplug points, but the point's device "
                        + (deviceName.map { "'\($0)' has no 'sparkplug:'" } ?? "is not set"),
                    at: pair.key.mark,
                    fix: "give the point (or its unit) a device with sparkplug: { group_id, edge_node_id }, "
                        + "or remove \(pair.key.scalarText ?? "")"
                )
            }
            let rest = pairs.filter { pair in !written.contains { $0.key == pair.key } }
            return (.mapping(Node.Mapping(rest, mapping.tag, mapping.style, mapping.mark)), nil)
        }
        func entry(_ key: String) -> Entry? {
            pairs.first { $0.key.scalarText == key }.map { Entry(key: key, keyNode: $0.key, value: $0.value) }
        }
        var valid = true
        for key in Self.sparkplugExcludedPointKeys {
            guard let excluded = entry(key) else { continue }
            diagnostics.error(
                "'\(key)' does not apply to a point of Sparkplug device '\(deviceName)': the metric's births, "
                    + "data and commands carry its value",
                at: excluded.keyNode.mark,
                fix: "remove \(key)"
            )
            valid = false
        }
        guard let metricEntry = entry("metric") else {
            diagnostics.error(
                "a point of Sparkplug device '\(deviceName)' needs 'metric', the metric's name as its births carry it",
                at: mapping.mark,
                fix: "add metric: <name>, e.g. metric: Inputs/Temperature"
            )
            return (nil, nil)
        }
        guard let metricName = reader.string(metricEntry) else { return (nil, nil) }
        var datatype: SparkplugDataType?
        if let datatypeEntry = entry("datatype") {
            guard let chosen = reader.choice(datatypeEntry, Self.sparkplugDataTypeChoices) else { return (nil, nil) }
            guard chosen.isSupported else {
                diagnostics.error(
                    "Sparkplug datatype \(chosen) has no register form",
                    at: datatypeEntry.mark,
                    fix: "map a metric of a scalar datatype: "
                        + SparkplugDataType.supported.map(\.description).joined(separator: ", ")
                )
                return (nil, nil)
            }
            datatype = chosen
        }
        let ack = entry("ack")
        if let ack, case .mapping(let ackMapping) = ack.value,
            let mode = ackMapping.first(where: { $0.key.scalarText == "mode" }),
            mode.value.scalarText?.lowercased() != AckSettings.Mode.stateEcho.rawValue
        {
            diagnostics.error(
                "a Sparkplug write is confirmed by the DATA message that reports the written value: "
                    + "its ack mode is state_echo",
                at: mode.key.mark,
                fix: "remove ack.mode (timeout and tolerance may be set)"
            )
            valid = false
        }
        let area = pairs.first { $0.key.scalarText == "area" }?.value.scalarText?.lowercased()
        let isWritable = area == "coil" || area == "holding_register"
        let anchor = metricEntry.keyNode.mark
        func text(_ value: String) -> Node { .scalar(Node.Scalar(value, .implicit, .doubleQuoted, anchor)) }
        var result = pairs.filter { pair in
            !written.contains { $0.key == pair.key }
                && !Self.sparkplugExcludedPointKeys.contains(pair.key.scalarText ?? "")
        }
        // The DATA topic only satisfies the checks of a state-echo point; the finish removes it:
        // Sparkplug messages are routed by the Sparkplug runtime, never as plain state messages.
        result.append((text("state_topic"), text(source.topic("DATA"))))
        if isWritable {
            result.append((text("command_topic"), text(source.topic("CMD"))))
            let derived: [(Node, Node)] = [(text("mode"), text(AckSettings.Mode.stateEcho.rawValue))]
            if let index = result.firstIndex(where: { $0.key.scalarText == "ack" }),
                case .mapping(let own) = result[index].value
            {
                let ownKeys = Set(own.compactMap { $0.key.scalarText })
                let merged = derived.filter { !ownKeys.contains($0.0.scalarText ?? "") } + Array(own)
                result[index] = (result[index].key, .mapping(Node.Mapping(merged, own.tag, own.style, own.mark)))
            } else if !result.contains(where: { $0.key.scalarText == "ack" }) {
                result.append((text("ack"), .mapping(Node.Mapping(derived, .implicit, .block, anchor))))
            }
        }
        let metric = SparkplugMetric(name: metricName, datatype: datatype)
        let datatypeMark = entry("datatype")?.mark
        let finish: ProfileFinish = { [diagnostics] point in
            point.sparkplug = metric
            point.stateTopic = nil
            point.qos = .atMostOnce
            // Sparkplug commands are QoS 0 and never retained: an edge node that reconnects
            // must not apply an old command again.
            point.command?.qos = .atMostOnce
            point.command?.retain = false
            if let datatype, !datatype.fits(point.type) {
                diagnostics.error(
                    "metric '\(metric.name)' is \(datatype), which a point of type \(point.type.name) cannot hold",
                    at: datatypeMark,
                    fix: "make the point \(datatype.suggestedPointTypes)"
                )
            }
        }
        return (.mapping(Node.Mapping(result, mapping.tag, mapping.style, mapping.mark)), valid ? finish : nil)
    }

    /// A device convention's expansion of a point: Sparkplug first, then profiles.
    func expandConventions(_ node: Node, unitDevice: String?) -> (Node?, ProfileFinish?) {
        guard let (expanded, sparkplugFinish) = expandSparkplug(node, unitDevice: unitDevice) else {
            return expandProfile(node, unitDevice: unitDevice)
        }
        guard let expanded else { return (nil, nil) }
        // A Sparkplug device has no profile (refused on the device): this only strips and
        // reports profile keys written on the point.
        let (stripped, _) = expandProfile(expanded, unitDevice: unitDevice)
        return (stripped, sparkplugFinish)
    }
}
