import Foundation
import Logging
import MQTTModbusBridgeBroker
import MQTTModbusBridgeConfiguration
import Mosquitto
import ServiceLifecycle
import Synchronization

/// A stand-in for the devices of a configuration: publishes changing telemetry for its points
/// and answers commands in each point's ack mode, with switches to delay, refuse or ignore
/// acknowledgements. Used by the demo and the end-to-end tests.
///
/// Points described by hand: state messages are published retained, in the point's payload
/// format (boolean points that list their own words publish them in JSON too:
/// `{"POWER":"ON"}`). Commands are read through their command template when they have one (the
/// value and the correlation id wherever the template puts them), otherwise in the point's
/// payload format with the correlation id at the ack's `id_field`.
///
/// Devices with a `profile:` speak their family's convention instead, each on a connection of
/// its own whose last will is the device's offline word: Tasmota (``TasmotaConvention``),
/// zigbee2mqtt (``Zigbee2MQTTConvention``), Shelly Gen2 RPC (``ShellyGen2Convention``),
/// answering the bridge's refresh requests as the real devices do.
public final class DeviceSimulator: Service, Sendable {
    /// How the simulator answers commands.
    public enum AckBehaviour: Sendable, Hashable {
        /// Apply the command, publish the new state, acknowledge.
        case acknowledge
        /// Do not apply it; answer with a negative acknowledgement (`code`: the Modbus exception
        /// the ack names, if any). In state-echo mode the unchanged state is published.
        case refuse(reason: String, code: UInt8?)
        /// Neither apply nor answer: the bridge times out.
        case ignore
    }

    /// Simulator settings.
    public struct Options: Sendable {
        /// How often read-only points get a new value; `nil` publishes initial values only.
        public var telemetryInterval: Duration? = .seconds(1)
        /// Wait this long before applying a command and answering it.
        public var ackDelay: Duration = .zero
        /// How commands are answered, unless ``perPoint`` says otherwise.
        public var behaviour: AckBehaviour = .acknowledge
        /// Behaviour for individual points, by name.
        public var perPoint: [String: AckBehaviour] = [:]
        /// The MQTT client id (default: the bridge's client id + "-simulator").
        public var clientID: String?

        /// Options with every default.
        public init() {}
    }

    private let connections: [any SimulatedConnection]
    private let logger: Logger

    /// Creates a simulator for the points of `configuration`, connecting to its broker.
    ///
    /// Devices with a profile get a connection each (with the device's last will), speaking
    /// their family's convention; the points described by hand share one connection.
    public init(
        configuration: BridgeConfiguration,
        options: Options = Options(),
        logger: Logger = Logger(label: "simulator")
    ) throws {
        self.logger = logger
        var initial: [String: PointValue] = [:]
        for point in configuration.points { initial[point.name] = Self.initialValue(for: point) }
        let values = SimulatedValues(initial)
        var connections = try DeviceConventions.connections(
            for: configuration,
            options: options,
            values: values,
            logger: logger
        )
        let handWritten = try HandWrittenDevices(
            configuration: configuration,
            excluding: DeviceConventions.profileDevices(of: configuration),
            options: options,
            values: values,
            logger: logger
        )
        if handWritten.hasWork || connections.isEmpty { connections.insert(handWritten, at: 0) }
        self.connections = connections
    }

    /// Connects, publishes every point's initial state, then answers commands and publishes
    /// telemetry until cancelled or shut down gracefully.
    public func run() async throws {
        var started: [any SimulatedConnection] = []
        do {
            for connection in connections {
                try await connection.start()
                started.append(connection)
            }
        } catch {
            for connection in started { await connection.stop() }
            throw error
        }
        logger.info("simulator running", metadata: ["connections": "\(connections.count)"])
        // The message sequence does not end on disconnect (only when the client is released), so
        // graceful shutdown has to end the work itself: it cancels it, like a cancellation.
        let connections = self.connections
        await cancelWhenGracefulShutdown {
            await withTaskGroup(of: Void.self) { group in
                for connection in connections { group.addTask { await connection.serve() } }
                // Whichever ends first ends them all.
                await group.next()
                group.cancelAll()
            }
        }
        for connection in connections { await connection.stop() }
    }
}

/// The points and devices described by hand (no profile), on one connection: state in each
/// point's payload format, retained; commands answered in each point's ack mode.
final class HandWrittenDevices: SimulatedConnection {
    private let points: [PointConfiguration]
    private let devices: [DeviceConfiguration]
    private let options: DeviceSimulator.Options
    private let client: MQTTClient
    private let logger: Logger
    private let values: SimulatedValues
    private let commandPoints: [String: [PointConfiguration]]

    init(
        configuration: BridgeConfiguration,
        excluding profileDevices: Set<String>,
        options: DeviceSimulator.Options,
        values: SimulatedValues,
        logger: Logger
    ) throws {
        // Sparkplug points are played by SparkplugEdgeNodeSimulator, profile devices by their
        // own connections.
        self.points = configuration.points.filter { point in
            point.sparkplug == nil && (point.device.map { !profileDevices.contains($0) } ?? true)
        }
        self.devices = configuration.devices.filter { !profileDevices.contains($0.name) }
        self.options = options
        self.logger = logger
        self.values = values
        var mqtt = try MQTTConfiguration(bridgeBroker: configuration.broker)
        mqtt.clientID = options.clientID ?? "\(configuration.broker.clientID)-simulator"
        // A device's last will says it is gone; a client has one will, so the first device with
        // an availability topic gets it (every device says "offline" on a graceful stop).
        mqtt.will = devices.lazy.compactMap(\.availability).first.map { settings in
            MQTTWill(
                topic: settings.topic,
                payload: DeviceSimulator.availabilityPayload(settings, online: false),
                qos: .atLeastOnce,
                retain: true
            )
        }
        mqtt.reconnect.retryInitialConnect = true
        self.client = try MQTTClient(configuration: mqtt, logger: logger.component("mqtt"))
        var commands: [String: [PointConfiguration]] = [:]
        for point in points {
            if let command = point.command { commands[command.topic, default: []].append(point) }
        }
        self.commandPoints = commands
    }

    /// Whether there is anything to simulate here (a configuration of profile devices only
    /// has not).
    var hasWork: Bool { !points.isEmpty || devices.contains { $0.availability != nil } }

    func start() async throws {
        try await client.connect()
        for topic in commandPoints.keys.sorted() { try await client.subscribe(topic, qos: .atLeastOnce) }
        await announceAvailability(online: true)
        for point in points where point.stateTopic != nil { await publishState(of: point) }
        logger.debug(
            "devices described by hand running",
            metadata: ["points": "\(points.count)", "commands": "\(commandPoints.count)"]
        )
    }

    func serve() async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.answerCommands() }
            if let interval = self.options.telemetryInterval {
                group.addTask { await self.publishTelemetry(every: interval) }
            }
            // Whichever ends first (the message stream, the telemetry loop) ends them all.
            await group.next()
            group.cancelAll()
        }
    }

    func stop() async {
        await announceAvailability(online: false)
        await client.disconnect()
    }

    private func answerCommands() async {
        await withTaskGroup(of: Void.self) { group in
            for await message in client.messages {
                guard let points = commandPoints[message.topic] else { continue }
                for point in points { group.addTask { await self.answer(message, for: point) } }
            }
        }
    }

    private func publishTelemetry(every interval: Duration) async {
        var tick: Int64 = 0
        while !Task.isCancelled {
            do { try await Task.sleep(for: interval) } catch { return }
            tick += 1
            var topics: Set<String> = []
            for point in points where point.stateTopic != nil && point.command == nil {
                values.update { $0[point.name] = DeviceSimulator.telemetryValue(for: point, tick: tick) }
                if topics.insert(point.stateTopic!).inserted == false { continue }
            }
            for point in points where point.stateTopic.map(topics.contains) == true {
                topics.remove(point.stateTopic!)
                await publishState(of: point)
            }
        }
    }

    /// Publishes every device's availability (retained), as devices do when they connect or leave.
    private func announceAvailability(online: Bool) async {
        for settings in devices.compactMap(\.availability) {
            try? await client.publish(
                topic: settings.topic,
                payload: DeviceSimulator.availabilityPayload(settings, online: online),
                qos: .atLeastOnce,
                retain: true,
                timeout: .seconds(2)
            )
        }
    }

    /// Publishes the state message of `point`'s state topic. Points that share a topic with JSON
    /// payloads (fields of one document) are published together, as one device would.
    private func publishState(of point: PointConfiguration) async {
        guard let topic = point.stateTopic, !MQTTTopicRules.isWildcardFilter(topic) else { return }
        let sharing = points.filter { $0.stateTopic == topic }
        do {
            let current = values.snapshot
            guard let payload = try DeviceSimulator.statePayload(of: point, sharing: sharing, values: current) else {
                return
            }
            try await client.publish(topic: topic, payload: payload, qos: .atLeastOnce, retain: true)
        } catch {
            logger.warning("cannot publish state", metadata: ["point": "\(point.name)", "error": "\(error)"])
        }
    }

    private func answer(_ message: MQTTMessage, for point: PointConfiguration) async {
        guard let command = point.command else { return }
        let behaviour = options.behaviour(for: point.name)
        let received: DeviceSimulator.ReceivedCommand
        do {
            received = try DeviceSimulator.command(in: message.payload, for: point)
        } catch {
            logger.warning("command not understood", metadata: ["point": "\(point.name)", "error": "\(error)"])
            return
        }
        let value = received.value
        logger.info("command", metadata: ["point": "\(point.name)", "value": "\(value)", "behaviour": "\(behaviour)"])
        if options.ackDelay > .zero { try? await Task.sleep(for: options.ackDelay) }
        switch behaviour {
        case .ignore:
            return
        case .acknowledge:
            values.update { $0[point.name] = value }
            await publishState(of: point)
        case .refuse:
            if command.ack.mode == .stateEcho { await publishState(of: point) }
        }
        await acknowledge(message, for: point, correlationID: received.correlationID, behaviour: behaviour)
    }

    private func acknowledge(
        _ message: MQTTMessage,
        for point: PointConfiguration,
        correlationID: String?,
        behaviour: DeviceSimulator.AckBehaviour
    ) async {
        guard let ack = point.command?.ack else { return }
        var document = JSONValue.object([])
        switch behaviour {
        case .refuse(let reason, let code):
            _ = document.set(.bool(false), at: ack.successField.components[...])
            _ = document.set(.string(reason), at: ack.errorField.components[...])
            if let code { _ = document.set(.number(String(code)), at: ack.codeField.components[...]) }
        default:
            _ = document.set(.bool(true), at: ack.successField.components[...])
        }
        switch ack.mode {
        case .mqtt5:
            guard let topic = message.properties.responseTopic else { return }
            try? await client.publish(
                topic: topic,
                payload: Array(document.serialized().utf8),
                qos: .atLeastOnce,
                properties: MQTTProperties(correlationData: message.properties.correlationData)
            )
        case .correlationID:
            guard let topic = ack.responseTopic,
                let id = correlationID ?? AckPayloadEvaluator.correlationID(in: message.payload, at: ack.idField)
            else { return }
            _ = document.set(.string(id), at: ack.idField.components[...])
            try? await client.publish(topic: topic, payload: Array(document.serialized().utf8), qos: .atLeastOnce)
        case .stateEcho, .broker:
            break
        }
    }
}

extension DeviceSimulator {
    /// What the device says on its availability topic: its first online (or offline) word, in
    /// JSON at the path when there is one.
    static func availabilityPayload(_ settings: AvailabilitySettings, online: Bool) -> [UInt8] {
        let word = (online ? settings.onlineWords : settings.offlineWords).first ?? (online ? "online" : "offline")
        guard let path = settings.path else { return Array(word.utf8) }
        return Array(JSONValue.building(.string(word), at: path.components[...]).serialized().utf8)
    }

    /// What a command said: the value and, when its template carries one, the correlation id.
    struct ReceivedCommand: Sendable, Hashable {
        var value: PointValue
        var correlationID: String?
    }

    /// Reads a command the way the bridge wrote it. With a command template the payload is
    /// matched against the template's text, so the value is found wherever the template puts
    /// it: `{{value}}` alone (a Tasmota `cmnd/<t>/POWER` payload of a point whose state is JSON),
    /// or a field of a JSON document other than the state's path. Without a template, or when the
    /// payload does not match it (or its value does not decode), the command is read like a state
    /// message of the point.
    static func command(
        in payload: [UInt8],
        for point: PointConfiguration
    ) throws(PayloadDecodingError) -> ReceivedCommand {
        if let template = point.command?.template, let text = String(validating: payload, as: UTF8.self),
            let pattern = TemplatePattern(template, point: point), let fields = pattern.match(text),
            let valueText = fields.value
        {
            // With the json format `{{value}}` is a JSON literal (`true`, `21.5`, `"abc"`).
            var format = point.command?.payload ?? point.payload
            if format.jsonPath != nil { format.encoding = .json(path: JSONPath([])) }
            // A hole that took something else (a bare {{value}} takes any payload) falls back below.
            if let value = try? PayloadDecoder(format: format, type: point.type).decode(Array(valueText.utf8)) {
                return ReceivedCommand(value: value, correlationID: fields.correlationID)
            }
        }
        let format = point.command?.payload ?? point.payload
        return ReceivedCommand(
            value: try PayloadDecoder(format: format, type: point.type).decode(payload),
            correlationID: nil
        )
    }

    /// The state message of `point`'s topic, or `nil` while its value is unknown. Points that
    /// share a topic with JSON payloads are fields of one document, as one device publishes them.
    static func statePayload(
        of point: PointConfiguration,
        sharing: [PointConfiguration],
        values: [String: PointValue]
    ) throws -> [UInt8]? {
        if sharing.count > 1, sharing.allSatisfy({ $0.payload.jsonPath != nil }) {
            var document = JSONValue.object([])
            for member in sharing {
                guard let value = values[member.name], let path = member.payload.jsonPath else { continue }
                _ = document.set(try stateField(of: member, value: value), at: path.components[...])
            }
            return Array(document.serialized().utf8)
        }
        guard let value = values[point.name] else { return nil }
        if let path = point.payload.jsonPath {
            return Array(
                JSONValue.building(try stateField(of: point, value: value), at: path.components[...]).serialized().utf8
            )
        }
        var plain = point
        plain.command = nil  // the state payload is the natural encoding of the payload format
        return try CommandEncoder(point: plain).encode(value)
    }

    /// The JSON field a device publishes for `value`. A boolean point that lists its own true
    /// and false words gets its first word as a string (`{"POWER":"ON"}`, as Tasmota and
    /// zigbee2mqtt publish), since a device whose words differ from the defaults names its
    /// states; otherwise the JSON literal.
    static func stateField(of point: PointConfiguration, value: PointValue) throws -> JSONValue {
        var plain = point
        plain.command = nil
        plain.payload.encoding = .json(path: JSONPath([]))
        let field = try JSONParser.parse(try CommandEncoder(point: plain).encode(value))
        let wordsGiven =
            point.payload.trueWords != PayloadFormat.defaultTrueWords
            || point.payload.falseWords != PayloadFormat.defaultFalseWords
        if point.type.isBoolean, wordsGiven, case .bool(let truth) = field,
            let word = truth ? point.payload.trueWords.first : point.payload.falseWords.first
        {
            return .string(word)
        }
        return field
    }

    static func initialValue(for point: PointConfiguration) -> PointValue {
        telemetryValue(for: point, tick: 0)
    }

    /// A value that changes with `tick` and stays inside the point's type (after scaling).
    static func telemetryValue(for point: PointConfiguration, tick: Int64) -> PointValue {
        switch point.type {
        case .bool, .bit: return .bool(tick % 2 == 0)
        case .string(let length): return .text(String("sim \(tick)".prefix(length * 2)))
        case .float32, .float64: return .number(20 + 5 * sin(Double(tick) / 10))
        case .int16, .int32, .int64, .uint16, .uint32, .uint64:
            // Small values fit every integer type at any sensible scale.
            let raw = 100 + tick % 100
            let scaled = (Double(raw) - point.offset) / point.scale
            return point.hasIdentityScaling ? .integer(raw) : .number((scaled * 10).rounded() / 10)
        }
    }
}
