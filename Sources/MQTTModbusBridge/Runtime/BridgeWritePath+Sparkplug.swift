import MQTTModbusBridgeConfiguration
import ModbusTCPServer
import Mosquitto
import SparkplugB

extension BridgeWritePath {
    /// The planned writes in the groups that are published together: the Sparkplug points of
    /// one command topic (one device's DCMD, or one node's NCMD) form one group, in the order of
    /// the write; every other point is a group of its own.
    static func sparkplugBatches(_ planned: [PlannedPointWrite], _ map: RegisterMap) -> [[PlannedPointWrite]] {
        var batches: [[PlannedPointWrite]] = []
        var batchOfTopic: [String: Int] = [:]
        for write in planned {
            let point = map.points[write.point]
            guard point.sparkplug != nil, let topic = point.command?.topic else {
                batches.append([write])
                continue
            }
            if let index = batchOfTopic[topic] {
                batches[index].append(write)
            } else {
                batchOfTopic[topic] = batches.count
                batches.append([write])
            }
        }
        return batches
    }

    /// Publishes one DCMD (or NCMD) with the new values of a group of Sparkplug points, each
    /// typed as the metric's birth declared it, named by its alias when the birth gave one, with
    /// a timestamp, at QoS 0 and not retained; then waits until DATA messages report every
    /// written value (state echo, with each point's tolerance) or the timeout passes.
    ///
    /// Refused before anything is published (and then for every point of the group): a metric
    /// whose birth was not seen (0B: the bridge cannot know how the node types it), and a value
    /// its datatype cannot carry (03).
    func sparkplugCommand(
        _ batch: [PlannedPointWrite],
        _ topics: BridgeTopicMap
    ) async -> [(
        point: Int, result: CommandResult
    )] {
        let map = topics.map
        let timestamp = SparkplugIngest.nowMilliseconds()
        var commandMetrics: [SparkplugPayload.Metric] = []
        for write in batch {
            let point = map.points[write.point]
            guard let target = topics.sparkplug.commandTarget(point: write.point, map: map) else {
                let outcome = WriteOutcome.rejected(
                    code: .gatewayTargetDeviceFailedToRespond,
                    reason: "no birth of Sparkplug metric '\(point.sparkplug?.name ?? "")' of \(point.name) seen"
                )
                return batch.map { ($0.point, CommandResult(notSent: outcome)) }
            }
            do {
                let value = try SparkplugPayload.Value(write.value, as: target.datatype)
                commandMetrics.append(
                    SparkplugPayload.Metric(
                        name: target.alias == nil ? target.name : nil,
                        alias: target.alias,
                        timestamp: timestamp,
                        datatype: target.datatype.rawValue,
                        value: value
                    )
                )
            } catch {
                let outcome = WriteOutcome.rejected(code: .illegalDataValue, reason: "\(point.name): \(error)")
                return batch.map { ($0.point, CommandResult(notSent: outcome)) }
            }
        }
        guard let first = map.points[batch[0].point].command else { return [] }
        // Registered before the publish, so that a confirmation that comes at once is not missed.
        let waits = batch.map { write in
            let point = map.points[write.point]
            let ack = point.command?.ack ?? AckSettings(mode: .stateEcho)
            let (id, promise) = tracker.registerEcho(of: point, value: write.value, settings: ack)
            return (write: write, point: point, id: id, promise: promise, timeout: ack.timeout)
        }
        defer { for wait in waits { tracker.removeEcho(point: wait.point.name, id: wait.id) } }
        let start = ContinuousClock.now
        let payload = SparkplugPayload(timestamp: timestamp, metrics: commandMetrics).encoded()
        logger.debug(
            "Sparkplug command",
            metadata: ["topic": "\(first.topic)", "metrics": "\(commandMetrics.count)"]
        )
        do {
            try await client.publish(
                topic: first.topic,
                payload: payload,
                qos: .atMostOnce,
                retain: false,
                timeout: first.ack.timeout
            )
        } catch {
            let outcome = Self.outcome(ofPublishError: error)
            return waits.map { ($0.write.point, CommandResult(outcome)) }
        }
        var results: [(point: Int, result: CommandResult)] = []
        for wait in waits {
            let outcome = await wait.promise.outcome(timeout: max(.zero, start + wait.timeout - ContinuousClock.now))
            if case .acknowledged = outcome { metrics.recordAckLatency(ContinuousClock.now - start, mode: .stateEcho) }
            results.append((wait.write.point, CommandResult(outcome)))
        }
        return results
    }
}
