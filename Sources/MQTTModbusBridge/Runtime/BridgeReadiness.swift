/// Whether the bridge is ready for traffic: whether a Modbus master reading it now sees values
/// that follow the plant, and whether a message a device publishes now reaches the cache.
///
/// Three facts must hold together: the broker is connected, every subscription of the
/// configuration has been acknowledged by the broker (SUBACK) on the current connection, and
/// the Modbus listener is up. Between the connection and the last SUBACK (about 1.5 s for
/// 10,000 topics subscribed one by one) the broker does not yet route every topic to the
/// bridge: a message published then is lost for good unless it is retained. The same window
/// opens after every reconnection.
///
/// A plain value with no HTTP in it: `GET /ready` of ``StatusEndpoint`` serves ``json`` with
/// 200 or 503 by ``isReady``, and the same facts are Prometheus gauges (`bridge_ready`,
/// `bridge_mqtt_connected`, `bridge_mqtt_subscriptions_pending`, `bridge_modbus_listening`).
public struct BridgeReadiness: Sendable, Hashable {
    /// Whether the MQTT connection is up (after a reconnection: and the client restored its
    /// subscriptions).
    public var brokerConnected: Bool
    /// Distinct topic filters the configuration subscribes to.
    public var subscriptionsConfigured: Int
    /// Of those, the ones the broker acknowledged on the current connection.
    public var subscriptionsAcknowledged: Int
    /// Whether the Modbus TCP listener accepts connections.
    public var modbusListening: Bool

    /// A readiness report.
    public init(
        brokerConnected: Bool,
        subscriptionsConfigured: Int,
        subscriptionsAcknowledged: Int,
        modbusListening: Bool
    ) {
        self.brokerConnected = brokerConnected
        self.subscriptionsConfigured = subscriptionsConfigured
        self.subscriptionsAcknowledged = subscriptionsAcknowledged
        self.modbusListening = modbusListening
    }

    /// Subscriptions not acknowledged yet (all of them while the broker is not connected).
    public var subscriptionsPending: Int {
        brokerConnected ? max(0, subscriptionsConfigured - subscriptionsAcknowledged) : subscriptionsConfigured
    }

    /// One of the conditions of readiness.
    public enum Condition: String, Sendable, Hashable, CaseIterable {
        /// The MQTT connection is not up.
        case brokerNotConnected = "broker_not_connected"
        /// Some subscriptions have no SUBACK on the current connection.
        case subscriptionsPending = "subscriptions_pending"
        /// The Modbus listener is not accepting connections.
        case modbusNotListening = "modbus_not_listening"
    }

    /// The conditions that fail now, in a fixed order; empty when ready.
    public var failing: [Condition] {
        var failing: [Condition] = []
        if !brokerConnected { failing.append(.brokerNotConnected) }
        if subscriptionsPending > 0 { failing.append(.subscriptionsPending) }
        if !modbusListening { failing.append(.modbusNotListening) }
        return failing
    }

    /// Whether the bridge is ready: nothing fails.
    public var isReady: Bool { failing.isEmpty }

    /// The report as a JSON object, as `/ready` serves it, for example
    /// `{"status":"not_ready","failing":["subscriptions_pending"],"broker_connected":true,
    /// "subscriptions":{"configured":10000,"acknowledged":9000,"pending":1000},"modbus_listening":true}`.
    public var json: String {
        let failing = self.failing.map { "\"\($0.rawValue)\"" }.joined(separator: ",")
        return """
            {"status":"\(isReady ? "ready" : "not_ready")","failing":[\(failing)],\
            "broker_connected":\(brokerConnected),"subscriptions":{"configured":\(subscriptionsConfigured),\
            "acknowledged":\(brokerConnected ? min(subscriptionsAcknowledged, subscriptionsConfigured) : 0),\
            "pending":\(subscriptionsPending)},"modbus_listening":\(modbusListening)}
            """
    }
}
