import Logging
import MQTTModbusBridgeConfiguration
import Mosquitto
import NIOConcurrencyHelpers
import Synchronization

/// Asks devices for their state: publishes every device's refresh messages
/// (``DeviceConfiguration/refresh``) once the subscriptions are in place, on start and after each
/// reconnection, so that values that are not retained (a Tasmota relay's `stat/…/RESULT`, a
/// zigbee2mqtt plug's state) come back at once instead of at the device's next report.
///
/// Rounds are rate limited to ``BrokerSettings/refreshRate`` messages per second, so that a
/// thousand devices do not flood the broker (or a zigbee network) after a reconnection. A new
/// round cancels the one still running: after a reconnection, the devices are asked again from
/// the first. Refresh messages are never retained, at QoS 1, and a message that cannot be sent
/// is logged and skipped.
final class ActiveRefresh: Sendable {
    private struct Settings {
        var messages: [(device: String, message: RefreshMessage)]
        var interval: Duration
    }
    /// Replaced by a reload (``update(_:)``).
    private let settings: NIOLockedValueBox<Settings>
    private let client: MQTTClient
    private let logger: Logger
    private let round = NIOLockedValueBox<Task<Void, Never>?>(nil)
    /// Refresh messages published since start (tests and the log).
    private let published = Atomic<Int>(0)

    init(configuration: BridgeConfiguration, client: MQTTClient, logger: Logger) {
        self.settings = NIOLockedValueBox(Self.settings(configuration))
        self.client = client
        self.logger = logger
    }

    private static func settings(_ configuration: BridgeConfiguration) -> Settings {
        Settings(
            messages: configuration.devices.flatMap { device in device.refresh.map { (device.name, $0) } },
            interval: interval(rate: configuration.broker.refreshRate)
        )
    }

    /// Takes the devices' refresh messages from a reloaded configuration, for the next round.
    func update(_ configuration: BridgeConfiguration) {
        settings.withLockedValue { $0 = Self.settings(configuration) }
    }

    /// The time between two refresh messages at `rate` messages per second.
    static func interval(rate: Double) -> Duration {
        guard rate.isFinite, rate > 0 else { return .seconds(1) / BrokerSettings.defaultRefreshRate }
        return .seconds(1) / rate
    }

    /// Refresh messages published so far.
    var publishedCount: Int { published.load(ordering: .relaxed) }

    /// Starts a round (cancelling one still running); returns at once.
    ///
    /// - Parameter devices: only these devices (after a reload: the new and changed ones);
    ///   `nil`: every device.
    func start(devices: Set<String>? = nil) {
        let (all, interval) = settings.withLockedValue { ($0.messages, $0.interval) }
        let messages = devices.map { names in all.filter { names.contains($0.device) } } ?? all
        guard !messages.isEmpty else { return }
        let task = Task { await self.run(messages, interval: interval) }
        round.withLockedValue { current in
            current?.cancel()
            current = task
        }
    }

    /// Stops the round still running, if any.
    func stop() {
        round.withLockedValue { current in
            current?.cancel()
            current = nil
        }
    }

    private func run(_ messages: [(device: String, message: RefreshMessage)], interval: Duration) async {
        logger.debug("refreshing devices", metadata: ["messages": "\(messages.count)"])
        for (index, entry) in messages.enumerated() {
            // Disconnected (or stopping): the next connection starts a round of its own.
            if Task.isCancelled || client.state != .connected { return }
            if index > 0 {
                do { try await Task.sleep(for: interval) } catch { return }
            }
            do {
                try await client.publish(
                    topic: entry.message.topic,
                    payload: Array(entry.message.payload.utf8),
                    qos: .atLeastOnce,
                    retain: false
                )
                published.add(1, ordering: .relaxed)
            } catch {
                if Task.isCancelled { return }
                logger.warning(
                    "cannot publish a refresh request",
                    metadata: ["device": "\(entry.device)", "topic": "\(entry.message.topic)", "error": "\(error)"]
                )
            }
        }
    }
}

extension MQTTModbusBridgeService {
    /// A message about a point that carried no value for it (a profile's document without the
    /// point's key, a reply to another request): the device is not silent.
    func seen(_ index: Int, _ topics: BridgeTopicMap) {
        if let device = topics.map.deviceOfPoint[index] { topics.cache.deviceSeen(device) }
    }
}
