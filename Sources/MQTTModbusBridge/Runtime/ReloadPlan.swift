import MQTTModbusBridgeConfiguration

/// What replacing the running configuration with a new one changes, worked out before anything
/// is touched: pure, so every rule is tested without a broker.
///
/// Live: units, points, devices, defaults, the write limits, and of `modbus.tls` the
/// certificate, key and CA files (read again on every reload) and the role map. At start only
/// (refused, the running configuration is kept): the Modbus listeners' addresses, limits and
/// access rules (the TLS listener's host, port and handshake timeout, and whether each
/// listener runs), and everything of the broker connection (address, identity, credentials,
/// TLS, session, status topic).
struct ReloadPlan: Sendable {
    /// Where a point of the new map takes its cached value from.
    enum PointCarry: Sendable, Hashable {
        /// The same point (its configuration unchanged): words, times and last command, as
        /// they are.
        case keep(Int)
        /// The same point, on the same topic read the same way, but stored differently (scale,
        /// type, address, byte order ...): its value, re-encoded.
        case convert(Int)
        /// A new point, or one whose payload now means something else: no value until a message.
        case none
    }

    /// Settings that changed but apply only at start, each a sentence; any refuses the reload.
    var refusals: [String]
    /// For each point of the new map.
    var points: [PointCarry]
    /// For each device of the new map, the old device whose state it keeps.
    var devices: [Int?]
    /// Filters to subscribe to: new ones, ones whose QoS changed, and kept ones that carry a
    /// point without a value (subscribing again makes the broker send their retained message).
    var subscribe: [MessageRoutes.Subscription]
    /// Devices to ask for their state once the new subscriptions are in place: new ones, and
    /// changed ones, that have a refresh command.
    var refreshDevices: Set<String>
    /// Filters no point, ack or device of the new map uses.
    var unsubscribe: [String]
    var summary: ReloadSummary

    init(from old: BridgeTopicMap, to new: BridgeTopicMap) {
        refusals = Self.refusals(old.configuration, new.configuration)
        var summary = ReloadSummary()
        var points: [PointCarry] = []
        var refetch: Set<String> = []
        for point in new.map.points {
            guard let oldIndex = old.indexByName[point.name] else {
                summary.pointsAdded += 1
                points.append(.none)
                if let topic = point.stateTopic { refetch.insert(topic) }
                for source in point.additionalStates { refetch.insert(source.topic) }
                continue
            }
            let previous = old.map.points[oldIndex]
            if previous.ignoringLocation == point.ignoringLocation {
                summary.pointsUnchanged += 1
                points.append(.keep(oldIndex))
            } else if previous.stateTopic == point.stateTopic && previous.payload == point.payload
                && previous.additionalStates == point.additionalStates
            {
                summary.pointsChanged += 1
                points.append(.convert(oldIndex))
            } else {
                summary.pointsChanged += 1
                points.append(.none)
                if let topic = point.stateTopic { refetch.insert(topic) }
                for source in point.additionalStates { refetch.insert(source.topic) }
            }
        }
        summary.pointsRemoved = old.map.points.count - summary.pointsUnchanged - summary.pointsChanged
        self.points = points

        let oldDevices = Dictionary(
            old.map.devices.enumerated().map { ($1.name, $0) },
            uniquingKeysWith: { first, _ in first }
        )
        refreshDevices = Set(
            new.map.devices.filter { device in
                !device.refresh.isEmpty
                    && oldDevices[device.name].map { old.map.devices[$0].ignoringLocation != device.ignoringLocation }
                        ?? true
            }.map(\.name)
        )
        devices = new.map.devices.map { device in
            guard let index = oldDevices[device.name],
                old.map.devices[index].availability == device.availability,
                old.map.devices[index].silence == device.silence
            else { return nil }
            return index
        }

        let oldUnits = old.configuration.unitIDs
        let newUnits = new.configuration.unitIDs
        summary.unitsAdded = newUnits.subtracting(oldUnits).count
        summary.unitsRemoved = oldUnits.subtracting(newUnits).count

        let oldFilters = Dictionary(
            old.routes.subscriptions.map { ($0.topic, $0.qos) },
            uniquingKeysWith: { first, _ in first }
        )
        let newFilters = Set(new.routes.subscriptions.map(\.topic))
        subscribe = new.routes.subscriptions.filter { subscription in
            oldFilters[subscription.topic] != subscription.qos || refetch.contains(subscription.topic)
        }
        unsubscribe = old.routes.subscriptions.map(\.topic).filter { !newFilters.contains($0) }
        summary.subscriptionsAdded = subscribe.filter { oldFilters[$0.topic] == nil }.count
        summary.subscriptionsRemoved = unsubscribe.count
        self.summary = summary
    }

    /// The settings that differ but cannot change while the bridge runs.
    static func refusals(_ old: BridgeConfiguration, _ new: BridgeConfiguration) -> [String] {
        var refusals: [String] = []
        func atStart<T: Equatable>(_ key: String, _ before: T, _ after: T, _ why: String) {
            guard before != after else { return }
            refusals.append("\(key) changed (\(before) → \(after)): \(why); restart the bridge to change it")
        }
        func secret<T: Equatable>(_ key: String, _ before: T, _ after: T, _ why: String) {
            guard before != after else { return }
            refusals.append("\(key) changed: \(why); restart the bridge to change it")
        }
        let listener = "the Modbus listener is set up once, at start"
        atStart("modbus.host", old.modbus.host, new.modbus.host, listener)
        atStart("modbus.port", old.modbus.port, new.modbus.port, listener)
        atStart("modbus.max_connections", old.modbus.maxConnections, new.modbus.maxConnections, listener)
        atStart(
            "modbus.connection_limit_policy",
            old.modbus.connectionLimitPolicy.rawValue,
            new.modbus.connectionLimitPolicy.rawValue,
            listener
        )
        atStart(
            "modbus.idle_timeout",
            old.modbus.idleTimeout.map(DurationSyntax.format) ?? "none",
            new.modbus.idleTimeout.map(DurationSyntax.format) ?? "none",
            listener
        )
        atStart(
            "modbus.max_queued_requests",
            old.modbus.maxQueuedRequestsPerConnection,
            new.modbus.maxQueuedRequestsPerConnection,
            listener
        )
        atStart(
            "modbus.shutdown_grace_period",
            DurationSyntax.format(old.modbus.shutdownGracePeriod),
            DurationSyntax.format(new.modbus.shutdownGracePeriod),
            listener
        )
        secret(
            "modbus.device_identification",
            old.modbus.deviceIdentification,
            new.modbus.deviceIdentification,
            listener
        )
        atStart(
            "modbus.allowed_clients",
            old.modbus.allowedClients.map { $0.map(\.description).joined(separator: ", ") } ?? "every address",
            new.modbus.allowedClients.map { $0.map(\.description).joined(separator: ", ") } ?? "every address",
            listener
        )
        atStart("modbus.read_only", old.modbus.readOnly, new.modbus.readOnly, listener)
        atStart(
            "modbus.event_loop_threads",
            old.modbus.eventLoopThreads.map(String.init) ?? "one per usable CPU",
            new.modbus.eventLoopThreads.map(String.init) ?? "one per usable CPU",
            "the Modbus server's threads are started once, at start"
        )
        atStart("modbus.plain_listener", old.modbus.plainListener, new.modbus.plainListener, listener)
        switch (old.modbus.tls, new.modbus.tls) {
        case (nil, nil):
            break
        case (nil, .some):
            refusals.append("modbus.tls added: \(listener); restart the bridge to start the TLS listener")
        case (.some, nil):
            refusals.append("modbus.tls removed: \(listener); restart the bridge to stop the TLS listener")
        case (.some(let before), .some(let after)):
            // Live: the certificate, key and CA files (read again on every reload), the roles
            // and the default role. The socket is not.
            atStart(
                "modbus.tls.host",
                before.host ?? old.modbus.host,
                after.host ?? new.modbus.host,
                listener
            )
            atStart("modbus.tls.port", before.port, after.port, listener)
            atStart(
                "modbus.tls.handshake_timeout",
                DurationSyntax.format(before.handshakeTimeout),
                DurationSyntax.format(after.handshakeTimeout),
                listener
            )
        }
        // Anything else of the modbus section the fields above do not name: the live ones
        // (the unknown-unit answer, the write limit, the TLS files and roles) are set equal first.
        var oldListener = old.modbus
        oldListener.unknownUnit = new.modbus.unknownUnit
        oldListener.maxWritesInFlight = new.modbus.maxWritesInFlight
        // modbus.tls: its socket settings are named above; its files and roles are live.
        oldListener.tls = new.modbus.tls
        if refusals.isEmpty && oldListener != new.modbus {
            refusals.append("modbus settings changed: \(listener); restart the bridge to change them")
        }
        let connection = "the broker connection is made once, at start"
        let (before, after) = (old.broker, new.broker)
        atStart("broker.host", before.host, after.host, connection)
        atStart("broker.port", before.port, after.port, connection)
        atStart("broker.client_id", before.clientID, after.clientID, connection)
        atStart("broker.protocol", before.protocolVersion.rawValue, after.protocolVersion.rawValue, connection)
        atStart("broker.clean_session", before.cleanSession, after.cleanSession, connection)
        secret("broker.session_expiry", before.sessionExpiry, after.sessionExpiry, connection)
        secret("broker.keepalive", before.keepAlive, after.keepAlive, connection)
        // Never in a message: a user name can be a secret too.
        secret("broker.username", before.username, after.username, connection)
        secret("broker.password", before.password, after.password, connection)
        secret("broker.tls", before.tls, after.tls, connection)
        atStart("broker.status_topic", before.statusTopic, after.statusTopic, connection)
        secret("broker.reconnect", before.reconnect, after.reconnect, connection)
        secret("broker.connect_timeout", before.connectTimeout, after.connectTimeout, connection)
        // Anything else of the broker section the fields above do not name.
        if refusals.isEmpty && before != after {
            refusals.append("broker settings changed: \(connection); restart the bridge to change them")
        }
        return refusals
    }
}

/// What a reload changed, for its log line.
public struct ReloadSummary: Sendable, Hashable, CustomStringConvertible {
    public var pointsAdded = 0
    public var pointsRemoved = 0
    /// Points whose definition changed (a changed scale keeps the value, re-encoded; a changed
    /// topic or payload format waits for a new message).
    public var pointsChanged = 0
    public var pointsUnchanged = 0
    public var unitsAdded = 0
    public var unitsRemoved = 0
    public var subscriptionsAdded = 0
    public var subscriptionsRemoved = 0

    /// A summary with every count given.
    public init(
        pointsAdded: Int = 0,
        pointsRemoved: Int = 0,
        pointsChanged: Int = 0,
        pointsUnchanged: Int = 0,
        unitsAdded: Int = 0,
        unitsRemoved: Int = 0,
        subscriptionsAdded: Int = 0,
        subscriptionsRemoved: Int = 0
    ) {
        self.pointsAdded = pointsAdded
        self.pointsRemoved = pointsRemoved
        self.pointsChanged = pointsChanged
        self.pointsUnchanged = pointsUnchanged
        self.unitsAdded = unitsAdded
        self.unitsRemoved = unitsRemoved
        self.subscriptionsAdded = subscriptionsAdded
        self.subscriptionsRemoved = subscriptionsRemoved
    }

    public var description: String {
        "points: \(pointsAdded) added, \(pointsRemoved) removed, \(pointsChanged) changed, \(pointsUnchanged) unchanged; "
            + "units: \(unitsAdded) added, \(unitsRemoved) removed; "
            + "subscriptions: \(subscriptionsAdded) added, \(subscriptionsRemoved) removed"
    }
}

/// A reload that was not applied; the running configuration stays in force.
public struct ReloadRefusal: Error, Sendable, CustomStringConvertible {
    /// One sentence per reason (a setting that applies only at start, or a configuration error
    /// with its file and line).
    public var reasons: [String]

    public var description: String {
        "configuration not reloaded, the running one is kept:\n" + reasons.map { "  - \($0)" }.joined(separator: "\n")
    }
}
