import MQTTModbusBridgeConfiguration
import Metrics
import ModbusCore
import ModbusTCPServer
import Synchronization

/// The bridge's metrics, reported through swift-metrics (a no-op unless the program bootstraps a
/// metrics backend, such as Prometheus). Every series is listed, with its labels, in
/// docs/operations-observability.md.
///
/// No label names a topic or a point: a configuration of 10,000 points must not make 10,000
/// series. Labels come from small fixed sets (function codes, exception codes, ack modes) and
/// from the configured units.
final class BridgeMetrics: Sendable {
    /// MQTT messages received.
    let messagesReceived: Counter
    /// State payloads decoded into a point's value.
    let messagesDecoded: Counter
    /// State and availability payloads that could not be decoded (rejected; the point kept its
    /// last good value).
    let decodeFailures: Counter
    /// Messages the client dropped because its buffer was full (the consumer fell behind).
    let messagesDropped: Counter
    /// Messages of a lost broker connection, still buffered when the loss made every value
    /// stale, that were dropped rather than applied.
    let messagesFromLostConnection: Counter
    /// Acknowledgements of this bridge's commands whose write had already ended without them
    /// (timed out, or the broker connection was lost).
    let lateAcks: Counter
    /// Acknowledgements of a write that had already been acknowledged.
    let duplicateAcks: Counter
    /// Messages on an acknowledgement topic that match no command of this bridge (another
    /// bridge's, an earlier run's, no or a malformed correlation).
    let unmatchedAcks: Counter
    /// How many times the MQTT connection came up.
    let connections: ConnectionCounter
    /// 1 while connected to the broker, else 0.
    let mqttConnected: Gauge
    /// Subscriptions acknowledged on the current connection, and those not (yet).
    let subscriptionsAcknowledged: Gauge
    let subscriptionsPending: Gauge
    /// 1 while the Modbus listener accepts connections.
    let modbusListening: Gauge
    /// 1 while ``BridgeReadiness/isReady``.
    let ready: Gauge
    /// Modbus TCP connections open now.
    let modbusConnectionsOpen: Gauge
    /// Points whose value is older than their max_age or whose device is offline, and points
    /// with no value (never received, or invalidated by a lost broker connection).
    let pointsStale: Gauge
    let pointsMissing: Gauge
    /// Modbus writes waiting for acknowledgements.
    let writesInFlight: Gauge

    private let writesOK: Counter
    private let writeFailures: [UInt8: Counter]
    private let otherFailures: Counter
    /// From a command's publish to its device's answer (positive or negative), by ack mode.
    private let ackLatency: [AckSettings.Mode: Timer]

    /// The name of the acknowledgement latency histogram (for per-histogram bucket settings).
    static let ackLatencyLabel = "bridge_write_ack_latency_seconds"

    /// Exception codes the bridge answers itself (design.md §3.7); any other is `exception_other`.
    static let exceptionCodes: [UInt8] = ModbusExceptionCode.bridgeAnswers.map(\.rawValue)

    private let factory: any MetricsFactory

    init(factory: any MetricsFactory = MetricsSystem.factory) {
        self.factory = factory
        func counter(_ label: String, _ dimensions: [(String, String)] = []) -> Counter {
            Counter(label: label, dimensions: dimensions, factory: factory)
        }
        func gauge(_ label: String) -> Gauge { Gauge(label: label, dimensions: [], factory: factory) }
        messagesReceived = counter("bridge_mqtt_messages_received_total")
        messagesDecoded = counter("bridge_mqtt_messages_decoded_total")
        decodeFailures = counter("bridge_payload_decode_failures_total")
        messagesDropped = counter("bridge_mqtt_messages_dropped_total")
        messagesFromLostConnection = counter("bridge_mqtt_messages_from_lost_connection_total")
        lateAcks = counter("bridge_late_acks_total")
        duplicateAcks = counter("bridge_duplicate_acks_total")
        unmatchedAcks = counter("bridge_unmatched_acks_total")
        connections = ConnectionCounter(
            connections: counter("bridge_mqtt_connections_total"),
            reconnects: counter("bridge_mqtt_reconnects_total")
        )
        mqttConnected = gauge("bridge_mqtt_connected")
        subscriptionsAcknowledged = gauge("bridge_mqtt_subscriptions_acknowledged")
        subscriptionsPending = gauge("bridge_mqtt_subscriptions_pending")
        modbusListening = gauge("bridge_modbus_listening")
        ready = gauge("bridge_ready")
        modbusConnectionsOpen = gauge("bridge_modbus_connections_open")
        pointsStale = gauge("bridge_points_stale")
        pointsMissing = gauge("bridge_points_missing")
        writesInFlight = gauge("bridge_writes_in_flight")
        writesOK = counter("bridge_modbus_writes_total", [("outcome", "ok")])
        writeFailures = Dictionary(
            uniqueKeysWithValues: Self.exceptionCodes.map {
                ($0, counter("bridge_modbus_writes_total", [("outcome", "exception_\(Self.hex($0))")]))
            }
        )
        otherFailures = counter("bridge_modbus_writes_total", [("outcome", "exception_other")])
        ackLatency = Dictionary(
            uniqueKeysWithValues: AckSettings.Mode.allCases.map {
                (
                    $0,
                    Timer(
                        label: Self.ackLatencyLabel,
                        dimensions: [("mode", $0.rawValue)],
                        preferredDisplayUnit: .seconds,
                        factory: factory
                    )
                )
            }
        )
        // Reported from the start, not only after the first change.
        for gauge in [
            mqttConnected, subscriptionsAcknowledged, subscriptionsPending, modbusListening, ready,
            modbusConnectionsOpen, pointsStale, pointsMissing, writesInFlight,
        ] {
            gauge.record(0)
        }
    }

    /// `0A` for 10: exception codes as the Modbus documents write them.
    static func hex(_ code: UInt8) -> String {
        let digits = String(code, radix: 16, uppercase: true)
        return digits.count == 1 ? "0" + digits : digits
    }

    /// The counter of writes that ended with `code` (`nil`: success).
    func writes(_ code: ModbusExceptionCode?) -> Counter {
        guard let code else { return writesOK }
        return writeFailures[code.rawValue] ?? otherFailures
    }

    /// Records how long a device took to answer a command acknowledged in `mode`.
    func recordAckLatency(_ duration: Duration, mode: AckSettings.Mode) {
        ackLatency[mode]?.recordNanoseconds(duration.nanoseconds)
    }

    /// Updates the readiness gauges.
    func record(_ readiness: BridgeReadiness) {
        mqttConnected.record(readiness.brokerConnected ? 1 : 0)
        subscriptionsAcknowledged.record(readiness.brokerConnected ? readiness.subscriptionsAcknowledged : 0)
        subscriptionsPending.record(readiness.subscriptionsPending)
        modbusListening.record(readiness.modbusListening ? 1 : 0)
        ready.record(readiness.isReady ? 1 : 0)
    }

    final class ConnectionCounter: Sendable {
        private let count = Atomic<Int>(0)
        private let connections: Counter
        private let reconnects: Counter

        init(connections: Counter, reconnects: Counter) {
            self.connections = connections
            self.reconnects = reconnects
        }

        /// Counts a connection (and, after the first, a reconnection); returns how many there were.
        func incrementAndGet() -> Int {
            connections.increment()
            let count = count.add(1, ordering: .relaxed).newValue
            if count > 1 { reconnects.increment() }
            return count
        }
    }

    /// The request counters of a topic map with `units` (made again by a reload that changes
    /// the units; swift-metrics hands back the same series for the same labels).
    func requestCounters(units: [UInt8]) -> RequestCounters {
        RequestCounters(units: units, factory: factory)
    }

    /// `bridge_modbus_requests_total{function, unit, outcome}`: every request the Modbus server
    /// took, counted by its ``ModbusTCPServer/ModbusRequestObserver``, so that those it answers
    /// itself (0B for an unknown unit, 01 for an unserved function code, 02 and 03 for a
    /// malformed request, diagnostics, device identification) count as well as those the
    /// cache and the write path answer. Every series is made up front: counting one is an
    /// index into an array and an atomic add, never a dictionary lookup under a lock.
    ///
    /// The set is bounded: 12 function codes and `other` × the configured units (aliases
    /// included) and `other` × 10 outcomes (`ok`, the 7 exception codes the bridge answers,
    /// `exception_other`, `no_response`).
    final class RequestCounters: Sendable {
        /// Function codes the server serves (design.md §3.5); any other is `other`.
        static let functions: [UInt8] = [1, 2, 3, 4, 5, 6, 8, 15, 16, 22, 23, 43]
        private static let functionCount = functions.count + 1
        private static let outcomeCount = 3 + BridgeMetrics.exceptionCodes.count
        private static let exceptionOther = outcomeCount - 2
        private static let noResponse = outcomeCount - 1

        /// Function code → its index in ``functions``, or the index of `other`.
        private let functionIndex: [UInt8]
        /// Exception code → its outcome index (1…), or the index of `exception_other`.
        private let outcomeIndex: [UInt8]
        /// Unit id → its index among the configured units, or the index of `other`.
        private let unitIndex: [UInt16]
        private let counters: [Counter]

        init(units: [UInt8], factory: any MetricsFactory) {
            var functionIndex = [UInt8](repeating: UInt8(Self.functions.count), count: 256)
            for (index, code) in Self.functions.enumerated() { functionIndex[Int(code)] = UInt8(index) }
            var outcomeIndex = [UInt8](repeating: UInt8(Self.exceptionOther), count: 256)
            for (index, code) in BridgeMetrics.exceptionCodes.enumerated() {
                outcomeIndex[Int(code)] = UInt8(index + 1)
            }
            let units = Array(Set(units)).sorted()
            var unitIndex = [UInt16](repeating: UInt16(units.count), count: 256)
            for (index, unit) in units.enumerated() { unitIndex[Int(unit)] = UInt16(index) }
            let outcomes =
                ["ok"] + BridgeMetrics.exceptionCodes.map { "exception_\(BridgeMetrics.hex($0))" } + [
                    "exception_other", "no_response",
                ]
            var counters: [Counter] = []
            counters.reserveCapacity((units.count + 1) * Self.functionCount * outcomes.count)
            for unit in units.map({ "\($0)" }) + ["other"] {
                for function in Self.functions.map({ "\($0)" }) + ["other"] {
                    for outcome in outcomes {
                        counters.append(
                            Counter(
                                label: "bridge_modbus_requests_total",
                                dimensions: [("function", function), ("unit", unit), ("outcome", outcome)],
                                factory: factory
                            )
                        )
                    }
                }
            }
            self.functionIndex = functionIndex
            self.outcomeIndex = outcomeIndex
            self.unitIndex = unitIndex
            self.counters = counters
        }

        /// Counts one request as the server observed it.
        func count(_ request: ModbusObservedRequest) {
            let outcome: Int
            switch request.outcome {
            case .ok: outcome = 0
            case .exception(let code): outcome = Int(outcomeIndex[Int(code.rawValue)])
            case .unanswered: outcome = Self.noResponse
            }
            let unit = Int(unitIndex[Int(request.unitID)])
            let function = Int(functionIndex[Int(request.functionCode)])
            counters[(unit * Self.functionCount + function) * Self.outcomeCount + outcome].increment()
        }
    }
}

extension Duration {
    /// The duration in whole nanoseconds (saturating).
    fileprivate var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        let (product, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        guard !overflow else { return seconds < 0 ? .min : .max }
        return product.addingReportingOverflow(attoseconds / 1_000_000_000).partialValue
    }
}
