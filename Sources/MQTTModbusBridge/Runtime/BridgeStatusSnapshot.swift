import Foundation
import MQTTModbusBridgeConfiguration
import ModbusCore
import ModbusTCPServer

/// What the bridge is doing now, for a commissioning page: every point with its value and
/// freshness, the last write of each writable point, the Modbus connections and the broker.
///
/// A copy taken at one moment (``MQTTModbusBridgeService/statusSnapshot()``); it encodes as the
/// JSON that `GET /api/points` and `GET /api/connections` serve (keys in snake case).
public struct BridgeStatusSnapshot: Sendable, Hashable, Codable {
    /// When the snapshot was taken (wall clock, for display).
    public var takenAt: Date
    /// The MQTT side.
    public var broker: BrokerStatus
    /// The Modbus side.
    public var modbus: ModbusListenerStatus
    /// Every point, in unit, area and address order.
    public var points: [PointStatus]
    /// The open Modbus TCP connections, longest open first.
    public var connections: [ConnectionStatus]

    /// The broker connection.
    public struct BrokerStatus: Sendable, Hashable, Codable {
        public var host: String
        public var port: Int
        public var clientID: String
        /// The command connection's client id (`broker.command_connection: separate`), or
        /// `nil` when commands share the main connection.
        public var commandClientID: String?
        /// `connected`, `connecting` or `disconnected`; with a command connection, the one of
        /// the two further from connected.
        public var state: String
    }

    /// The Modbus TCP listener.
    public struct ModbusListenerStatus: Sendable, Hashable, Codable {
        public var host: String
        public var port: Int
        public var listening: Bool
        public var connections: Int
        public var writesInFlight: Int
    }

    /// One point of the topic map, with what the cache holds for it.
    public struct PointStatus: Sendable, Hashable, Codable {
        public var unit: UInt8
        public var name: String
        /// The configuration's area name: `coil`, `discrete_input`, `input_register`,
        /// `holding_register`.
        public var area: String
        /// The 0-based address on the wire.
        public var address: UInt16
        /// The 1-based Modicon reference (`400001` is holding register 0).
        public var reference: String
        /// The data type as configured (`float32`, `string(8)`, `bit(3)` …).
        public var type: String
        public var registerCount: Int
        public var stateTopic: String?
        public var commandTopic: String?
        public var device: String?
        /// The last value received, decoded as a read encodes it (`nil`: none yet).
        public var value: String?
        /// The registers of that value, as stored.
        public var registers: [UInt16]
        /// Seconds since that value arrived.
        public var ageSeconds: Double?
        /// Whether a read serves it now.
        public var freshness: PointFreshness
        /// The point's last write, if it is writable and was written since start.
        public var lastWrite: WriteStatus?
    }

    /// How a point's last write ended.
    public struct WriteStatus: Sendable, Hashable, Codable {
        /// The value written.
        public var value: String
        /// `ok`, `refused`, `timeout` or `broker_unavailable`.
        public var outcome: String
        /// The Modbus exception answered (e.g. 11 for 0B); `nil` when it succeeded.
        public var exceptionCode: UInt8?
        /// Why it failed, in words; `nil` when it succeeded.
        public var reason: String?
        /// From the Modbus request to its outcome, in milliseconds: the acknowledgement latency.
        public var latencyMilliseconds: Double
        /// Seconds since it ended.
        public var secondsAgo: Double
    }

    /// One Modbus TCP connection.
    public struct ConnectionStatus: Sendable, Hashable, Codable {
        public var peer: String
        public var connectedSeconds: Double
        public var requests: Int
        /// Seconds since the last request was received or answered; `nil` before the first.
        public var secondsSinceLastRequest: Double?
    }
}

extension MQTTModbusBridgeService {
    /// Everything the status page shows, taken now. Costs one cache lock per point: meant for
    /// a page refreshed every few seconds, not for every Modbus request.
    public func statusSnapshot() -> BridgeStatusSnapshot {
        let health = self.health
        let now = PointCache.now()
        let writes = self.writes.lastWrites.all
        let clock = ContinuousClock.now
        let topics = self.topics.current
        let configuration = topics.configuration
        let map = topics.map
        let cache = topics.cache
        let points = map.points.indices.map { index -> BridgeStatusSnapshot.PointStatus in
            let point = map.points[index]
            let cached = cache.status(of: index, at: now)
            return BridgeStatusSnapshot.PointStatus(
                unit: point.unitID,
                name: point.name,
                area: point.area.configurationName,
                address: point.address,
                reference: point.area.modiconReference(point.address),
                type: "\(point.type)",
                registerCount: point.registerCount,
                stateTopic: point.stateTopic,
                commandTopic: point.command?.topic,
                device: point.device,
                value: Self.displayValue(of: point, registers: cached.registers),
                registers: cached.registers,
                ageSeconds: cached.age.map(\.seconds),
                freshness: cached.freshness,
                lastWrite: writes[point.name].map { Self.writeStatus($0, now: clock) }
            )
        }
        return BridgeStatusSnapshot(
            takenAt: Date(),
            broker: .init(
                host: configuration.broker.host,
                port: configuration.broker.port,
                clientID: configuration.broker.clientID,
                commandClientID: commandClient == nil ? nil : configuration.broker.commandClientID,
                state: health.mqtt
            ),
            modbus: .init(
                host: configuration.modbus.host,
                port: modbusPort ?? configuration.modbus.port,
                listening: health.modbusListening,
                connections: health.modbusConnections,
                writesInFlight: health.writesInFlight
            ),
            points: points,
            connections: listeners.flatMap(\.connections).map { connection in
                .init(
                    peer: connection.peer,
                    connectedSeconds: connection.connectedFor.seconds,
                    requests: connection.requests,
                    secondsSinceLastRequest: connection.sinceLastRequest?.seconds
                )
            }
        )
    }

    /// The stored registers decoded back to the point's value (bit points store 0 or 1).
    private static func displayValue(of point: PointConfiguration, registers: [UInt16]) -> String? {
        guard let first = registers.first else { return nil }
        if case .bit = point.type { return first != 0 ? "true" : "false" }
        return (try? RegisterDecoder(point: point).decode(registers)).map { "\($0)" }
    }

    private static func writeStatus(
        _ entry: LastWriteLog.Entry,
        now: ContinuousClock.Instant
    ) -> BridgeStatusSnapshot.WriteStatus {
        let outcome: String
        let reason: String?
        switch entry.outcome {
        case .acknowledged: (outcome, reason) = ("ok", nil)
        case .rejected(_, let why): (outcome, reason) = ("refused", why)
        case .timedOut: (outcome, reason) = ("timeout", "no acknowledgement before the ack timeout")
        case .brokerUnavailable(let why): (outcome, reason) = ("broker_unavailable", why)
        }
        return BridgeStatusSnapshot.WriteStatus(
            value: "\(entry.value)",
            outcome: outcome,
            exceptionCode: entry.outcome.exceptionCode?.rawValue,
            reason: reason,
            latencyMilliseconds: entry.latency.seconds * 1000,
            secondsAgo: entry.finishedAt.duration(to: now).seconds
        )
    }
}

extension Duration {
    /// The duration in seconds, as a `Double`.
    fileprivate var seconds: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }
}
