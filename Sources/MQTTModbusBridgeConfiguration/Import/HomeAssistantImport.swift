import ModbusCore

/// Translates Home Assistant MQTT discovery configs into a topic-map configuration (YAML), the
/// logic of `mqtt-modbus-bridge import-ha`. A pure value: the same messages give the same text.
///
/// - Entities are taken in order of component, then `unique_id` (the discovery topic when there
///   is none); addresses are allocated in that order, from 0 in each area.
/// - `sensor` → input registers (type from `device_class` and `unit_of_measurement`; text when it
///   has neither a unit nor a state class, as Home Assistant itself decides), `binary_sensor` →
///   discrete inputs, `switch` and `light` → coils (a light's brightness → a holding register),
///   `climate` → a setpoint holding register and current temperature (and humidity) input
///   registers, `number` → a holding register.
/// - A `value_template` that is a simple JSON path (`{{ value_json.a.b }}`, `{{ value_json['a'] }}`)
///   becomes `payload.path`; any other template leaves the value untranslated.
/// - Availability topics become `devices:` with `availability`; points without one get `max_age`
///   (`expire_after`, or ``Options/maxAge``), so that no point can go stale unnoticed.
/// - Whatever is not translated is listed in comments at the top of the file.
public struct HomeAssistantImport: Sendable {
    /// What the translation needs besides the messages.
    public struct Options: Sendable {
        /// The discovery prefix.
        public var prefix = "homeassistant"
        /// The Modbus unit id of every point.
        public var unit: UInt8 = 1
        /// The broker the generated configuration connects to.
        public var brokerHost = "127.0.0.1"
        public var brokerPort = 1883
        public var username: String?
        public var passwordFile: String?
        /// The `max_age` of points whose config has neither availability nor `expire_after`.
        public var maxAge: Duration = .seconds(600)
        /// Where the messages came from, for the header comment.
        public var source = "captured discovery configs"

        /// The defaults: prefix `homeassistant`, unit 1, broker 127.0.0.1:1883, `max_age` 10m.
        public init() {}
    }

    /// The generated configuration and what went into it.
    public struct Output: Sendable {
        /// The configuration file's text.
        public var yaml: String
        /// Entities found (each config, or each component of a device config).
        public var entityCount: Int
        /// Points written.
        public var pointCount: Int
        /// One line per thing that was not translated (also in the file, as comments).
        public var notTranslated: [String]
    }

    public var options: Options

    /// Creates a translator.
    public init(options: Options = Options()) {
        self.options = options
    }

    /// Translates `messages` (every message under the prefix; others are listed as not
    /// translated).
    public func translate(_ messages: [HomeAssistantDiscoveryMessage]) -> Output {
        var entities: [DiscoveredEntity] = []
        var skipped: [Skipped] = []
        for message in messages.sorted(by: { $0.topic < $1.topic }) {
            switch HomeAssistantDiscovery.read(message, prefix: options.prefix) {
            case .entities(let found): entities += found
            case .nothing: break
            case .unusable(let reason):
                skipped.append(Skipped(source: message.topic, reason: reason, config: nil))
            }
        }
        entities.sort { $0.sortKey != $1.sortKey ? $0.sortKey < $1.sortKey : $0.source < $1.source }

        var points: [PointDraft] = []
        var notes: [Skipped] = []
        var names = Set<String>()
        var devices: [DeviceDraft] = []
        for entity in entities {
            let translation: EntityTranslation
            switch Self.translate(entity) {
            case .failure(let failure):
                skipped.append(Skipped(source: entity.source, reason: failure.reason, config: entity.config))
                continue
            case .success(let value):
                translation = value
            }
            for note in translation.notes { notes.append(Skipped(source: entity.source, reason: note, config: nil)) }
            let availability = Self.availability(of: entity)
            for note in availability.notes { notes.append(Skipped(source: entity.source, reason: note, config: nil)) }
            let deviceName = availability.draft.map { draft in
                if let known = devices.first(where: { $0.availability == draft }) { return known.name }
                let name = Self.unique(Self.deviceBaseName(entity, draft), in: Set(devices.map(\.name)))
                devices.append(DeviceDraft(name: name, availability: draft))
                return name
            }
            let base = Self.sanitized(
                entity.uniqueID ?? ([entity.nodeID, entity.objectID].compactMap { $0 }.joined(separator: "_"))
            )
            let expireAfter = entity.number("expire_after").flatMap { $0 > 0 ? Duration.seconds($0) : nil }
            for var point in translation.points {
                point.name = Self.unique(base + point.suffix, in: names)
                names.insert(point.name)
                point.description = Self.description(of: entity, suffix: point.descriptionSuffix)
                point.hasNotes = !translation.notes.isEmpty || !availability.notes.isEmpty
                if point.stateTopic != nil {
                    point.device = deviceName
                    if let expireAfter {
                        point.maxAge = expireAfter
                        point.maxAgeReason = "from expire_after"
                    } else if deviceName == nil {
                        point.maxAge = options.maxAge
                        point.maxAgeReason = "import-ha --max-age (no availability in the discovery config)"
                    }
                }
                points.append(point)
            }
        }
        // Addresses in the same order, from 0 in every area.
        var next: [ModbusArea: Int] = [:]
        for index in points.indices {
            points[index].address = next[points[index].area, default: 0]
            next[points[index].area, default: 0] += points[index].registerCount
        }

        let allNotes = skipped.sorted { $0.source < $1.source } + notes
        var yaml = header(entityCount: entities.count, pointCount: points.count, notes: allNotes)
        yaml += body(points: points, devices: devices)
        return Output(
            yaml: yaml,
            entityCount: entities.count,
            pointCount: points.count,
            notTranslated: allNotes.map { "\($0.source): \($0.reason)" }
        )
    }

    // MARK: - Entities

    struct Skipped {
        var source: String
        var reason: String
        var config: [String: JSONValue]?
    }

    struct Failure: Error {
        var reason: String
    }

    struct EntityTranslation {
        var points: [PointDraft] = []
        var notes: [String] = []
    }

    static let translatedComponents = ["binary_sensor", "climate", "light", "number", "sensor", "switch"]

    static func translate(_ entity: DiscoveredEntity) -> Result<EntityTranslation, Failure> {
        var consumed: Set<String> = []
        let result: Result<EntityTranslation, Failure>
        switch entity.component {
        case "sensor": result = sensor(entity, &consumed)
        case "binary_sensor": result = binarySensor(entity, &consumed)
        case "switch": result = onOff(entity, kind: "switch", stateTemplateKey: "value_template", &consumed)
        case "light": result = light(entity, &consumed)
        case "climate": result = climate(entity, &consumed)
        case "number": result = number(entity, &consumed)
        default:
            return .failure(
                Failure(
                    reason: "component '\(entity.component)' is not translated (only "
                        + translatedComponents.joined(separator: ", ") + " are)"
                )
            )
        }
        guard case .success(var translation) = result else { return result }
        if translation.points.isEmpty {
            return .failure(Failure(reason: translation.notes.first ?? "nothing to translate"))
        }
        let ignored = entity.config.keys.filter { key in
            key.hasSuffix("topic") && key != "availability_topic" && !consumed.contains(key)
        }
        if !ignored.isEmpty {
            translation.notes.append("not translated: " + ignored.sorted().joined(separator: ", "))
        }
        return .success(translation)
    }

    static func template(_ entity: DiscoveredEntity, _ key: String) -> Result<HomeAssistantTemplate, Failure> {
        let text = entity.text(key)
        guard let template = HomeAssistantTemplate.parse(text) else {
            return .failure(Failure(reason: "\(key) '\(text ?? "")' is not a simple JSON path"))
        }
        return .success(template)
    }

    static func sensor(_ entity: DiscoveredEntity, _ consumed: inout Set<String>) -> Result<EntityTranslation, Failure>
    {
        guard let stateTopic = entity.text("state_topic") else {
            return .failure(Failure(reason: "a sensor without state_topic"))
        }
        consumed.insert("state_topic")
        let template: HomeAssistantTemplate
        switch Self.template(entity, "value_template") {
        case .failure(let failure): return .failure(failure)
        case .success(let value): template = value
        }
        let guess = SensorGuess(
            deviceClass: entity.text("device_class"),
            unit: entity.text("unit_of_measurement"),
            stateClass: entity.text("state_class")
        )
        var point = PointDraft(area: .inputRegister, type: guess.type, registerCount: guess.registerCount)
        point.length = guess.length
        point.scale = guess.scale
        point.stateTopic = stateTopic
        point.payload = PayloadDraft(template: template, words: nil)
        point.origin = "\(entity.component) from \(entity.source): \(guess.summary)"
        return .success(EntityTranslation(points: [point]))
    }

    static func binarySensor(
        _ entity: DiscoveredEntity,
        _ consumed: inout Set<String>
    ) -> Result<EntityTranslation, Failure> {
        guard let stateTopic = entity.text("state_topic") else {
            return .failure(Failure(reason: "a binary_sensor without state_topic"))
        }
        consumed.insert("state_topic")
        let template: HomeAssistantTemplate
        switch Self.template(entity, "value_template") {
        case .failure(let failure): return .failure(failure)
        case .success(let value): template = value
        }
        let on = entity.text("payload_on") ?? "ON"
        let off = entity.text("payload_off") ?? "OFF"
        guard on.lowercased() != off.lowercased() else {
            return .failure(Failure(reason: "payload_on and payload_off are the same word '\(on)'"))
        }
        var point = PointDraft(area: .discreteInput, type: nil, registerCount: 1)
        point.stateTopic = stateTopic
        point.payload = PayloadDraft(template: template, words: Words(on: [on], off: [off]))
        point.origin = "\(entity.component) from \(entity.source): on \(on), off \(off)"
        return .success(EntityTranslation(points: [point]))
    }

    /// A switch, or the on/off part of a light: a coil.
    static func onOff(
        _ entity: DiscoveredEntity,
        kind: String,
        stateTemplateKey: String,
        _ consumed: inout Set<String>
    ) -> Result<EntityTranslation, Failure> {
        let stateTopic = entity.text("state_topic")
        var commandTopic = entity.text("command_topic")
        guard stateTopic != nil || commandTopic != nil else {
            return .failure(Failure(reason: "a \(kind) without state_topic and command_topic"))
        }
        consumed.formUnion(["state_topic", "command_topic"])
        var translation = EntityTranslation()
        let on = entity.text("payload_on") ?? "ON"
        let off = entity.text("payload_off") ?? "OFF"
        let stateOn = entity.text("state_on") ?? on
        let stateOff = entity.text("state_off") ?? off
        // The first word of each list is what a command publishes; the others are also read.
        let words = Words(on: on == stateOn ? [on] : [on, stateOn], off: off == stateOff ? [off] : [off, stateOff])
        guard Set(words.on.map { $0.lowercased() }).isDisjoint(with: words.off.map { $0.lowercased() }) else {
            return .failure(Failure(reason: "the on and off payloads overlap (\(words.on) and \(words.off))"))
        }
        var template = HomeAssistantTemplate.payload
        if stateTopic != nil {
            switch Self.template(entity, stateTemplateKey) {
            case .failure(let failure): return .failure(failure)
            case .success(let value): template = value
            }
        }
        if case .jsonPath = template, commandTopic != nil {
            // The bridge publishes commands in the state's payload format: JSON here, while the
            // device wants the plain words.
            translation.notes.append(
                "commands on \(commandTopic!) not translated: the state is read from JSON, and the bridge "
                    + "would publish JSON true/false instead of '\(on)'/'\(off)'; the coil is read-only"
            )
            commandTopic = nil
        }
        var point = PointDraft(area: .coil, type: nil, registerCount: 1)
        point.stateTopic = stateTopic
        point.commandTopic = commandTopic
        point.payload = PayloadDraft(template: template, words: words)
        if let commandTopic {
            point.ack = ack(stateTopic: stateTopic, commandTopic: commandTopic)
            if point.ack == .broker {
                translation.notes.append(
                    "\(kind) reports no state apart from its command topic: writes are confirmed by the broker only"
                )
            }
        }
        point.origin = "\(kind) from \(entity.source): on \(on), off \(off)"
        translation.points.append(point)
        return .success(translation)
    }

    static func ack(stateTopic: String?, commandTopic: String) -> AckDraft {
        guard let stateTopic, !MQTTTopicRules.filter(stateTopic, matches: commandTopic) else { return .broker }
        return .stateEcho
    }

    static func light(_ entity: DiscoveredEntity, _ consumed: inout Set<String>) -> Result<EntityTranslation, Failure> {
        let schema = entity.text("schema") ?? "default"
        guard schema == "default" || schema == "basic" else {
            return .failure(Failure(reason: "a light with schema '\(schema)' (JSON or template commands)"))
        }
        let result = onOff(entity, kind: "light", stateTemplateKey: "state_value_template", &consumed)
        guard case .success(var translation) = result else { return result }
        if let commandTopic = entity.text("brightness_command_topic") {
            consumed.formUnion(["brightness_command_topic", "brightness_state_topic"])
            let scale = entity.number("brightness_scale") ?? 255
            switch numericSetting(
                entity,
                stateTopicKey: "brightness_state_topic",
                stateTemplateKey: "brightness_value_template",
                commandTopic: commandTopic,
                commandTemplateKey: "brightness_command_template",
                type: "uint16",
                scale: 1,
                suffix: "_brightness",
                summary: "uint16, 0…\(NumberFormatting.shortest(scale)) (brightness_scale)"
            ) {
            case .success(let part):
                translation.points += part.points
                translation.notes += part.notes
            case .failure(let failure):
                translation.notes.append("brightness not translated: \(failure.reason)")
            }
        }
        return .success(translation)
    }

    static func climate(_ entity: DiscoveredEntity, _ consumed: inout Set<String>) -> Result<EntityTranslation, Failure>
    {
        var translation = EntityTranslation()
        if let commandTopic = entity.text("temperature_command_topic") {
            consumed.formUnion(["temperature_command_topic", "temperature_state_topic"])
            switch numericSetting(
                entity,
                stateTopicKey: "temperature_state_topic",
                stateTemplateKey: "temperature_state_template",
                commandTopic: commandTopic,
                commandTemplateKey: "temperature_command_template",
                type: "int16",
                scale: 10,
                suffix: "_setpoint",
                summary: "int16, scale 10 (setpoint temperature)"
            ) {
            case .success(let part):
                translation.points += part.points
                translation.notes += part.notes
            case .failure(let failure):
                translation.notes.append("setpoint not translated: \(failure.reason)")
            }
        }
        let readings: [(topic: String, template: String, suffix: String, type: String, what: String)] = [
            (
                "current_temperature_topic", "current_temperature_template", "_current_temperature", "int16",
                "temperature"
            ),
            ("current_humidity_topic", "current_humidity_template", "_current_humidity", "uint16", "humidity"),
        ]
        for reading in readings {
            guard let stateTopic = entity.text(reading.topic) else { continue }
            consumed.insert(reading.topic)
            switch Self.template(entity, reading.template) {
            case .failure(let failure):
                translation.notes.append("current \(reading.what) not translated: \(failure.reason)")
            case .success(let template):
                var point = PointDraft(area: .inputRegister, type: reading.type, registerCount: 1)
                point.scale = 10
                point.stateTopic = stateTopic
                point.payload = PayloadDraft(template: template, words: nil)
                point.suffix = reading.suffix
                point.descriptionSuffix = "current \(reading.what)"
                point.origin = "climate from \(entity.source): \(reading.type), scale 10 (current \(reading.what))"
                translation.points.append(point)
            }
        }
        if translation.points.isEmpty, translation.notes.isEmpty {
            translation.notes.append("a climate entity without temperature_command_topic or current_temperature_topic")
        }
        return .success(translation)
    }

    static func number(_ entity: DiscoveredEntity, _ consumed: inout Set<String>) -> Result<EntityTranslation, Failure>
    {
        guard let commandTopic = entity.text("command_topic") else {
            return .failure(Failure(reason: "a number without command_topic"))
        }
        consumed.formUnion(["command_topic", "state_topic"])
        let minimum = entity.number("min") ?? 1
        let maximum = entity.number("max") ?? 100
        let step = entity.number("step") ?? 1
        let guess = NumberGuess(minimum: minimum, maximum: maximum, step: step)
        return numericSetting(
            entity,
            stateTopicKey: "state_topic",
            stateTemplateKey: "value_template",
            commandTopic: commandTopic,
            commandTemplateKey: "command_template",
            type: guess.type,
            scale: guess.scale,
            suffix: "",
            summary: guess.summary
        )
    }

    /// A writable number in a holding register: a number entity, a setpoint, a brightness.
    static func numericSetting(
        _ entity: DiscoveredEntity,
        stateTopicKey: String,
        stateTemplateKey: String,
        commandTopic: String,
        commandTemplateKey: String,
        type: String,
        scale: Double,
        suffix: String,
        summary: String
    ) -> Result<EntityTranslation, Failure> {
        var translation = EntityTranslation()
        let stateTopic = entity.text(stateTopicKey)
        var template = HomeAssistantTemplate.payload
        if stateTopic != nil {
            switch Self.template(entity, stateTemplateKey) {
            case .failure(let failure): return .failure(failure)
            case .success(let value): template = value
            }
        }
        var point = PointDraft(area: .holdingRegister, type: type, registerCount: type.hasSuffix("32") ? 2 : 1)
        point.scale = scale
        point.stateTopic = stateTopic
        point.payload = PayloadDraft(template: template, words: nil)
        point.suffix = suffix
        point.descriptionSuffix = suffix.isEmpty ? nil : String(suffix.dropFirst()).replacingUnderscores()
        point.origin = "\(entity.component) from \(entity.source): \(summary)"
        if let commandTemplate = HomeAssistantTemplate.command(entity.text(commandTemplateKey)) {
            point.commandTopic = commandTopic
            // A JSON state would make the bridge's default command JSON too; the device wants the
            // bare number (or its own template).
            if case .jsonPath = template {
                point.commandTemplate = commandTemplate.isEmpty ? "{{value}}" : commandTemplate
            } else if !commandTemplate.isEmpty {
                point.commandTemplate = commandTemplate
            }
            point.ack = ack(stateTopic: stateTopic, commandTopic: commandTopic)
            if point.ack == .broker {
                translation.notes.append(
                    "no state topic for \(commandTopic): writes are confirmed by the broker only"
                )
            }
        } else {
            let text = entity.text(commandTemplateKey) ?? ""
            guard stateTopic != nil else {
                return .failure(Failure(reason: "\(commandTemplateKey) '\(text)' uses more than {{ value }}"))
            }
            translation.notes.append(
                "commands on \(commandTopic) not translated: \(commandTemplateKey) '\(text)' uses more than "
                    + "{{ value }}; the register is read-only"
            )
        }
        translation.points.append(point)
        return .success(translation)
    }

    // MARK: - Availability

    struct AvailabilityResult {
        var draft: AvailabilityDraft?
        var notes: [String] = []
    }

    static func availability(of entity: DiscoveredEntity) -> AvailabilityResult {
        var candidates: [(topic: String, online: String, offline: String, template: String?)] = []
        if let topic = entity.text("availability_topic") {
            candidates.append(
                (
                    topic, entity.text("payload_available") ?? "online",
                    entity.text("payload_not_available") ?? "offline", entity.text("availability_template")
                )
            )
        }
        if case .array(let entries)? = entity.config["availability"] {
            for entry in entries {
                guard let topic = entry.member("topic")?.scalarText else { continue }
                candidates.append(
                    (
                        topic, entry.member("payload_available")?.scalarText ?? "online",
                        entry.member("payload_not_available")?.scalarText ?? "offline",
                        entry.member("value_template")?.scalarText
                    )
                )
            }
        }
        var result = AvailabilityResult()
        for candidate in candidates {
            guard let template = HomeAssistantTemplate.parse(candidate.template) else {
                result.notes.append(
                    "availability on \(candidate.topic) not translated: its template '\(candidate.template ?? "")' "
                        + "is not a simple JSON path"
                )
                continue
            }
            guard candidate.online.lowercased() != candidate.offline.lowercased() else {
                result.notes.append(
                    "availability on \(candidate.topic) not translated: online and offline are the same"
                )
                continue
            }
            if result.draft == nil {
                var path: JSONPath?
                if case .jsonPath(let jsonPath) = template { path = jsonPath }
                result.draft = AvailabilityDraft(
                    topic: candidate.topic,
                    online: candidate.online,
                    offline: candidate.offline,
                    path: path
                )
            } else {
                let mode = entity.text("availability_mode") ?? "latest"
                result.notes.append(
                    "availability on \(candidate.topic) not watched: the bridge follows one availability topic per "
                        + "device (\(result.draft!.topic)); availability_mode \(mode)"
                )
            }
        }
        return result
    }

    // MARK: - Names

    /// Letters, digits and `_ - . : /`, everything else as `_`.
    static func sanitized(_ text: String) -> String {
        let scalars = text.unicodeScalars.map { scalar -> Character in
            scalar.properties.isAlphabetic || ("0"..."9").contains(scalar) || "_-.:/".unicodeScalars.contains(scalar)
                ? Character(scalar) : "_"
        }
        let name = String(scalars.prefix(180))
        return name.isEmpty ? "point" : name
    }

    static func unique(_ base: String, in used: Set<String>) -> String {
        guard used.contains(base) else { return base }
        var counter = 2
        while used.contains("\(base)_\(counter)") { counter += 1 }
        return "\(base)_\(counter)"
    }

    static func deviceBaseName(_ entity: DiscoveredEntity, _ availability: AvailabilityDraft) -> String {
        let device = entity.config["device"]
        if let name = device?.member("name")?.scalarText, !name.isEmpty { return sanitized(name) }
        if let identifiers = device?.member("identifiers") {
            if let first = identifiers.scalarText { return sanitized(first) }
            if case .array(let list) = identifiers, let first = list.first?.scalarText { return sanitized(first) }
        }
        return String(sanitized(availability.topic).map { $0 == "/" ? "_" : $0 })
    }

    static func description(of entity: DiscoveredEntity, suffix: String?) -> String? {
        let device = entity.config["device"]?.member("name")?.scalarText
        let name = entity.text("name")
        var parts = [device, name].compactMap { $0 }.filter { !$0.isEmpty }
        if parts.count == 2, parts[1].hasPrefix(parts[0]) { parts.removeFirst() }
        if let suffix { parts.append(suffix) }
        return parts.isEmpty ? nil : parts.joined(separator: " ")
    }

    // MARK: - YAML

    func header(entityCount: Int, pointCount: Int, notes: [Skipped]) -> String {
        var text = """
            # Generated by `mqtt-modbus-bridge import-ha` from Home Assistant MQTT discovery (prefix '\(options.prefix)').
            # Source: \(Self.comment(options.source))
            # \(entityCount) entit\(entityCount == 1 ? "y" : "ies") → \(pointCount) point(s) on unit \(options.unit); \
            \(notes.count) item(s) not translated, listed below.
            # Addresses are allocated in order of component, then unique_id, from 0 in each area. Data
            # types are guessed from device_class and unit_of_measurement (see the comment above each
            # point): check them before a SCADA master relies on them.

            """
        if !notes.isEmpty {
            text += "#\n# Not translated:\n"
            for note in notes {
                text += "# - \(Self.comment(note.source)): \(Self.comment(note.reason))\n"
                if let config = note.config {
                    let members = config.sorted { $0.key < $1.key }.map { JSONMember(key: $0.key, value: $0.value) }
                    text += "#     \(Self.comment(JSONValue.object(members).serialized()))\n"
                }
            }
        }
        return text
    }

    func body(points: [PointDraft], devices: [DeviceDraft]) -> String {
        var text = "\nversion: 1\n\nbroker:\n"
        text += "  host: \(Self.scalar(options.brokerHost))\n  port: \(options.brokerPort)\n"
        if let username = options.username { text += "  username: \(Self.scalar(username))\n" }
        if let passwordFile = options.passwordFile { text += "  password_file: \(Self.scalar(passwordFile))\n" }
        text += "\nmodbus:\n  port: 502\n"
        if !devices.isEmpty {
            text += "\ndevices:\n"
            for device in devices {
                let availability = device.availability
                var fields = [
                    "topic: \(Self.scalar(availability.topic))",
                    "online: [\(Self.scalar(availability.online))]",
                    "offline: [\(Self.scalar(availability.offline))]",
                ]
                if let path = availability.path { fields.append("path: \(Self.scalar(path.description))") }
                text += "  - name: \(Self.scalar(device.name))\n"
                text += "    availability: { \(fields.joined(separator: ", ")) }\n"
            }
        }
        text += "\nunits:\n  - id: \(options.unit)\n    name: home_assistant\n    points:\n"
        if points.isEmpty { text += "      []\n" }
        for point in points {
            text += "      # \(Self.comment(point.origin))\(point.hasNotes ? " (see 'Not translated')" : "")\n"
            if let reason = point.maxAgeReason { text += "      # max_age: \(Self.comment(reason))\n" }
            text += "      - name: \(Self.scalar(point.name))\n"
            if let description = point.description { text += "        description: \(Self.scalar(description))\n" }
            text += "        area: \(point.area.configurationName)\n"
            text += "        address: \(point.address)\n"
            if let type = point.type { text += "        type: \(type)\n" }
            if let length = point.length { text += "        length: \(length)\n" }
            if point.scale != 1 { text += "        scale: \(NumberFormatting.shortest(point.scale))\n" }
            if let stateTopic = point.stateTopic { text += "        state_topic: \(Self.scalar(stateTopic))\n" }
            if let payload = point.payload.yaml { text += "        payload: \(payload)\n" }
            if let maxAge = point.maxAge { text += "        max_age: \(DurationSyntax.format(maxAge))\n" }
            if let device = point.device { text += "        device: \(Self.scalar(device))\n" }
            if let commandTopic = point.commandTopic {
                text += "        command_topic: \(Self.scalar(commandTopic))\n"
                if let template = point.commandTemplate {
                    text += "        command_template: \(Self.scalar(template))\n"
                }
                switch point.ack {
                case .stateEcho?: text += "        ack: { mode: state_echo }\n"
                case .broker?, nil: text += "        ack: { mode: broker }\n"
                }
            }
        }
        return text
    }

    /// Text for a comment: one line.
    static func comment(_ text: String) -> String {
        String(
            text.unicodeScalars.map { $0.properties.generalCategory == .control ? " " : Character($0) }
        )
    }

    /// A YAML scalar: plain when that cannot be misread, double-quoted otherwise.
    static func scalar(_ text: String) -> String {
        let reserved: Set<String> = ["true", "false", "yes", "no", "on", "off", "null", "y", "n"]
        func isLetter(_ scalar: Unicode.Scalar) -> Bool {
            ("a"..."z").contains(scalar) || ("A"..."Z").contains(scalar)
        }
        if let first = text.unicodeScalars.first, isLetter(first) || first == "_" || first == "/",
            text.unicodeScalars.allSatisfy({
                isLetter($0) || ("0"..."9").contains($0) || "_./+-".unicodeScalars.contains($0)
            }),
            !reserved.contains(text.lowercased())
        {
            return text
        }
        var quoted = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": quoted += "\\\""
            case "\\": quoted += "\\\\"
            case "\n": quoted += "\\n"
            case "\t": quoted += "\\t"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7F {
                    let hex = String(scalar.value, radix: 16, uppercase: true)
                    quoted += "\\x" + String(repeating: "0", count: 2 - hex.count) + hex
                } else {
                    quoted.unicodeScalars.append(scalar)
                }
            }
        }
        return quoted + "\""
    }
}

// MARK: - Drafts

struct Words: Hashable {
    var on: [String]
    var off: [String]
}

enum AckDraft: Hashable {
    case stateEcho
    case broker
}

struct AvailabilityDraft: Hashable {
    var topic: String
    var online: String
    var offline: String
    var path: JSONPath?
}

struct DeviceDraft {
    var name: String
    var availability: AvailabilityDraft
}

/// A `payload:` mapping.
struct PayloadDraft {
    var template: HomeAssistantTemplate = .payload
    var words: Words?

    var yaml: String? {
        var fields: [String] = []
        switch template {
        case .payload:
            guard words != nil else { return nil }
            fields.append("format: boolean")
        case .jsonPath(let path):
            fields += ["format: json", "path: \(HomeAssistantImport.scalar(path.description))"]
        }
        if let words {
            fields.append("true_words: [\(words.on.map(HomeAssistantImport.scalar).joined(separator: ", "))]")
            fields.append("false_words: [\(words.off.map(HomeAssistantImport.scalar).joined(separator: ", "))]")
        }
        return "{ \(fields.joined(separator: ", ")) }"
    }
}

/// One point before names and addresses are given.
struct PointDraft {
    var name = ""
    var suffix = ""
    var descriptionSuffix: String?
    var description: String?
    var origin = ""
    var hasNotes = false
    var area: ModbusArea
    var type: String?
    var length: Int?
    var scale: Double = 1
    var stateTopic: String?
    var payload = PayloadDraft()
    var commandTopic: String?
    var commandTemplate: String?
    var ack: AckDraft?
    var maxAge: Duration?
    var maxAgeReason: String?
    var device: String?
    var registerCount: Int
    var address = 0

    init(area: ModbusArea, type: String?, registerCount: Int) {
        self.area = area
        self.type = type
        self.registerCount = registerCount
    }
}

// MARK: - Type guesses

/// The register type of a sensor, from its device class, unit and state class.
struct SensorGuess {
    var type: String
    var scale: Double = 1
    var length: Int?
    var reason: String

    var registerCount: Int {
        if let length { return length }
        return type.hasSuffix("32") ? 2 : type.hasSuffix("64") ? 4 : 1
    }

    var summary: String {
        if type == "string" { return "string of \(length ?? 0) registers (\(reason))" }
        return scale == 1 ? "\(type) (\(reason))" : "\(type), scale \(NumberFormatting.shortest(scale)) (\(reason))"
    }

    /// device_class → type and scale. Scaled integers where the range and resolution of the
    /// quantity are known, float32 where they are not.
    static let byDeviceClass: [String: (String, Double)] = [
        "temperature": ("int16", 10), "humidity": ("uint16", 10), "moisture": ("uint16", 10),
        "battery": ("uint16", 1), "voltage": ("uint16", 10), "current": ("int32", 1000),
        "power": ("float32", 1), "apparent_power": ("float32", 1), "reactive_power": ("float32", 1),
        "energy": ("int32", 1000), "gas": ("int32", 1000), "water": ("int32", 1000), "volume": ("int32", 1000),
        "pressure": ("float32", 1), "atmospheric_pressure": ("float32", 1), "illuminance": ("uint32", 10),
        "signal_strength": ("int16", 1), "frequency": ("uint16", 100), "power_factor": ("int16", 100),
        "carbon_dioxide": ("uint16", 1), "carbon_monoxide": ("uint16", 1), "aqi": ("uint16", 1),
        "pm1": ("uint16", 10), "pm25": ("uint16", 10), "pm10": ("uint16", 10),
        "volatile_organic_compounds": ("uint16", 1), "speed": ("float32", 1), "wind_speed": ("float32", 1),
        "distance": ("float32", 1), "duration": ("float32", 1), "weight": ("float32", 1),
    ]

    /// unit_of_measurement → type and scale, for sensors without a known device class.
    static let byUnit: [String: (String, Double)] = [
        "°C": ("int16", 10), "°F": ("int16", 10), "K": ("int16", 10), "%": ("uint16", 10),
        "V": ("uint16", 10), "A": ("int32", 1000), "mA": ("int32", 1), "W": ("float32", 1),
        "kW": ("float32", 1), "Wh": ("int32", 1), "kWh": ("int32", 1000), "hPa": ("float32", 1),
        "mbar": ("float32", 1), "bar": ("float32", 1), "Pa": ("float32", 1), "lx": ("uint32", 10),
        "dBm": ("int16", 1), "dB": ("int16", 1), "Hz": ("uint16", 100), "ppm": ("uint16", 1),
        "µg/m³": ("uint16", 10), "s": ("float32", 1),
    ]

    /// Device classes whose states are text.
    static let textClasses: Set<String> = ["enum", "timestamp", "date"]

    init(deviceClass: String?, unit: String?, stateClass: String?) {
        if let deviceClass, Self.textClasses.contains(deviceClass) {
            self.type = "string"
            self.length = 16
            self.reason = "device_class \(deviceClass): text, up to 32 bytes"
        } else if let deviceClass, let (type, scale) = Self.byDeviceClass[deviceClass] {
            self.type = type
            self.scale = scale
            self.reason = "device_class \(deviceClass)"
        } else if let unit, let (type, scale) = Self.byUnit[unit] {
            self.type = type
            self.scale = scale
            self.reason = "unit \(unit)"
        } else if unit != nil || stateClass != nil || deviceClass != nil {
            self.type = "float32"
            let known = [
                deviceClass.map { "device_class \($0)" }, unit.map { "unit \($0)" },
                stateClass.map { "state_class \($0)" },
            ]
            self.reason = known.compactMap { $0 }.joined(separator: ", ") + ": a number of unknown range"
        } else {
            self.type = "string"
            self.length = 16
            self.reason = "no unit, device_class or state_class: text, up to 32 bytes"
        }
    }
}

/// The register type of a number entity, from its range and step.
struct NumberGuess {
    var type: String
    var scale: Double
    var summary: String

    init(minimum: Double, maximum: Double, step: Double) {
        let range =
            "\(NumberFormatting.shortest(minimum))…\(NumberFormatting.shortest(maximum)) step \(NumberFormatting.shortest(step))"
        var decimals = 0
        while decimals <= 3, (step * Self.power(decimals)).rounded() != step * Self.power(decimals) { decimals += 1 }
        guard decimals <= 3, minimum.isFinite, maximum.isFinite else {
            self.type = "float32"
            self.scale = 1
            self.summary = "float32 (\(range))"
            return
        }
        let scale = Self.power(decimals)
        let low = min(minimum, maximum) * scale
        let high = max(minimum, maximum) * scale
        if low >= -32768, high <= 32767 {
            self.type = "int16"
        } else if low >= 0, high <= 65535 {
            self.type = "uint16"
        } else if low >= -2_147_483_648, high <= 2_147_483_647 {
            self.type = "int32"
        } else {
            self.type = "float32"
            self.scale = 1
            self.summary = "float32 (\(range))"
            return
        }
        self.scale = scale
        self.summary =
            scale == 1 ? "\(type) (\(range))" : "\(type), scale \(NumberFormatting.shortest(scale)) (\(range))"
    }

    static func power(_ decimals: Int) -> Double {
        var value = 1.0
        for _ in 0..<decimals { value *= 10 }
        return value
    }
}

extension String {
    func replacingUnderscores() -> String {
        String(map { $0 == "_" ? " " : $0 })
    }
}
