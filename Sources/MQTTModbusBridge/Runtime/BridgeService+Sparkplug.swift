import Logging
import MQTTModbusBridgeConfiguration
import Mosquitto
import SparkplugB

extension MQTTModbusBridgeService {
    /// What a Sparkplug message leaves to do: offer its new values to the writes waiting for
    /// their confirmation, and ask its node for a rebirth.
    func follow(_ outcome: SparkplugIngest.Outcome, logger: Logger) {
        for (point, value) in outcome.confirmations { writes.offerState(point: point, value: value) }
        if let (node, delay) = outcome.deferredRebirth.map({ ($0.node, $0.delay) }) {
            Task {
                try? await Task.sleep(for: delay)
                // The map in force then: a reload in between carried the session over.
                if self.topics.current.sparkplug.deferredRebirthDue(node) { self.requestRebirth(node, logger: logger) }
            }
        }
        if let node = outcome.rebirth { requestRebirth(node, logger: logger) }
    }

    private func requestRebirth(_ node: SparkplugNodeKey, logger: Logger) {
        let (topic, payload) = SparkplugIngest.rebirthRequest(for: node)
        let client = self.client
        // Never retained: a retained rebirth request would make the node rebirth whenever it
        // reconnects, for ever. QoS 0, as Sparkplug commands are.
        Task {
            do {
                try await client.publish(topic: topic, payload: payload, qos: .atMostOnce, retain: false)
            } catch {
                logger.warning(
                    "cannot request a Sparkplug rebirth",
                    metadata: ["topic": "\(topic)", "error": "\(error)"]
                )
            }
        }
    }

    /// Publishes the host application's STATE (retained, QoS 1), when the bridge is one.
    func publishSparkplugState(online: Bool, logger: Logger) async {
        guard let topic = configuration.sparkplug.stateTopic else { return }
        do {
            try await client.publish(
                topic: topic,
                payload: SparkplugIngest.statePayload(online: online),
                qos: .atLeastOnce,
                retain: true,
                timeout: .seconds(2)
            )
        } catch {
            logger.warning(
                "cannot publish the Sparkplug host STATE",
                metadata: ["topic": "\(topic)", "error": "\(error)"]
            )
        }
    }
}
