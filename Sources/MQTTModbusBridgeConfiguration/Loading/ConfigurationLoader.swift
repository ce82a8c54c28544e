import ModbusCore
import Yams

/// Reads a configuration document into a ``BridgeConfiguration``, collecting every problem.
final class ConfigurationLoader {
    let diagnostics: Diagnostics
    let reader: YAMLReader
    /// Directory against which relative file paths (password_file, TLS files) are resolved;
    /// `nil` keeps them as written.
    let baseDirectory: String?

    /// Everything the cross-point checks need besides the points themselves.
    var protocolVersion: BrokerSettings.ProtocolVersion = .mqtt5
    var protocolMark: Mark?
    var loadedPoints: [LoadedPoint] = []
    /// Every point name read (points with errors included), with its position and the line of
    /// its point.
    var pointNames: [(name: String, mark: Mark?, line: Int)] = []
    var unitIDMarks: [UInt8: Mark] = [:]
    /// Every unit alias read, with its position and its unit, for the collision check.
    var unitAliases: [(alias: UInt8, mark: Mark?, unit: UInt8)] = []
    /// Device names read from `devices:`, with where each was defined.
    var deviceMarks: [String: Mark] = [:]
    /// The device the unit being read names, for its points that name none.
    var unitDevice: String?
    /// Devices with a `profile:`, by name, with what their points need to expand.
    var profiles: [String: ProfileContext] = [:]
    /// The broker's client id (a Shelly profile's default RPC source).
    var clientID = BrokerSettings.defaultClientID
    /// Devices with `sparkplug:`, by name, and the device of each Sparkplug source.
    var sparkplugDevices: [String: SparkplugSource] = [:]
    var sparkplugSourceDevices: [SparkplugSource: String] = [:]
    /// Every unit id a role of `modbus.tls.roles` lists, with its position, for the check
    /// against the configured units.
    var roleUnitMarks: [(unit: UInt8, mark: Mark?)] = []

    init(file: String, baseDirectory: String?) {
        self.diagnostics = Diagnostics(file: file)
        self.reader = YAMLReader(diagnostics: diagnostics)
        self.baseDirectory = baseDirectory
    }

    static let rootKeys = ["version", "broker", "modbus", "defaults", "devices", "units", "sparkplug"]

    func load(yaml: String) throws(ConfigurationErrors) -> BridgeConfiguration {
        let root: Node?
        do {
            root = try Yams.compose(yaml: yaml)
        } catch let error as YamlError {
            let problem = Self.describe(error, yaml: yaml)
            diagnostics.error(
                problem.message,
                line: problem.line,
                column: problem.column,
                fix: "check the YAML syntax here (indentation, quotes, ':' after keys)"
            )
            throw finish()
        } catch {
            diagnostics.error("cannot read the YAML: \(error)", at: nil)
            throw finish()
        }
        guard let root, !root.isNullScalar else {
            diagnostics.error(
                "the configuration is empty",
                line: 1,
                column: 1,
                fix: "start from examples/configs/demo.yaml"
            )
            throw finish()
        }
        guard let view = reader.mapping(root, context: "the configuration", allowed: Self.rootKeys) else {
            throw finish()
        }

        if let entry = view["version"] {
            _ = reader.integer(entry, in: 1...1, fix: "this version of the bridge reads version 1")
        }
        let broker = view["broker"].map { parseBroker($0) } ?? BrokerSettings()
        let modbus = view["modbus"].map { parseModbus($0) } ?? ModbusListenerSettings()
        let defaults = view["defaults"].map { parseDefaults($0) } ?? PointDefaults()
        let sparkplug = view["sparkplug"].map { parseSparkplugHost($0) } ?? SparkplugHostSettings()
        var devices = view["devices"].map { parseDevices($0) } ?? []
        var units: [UnitConfiguration] = []
        if let entry = reader.required(view, "units", fix: "add 'units:' with at least one unit and its points") {
            units = parseUnits(entry, defaults: defaults)
        }
        validateAcrossPoints(units: units)
        if let modbusEntry = view["modbus"], case .mapping(let mapping) = modbusEntry.value {
            let entries = mapping.compactMap { key, value in
                key.scalarText.map { Entry(key: $0, keyNode: key, value: value) }
            }
            validateModbusTLS(
                modbus,
                tlsEntry: entries.first { $0.key == "tls" },
                plainEntry: entries.first { $0.key == "plain_listener" },
                units: Set(units.flatMap(\.answeredIDs))
            )
        }
        finishProfiles(&devices)
        var configuration = BridgeConfiguration(
            broker: broker,
            modbus: modbus,
            units: units,
            devices: devices,
            warnings: Diagnostics.sorted(diagnostics.warnings),
            freshnessWarnings: freshnessWarnings(units: units, devices: devices)
        )
        configuration.sparkplug = sparkplug
        if diagnostics.errorCount > 0 { throw finish() }
        return configuration
    }

    func finish() -> ConfigurationErrors {
        ConfigurationErrors(Diagnostics.sorted(diagnostics.errors))
    }

    static func describe(_ error: YamlError, yaml: String) -> (message: String, line: Int, column: Int) {
        switch error {
        case .scanner(let context, let problem, let mark, _), .parser(let context, let problem, let mark, _),
            .composer(let context, let problem, let mark, _):
            var message = "invalid YAML: \(problem)"
            if let context { message += " (\(context.text) at line \(context.mark.line))" }
            return (message, mark.line, mark.column)
        case .reader(let problem, let offset, _, _):
            var line = 1
            var column = 1
            if let offset {
                for character in yaml.prefix(offset) {
                    if character == "\n" {
                        line += 1
                        column = 1
                    } else {
                        column += 1
                    }
                }
            }
            return ("invalid YAML input: \(problem)", line, column)
        case .duplicatedKeysInMapping(let duplicates, let context):
            let keys = duplicates.map { "'\($0)'" }.joined(separator: ", ")
            return (
                "duplicate key \(keys) in one mapping; YAML keys must be unique", context.mark.line, context.mark.column
            )
        default:
            return ("invalid YAML: \(error)", 0, 0)
        }
    }

    // MARK: Paths

    func resolvePath(_ path: String) -> String {
        guard let baseDirectory, !path.hasPrefix("/"), !path.hasPrefix("~") else { return path }
        return baseDirectory.hasSuffix("/") ? baseDirectory + path : baseDirectory + "/" + path
    }

    // MARK: Topics

    /// Checks a topic name (published to); warns about empty levels.
    func checkTopicName(_ topic: String, _ entry: Entry) -> Bool {
        do {
            try MQTTTopicRules.validateName(topic)
        } catch {
            diagnostics.error("'\(entry.key)': \(error.description)", at: entry.mark, fix: topicFix(error))
            return false
        }
        if let warning = MQTTTopicRules.emptyLevelWarning(topic) {
            diagnostics.warning("'\(entry.key)': \(warning)", at: entry.mark)
        }
        return true
    }

    /// Checks a topic filter (subscribed to); warns about empty levels.
    func checkTopicFilter(_ topic: String, _ entry: Entry) -> Bool {
        do {
            try MQTTTopicRules.validateFilter(topic)
        } catch {
            diagnostics.error("'\(entry.key)': \(error.description)", at: entry.mark, fix: topicFix(error))
            return false
        }
        if let warning = MQTTTopicRules.emptyLevelWarning(topic) {
            diagnostics.warning("'\(entry.key)': \(warning)", at: entry.mark)
        }
        return true
    }

    private func topicFix(_ error: MQTTTopicError) -> String? {
        if error.reason.hasPrefix("wildcards") {
            return "publish to a concrete topic: replace '+' and '#' with level names"
        }
        if error.reason.contains("'#'") { return "use '#' alone as the last level, e.g. 'plant/#'" }
        if error.reason.contains("'+'") { return "use '+' alone in a level, e.g. 'plant/+/temperature'" }
        return nil
    }

    // MARK: Broker

    static let brokerKeys = [
        "host", "port", "client_id", "protocol", "clean_session", "session_expiry", "keepalive", "username", "password",
        "password_file", "password_env", "tls", "status_topic", "reconnect", "connect_timeout", "operation_timeout",
        "message_buffer",
        "max_inflight", "tcp_nodelay", "refresh_rate", "command_connection",
    ]
    static let tlsKeys = [
        "ca_file", "ca_path", "cert_file", "key_file", "verify_server", "verify_hostname", "version", "ciphers",
    ]
    static let reconnectKeys = ["min_delay", "max_delay", "multiplier", "retry_initial_connect"]

    func parseBroker(_ entry: Entry) -> BrokerSettings {
        var settings = BrokerSettings()
        guard let view = reader.mapping(entry.value, context: "broker", allowed: Self.brokerKeys, at: entry.mark) else {
            return settings
        }
        if let host = reader.string(view["host"]) {
            if checkHost(host, view["host"]!) { settings.host = host }
        }
        if let clientID = reader.string(view["client_id"]) {
            if clientID.utf8.count > 65535 || clientID.unicodeScalars.contains(where: { $0.value < 0x20 }) {
                diagnostics.error(
                    "'client_id' must be at most 65535 bytes without control characters",
                    at: view["client_id"]!.mark
                )
            } else {
                settings.clientID = clientID
            }
        }
        settings.statusTopic = "\(settings.clientID)/status"
        clientID = settings.clientID
        if let version = reader.choice(
            view["protocol"],
            [("mqtt5", BrokerSettings.ProtocolVersion.mqtt5), ("mqtt311", .mqtt311)]
        ) {
            settings.protocolVersion = version
            protocolMark = view["protocol"]?.mark
        }
        protocolVersion = settings.protocolVersion
        if let clean = reader.bool(view["clean_session"]) { settings.cleanSession = clean }
        if let entry = view["session_expiry"], let expiry = reader.duration(entry) {
            if settings.protocolVersion != .mqtt5 {
                diagnostics.error(
                    "'session_expiry' is an MQTT 5 feature but protocol is mqtt311",
                    at: entry.mark,
                    fix: "remove session_expiry or use protocol: mqtt5"
                )
            } else if expiry.components.attoseconds != 0 || expiry > .seconds(4_294_967_295) {
                diagnostics.error("'session_expiry' must be whole seconds up to 4294967295s", at: entry.mark)
            } else {
                settings.sessionExpiry = expiry
            }
        }
        if let entry = view["keepalive"], let keepAlive = reader.duration(entry) {
            if keepAlive.components.attoseconds != 0
                || (keepAlive != .zero && (keepAlive < .seconds(5) || keepAlive > .seconds(65535)))
            {
                diagnostics.error(
                    "'keepalive' must be 0 (off) or whole seconds from 5s to 65535s, found \(entry.value.scalarText ?? "")",
                    at: entry.mark
                )
            } else {
                settings.keepAlive = keepAlive
            }
        }
        if let username = reader.string(view["username"]) { settings.username = username }
        let password = reader.string(view["password"], allowEmpty: true)
        let passwordFile = reader.string(view["password_file"])
        let passwordVariable = reader.string(view["password_env"])
        let given = ["password", "password_file", "password_env"].filter { view[$0] != nil }
        if given.count > 1 {
            diagnostics.error(
                "\(given.map { "'\($0)'" }.joined(separator: " and ")) are \(given.count == 2 ? "both" : "all") set; the password can come from one place only",
                at: view[given[1]]!.mark,
                fix:
                    "keep one: password_file or password_env (a secret handed over from outside) is safer than password"
            )
        } else if let password {
            settings.password = .literal(password)
        } else if let passwordFile {
            settings.password = .file(path: resolvePath(passwordFile))
        } else if let passwordVariable {
            if passwordVariable.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }),
                !passwordVariable.first!.isNumber
            {
                settings.password = .environment(name: passwordVariable)
            } else {
                diagnostics.error(
                    // Not echoed: it may be the password itself, written where its variable's name belongs.
                    "'password_env' must name an environment variable (letters, digits and _, not starting with a digit)",
                    at: view["password_env"]!.mark,
                    fix:
                        "give the variable's name (letters, digits and _), e.g. password_env: MQTT_PASSWORD, not its value"
                )
            }
        }
        if settings.password != nil && settings.username == nil {
            let mark = (view["password"] ?? view["password_file"] ?? view["password_env"])!.mark
            diagnostics.error("a password needs a 'username'", at: mark, fix: "add username: <name>")
        }
        if let tlsEntry = view["tls"] { settings.tls = parseTLS(tlsEntry) }
        if let entry = view["port"], let port = reader.integer(entry, in: 1...65535) {
            settings.port = port
        } else {
            settings.port = settings.tls == nil ? 1883 : 8883
        }
        if let entry = view["status_topic"], let topic = reader.string(entry) {
            if checkTopicName(topic, entry) { settings.statusTopic = topic }
        } else if (try? MQTTTopicRules.validateName(settings.statusTopic)) == nil, let entry = view["client_id"] {
            diagnostics.error(
                "the default status topic '\(settings.statusTopic)' (client_id + '/status') is not a valid topic",
                at: entry.mark,
                fix: "set status_topic, or use a client_id without '+', '#' or a leading '$'"
            )
        }
        if let entry = view["reconnect"] { settings.reconnect = parseReconnect(entry) }
        if let entry = view["connect_timeout"], let value = positiveDuration(entry) { settings.connectTimeout = value }
        if let entry = view["operation_timeout"], let value = positiveDuration(entry) {
            settings.operationTimeout = value
        }
        if let value = reader.integer(view["message_buffer"], in: 1...100_000_000) {
            settings.messageBufferCapacity = value
        }
        if let value = reader.integer(view["max_inflight"], in: 0...65535) { settings.maxInflightMessages = value }
        if let value = reader.bool(view["tcp_nodelay"]) { settings.tcpNoDelay = value }
        if let value = reader.choice(
            view["command_connection"],
            BrokerSettings.CommandConnection.allCases.map { ($0.rawValue, $0) }
        ) {
            settings.commandConnection = value
        }
        if let entry = view["refresh_rate"], let rate = reader.number(entry) {
            if rate.isFinite && rate > 0 && rate <= 10_000 {
                settings.refreshRate = rate
            } else {
                diagnostics.error(
                    "'refresh_rate' must be a number of messages per second above 0 and at most 10000, found \(entry.value.scalarText ?? "")",
                    at: entry.mark,
                    fix: "the default, 10, refreshes 1000 devices in under two minutes"
                )
            }
        }
        return settings
    }

    func checkHost(_ host: String, _ entry: Entry) -> Bool {
        if host.contains(where: { $0.isWhitespace }) || host.contains("/") {
            diagnostics.error(
                "'\(entry.key)' must be a host name or an IP address, found '\(host)'",
                at: entry.mark,
                fix: "write the address alone; the port has its own key"
            )
            return false
        }
        return true
    }

    func positiveDuration(_ entry: Entry) -> Duration? {
        guard let value = reader.duration(entry) else { return nil }
        guard value > .zero else {
            diagnostics.error("'\(entry.key)' must be longer than 0", at: entry.mark)
            return nil
        }
        return value
    }

    func parseTLS(_ entry: Entry) -> TLSSettings? {
        guard let view = reader.mapping(entry.value, context: "broker.tls", allowed: Self.tlsKeys, at: entry.mark)
        else { return nil }
        var tls = TLSSettings()
        tls.caFile = reader.string(view["ca_file"]).map(resolvePath)
        tls.caPath = reader.string(view["ca_path"]).map(resolvePath)
        tls.certFile = reader.string(view["cert_file"]).map(resolvePath)
        tls.keyFile = reader.string(view["key_file"]).map(resolvePath)
        if !view.has("ca_file") && !view.has("ca_path") {
            diagnostics.error(
                "broker.tls needs 'ca_file' or 'ca_path' to verify the broker",
                at: entry.mark,
                fix: "add ca_file: /path/to/ca.pem"
            )
        }
        if view.has("cert_file") != view.has("key_file") {
            let present = view["cert_file"] ?? view["key_file"]!
            let missing = view.has("cert_file") ? "key_file" : "cert_file"
            diagnostics.error(
                "a client certificate needs both 'cert_file' and 'key_file'; '\(missing)' is missing",
                at: present.mark,
                fix: "add \(missing), or remove \(present.key)"
            )
        }
        if let verify = reader.bool(view["verify_server"]) {
            tls.verifyServer = verify
            if !verify {
                diagnostics.warning(
                    "'verify_server: false' accepts any broker certificate: anyone on the path can impersonate the broker",
                    at: view["verify_server"]!.mark,
                    fix: "use it for tests only"
                )
            }
        }
        if let verify = reader.bool(view["verify_hostname"]) {
            tls.verifyHostname = verify
            if !verify {
                diagnostics.warning(
                    "'verify_hostname: false' accepts a certificate issued for another host",
                    at: view["verify_hostname"]!.mark,
                    fix: "use it for tests only"
                )
            }
        }
        if let version = reader.choice(view["version"], TLSSettings.supportedVersions.map { ($0, $0) }) {
            tls.version = version
        }
        tls.ciphers = reader.string(view["ciphers"])
        return tls
    }

    func parseReconnect(_ entry: Entry) -> ReconnectSettings {
        var settings = ReconnectSettings()
        guard
            let view = reader.mapping(
                entry.value,
                context: "broker.reconnect",
                allowed: Self.reconnectKeys,
                at: entry.mark
            )
        else { return settings }
        if let entry = view["min_delay"], let value = positiveDuration(entry) { settings.minDelay = value }
        if let entry = view["max_delay"], let value = positiveDuration(entry) { settings.maxDelay = value }
        if settings.minDelay > settings.maxDelay, let entry = view["max_delay"] ?? view["min_delay"] {
            diagnostics.error(
                "reconnect min_delay (\(DurationSyntax.format(settings.minDelay))) is longer than max_delay (\(DurationSyntax.format(settings.maxDelay)))",
                at: entry.mark,
                fix: "make max_delay at least min_delay"
            )
        }
        if let entry = view["multiplier"], let value = reader.number(entry) {
            if value.isFinite && value >= 1 && value <= 100 {
                settings.multiplier = value
            } else {
                diagnostics.error(
                    "'multiplier' must be a number from 1 to 100, found \(entry.value.scalarText ?? "")",
                    at: entry.mark
                )
            }
        }
        if let value = reader.bool(view["retry_initial_connect"]) { settings.retryInitialConnect = value }
        return settings
    }

    // MARK: Modbus

    static let modbusKeys = [
        "host", "port", "max_connections", "connection_limit_policy", "idle_timeout", "max_queued_requests",
        "max_writes_in_flight", "shutdown_grace_period", "device_identification", "unknown_unit", "allowed_clients",
        "read_only", "event_loop_threads", "plain_listener", "tls",
    ]
    static let identificationKeys = [
        "vendor_name", "product_code", "revision", "vendor_url", "product_name", "model_name", "user_application_name",
        "private_objects",
    ]

    func parseModbus(_ entry: Entry) -> ModbusListenerSettings {
        var settings = ModbusListenerSettings()
        guard let view = reader.mapping(entry.value, context: "modbus", allowed: Self.modbusKeys, at: entry.mark) else {
            return settings
        }
        if let host = reader.string(view["host"]), checkHost(host, view["host"]!) { settings.host = host }
        if let port = reader.integer(view["port"], in: 0...65535) { settings.port = port }
        if let value = reader.integer(view["max_connections"], in: 1...100_000) { settings.maxConnections = value }
        if let policy = reader.choice(
            view["connection_limit_policy"],
            ModbusListenerSettings.ConnectionLimitPolicy.allCases.map { ($0.rawValue, $0) }
        ) {
            settings.connectionLimitPolicy = policy
        }
        if let entry = view["idle_timeout"], let timeout = reader.optionalDuration(entry) {
            if timeout == .duration(.zero) {
                diagnostics.error("'idle_timeout' must be longer than 0, or none", at: entry.mark)
            } else {
                settings.idleTimeout = timeout.value
            }
        }
        if let value = reader.integer(view["max_queued_requests"], in: 1...100_000) {
            settings.maxQueuedRequestsPerConnection = value
        }
        if let value = reader.integer(view["max_writes_in_flight"], in: 1...100_000) {
            settings.maxWritesInFlight = value
        }
        if let entry = view["shutdown_grace_period"], let value = reader.duration(entry) {
            settings.shutdownGracePeriod = value
        }
        if let entry = view["device_identification"] { settings.deviceIdentification = parseIdentification(entry) }
        if let policy = reader.choice(
            view["unknown_unit"],
            ModbusListenerSettings.UnknownUnitPolicy.allCases.map { ($0.rawValue, $0) }
        ) {
            settings.unknownUnit = policy
        }
        if let entry = view["allowed_clients"] { settings.allowedClients = parseAllowedClients(entry) }
        if let value = reader.bool(view["read_only"]) { settings.readOnly = value }
        if let value = reader.integer(view["event_loop_threads"], in: 1...1024) { settings.eventLoopThreads = value }
        if let value = reader.bool(view["plain_listener"]) { settings.plainListener = value }
        if let entry = view["tls"] { settings.tls = parseModbusTLS(entry) }
        return settings
    }

    /// `allowed_clients`: addresses and CIDR ranges, IPv4 or IPv6.
    func parseAllowedClients(_ entry: Entry) -> [ModbusClientAddressRange]? {
        guard let nodes = reader.sequence(entry) else { return nil }
        if nodes.isEmpty {
            diagnostics.error(
                "'allowed_clients' is an empty list, which lets no master connect",
                at: entry.mark,
                fix:
                    "list the masters' addresses or ranges (10.0.0.0/8, 192.168.1.20, fd00::/8), or remove the key to allow every address"
            )
            return nil
        }
        var ranges: [ModbusClientAddressRange] = []
        for node in nodes {
            let text = node.scalarText.map { String($0.trimmingWhitespace()) }
            guard let text, let range = ModbusClientAddressRange(text) else {
                diagnostics.error(
                    "'allowed_clients' entry \(text.map { "'\($0)'" } ?? node.shapeDescription) is not an address or a range",
                    at: node.mark ?? entry.mark,
                    fix:
                        "write an IPv4 or IPv6 address, or a range in CIDR notation: 10.0.0.0/8, 192.168.1.20, fd00::/8 (no host names)"
                )
                continue
            }
            ranges.append(range)
        }
        return ranges
    }

    func parseIdentification(_ entry: Entry) -> ModbusDeviceIdentification {
        var identity = ModbusListenerSettings.defaultDeviceIdentification
        guard
            let view = reader.mapping(
                entry.value,
                context: "modbus.device_identification",
                allowed: Self.identificationKeys,
                at: entry.mark
            )
        else {
            return identity
        }
        if let value = reader.string(view["vendor_name"]) { identity.vendorName = value }
        if let value = reader.string(view["product_code"]) { identity.productCode = value }
        if let value = reader.string(view["revision"]) { identity.majorMinorRevision = value }
        identity.vendorURL = reader.string(view["vendor_url"])
        identity.productName = reader.string(view["product_name"])
        identity.modelName = reader.string(view["model_name"])
        identity.userApplicationName = reader.string(view["user_application_name"])
        if let objectsEntry = view["private_objects"] {
            if case .mapping(let mapping) = objectsEntry.value {
                for (keyNode, valueNode) in mapping {
                    let idEntry = Entry(key: "private object id", keyNode: keyNode, value: keyNode)
                    guard let id = reader.integer(idEntry, in: 0x80...0xFF, fix: "private object ids are 0x80...0xFF")
                    else { continue }
                    let valueEntry = Entry(
                        key: "private object 0x\(String(id, radix: 16))",
                        keyNode: keyNode,
                        value: valueNode
                    )
                    if let text = reader.string(valueEntry, allowEmpty: true) {
                        identity.privateObjects[UInt8(id)] = Array(text.utf8)
                    }
                }
            } else {
                diagnostics.error(
                    "'private_objects' must be a mapping of id: text, found \(objectsEntry.value.shapeDescription)",
                    at: objectsEntry.mark
                )
            }
        }
        do {
            try identity.validate()
        } catch {
            diagnostics.error(error.description, at: entry.mark)
        }
        return identity
    }
}
