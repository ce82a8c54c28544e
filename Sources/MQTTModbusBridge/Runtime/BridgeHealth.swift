import MQTTModbusBridgeConfiguration

/// What the bridge reports about itself on `GET /health`, the liveness check.
///
/// Liveness only asks whether the process serves, so `/health` answers 200 whenever it answers
/// at all; restarting a bridge because its broker is down would not bring the broker back. The
/// body says more, for people and monitoring: ``isHealthy`` (`"status":"ok"` or `"degraded"`)
/// is true when the Modbus listener is up and the broker connected. While the broker is
/// unreachable the bridge keeps serving (reads follow each point's staleness policy, writes
/// answer 0A). Whether it should receive traffic is ``BridgeReadiness`` (`GET /ready`), which
/// also waits for every subscription to be acknowledged.
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

    /// Whether the bridge serves live data: listener up and broker connected (not whether it is
    /// subscribed to everything yet: that is ``BridgeReadiness``).
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
