import ModbusCore

/// One Modbus unit (slave id) served by the bridge, with its points.
public struct UnitConfiguration: Sendable, Hashable {
    /// The unit id, 0...255. Requests for a unit the configuration does not list are answered
    /// as ``ModbusListenerSettings/unknownUnit`` says (0B by default).
    public var id: UInt8
    /// More unit ids answered with this unit's points, for masters that address a TCP gateway's
    /// only unit as 0 or 255 (TCP guide §4.4.1.2) instead of by its id. Never the id of another
    /// unit or another unit's alias (validation).
    public var aliases: [UInt8]
    /// An optional label for logs and exports.
    public var name: String?
    /// `true`: addresses no point covers read as 0 (registers) or off (bits) instead of
    /// exception 02, so a master can read one large block across gaps. Writes to a gap are still 02.
    public var fillGaps: Bool
    /// The points, templates already expanded, in file order.
    public var points: [PointConfiguration]

    /// Creates a unit.
    public init(
        id: UInt8,
        aliases: [UInt8] = [],
        name: String? = nil,
        fillGaps: Bool = false,
        points: [PointConfiguration]
    ) {
        self.id = id
        self.aliases = aliases
        self.name = name
        self.fillGaps = fillGaps
        self.points = points
    }

    /// Every unit id answered with this unit's points: its id, then its aliases.
    public var answeredIDs: [UInt8] { [id] + aliases }

    /// The unit's points in `area`, sorted by address.
    public func points(in area: ModbusArea) -> [PointConfiguration] {
        points.filter { $0.area == area }.sorted {
            ($0.address, $0.bitPosition ?? -1) < ($1.address, $1.bitPosition ?? -1)
        }
    }
}

/// Where something was written in a configuration file.
public struct ConfigurationLocation: Sendable, Hashable, CustomStringConvertible {
    /// The file name given to the loader.
    public var file: String
    /// 1-based line.
    public var line: Int
    /// 1-based column.
    public var column: Int

    /// Creates a location.
    public init(file: String, line: Int, column: Int) {
        self.file = file
        self.line = line
        self.column = column
    }

    /// `file:line:column`.
    public var description: String { "\(file):\(line):\(column)" }
}

/// One value mapped between MQTT and Modbus: where it lives in the register image, how it is
/// typed and scaled, which topic feeds it and, for writable points, how commands are sent and
/// acknowledged. Every default has been applied: a point is complete on its own.
///
/// A point is large (about 500 bytes of fields), and the bridge keeps more than one array of
/// them (the configuration in force and its register map), so the fields live in one immutable
/// storage that the copies share: copying a point copies a reference. Changing a field (the
/// loader does, while it builds the point) gives that point a storage of its own.
public struct PointConfiguration: Sendable, Hashable {
    /// The fields, stored once however many copies of the point there are.
    private struct Fields: Sendable, Hashable {
        var name: String
        var descriptionText: String?
        var unitID: UInt8
        var area: ModbusArea
        var address: UInt16
        var type: PointType
        var byteOrder: ByteOrder
        var scale: Double
        var offset: Double
        var stateTopic: String?
        var payload: PayloadFormat
        var qos: QoSLevel
        var maxAge: Duration?
        var onMissing: MissingValuePolicy
        var command: CommandSettings?
        var location: ConfigurationLocation
        var device: String?
        var quality: StatusRegister?
        var lastCommand: StatusRegister?
        var additionalStates: [StateSource] = []
        var sparkplug: SparkplugMetric?
    }

    /// Shared by the copies of a point. Immutable, so reading a field needs neither a lock nor
    /// an exclusivity check.
    private final class Storage: Sendable {
        let fields: Fields
        init(_ fields: Fields) { self.fields = fields }
    }

    private var storage: Storage

    private mutating func mutate(_ change: (inout Fields) -> Void) {
        var fields = storage.fields
        change(&fields)
        storage = Storage(fields)
    }

    /// Whether two points have the same fields (always so for copies of one point).
    public static func == (lhs: PointConfiguration, rhs: PointConfiguration) -> Bool {
        lhs.storage === rhs.storage || lhs.storage.fields == rhs.storage.fields
    }

    /// Hashes the fields, as ``==`` compares them.
    public func hash(into hasher: inout Hasher) { hasher.combine(storage.fields) }

    /// The point's name, unique in the configuration (letters, digits, `_ - . : /`).
    public var name: String {
        get { storage.fields.name }
        set { mutate { $0.name = newValue } }
    }
    /// An optional human description, the `description` key (for exports and logs).
    public var descriptionText: String? {
        get { storage.fields.descriptionText }
        set { mutate { $0.descriptionText = newValue } }
    }
    /// The unit the point belongs to.
    public var unitID: UInt8 {
        get { storage.fields.unitID }
        set { mutate { $0.unitID = newValue } }
    }
    /// The Modbus area.
    public var area: ModbusArea {
        get { storage.fields.area }
        set { mutate { $0.area = newValue } }
    }
    /// The 0-based protocol address of the first register (or bit).
    public var address: UInt16 {
        get { storage.fields.address }
        set { mutate { $0.address = newValue } }
    }
    /// The data type.
    public var type: PointType {
        get { storage.fields.type }
        set { mutate { $0.type = newValue } }
    }
    /// How the bytes of a multi-register value are ordered.
    public var byteOrder: ByteOrder {
        get { storage.fields.byteOrder }
        set { mutate { $0.byteOrder = newValue } }
    }
    /// Registers hold `value × scale + offset` (see ``offset``). Finite and not 0; 1 for
    /// non-numeric types.
    public var scale: Double {
        get { storage.fields.scale }
        set { mutate { $0.scale = newValue } }
    }
    /// Added after scaling, in register units: `register = value × scale + offset`, so
    /// `value = (register − offset) / scale`. Finite; 0 for non-numeric types.
    public var offset: Double {
        get { storage.fields.offset }
        set { mutate { $0.offset = newValue } }
    }
    /// The topic (or topic filter) whose messages carry the point's state; `nil` for a
    /// command-only point, whose reads follow ``onMissing``.
    public var stateTopic: String? {
        get { storage.fields.stateTopic }
        set { mutate { $0.stateTopic = newValue } }
    }
    /// How state messages (and default commands) encode the value.
    public var payload: PayloadFormat {
        get { storage.fields.payload }
        set { mutate { $0.payload = newValue } }
    }
    /// The QoS of the state subscription.
    public var qos: QoSLevel {
        get { storage.fields.qos }
        set { mutate { $0.qos = newValue } }
    }
    /// A value older than this counts as missing; `nil`: values never expire.
    public var maxAge: Duration? {
        get { storage.fields.maxAge }
        set { mutate { $0.maxAge = newValue } }
    }
    /// What a Modbus read gets while the value is missing (never received, or too old).
    public var onMissing: MissingValuePolicy {
        get { storage.fields.onMissing }
        set { mutate { $0.onMissing = newValue } }
    }
    /// How Modbus writes become MQTT commands; `nil` for a read-only point.
    public var command: CommandSettings? {
        get { storage.fields.command }
        set { mutate { $0.command = newValue } }
    }
    /// Where the point was defined (for a template, the template's entry).
    public var location: ConfigurationLocation {
        get { storage.fields.location }
        set { mutate { $0.location = newValue } }
    }
    /// The device the point belongs to (``DeviceConfiguration/name``): its availability governs
    /// the point's freshness and writes. `nil`: none.
    public var device: String? {
        get { storage.fields.device }
        set { mutate { $0.device = newValue } }
    }
    /// The register that reports the point's ``PointQuality`` (`quality:`); `nil`: none.
    public var quality: StatusRegister? {
        get { storage.fields.quality }
        set { mutate { $0.quality = newValue } }
    }
    /// The register that reports the ``LastCommandStatus`` of the point's last write
    /// (`last_command:`, writable points only); `nil`: none.
    public var lastCommand: StatusRegister? {
        get { storage.fields.lastCommand }
        set { mutate { $0.lastCommand = newValue } }
    }
    /// More topics the value arrives on besides ``stateTopic``, added by device profiles (see
    /// ``StateSource``); empty for points written by hand.
    public var additionalStates: [StateSource] {
        get { storage.fields.additionalStates }
        set { mutate { $0.additionalStates = newValue } }
    }
    /// The Sparkplug B metric the value comes from (`metric:`), instead of a state topic; its
    /// writes are DCMD (or NCMD) messages on ``CommandSettings/topic``, confirmed by the DDATA
    /// (NDATA) that reports the written value. `nil`: not a Sparkplug point.
    public var sparkplug: SparkplugMetric? {
        get { storage.fields.sparkplug }
        set { mutate { $0.sparkplug = newValue } }
    }
    /// Creates a point. The loader builds points from files; this initializer serves tests and
    /// programs that build a configuration in code.
    public init(
        name: String,
        descriptionText: String? = nil,
        unitID: UInt8,
        area: ModbusArea,
        address: UInt16,
        type: PointType,
        byteOrder: ByteOrder = .abcd,
        scale: Double = 1,
        offset: Double = 0,
        stateTopic: String? = nil,
        payload: PayloadFormat = .plain,
        qos: QoSLevel = .atLeastOnce,
        maxAge: Duration? = nil,
        onMissing: MissingValuePolicy = .exception(.gatewayTargetDeviceFailedToRespond),
        command: CommandSettings? = nil,
        location: ConfigurationLocation = ConfigurationLocation(file: "", line: 0, column: 0),
        device: String? = nil,
        quality: StatusRegister? = nil,
        lastCommand: StatusRegister? = nil
    ) {
        storage = Storage(
            Fields(
                name: name,
                descriptionText: descriptionText,
                unitID: unitID,
                area: area,
                address: address,
                type: type,
                byteOrder: byteOrder,
                scale: scale,
                offset: offset,
                stateTopic: stateTopic,
                payload: payload,
                qos: qos,
                maxAge: maxAge,
                onMissing: onMissing,
                command: command,
                location: location,
                device: device,
                quality: quality,
                lastCommand: lastCommand
            )
        )
    }

    /// The number of addresses the point occupies (``PointType/registerCount``; 1 for bits).
    public var registerCount: Int { type.registerCount }

    /// The addresses the point occupies, `address ... address + registerCount − 1`.
    public var addressRange: ClosedRange<Int> { Int(address)...(Int(address) + registerCount - 1) }

    /// Whether a Modbus write reaches the point: a writable area and a command topic.
    public var isWritable: Bool { area.isWritable && command != nil }

    /// The bit position for `bit` points, `nil` otherwise.
    public var bitPosition: Int? {
        if case .bit(let position) = type { return position }
        return nil
    }

    /// Whether scale and offset leave values unchanged (scale 1, offset 0).
    public var hasIdentityScaling: Bool { scale == 1 && offset == 0 }
}

/// What a Modbus read of a point answers while its value is missing: never received since the
/// bridge started, or older than ``PointConfiguration/maxAge``.
public enum MissingValuePolicy: Sendable, Hashable, CustomStringConvertible {
    /// Answer with this exception code (0B gateway target device failed to respond by default).
    case exception(ModbusExceptionCode)
    /// Answer with this value, encoded like a received one (validated against the point's type
    /// when the configuration is loaded).
    case substitute(PointValue)

    /// The codes a missing value may be answered with: 02, 04, 06, 0A, 0B.
    public static let allowedExceptionCodes: [ModbusExceptionCode] = [
        .illegalDataAddress, .serverDeviceFailure, .serverDeviceBusy, .gatewayPathUnavailable,
        .gatewayTargetDeviceFailedToRespond,
    ]

    /// `exception 0B` or `value 0`.
    public var description: String {
        switch self {
        case .exception(let code): "exception \(code)"
        case .substitute(let value): "value \(value)"
        }
    }
}

/// How Modbus writes to a point become MQTT commands.
public struct CommandSettings: Sendable, Hashable {
    /// The topic commands are published on (a topic name: no wildcards).
    public var topic: String
    /// The payload template; `nil` publishes the value in the point's payload format (see
    /// ``CommandEncoder``).
    public var template: CommandTemplate?
    /// The QoS of command messages.
    public var qos: QoSLevel
    /// Whether command messages are published retained (`false` by default: a retained command
    /// would be applied again by a device that reconnects).
    public var retain: Bool
    /// How the device's acknowledgement is recognised.
    public var ack: AckSettings
    /// The format of command payloads when it differs from the point's state format (the
    /// `command_payload` key): a Tasmota relay reports `{"POWER":"ON"}` but takes a plain `ON`.
    /// `nil`: commands use ``PointConfiguration/payload``.
    public var payload: PayloadFormat?

    /// Creates command settings.
    public init(
        topic: String,
        template: CommandTemplate? = nil,
        qos: QoSLevel = .atLeastOnce,
        retain: Bool = false,
        ack: AckSettings,
        payload: PayloadFormat? = nil
    ) {
        self.topic = topic
        self.template = template
        self.qos = qos
        self.retain = retain
        self.ack = ack
        self.payload = payload
    }
}

/// How the bridge learns that a device applied a command (docs/design.md §4). The Modbus write is
/// answered only then: acknowledged → normal reply; negative → 04 or the code the ack names;
/// nothing before ``timeout`` → 0B.
public struct AckSettings: Sendable, Hashable {
    /// The acknowledgement protocol.
    public enum Mode: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
        /// MQTT 5 request/response: the command carries Response Topic and Correlation Data; the
        /// device answers on the response topic with the same correlation data. A payload with a
        /// false ``AckSettings/successField`` or an ``AckSettings/errorField`` (or an error user
        /// property) is a negative ack. Needs `protocol: mqtt5`. The default mode.
        case mqtt5
        /// The command payload carries an id (``AckSettings/idField``); the device publishes a
        /// JSON ack on ``AckSettings/responseTopic`` with the same id and a success flag or an
        /// error. For MQTT 3.1.1 devices.
        case correlationID = "correlation_id"
        /// Success when the point's state topic reports the written value (within
        /// ``AckSettings/tolerance``) after the command was sent.
        case stateEcho = "state_echo"
        /// Success once the broker accepted the publish (QoS 1 or 2). The weakest mode: it says
        /// nothing about the device. Never a default; it must be chosen explicitly.
        case broker

        /// The configuration name: `mqtt5`, `correlation_id`, `state_echo`, `broker`.
        public var description: String { rawValue }
    }

    /// The acknowledgement protocol.
    public var mode: Mode
    /// How long the Modbus reply waits for the ack before answering 0B.
    public var timeout: Duration
    /// `mqtt5`: the Response Topic sent with commands (default `<command topic>/response`).
    /// `correlation_id`: the topic (or filter) acks arrive on (required). `nil` for the other modes.
    public var responseTopic: String?
    /// `correlation_id`: where the id sits in the command and the ack payload (default `id`).
    public var idField: JSONPath
    /// `mqtt5` and `correlation_id`: a boolean field of the ack; `false` is a negative ack.
    /// When absent, the ack is a success unless ``errorField`` is present (default `ok`).
    public var successField: JSONPath
    /// `mqtt5` and `correlation_id`: the text of a negative ack (default `error`); its presence
    /// alone makes the ack negative.
    public var errorField: JSONPath
    /// `mqtt5` and `correlation_id`: an optional Modbus exception code (a number, e.g. 6) named by
    /// a negative ack and put on the wire instead of 04 (default `code`).
    public var codeField: JSONPath
    /// `state_echo`: the largest difference between the reported and the written value that still
    /// counts as the same. 0 (the default) compares the register images: the value reported must
    /// encode to exactly the registers written, which for scaled points allows half a scale step.
    public var tolerance: Double

    /// Default field names: `id`, `ok`, `error`, `code`.
    public static let defaultIDField = JSONPath([.key("id")])
    /// Default success field: `ok`.
    public static let defaultSuccessField = JSONPath([.key("ok")])
    /// Default error field: `error`.
    public static let defaultErrorField = JSONPath([.key("error")])
    /// Default code field: `code`.
    public static let defaultCodeField = JSONPath([.key("code")])
    /// Default timeout: 5 s.
    public static let defaultTimeout: Duration = .seconds(5)

    /// Creates ack settings.
    public init(
        mode: Mode,
        timeout: Duration = Self.defaultTimeout,
        responseTopic: String? = nil,
        idField: JSONPath = Self.defaultIDField,
        successField: JSONPath = Self.defaultSuccessField,
        errorField: JSONPath = Self.defaultErrorField,
        codeField: JSONPath = Self.defaultCodeField,
        tolerance: Double = 0
    ) {
        self.mode = mode
        self.timeout = timeout
        self.responseTopic = responseTopic
        self.idField = idField
        self.successField = successField
        self.errorField = errorField
        self.codeField = codeField
        self.tolerance = tolerance
    }
}
