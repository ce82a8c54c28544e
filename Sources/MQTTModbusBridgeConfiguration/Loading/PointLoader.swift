import ModbusCore
import Yams

/// Settings given under `payload:` (in `defaults` or a point), before merging.
struct PayloadPartial {
    var entry: Entry?
    var format: (name: String, entry: Entry)?
    var path: (path: JSONPath, entry: Entry)?
    /// A path was written, valid or not (an invalid one was reported already).
    var pathWritten = false
    var trueWords: [String]?
    var falseWords: [String]?
    /// `if_absent: ignore`, with where it was written.
    var ignoresAbsent: (value: Bool, entry: Entry)?
}

/// Settings given under `ack:` (in `defaults` or a point), before merging.
struct AckPartial {
    var mode: (mode: AckSettings.Mode, entry: Entry)?
    var timeout: Duration?
    var responseTopic: (topic: String, entry: Entry)?
    var idField: JSONPath?
    var successField: JSONPath?
    var errorField: JSONPath?
    var codeField: JSONPath?
    var tolerance: (value: Double, entry: Entry)?
    var view: MappingView?
}

/// `on_missing` as written, before it is checked against a point's type.
enum RawMissingPolicy {
    case exception(ModbusExceptionCode)
    case value(Entry)
}

/// The `defaults:` section.
struct PointDefaults {
    var byteOrder: ByteOrder = .abcd
    var qos: QoSLevel = .atLeastOnce
    var maxAge: Duration?
    var onMissing: RawMissingPolicy = .exception(.gatewayTargetDeviceFailedToRespond)
    var onMissingEntry: Entry?
    var payload = PayloadPartial()
    var ack = AckPartial()
}

/// Where a point's ack mode came from, for the protocol check.
enum AckModeSource {
    case point(Mark?)
    case defaults(Mark?)
    case builtIn
}

/// A parsed point with the positions the cross-point checks report.
struct LoadedPoint {
    var point: PointConfiguration
    var nameMark: Mark?
    var addressMark: Mark?
    var ackModeSource: AckModeSource?
    /// Where `quality:` and `last_command:` were written, for the overlap check.
    var qualityMark: Mark?
    var lastCommandMark: Mark?
    /// `false` when the point had errors: it is checked for overlaps but not configured.
    var isValid: Bool
}

extension ConfigurationLoader {
    static let pointKeys = [
        "name", "description", "area", "address", "type", "length", "bit", "byte_order", "scale", "offset",
        "state_topic",
        "payload", "qos", "max_age", "on_missing", "command_topic", "command_template", "command_retain", "ack",
        "device", "quality", "last_command", "command_payload", "metric", "datatype",
    ]
    static let statusRegisterKeys = ["area", "address"]
    static let defaultsKeys = ["byte_order", "qos", "max_age", "on_missing", "payload", "ack"]
    static let payloadKeys = ["format", "path", "true_words", "false_words", "if_absent"]
    static let ackKeys = [
        "mode", "timeout", "response_topic", "id_field", "success_field", "error_field", "code_field", "tolerance",
    ]
    static let unitKeys = ["id", "aliases", "name", "fill_gaps", "device", "points", "templates"]

    static let areaChoices: [(String, ModbusArea)] = [
        ("coil", .coil), ("discrete_input", .discreteInput), ("holding_register", .holdingRegister),
        ("input_register", .inputRegister),
    ]
    /// The `type:` words, from the one list in ``PointType/Kind``.
    static let typeChoices = PointType.Kind.allCases.map { ($0.rawValue, $0) }

    /// The types that take a parameter, and the key that carries it: `string` needs `length`,
    /// `bit` needs `bit`. A parameter key on a point of another type is an error.
    struct TypeParameter {
        var kind: PointType.Kind
        var key: String
        var range: ClosedRange<Int>
        var missingFix: String
        var rangeFix: String
        var misplacedFix: String
        var make: @Sendable (Int) -> PointType
    }

    static let typeParameters = [
        TypeParameter(
            kind: .string,
            key: "length",
            range: 1...PointType.maxStringLength,
            missingFix: "add 'length: <registers>' (2 characters per register, 1...\(PointType.maxStringLength))",
            rangeFix: "a string spans 1...\(PointType.maxStringLength) registers (2 bytes each)",
            misplacedFix: "remove length",
            make: { .string(length: $0) }
        ),
        TypeParameter(
            kind: .bit,
            key: "bit",
            range: 0...15,
            missingFix: "add 'bit: <0...15>' (0 = least significant)",
            rangeFix: "a register has bits 0...15 (0 = least significant)",
            misplacedFix: "remove bit, or set type: bit",
            make: { .bit(position: $0) }
        ),
    ]

    /// "int16, uint16, ..., string or bit": the types a register point may have.
    static let registerTypeList: String = {
        let names = PointType.Kind.allCases.filter { $0 != .bool }.map(\.rawValue)
        return names.dropLast().joined(separator: ", ") + " or " + names.last!
    }()
    static let byteOrderChoices: [(String, ByteOrder)] = ByteOrder.allCases.map { ($0.rawValue, $0) }
    static let qosChoices: [(String, QoSLevel)] = QoSLevel.allCases.map { (String($0.rawValue), $0) }
    static let ackModeChoices: [(String, AckSettings.Mode)] = AckSettings.Mode.allCases.map { ($0.rawValue, $0) }
    static let exceptionNames: [(String, ModbusExceptionCode)] = [
        ("illegal_data_address", .illegalDataAddress), ("server_device_failure", .serverDeviceFailure),
        ("server_device_busy", .serverDeviceBusy), ("gateway_path_unavailable", .gatewayPathUnavailable),
        ("gateway_target_failed", .gatewayTargetDeviceFailedToRespond),
        ("gateway_target_device_failed_to_respond", .gatewayTargetDeviceFailedToRespond),
    ]

    // MARK: Defaults

    func parseDefaults(_ entry: Entry) -> PointDefaults {
        var defaults = PointDefaults()
        guard let view = reader.mapping(entry.value, context: "defaults", allowed: Self.defaultsKeys, at: entry.mark)
        else { return defaults }
        if let order = reader.choice(view["byte_order"], Self.byteOrderChoices) { defaults.byteOrder = order }
        if let qos = reader.choice(view["qos"], Self.qosChoices) { defaults.qos = qos }
        if let entry = view["max_age"], let maxAge = parseMaxAge(entry) { defaults.maxAge = maxAge.value }
        if let entry = view["on_missing"], let policy = parseMissingPolicy(entry) {
            defaults.onMissing = policy
            defaults.onMissingEntry = entry
        }
        if let entry = view["payload"] { defaults.payload = parsePayload(entry, context: "defaults.payload") }
        if let entry = view["ack"] { defaults.ack = parseAck(entry, context: "defaults.ack") }
        if let format = defaults.payload.format?.name, let path = defaults.payload.path, format != "json" {
            diagnostics.error(
                "'path' only applies to format json (defaults.payload format is \(format))",
                at: path.entry.mark,
                fix: "remove path or set format: json"
            )
        }
        return defaults
    }

    func parseMaxAge(_ entry: Entry) -> OptionalDuration? {
        guard let value = reader.optionalDuration(entry) else { return nil }
        if value == .duration(.zero) {
            diagnostics.error(
                "'max_age' must be longer than 0, or none",
                at: entry.mark,
                fix: "write max_age: none to keep values for ever"
            )
            return nil
        }
        return value
    }

    func parsePayload(_ entry: Entry, context: String) -> PayloadPartial {
        var partial = PayloadPartial()
        partial.entry = entry
        guard let view = reader.mapping(entry.value, context: context, allowed: Self.payloadKeys, at: entry.mark) else {
            return partial
        }
        if let formatEntry = view["format"],
            let name = reader.choice(formatEntry, [("plain", "plain"), ("json", "json"), ("boolean", "boolean")])
        {
            partial.format = (name, formatEntry)
        }
        partial.pathWritten = view.has("path")
        if let pathEntry = view["path"], let text = reader.string(pathEntry) {
            do {
                partial.path = (try JSONPath(parsing: text), pathEntry)
            } catch {
                diagnostics.error(
                    "'path': \(error.description)",
                    at: pathEntry.mark,
                    fix: "write paths like data.value or readings[0].temperature"
                )
            }
        }
        partial.trueWords = reader.words(view["true_words"])
        partial.falseWords = reader.words(view["false_words"])
        if let entry = view["if_absent"], let ignore = reader.choice(entry, [("ignore", true), ("error", false)]) {
            partial.ignoresAbsent = (ignore, entry)
        }
        return partial
    }

    func parseJSONPathField(_ entry: Entry?) -> JSONPath? {
        guard let entry, let text = reader.string(entry) else { return nil }
        do {
            let path = try JSONPath(parsing: text)
            if path.isRoot {
                diagnostics.error("'\(entry.key)' must name a field, not the whole document", at: entry.mark)
                return nil
            }
            return path
        } catch {
            diagnostics.error("'\(entry.key)': \(error.description)", at: entry.mark)
            return nil
        }
    }

    func parseAck(_ entry: Entry, context: String) -> AckPartial {
        var partial = AckPartial()
        guard let view = reader.mapping(entry.value, context: context, allowed: Self.ackKeys, at: entry.mark) else {
            return partial
        }
        partial.view = view
        if let modeEntry = view["mode"], let mode = reader.choice(modeEntry, Self.ackModeChoices) {
            partial.mode = (mode, modeEntry)
        }
        if let timeoutEntry = view["timeout"] { partial.timeout = positiveDuration(timeoutEntry) }
        if let topicEntry = view["response_topic"], let topic = reader.string(topicEntry) {
            partial.responseTopic = (topic, topicEntry)
        }
        partial.idField = parseJSONPathField(view["id_field"])
        partial.successField = parseJSONPathField(view["success_field"])
        partial.errorField = parseJSONPathField(view["error_field"])
        partial.codeField = parseJSONPathField(view["code_field"])
        if let toleranceEntry = view["tolerance"], let value = reader.number(toleranceEntry) {
            if value.isFinite && value >= 0 {
                partial.tolerance = (value, toleranceEntry)
            } else {
                diagnostics.error("'tolerance' must be a finite number ≥ 0", at: toleranceEntry.mark)
            }
        }
        return partial
    }

    func parseMissingPolicy(_ entry: Entry) -> RawMissingPolicy? {
        let fix = "write on_missing: exception, on_missing: { exception: 0x0B }, or on_missing: { value: 0 }"
        switch entry.value {
        case .scalar:
            guard let text = reader.string(entry) else { return nil }
            if text.lowercased() == "exception" { return .exception(.gatewayTargetDeviceFailedToRespond) }
            diagnostics.error(
                "'on_missing' must be 'exception' or a mapping with 'exception' or 'value', found '\(text)'",
                at: entry.mark,
                fix: fix
            )
            return nil
        case .mapping:
            guard
                let view = reader.mapping(
                    entry.value,
                    context: "on_missing",
                    allowed: ["exception", "value"],
                    at: entry.mark
                )
            else { return nil }
            if view.has("exception") && view.has("value") {
                diagnostics.error(
                    "'on_missing' takes either 'exception' or 'value', not both",
                    at: entry.mark,
                    fix: fix
                )
                return nil
            }
            if let valueEntry = view["value"] {
                guard case .scalar = valueEntry.value, !valueEntry.value.isNullScalar else {
                    reader.scalarShapeError(valueEntry, expected: "a single value")
                    return nil
                }
                return .value(valueEntry)
            }
            guard let codeEntry = view["exception"], let text = reader.string(codeEntry) else {
                diagnostics.error("'on_missing' needs 'exception' or 'value'", at: entry.mark, fix: fix)
                return nil
            }
            let allowed = MissingValuePolicy.allowedExceptionCodes
            let allowedText = allowed.map { "0x" + String($0.rawValue, radix: 16, uppercase: true).leftPaddedTo2() }
                .joined(separator: ", ")
            let names = Self.exceptionNames.map(\.0)
            if let number = YAMLReader.parseInteger(text) {
                guard let code = allowed.first(where: { Int($0.rawValue) == number }) else {
                    diagnostics.error(
                        "exception code \(text) cannot answer a read of a missing value; use one of \(allowedText)",
                        at: codeEntry.mark,
                        fix: "0x0B (gateway target failed to respond) is the usual choice"
                    )
                    return nil
                }
                return .exception(code)
            }
            if let match = Self.exceptionNames.first(where: { $0.0 == text.lowercased() }) {
                return .exception(match.1)
            }
            let suggestion = YAMLReader.closest(to: text.lowercased(), in: names)
            diagnostics.error(
                "unknown exception '\(text)'; use a code (\(allowedText)) or a name (\(names.joined(separator: ", ")))",
                at: codeEntry.mark,
                fix: suggestion.map { "did you mean '\($0)'?" }
            )
            return nil
        default:
            diagnostics.error(
                "'on_missing' must be 'exception' or a mapping, found \(entry.value.shapeDescription)",
                at: entry.mark,
                fix: fix
            )
            return nil
        }
    }

    // MARK: Units

    func parseUnits(_ entry: Entry, defaults: PointDefaults) -> [UnitConfiguration] {
        guard let nodes = reader.sequence(entry) else { return [] }
        if nodes.isEmpty {
            diagnostics.error(
                "'units' is empty; the bridge needs at least one unit",
                at: entry.mark,
                fix: "add a unit with 'id:' and 'points:'"
            )
        }
        var units: [UnitConfiguration] = []
        for node in nodes {
            if let unit = parseUnit(node, defaults: defaults, fallback: entry.mark) { units.append(unit) }
        }
        return units
    }

    func parseUnit(_ node: Node, defaults: PointDefaults, fallback: Mark?) -> UnitConfiguration? {
        guard var view = reader.mapping(node, context: "unit", allowed: Self.unitKeys, at: fallback) else { return nil }
        let idEntry = reader.required(view, "id", fix: "add 'id: <0...255>' (the Modbus unit id)")
        let id = reader.integer(idEntry, in: 0...255, fix: "Modbus unit ids are 0...255")
        let unitID = UInt8(id ?? 0)
        if let id, let idEntry {
            view.context = "unit \(id)"
            if let earlier = unitIDMarks[UInt8(id)] {
                diagnostics.error(
                    "unit id \(id) is already used by the unit at line \(earlier.line)",
                    at: idEntry.mark,
                    fix: "give every unit its own id, or merge the two units"
                )
            } else if let mark = idEntry.mark {
                unitIDMarks[UInt8(id)] = mark
            }
        }
        let aliases = view["aliases"].map { parseAliases($0, unit: unitID, context: view.context) } ?? []
        let name = reader.string(view["name"])
        let fillGaps = reader.bool(view["fill_gaps"]) ?? false
        unitDevice = resolveDevice(view["device"], context: view.context)
        defer { unitDevice = nil }
        var points: [PointConfiguration] = []
        if let pointsEntry = view["points"], let nodes = reader.sequence(pointsEntry) {
            for pointNode in nodes {
                let (expanded, finish) = expandConventions(pointNode, unitDevice: unitDevice)
                guard let expanded else { continue }
                if var loaded = parsePoint(expanded, unitID: unitID, defaults: defaults, fallback: pointsEntry.mark) {
                    finish?(&loaded.point)
                    if loaded.isValid { points.append(loaded.point) }
                    loadedPoints.append(loaded)
                }
            }
        }
        if let templatesEntry = view["templates"], let nodes = reader.sequence(templatesEntry) {
            for templateNode in nodes {
                for instance in expandTemplate(templateNode, fallback: templatesEntry.mark) {
                    diagnostics.instanceSuffix = instance.description
                    let templateName = templateNode.mapping?["name"]?.scalarText
                    let (expanded, finish) = expandConventions(instance.node, unitDevice: unitDevice)
                    guard let expanded else {
                        diagnostics.instanceSuffix = nil
                        continue
                    }
                    if var loaded = parsePoint(
                        expanded,
                        unitID: unitID,
                        defaults: defaults,
                        fallback: templateNode.mark,
                        templateName: templateName
                    ) {
                        finish?(&loaded.point)
                        loaded.point.location = location(of: templateNode)
                        if loaded.isValid { points.append(loaded.point) }
                        loadedPoints.append(loaded)
                    }
                    diagnostics.instanceSuffix = nil
                }
            }
        }
        if !view.has("points") && !view.has("templates") {
            diagnostics.error(
                "\(view.context) has no points",
                at: view.mark,
                fix: "add 'points:' (or 'templates:'), or remove the unit"
            )
        }
        // Kept for as long as the configuration runs: without the slack appending left (up to
        // half the array with 10,000 points of several hundred bytes each).
        var exact: [PointConfiguration] = []
        exact.reserveCapacity(points.count)
        exact.append(contentsOf: points)
        points = exact
        return UnitConfiguration(id: unitID, aliases: aliases, name: name, fillGaps: fillGaps, points: points)
    }

    /// `aliases: [0, 255]`: more unit ids answered with the unit's points. Collisions with other
    /// units are checked once every unit is read (``validateAcrossPoints(units:)``).
    func parseAliases(_ entry: Entry, unit: UInt8, context: String) -> [UInt8] {
        guard let nodes = reader.sequence(entry) else { return [] }
        var aliases: [UInt8] = []
        for node in nodes {
            let element = Entry(key: "aliases", keyNode: entry.keyNode, value: node)
            guard let value = reader.integer(element, in: 0...255, fix: "Modbus unit ids are 0...255") else {
                continue
            }
            let alias = UInt8(value)
            if aliases.contains(alias) {
                diagnostics.error(
                    "\(context): alias \(alias) is listed twice",
                    at: element.mark,
                    fix: "remove one of them"
                )
                continue
            }
            aliases.append(alias)
            unitAliases.append((alias, element.mark, unit))
        }
        return aliases
    }

    func location(of node: Node) -> ConfigurationLocation {
        ConfigurationLocation(file: diagnostics.file, line: node.mark?.line ?? 0, column: node.mark?.column ?? 0)
    }

    // MARK: Points

    static func isValidPointName(_ name: String) -> Bool {
        !name.isEmpty && name.count <= 200
            && name.unicodeScalars.allSatisfy {
                $0.properties.isAlphabetic || ("0"..."9").contains($0) || "_-.:/".unicodeScalars.contains($0)
            }
    }

    /// Reads one point. `templateName` is the unexpanded name of the template the point comes
    /// from: messages then name the template, so that every instance reports the same text.
    func parsePoint(
        _ node: Node,
        unitID: UInt8,
        defaults: PointDefaults,
        fallback: Mark?,
        templateName: String? = nil
    ) -> LoadedPoint? {
        // The name first, so that every later message can name the point.
        var context = "point"
        if let templateName {
            context = "template '\(templateName)'"
        } else if case .mapping(let mapping) = node,
            let nameNode = mapping.first(where: { $0.key.scalarText == "name" })?.value,
            let name = nameNode.scalarText, !name.isEmpty
        {
            context = "point '\(name)'"
        }
        guard let view = reader.mapping(node, context: context, allowed: Self.pointKeys, at: fallback) else {
            return nil
        }
        let errorsBefore = diagnostics.errorCount

        let nameEntry = reader.required(view, "name", fix: "add 'name: <unique name>'")
        var name = reader.string(nameEntry) ?? ""
        if let nameEntry, !name.isEmpty, !Self.isValidPointName(name) {
            diagnostics.error(
                "point name '\(name)' may contain only letters, digits and _ - . : /",
                at: nameEntry.mark,
                fix: "rename it, e.g. '\(Self.suggestedName(name))'"
            )
            name = ""
        }

        let areaEntry = reader.required(
            view,
            "area",
            fix: "add 'area:' (coil, discrete_input, holding_register or input_register)"
        )
        let area = reader.choice(areaEntry, Self.areaChoices)
        let addressEntry = reader.required(view, "address", fix: "add 'address: <0-based register address>'")
        let address = reader.integer(
            addressEntry,
            in: 0...65535,
            fix: "Modbus addresses are 0...65535 (0-based: register 40001 is address 0)"
        )

        let (type, typeEntry) = parseType(view, area: area, context: context)
        if let type, let area, !type.fits(area) {
            let fix: String
            if type == .bool {
                fix =
                    "use type bit with bit: 0...15 for one bit of a register, or uint16 for a 0/1 register; or move the point to coil/discrete_input"
            } else {
                fix =
                    "coils and discrete inputs hold single bits: use type bool, or move the point to holding_register/input_register"
            }
            diagnostics.error(
                "type \(type.name) does not fit area \(area.configurationName)",
                at: (typeEntry ?? areaEntry)?.mark,
                fix: fix
            )
        }
        if let type, let address, address + type.registerCount > 65536, let addressEntry {
            diagnostics.error(
                "\(context) needs addresses \(address)...\(address + type.registerCount - 1), past the last Modbus address 65535",
                at: addressEntry.mark,
                fix: "move it to an address of at most \(65536 - type.registerCount)"
            )
        }

        let (byteOrder, scale, offset) = parseEncoding(view, type: type, defaults: defaults)

        // State topic and payload.
        var stateTopic: String?
        if let entry = view["state_topic"], let topic = reader.string(entry), checkTopicFilter(topic, entry) {
            stateTopic = topic
        }
        let pointPayload = view["payload"].map { parsePayload($0, context: "\(context) payload") } ?? PayloadPartial()
        let payload = resolvePayload(
            point: pointPayload,
            defaults: defaults.payload,
            type: type,
            context: context,
            view: view
        )

        var qos = defaults.qos
        if let value = reader.choice(view["qos"], Self.qosChoices) { qos = value }
        var maxAge = defaults.maxAge
        if let entry = view["max_age"], let value = parseMaxAge(entry) { maxAge = value.value }

        let onMissing = resolveMissingPolicy(
            view,
            defaults: defaults,
            type: type,
            payload: payload,
            encoding: (byteOrder, scale, offset),
            context: context
        )

        var commandPayload: PayloadFormat?
        if let entry = view["command_payload"], view.has("command_topic") {
            commandPayload = resolveCommandPayload(
                entry,
                point: pointPayload,
                defaults: defaults.payload,
                type: type,
                context: context,
                view: view
            )
        }
        let (command, ackModeSource) = parseCommand(
            view,
            area: area,
            defaults: defaults,
            qos: qos,
            stateTopic: stateTopic,
            payload: payload,
            commandPayload: commandPayload,
            type: type,
            name: name,
            context: context
        )

        let quality = view["quality"].flatMap { parseStatusRegister($0, .quality, context: context) }
        let lastCommand =
            command == nil
            ? nil : view["last_command"].flatMap { parseStatusRegister($0, .lastCommand, context: context) }

        let descriptionText = reader.string(view["description"])
        let device = view.has("device") ? resolveDevice(view["device"], context: context) : unitDevice
        if !name.isEmpty { pointNames.append((name, nameEntry?.mark, node.mark?.line ?? 0)) }
        // A point with errors still takes part in the overlap check if its place is known.
        guard let area, let address, let type, type.fits(area), address + type.registerCount <= 65536 else {
            return nil
        }
        let point = PointConfiguration(
            name: name,
            descriptionText: descriptionText,
            unitID: unitID,
            area: area,
            address: UInt16(address),
            type: type,
            byteOrder: type.isBoolean ? .abcd : byteOrder,
            scale: scale,
            offset: offset,
            stateTopic: stateTopic,
            payload: payload ?? .plain,
            qos: qos,
            maxAge: maxAge,
            onMissing: onMissing,
            command: command,
            location: location(of: node),
            device: device,
            quality: quality,
            lastCommand: lastCommand
        )
        return LoadedPoint(
            point: point,
            nameMark: nameEntry?.mark,
            addressMark: addressEntry?.mark,
            ackModeSource: ackModeSource,
            qualityMark: view["quality"]?.mark,
            lastCommandMark: view["last_command"]?.mark,
            isValid: diagnostics.errorCount == errorsBefore
        )
    }

    /// The two kinds of status register, and the areas each may live in.
    enum StatusRegisterKind {
        case quality
        case lastCommand

        var key: String { self == .quality ? "quality" : "last_command" }
        var title: String { self == .quality ? "quality register" : "last-command register" }
        /// Never coils: a master may write those. A last-command status needs 16 bits.
        var areas: [ModbusArea] {
            self == .quality ? [.holdingRegister, .inputRegister, .discreteInput] : [.holdingRegister, .inputRegister]
        }
    }

    /// `quality: { area: input_register, address: 100 }` (or `last_command:`).
    func parseStatusRegister(_ entry: Entry, _ kind: StatusRegisterKind, context: String) -> StatusRegister? {
        guard
            let view = reader.mapping(
                entry.value,
                context: "\(context) \(kind.key)",
                allowed: Self.statusRegisterKeys,
                at: entry.mark
            )
        else { return nil }
        let allowed = Self.areaChoices.filter { kind.areas.contains($0.1) }
        let allowedNames = allowed.map(\.0).joined(separator: ", ")
        let areaEntry = reader.required(view, "area", fix: "add 'area:' (\(allowedNames))")
        var area: ModbusArea?
        if let areaEntry, let chosen = reader.choice(areaEntry, Self.areaChoices) {
            if kind.areas.contains(chosen) {
                area = chosen
            } else {
                diagnostics.error(
                    "a \(kind.title) cannot be in area \(chosen.configurationName)",
                    at: areaEntry.mark,
                    fix: kind == .quality
                        ? "it is read-only, and a master may write coils: use \(allowedNames)"
                        : "it holds 16 bits of status: use \(allowedNames)"
                )
            }
        }
        let addressEntry = reader.required(view, "address", fix: "add 'address: <0-based address>'")
        let address = reader.integer(addressEntry, in: 0...65535, fix: "Modbus addresses are 0...65535")
        guard let area, let address else { return nil }
        let mark = entry.keyNode.mark
        return StatusRegister(
            area: area,
            address: UInt16(address),
            location: ConfigurationLocation(
                file: diagnostics.file,
                line: mark?.line ?? 0,
                column: mark?.column ?? 0
            )
        )
    }

    /// `byte_order`, `scale` and `offset`, each checked against the type.
    func parseEncoding(
        _ view: MappingView,
        type: PointType?,
        defaults: PointDefaults
    ) -> (byteOrder: ByteOrder, scale: Double, offset: Double) {
        var byteOrder = defaults.byteOrder
        if let entry = view["byte_order"], let order = reader.choice(entry, Self.byteOrderChoices) {
            byteOrder = order
            if let type, type.isBoolean {
                diagnostics.error(
                    "'byte_order' has no effect on type \(type.name)",
                    at: entry.mark,
                    fix: "remove byte_order"
                )
            }
        }
        var scale = 1.0
        var offset = 0.0
        if let entry = view["scale"], let value = reader.number(entry) {
            if let type, !type.isNumeric {
                diagnostics.error(
                    "'scale' only applies to numeric types (this point is \(type.name))",
                    at: entry.mark,
                    fix: "remove scale"
                )
            } else if !value.isFinite || value == 0 {
                diagnostics.error(
                    "'scale' must be a finite number other than 0, found \(entry.value.scalarText ?? "")",
                    at: entry.mark,
                    fix: "registers hold value × scale + offset: scale 10 stores 21.5 as 215"
                )
            } else if value.magnitude < 1e-9 || value.magnitude > 1e9 {
                diagnostics.error(
                    "'scale' \(entry.value.scalarText ?? "") is outside ±1e-9...±1e9 and would make the value useless",
                    at: entry.mark,
                    fix: "registers hold value × scale + offset; check the unit"
                )
            } else {
                scale = value
            }
        }
        if let entry = view["offset"], let value = reader.number(entry) {
            if let type, !type.isNumeric {
                diagnostics.error(
                    "'offset' only applies to numeric types (this point is \(type.name))",
                    at: entry.mark,
                    fix: "remove offset"
                )
            } else if !value.isFinite {
                diagnostics.error("'offset' must be a finite number", at: entry.mark)
            } else if let range = type?.integerRange,
                !(Double(range.lowerBound)...Double(range.upperBound)).contains(value)
            {
                diagnostics.error(
                    "'offset' \(entry.value.scalarText ?? "") is outside the range of \(type!.name) (\(range.lowerBound)...\(range.upperBound)), so not even the value 0 can be stored",
                    at: entry.mark,
                    fix: "offset is in register units: register = value × scale + offset"
                )
            } else {
                offset = value
            }
        }
        return (byteOrder, scale, offset)
    }

    /// `on_missing` (or the defaults' one): an exception code, or a substitute value the point's
    /// type and encoding can hold.
    func resolveMissingPolicy(
        _ view: MappingView,
        defaults: PointDefaults,
        type: PointType?,
        payload: PayloadFormat?,
        encoding: (byteOrder: ByteOrder, scale: Double, offset: Double),
        context: String
    ) -> MissingValuePolicy {
        let (byteOrder, scale, offset) = encoding
        var onMissing = MissingValuePolicy.exception(.gatewayTargetDeviceFailedToRespond)
        var rawMissing = defaults.onMissing
        var missingFromDefaults = true
        if let entry = view["on_missing"] {
            // A policy that cannot be read was reported; fall back to the built-in one quietly.
            rawMissing = parseMissingPolicy(entry) ?? .exception(.gatewayTargetDeviceFailedToRespond)
            missingFromDefaults = false
        }
        switch rawMissing {
        case .exception(let code): onMissing = .exception(code)
        case .value(let entry):
            if let type, let payload,
                let value = substituteValue(
                    entry,
                    type: type,
                    payload: payload,
                    context: context,
                    fromDefaults: missingFromDefaults
                )
            {
                do {
                    _ = try RegisterEncoder(type: type, byteOrder: byteOrder, scale: scale, offset: offset).encode(
                        value
                    )
                    onMissing = .substitute(value)
                } catch {
                    let whose =
                        missingFromDefaults
                        ? "defaults.on_missing value for \(context) (\(type.name))" : "on_missing value"
                    diagnostics.error(
                        "\(whose): \(error.message)",
                        at: entry.mark,
                        fix: "choose a value the point's type can hold"
                    )
                }
            }
        }
        return onMissing
    }

    /// `command_topic` and the keys that go with it; those keys without a command topic are
    /// errors, and so is a point with no topic at all.
    func parseCommand(
        _ view: MappingView,
        area: ModbusArea?,
        defaults: PointDefaults,
        qos: QoSLevel,
        stateTopic: String?,
        payload: PayloadFormat?,
        commandPayload: PayloadFormat? = nil,
        type: PointType?,
        name: String,
        context: String
    ) -> (CommandSettings?, AckModeSource?) {
        var command: CommandSettings?
        var ackModeSource: AckModeSource?
        if let commandEntry = view["command_topic"] {
            if let area, !area.isWritable {
                diagnostics.error(
                    "'command_topic' on a read-only area: \(area.configurationName) cannot be written over Modbus",
                    at: commandEntry.mark,
                    fix: "use holding_register (or coil) for a writable point, or remove command_topic"
                )
            }
            if let topic = reader.string(commandEntry), checkTopicName(topic, commandEntry), let payload, let type {
                (command, ackModeSource) = resolveCommand(
                    topic: topic,
                    topicEntry: commandEntry,
                    view: view,
                    defaults: defaults,
                    qos: qos,
                    stateTopic: stateTopic,
                    payload: payload,
                    commandPayload: commandPayload,
                    type: type,
                    name: name,
                    context: context
                )
            }
        } else {
            for key in ["command_template", "command_retain", "ack", "last_command", "command_payload"] {
                if let entry = view[key] {
                    diagnostics.error(
                        "'\(key)' needs a 'command_topic'",
                        at: entry.keyNode.mark,
                        fix: "add command_topic, or remove \(key)"
                    )
                }
            }
            if !view.has("state_topic") && view.suggestedKeys.isDisjoint(with: ["state_topic", "command_topic"]) {
                diagnostics.error(
                    "\(context) has neither 'state_topic' nor 'command_topic'",
                    at: view.mark,
                    fix: "add the topic its value arrives on (state_topic)"
                )
            }
        }
        return (command, ackModeSource)
    }

    /// The point's `type:`, with the parameter its kind needs (`length`, `bit`); a bit area
    /// defaults to `bool`. A parameter key on a type that does not take it is an error.
    func parseType(_ view: MappingView, area: ModbusArea?, context: String) -> (PointType?, Entry?) {
        var type: PointType?
        let typeEntry = view["type"]
        if let typeEntry, let kind = reader.choice(typeEntry, Self.typeChoices) {
            if let fixed = kind.unparameterized {
                type = fixed
            } else if let parameter = Self.typeParameters.first(where: { $0.kind == kind }) {
                let entry = reader.required(view, parameter.key, fix: parameter.missingFix)
                if let value = reader.integer(entry, in: parameter.range, fix: parameter.rangeFix) {
                    type = parameter.make(value)
                }
            }
        } else if typeEntry == nil, let area {
            if area.isBitArea {
                type = .bool
            } else {
                diagnostics.error(
                    "\(context) is missing 'type'",
                    at: view.mark,
                    fix: "add 'type:' (\(Self.registerTypeList))"
                )
            }
        }
        if let type {
            for parameter in Self.typeParameters where type.kind != parameter.kind {
                if let entry = view[parameter.key] {
                    diagnostics.error(
                        "'\(parameter.key)' only applies to type \(parameter.kind.rawValue) (this point is \(type.name))",
                        at: entry.mark,
                        fix: parameter.misplacedFix
                    )
                }
            }
        }
        return (type, typeEntry)
    }

    static func suggestedName(_ name: String) -> String {
        String(name.map { $0.isLetter || $0.isNumber || "_-.:/".contains($0) ? $0 : "_" })
    }

    func resolvePayload(
        point: PayloadPartial,
        defaults: PayloadPartial,
        type: PointType?,
        context: String,
        view: MappingView
    ) -> PayloadFormat? {
        let format = point.format?.name ?? defaults.format?.name ?? "plain"
        if let absent = point.ignoresAbsent, format != "json" {
            diagnostics.error(
                "'if_absent' only applies to format json (this point's format is \(format))",
                at: absent.entry.mark,
                fix: "remove if_absent"
            )
            return nil
        }
        if let path = point.path, format != "json" {
            diagnostics.error(
                "'path' only applies to format json (this point's format is \(format))",
                at: path.entry.mark,
                fix: "remove path or set format: json"
            )
            return nil
        }
        let trueWords = point.trueWords ?? defaults.trueWords ?? PayloadFormat.defaultTrueWords
        let falseWords = point.falseWords ?? defaults.falseWords ?? PayloadFormat.defaultFalseWords
        if let word = Set(trueWords.map { $0.lowercased() }).intersection(falseWords.map { $0.lowercased() }).sorted()
            .first
        {
            let entry = point.trueWords != nil || point.falseWords != nil ? point.entry : defaults.entry
            diagnostics.error(
                "'\(word)' is both a true word and a false word",
                at: entry?.mark,
                fix: "a word can mean only one of true and false: remove it from one list"
            )
            return nil
        }
        switch format {
        case "json":
            guard let path = point.path?.path ?? defaults.path?.path else {
                if point.pathWritten || defaults.pathWritten { return nil }
                let mark = point.format?.entry.mark ?? view["payload"]?.mark ?? defaults.format?.entry.mark
                diagnostics.error(
                    "format json needs a 'path' to the value",
                    at: mark,
                    fix: "add path: (e.g. value, data.temperature or readings[0]); '$' takes the whole document"
                )
                return nil
            }
            var format = PayloadFormat(encoding: .json(path: path), trueWords: trueWords, falseWords: falseWords)
            format.ignoresAbsentPath = (point.ignoresAbsent ?? defaults.ignoresAbsent)?.value ?? false
            return format
        case "boolean":
            if let type, case .string = type {
                diagnostics.error(
                    "format boolean does not apply to string points",
                    at: (point.format?.entry ?? defaults.format?.entry)?.mark,
                    fix: "use format plain or json"
                )
                return nil
            }
            return PayloadFormat(encoding: .boolean, trueWords: trueWords, falseWords: falseWords)
        default:
            return PayloadFormat(encoding: .plain, trueWords: trueWords, falseWords: falseWords)
        }
    }

    /// `command_payload:` — the format of commands, key by key over the point's payload (and the
    /// defaults'); a format other than json drops the inherited path.
    func resolveCommandPayload(
        _ entry: Entry,
        point: PayloadPartial,
        defaults: PayloadPartial,
        type: PointType?,
        context: String,
        view: MappingView
    ) -> PayloadFormat? {
        let own = parsePayload(entry, context: "\(context) command_payload")
        var merged = own
        merged.format = own.format ?? point.format
        let format = merged.format?.name ?? defaults.format?.name ?? "plain"
        if own.path == nil && !own.pathWritten && format == "json" {
            merged.path = point.path
            merged.pathWritten = point.pathWritten
        }
        merged.trueWords = own.trueWords ?? point.trueWords
        merged.falseWords = own.falseWords ?? point.falseWords
        var inherited = defaults
        if format != "json" { inherited.path = nil }
        return resolvePayload(point: merged, defaults: inherited, type: type, context: context, view: view)
    }

    /// The `on_missing: { value: ... }` scalar as a value of the point's type.
    func substituteValue(
        _ entry: Entry,
        type: PointType,
        payload: PayloadFormat,
        context: String,
        fromDefaults: Bool
    ) -> PointValue? {
        guard let text = entry.value.scalarText else { return nil }
        let whose = fromDefaults ? "defaults.on_missing value for \(context)" : "on_missing value"
        if case .string = type { return .text(text) }
        if type.isBoolean {
            if let truth = payload.truthValue(of: text) { return .bool(truth) }
            switch text.lowercased() {
            case "true", "yes", "on": return .bool(true)
            case "false", "no", "off": return .bool(false)
            default:
                diagnostics.error("\(whose) '\(text)' is not true or false", at: entry.mark)
                return nil
            }
        }
        do {
            return try NumberText.parse(text.trimmingWhitespace())
        } catch {
            diagnostics.error("\(whose) '\(text)' is not a number (the point is \(type.name))", at: entry.mark)
            return nil
        }
    }
}

extension String {
    func leftPaddedTo2() -> String { count >= 2 ? self : String(repeating: "0", count: 2 - count) + self }
}
