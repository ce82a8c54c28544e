import Foundation
import Logging
import MQTTModbusBridgeBroker
import MQTTModbusBridgeConfiguration
import Mosquitto

/// One device with a profile, on an MQTT connection of its own as the real device has: its last
/// will is its offline word, it says online (retained) when it connects, then publishes what its
/// ``DeviceConvention`` reports and answers the requests the convention reads.
final class ProfileDeviceConnection<Convention: DeviceConvention>: SimulatedConnection {
    private let convention: Convention
    private let options: DeviceSimulator.Options
    private let values: SimulatedValues
    private let client: MQTTClient
    private let logger: Logger
    private let requestTopics: Set<String>

    init(
        convention: Convention,
        broker: BrokerSettings,
        options: DeviceSimulator.Options,
        values: SimulatedValues,
        logger: Logger
    ) throws {
        let device = convention.device
        self.convention = convention
        self.options = options
        self.values = values
        var logger = logger
        logger[metadataKey: "device"] = "\(device.name)"
        self.logger = logger
        self.requestTopics = Set(convention.requestTopics)
        var mqtt = try MQTTConfiguration(bridgeBroker: broker)
        mqtt.clientID = "\(options.clientID ?? "\(broker.clientID)-simulator")-\(device.name)"
        mqtt.will = device.availability.map { settings in
            MQTTWill(
                topic: settings.topic,
                payload: DeviceSimulator.availabilityPayload(settings, online: false),
                qos: .atLeastOnce,
                retain: true
            )
        }
        mqtt.reconnect.retryInitialConnect = true
        self.client = try MQTTClient(configuration: mqtt, logger: logger.component("mqtt"))
    }

    func start() async throws {
        try await client.connect()
        for topic in requestTopics.sorted() { try await client.subscribe(topic, qos: .atLeastOnce) }
        await announce(online: true)
        await publish(convention.report(.connected, values: values.snapshot, now: Date()))
        logger.info(
            "simulated device running",
            metadata: ["profile": "\(convention.device.profile?.kind.description ?? "")"]
        )
    }

    func serve() async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.answerRequests() }
            if let interval = self.options.telemetryInterval {
                group.addTask { await self.publishTelemetry(every: interval) }
            }
            await group.next()
            group.cancelAll()
        }
    }

    func stop() async {
        await announce(online: false)
        await client.disconnect()
    }

    private func announce(online: Bool) async {
        guard let settings = convention.device.availability else { return }
        await publish([
            Publication(
                topic: settings.topic,
                payload: DeviceSimulator.availabilityPayload(settings, online: online),
                retain: true
            )
        ])
    }

    private func answerRequests() async {
        await withTaskGroup(of: Void.self) { group in
            for await message in client.messages where requestTopics.contains(message.topic) {
                guard let request = convention.request(topic: message.topic, payload: message.payload) else {
                    logger.info(
                        "request not understood; the device ignores it",
                        metadata: ["topic": "\(message.topic)", "payload": "\(message.payloadPreview)"]
                    )
                    continue
                }
                group.addTask { await self.answer(request, on: message.topic) }
            }
        }
    }

    private func answer(_ request: Convention.Request, on topic: String) async {
        let changes = convention.changes(in: request, values: values.snapshot)
        if changes.isEmpty {
            logger.debug("query", metadata: ["topic": "\(topic)"])
        } else {
            for change in changes {
                logger.info(
                    "command",
                    metadata: [
                        "point": "\(change.point)", "value": "\(change.value)",
                        "behaviour": "\(options.behaviour(for: change.point))",
                    ]
                )
            }
            if options.ackDelay > .zero { try? await Task.sleep(for: options.ackDelay) }
        }
        let options = self.options
        let convention = self.convention
        let publications = values.update { current in
            convention.answer(request, behaviour: options.behaviour(for:), values: &current, now: Date())
        }
        await publish(publications)
    }

    private func publishTelemetry(every interval: Duration) async {
        var tick: Int64 = 0
        let readOnly = convention.points.filter { $0.command == nil && $0.stateTopic != nil }
        while !Task.isCancelled {
            do { try await Task.sleep(for: interval) } catch { return }
            tick += 1
            let current = values.update { current in
                for point in readOnly { current[point.name] = DeviceSimulator.telemetryValue(for: point, tick: tick) }
                return current
            }
            await publish(convention.report(.periodic, values: current, now: Date()))
        }
    }

    private func publish(_ publications: [Publication]) async {
        for publication in publications {
            do {
                try await client.publish(
                    topic: publication.topic,
                    payload: publication.payload,
                    qos: .atLeastOnce,
                    retain: publication.retain,
                    timeout: .seconds(2)
                )
            } catch {
                logger.warning("cannot publish", metadata: ["topic": "\(publication.topic)", "error": "\(error)"])
            }
        }
    }
}

extension MQTTMessage {
    /// The first bytes of the payload as text, for logs.
    var payloadPreview: String { String(decoding: payload.prefix(200), as: UTF8.self) }
}
