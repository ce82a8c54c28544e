import Foundation
import Logging
import MQTTModbusBridgeConfiguration

/// How a device family speaks MQTT, without any I/O: which topics it listens on, what it
/// publishes by itself, and how it answers what arrives. One type per profile (Tasmota,
/// zigbee2mqtt, Shelly Gen2); ``ProfileDeviceConnection`` does the talking.
protocol DeviceConvention: Sendable {
    /// A message the device understood.
    associatedtype Request: Sendable

    /// The device.
    var device: DeviceConfiguration { get }
    /// The device's points.
    var points: [PointConfiguration] { get }
    /// Where the device takes commands and queries.
    var requestTopics: [String] { get }

    /// Reads a message on one of ``requestTopics``; `nil`: the device would ignore it.
    func request(topic: String, payload: [UInt8]) -> Request?
    /// What the request would change (empty for a query); for the log, the ack delay and the
    /// fault switches.
    func changes(in request: Request, values: [String: PointValue]) -> [PointChange]
    /// Answers the request as the device does: applies what `behaviour` lets through and returns
    /// what the device publishes.
    func answer(
        _ request: Request,
        behaviour: (String) -> DeviceSimulator.AckBehaviour,
        values: inout [String: PointValue],
        now: Date
    ) -> [Publication]
    /// What the device publishes by itself: after connecting, and at every telemetry tick.
    func report(_ occasion: ReportOccasion, values: [String: PointValue], now: Date) -> [Publication]
}

/// When a device reports without being asked.
enum ReportOccasion: Sendable, Hashable {
    /// Just connected: everything it knows.
    case connected
    /// A telemetry tick: its periodic messages.
    case periodic
}

extension DeviceConvention {
    /// The JSON document of the points that share a topic, each at its path (booleans in the
    /// point's own words), added to `document` in the points' order. A point without a value
    /// yet is left out.
    static func document(
        _ document: JSONValue = .object([]),
        of points: [PointConfiguration],
        values: [String: PointValue]
    ) -> JSONValue {
        var document = document
        for point in points {
            guard let value = values[point.name], let path = point.payload.jsonPath,
                let field = try? DeviceSimulator.stateField(of: point, value: value)
            else { continue }
            _ = document.set(field, at: path.components[...])
        }
        return document
    }

    /// State messages of points the convention does not recognise (a state topic written over
    /// the profile's), published as for a device described by hand, one per topic.
    static func plainStates(of points: [PointConfiguration], values: [String: PointValue]) -> [Publication] {
        var seen: Set<String> = []
        var publications: [Publication] = []
        for point in points {
            guard let topic = point.stateTopic, !MQTTTopicRules.isWildcardFilter(topic), seen.insert(topic).inserted
            else { continue }
            let sharing = points.filter { $0.stateTopic == topic }
            guard let payload = try? DeviceSimulator.statePayload(of: point, sharing: sharing, values: values) else {
                continue
            }
            publications.append(Publication(topic: topic, payload: payload))
        }
        return publications
    }
}

/// The conventions of the devices of `configuration` that have a profile.
enum DeviceConventions {
    /// A connection per profile device, speaking its convention.
    static func connections(
        for configuration: BridgeConfiguration,
        options: DeviceSimulator.Options,
        values: SimulatedValues,
        logger: Logger
    ) throws -> [any SimulatedConnection] {
        var connections: [any SimulatedConnection] = []
        for device in configuration.devices {
            guard let identity = device.profile?.identity else { continue }
            let points = configuration.points.filter { $0.device == device.name }
            let convention: any DeviceConvention =
                switch identity {
                case .tasmota(let topic, let fullTopic):
                    TasmotaConvention(device: device, points: points, topic: topic, fullTopic: fullTopic)
                case .zigbee2mqtt(let baseTopic, let friendlyName):
                    Zigbee2MQTTConvention(device: device, points: points, stateTopic: "\(baseTopic)/\(friendlyName)")
                case .shellyGen2(let topicPrefix, let rpcSource):
                    ShellyGen2Convention(device: device, points: points, prefix: topicPrefix, source: rpcSource)
                }
            connections.append(
                try connection(
                    convention,
                    broker: configuration.broker,
                    options: options,
                    values: values,
                    logger: logger
                )
            )
        }
        return connections
    }

    private static func connection<Convention: DeviceConvention>(
        _ convention: Convention,
        broker: BrokerSettings,
        options: DeviceSimulator.Options,
        values: SimulatedValues,
        logger: Logger
    ) throws -> any SimulatedConnection {
        try ProfileDeviceConnection(
            convention: convention,
            broker: broker,
            options: options,
            values: values,
            logger: logger
        )
    }

    /// The names of the devices whose points a profile connection speaks for.
    static func profileDevices(of configuration: BridgeConfiguration) -> Set<String> {
        Set(configuration.devices.filter { $0.profile?.identity != nil }.map(\.name))
    }
}
