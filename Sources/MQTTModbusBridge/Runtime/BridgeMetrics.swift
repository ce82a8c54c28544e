import MQTTModbusBridgeConfiguration
import Metrics
import ModbusCore
import Synchronization

/// The bridge's counters, reported through swift-metrics (a no-op unless the program
/// bootstraps a metrics backend, such as Prometheus).
final class BridgeMetrics: Sendable {
    /// MQTT messages received.
    let messagesReceived = Counter(label: "bridge_mqtt_messages_received_total")
    /// State payloads that could not be decoded (the point kept its last good value).
    let decodeFailures = Counter(label: "bridge_payload_decode_failures_total")
    /// Acknowledgements that arrived after their write had ended, or that nobody waited for.
    let lateAcks = Counter(label: "bridge_late_acks_total")
    /// How many times the MQTT connection came up.
    let connections = ConnectionCounter()
    /// 1 while connected to the broker, else 0.
    let mqttConnected = Gauge(label: "bridge_mqtt_connected")
    /// Modbus writes waiting for acknowledgements.
    let writesInFlight = Gauge(label: "bridge_writes_in_flight")

    private let writesOK = Counter(label: "bridge_modbus_writes_total", dimensions: [("outcome", "ok")])
    private let writeFailures: [UInt8: Counter] = Dictionary(
        uniqueKeysWithValues: [UInt8(0x02), 0x03, 0x04, 0x06, 0x0A, 0x0B].map {
            (
                $0,
                Counter(
                    label: "bridge_modbus_writes_total",
                    dimensions: [("outcome", "exception_\(BridgeMetrics.hex($0))")]
                )
            )
        }
    )
    private let otherFailures = Counter(
        label: "bridge_modbus_writes_total",
        dimensions: [("outcome", "exception_other")]
    )

    init() {
        // Reported from the start, not only after the first change.
        mqttConnected.record(0)
        writesInFlight.record(0)
    }

    /// `0A` for 10: exception codes as the Modbus documents write them.
    private static func hex(_ code: UInt8) -> String {
        let digits = String(code, radix: 16, uppercase: true)
        return digits.count == 1 ? "0" + digits : digits
    }

    /// The counter of writes that ended with `code` (`nil`: success).
    func writes(_ code: ModbusExceptionCode?) -> Counter {
        guard let code else { return writesOK }
        return writeFailures[code.rawValue] ?? otherFailures
    }

    final class ConnectionCounter: Sendable {
        private let count = Atomic<Int>(0)
        private let counter = Counter(label: "bridge_mqtt_connections_total")
        func incrementAndGet() -> Int {
            counter.increment()
            return count.add(1, ordering: .relaxed).newValue
        }
    }
}
