import MQTTModbusBridgeConfiguration

/// What a health check of the bridge reports: whether it can do its job right now.
///
/// The bridge is healthy when its Modbus listener is up and it is connected to the broker. While
/// the broker is unreachable it keeps serving (reads follow each point's staleness policy, writes
/// answer 0A), but it reports itself unhealthy so that an orchestrator or a monitoring system can
/// see it.
public struct BridgeHealth: Sendable, Hashable {
    /// The MQTT connection: `connected`, `connecting` or `disconnected`.
    public var mqtt: String
    /// Whether the Modbus TCP listener accepts connections.
    public var modbusListening: Bool
    /// Modbus TCP connections open now.
    public var modbusConnections: Int
    /// Modbus writes waiting for their device's acknowledgement.
    public var writesInFlight: Int
    /// State payloads that could not be decoded since start.
    public var payloadDecodeFailures: Int

    /// Whether the bridge serves live data: listener up and broker connected.
    public var isHealthy: Bool { modbusListening && mqtt == "connected" }

    /// The report as a JSON object, as `/health` serves it.
    public var json: String {
        """
        {"status":"\(isHealthy ? "ok" : "degraded")","mqtt":"\(mqtt)","modbus_listening":\(modbusListening),\
        "modbus_connections":\(modbusConnections),"writes_in_flight":\(writesInFlight),\
        "payload_decode_failures":\(payloadDecodeFailures)}
        """
    }
}
