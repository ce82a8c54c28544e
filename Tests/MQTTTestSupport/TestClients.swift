import Foundation
import Logging
import Mosquitto

/// A logger for clients under test: errors only by default (the tests provoke
/// many expected warnings), more with
/// `MQTT_TEST_LOG_LEVEL=debug` (or `trace` for libmosquitto's own log).
public let testLogger: Logger = {
    var logger = Logger(label: "mqtt-test")
    logger.logLevel =
        ProcessInfo.processInfo.environment["MQTT_TEST_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .error
    return logger
}()

/// Client configuration for a test broker: short timeouts and fast reconnects
/// so failures show up quickly.
public func testConfiguration(
    _ broker: TestBroker,
    clientID: String = "test-\(UUID().uuidString.prefix(8))",
    protocolVersion: MQTTProtocolVersion = .v5
) -> MQTTConfiguration {
    MQTTConfiguration(
        host: "127.0.0.1",
        port: broker.port,
        clientID: clientID,
        keepAlive: .seconds(10),
        protocolVersion: protocolVersion,
        reconnect: MQTTReconnectPolicy(initialDelay: .milliseconds(50), maximumDelay: .milliseconds(400)),
        connectTimeout: .seconds(5),
        operationTimeout: .seconds(5)
    )
}

/// A connected client with the test configuration, adjusted by `configure`.
public func connectedClient(
    _ broker: TestBroker,
    protocolVersion: MQTTProtocolVersion = .v5,
    configure: (inout MQTTConfiguration) -> Void = { _ in }
) async throws -> MQTTClient {
    var configuration = testConfiguration(broker, protocolVersion: protocolVersion)
    configure(&configuration)
    let client = try MQTTClient(configuration: configuration, logger: testLogger)
    try await withTimeout(.seconds(10), "connect") { try await client.connect() }
    return client
}

extension MQTTClient {
    /// `subscribe` bounded by a test timeout.
    @discardableResult
    public func subscribeForTest(_ filter: String, qos: MQTTQoS = .atLeastOnce) async throws -> MQTTQoS {
        try await withTimeout(.seconds(10), "SUBACK for \(filter)") {
            try await self.subscribe(filter, qos: qos)
        }
    }

    /// `publish` bounded by a test timeout.
    public func publishForTest(
        _ topic: String,
        _ text: String,
        qos: MQTTQoS = .atLeastOnce,
        retain: Bool = false,
        properties: MQTTProperties = MQTTProperties()
    ) async throws {
        try await withTimeout(.seconds(10), "publish to \(topic)") {
            try await self.publish(
                topic: topic,
                payload: Array(text.utf8),
                qos: qos,
                retain: retain,
                properties: properties
            )
        }
    }

    /// `disconnect` bounded by a test timeout.
    public func disconnectForTest() async throws {
        try await withTimeout(.seconds(10), "disconnect") { await self.disconnect() }
    }
}
