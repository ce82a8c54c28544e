/// The whole bridge configuration: the broker, the Modbus listener and the topic map (units and
/// their points), every default applied and every template expanded.
///
/// Build one from a YAML file with ``load(path:)`` or from text with ``parse(yaml:file:)``; both
/// validate everything and report all problems at once as ``ConfigurationErrors``. The format is
/// described in `examples/CONFIGURATION.md`.
public struct BridgeConfiguration: Sendable, Hashable {
    /// The MQTT connection.
    public var broker: BrokerSettings
    /// The Modbus TCP listener.
    public var modbus: ModbusListenerSettings
    /// The units served, in file order, each with its points.
    public var units: [UnitConfiguration]
    /// The devices points belong to (``PointConfiguration/device``), in file order.
    public var devices: [DeviceConfiguration]
    /// Problems that do not stop the bridge but are probably mistakes (for example an empty topic
    /// level or certificate verification switched off), each with severity
    /// ``ConfigurationError/Severity/warning``.
    public var warnings: [ConfigurationError]
    /// Points that nothing can make stale: neither a `max_age` nor a device that watches its
    /// availability, so a dead device's last value would be served for ever. Reported by
    /// `validate` and logged by `run` as warnings; kept apart from ``warnings`` so that a
    /// program can tell "probably a mistake" from "a policy to confirm".
    public var freshnessWarnings: [ConfigurationError]
    /// The bridge's role in Sparkplug B (the `sparkplug:` section): a listener by default, or a
    /// host application that publishes its STATE and requests rebirths.
    public var sparkplug: SparkplugHostSettings = SparkplugHostSettings()

    /// Creates a configuration in code. It is not validated: prefer ``parse(yaml:file:)``.
    public init(
        broker: BrokerSettings = BrokerSettings(),
        modbus: ModbusListenerSettings = ModbusListenerSettings(),
        units: [UnitConfiguration],
        devices: [DeviceConfiguration] = [],
        warnings: [ConfigurationError] = [],
        freshnessWarnings: [ConfigurationError] = []
    ) {
        self.broker = broker
        self.modbus = modbus
        self.units = units
        self.devices = devices
        self.warnings = warnings
        self.freshnessWarnings = freshnessWarnings
    }

    /// The device with this name.
    public func device(named name: String) -> DeviceConfiguration? { devices.first { $0.name == name } }

    /// Every point of every unit, in file order.
    public var points: [PointConfiguration] { units.flatMap(\.points) }

    /// The unit with this id.
    public func unit(id: UInt8) -> UnitConfiguration? { units.first { $0.id == id } }

    /// The point with this name.
    public func point(named name: String) -> PointConfiguration? {
        for unit in units { if let point = unit.points.first(where: { $0.name == name }) { return point } }
        return nil
    }

    /// The unit ids the bridge answers: every unit's id and its aliases. Requests for the others
    /// are answered as ``ModbusListenerSettings/unknownUnit`` says.
    public var unitIDs: Set<UInt8> { Set(units.flatMap(\.answeredIDs)) }
}
