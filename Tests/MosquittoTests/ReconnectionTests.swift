import Foundation
import MQTTTestSupport
import Testing

@testable import Mosquitto

@Suite("Reconnection, failures and time limits")
struct ReconnectionTests {
    @Test("broker killed mid-stream and restarted: reconnect, resubscribe, messages flow again")
    func brokerKilledAndRestarted() async throws {
        try await withTestBroker { broker in
            let subscriber = try await connectedClient(broker)
            let publisher = try await connectedClient(broker)
            let subscriberStates = StateRecorder(subscriber)
            let publisherStates = StateRecorder(publisher)
            let received = MessageCollector(subscriber)
            try await subscriber.subscribeForTest("stream/#", qos: .atLeastOnce)

            for index in 0..<20 {
                try await publisher.publishForTest("stream/value", "before-\(index)", qos: .atLeastOnce)
            }
            try await received.waitForCount(20)

            let mark = subscriberStates.states.count
            await broker.kill()
            try await subscriberStates.waitUntil("subscriber notices the loss") {
                $0.dropFirst(mark).contains { $0.isDisconnectedWithError }
            }
            try await publisherStates.waitUntil("publisher notices the loss") {
                $0.last?.isConnected == false
            }

            // While the broker is down a QoS 1 publish fails fast and clearly.
            let (error, elapsed) = await measure {
                await #expect(throws: MQTTError.self) {
                    try await withTimeout(.seconds(5), "publish while down") {
                        try await publisher.publish(topic: "stream/value", payload: [1], qos: .atLeastOnce)
                    }
                }
            }
            #expect(error?.code == .notConnected)
            #expect(elapsed < .seconds(1))

            try await broker.restart()
            let history = try await subscriberStates.waitUntil("subscriber reconnected", timeout: .seconds(15)) {
                $0.containsSubsequence(
                    from: mark,
                    [{ $0.isDisconnectedWithError }, { $0.isConnecting }, { $0.isConnected }]
                )
            }
            #expect(history.last == .connected)
            try await publisherStates.waitUntil("publisher reconnected", timeout: .seconds(15)) {
                $0.last?.isConnected == true
            }

            // The subscription was restored by the client: nothing re-subscribes here.
            for index in 0..<20 {
                try await publisher.publishForTest("stream/value", "after-\(index)", qos: .atLeastOnce)
            }
            let messages = try await received.waitForCount(40)
            #expect(messages.suffix(20).map(\.payloadString) == (0..<20).map { "after-\($0)" })
            #expect(messages.prefix(20).map(\.payloadString) == (0..<20).map { "before-\($0)" })
        }
    }

    @Test("messages carry the number of their connection; the lost one is known when the loss is reported")
    func messagesCarryTheirConnection() async throws {
        try await withTestBroker { broker in
            let subscriber = try await connectedClient(broker)
            let publisher = try await connectedClient(broker)
            let states = StateRecorder(subscriber)
            let publisherStates = StateRecorder(publisher)
            let received = MessageCollector(subscriber)
            try await subscriber.subscribeForTest("numbered/#", qos: .atLeastOnce)
            #expect(subscriber.lastEndedConnection == 0)
            try await publisher.publishForTest("numbered/value", "first", qos: .atLeastOnce)
            #expect(try await received.waitForCount(1).map(\.connection) == [1])

            let mark = states.states.count
            await broker.kill()
            try await states.waitUntil("the loss is reported") {
                $0.dropFirst(mark).contains { $0.isDisconnectedWithError }
            }
            // Set before the state was reported; the broker is still down, so it is exactly 1.
            #expect(subscriber.lastEndedConnection == 1)

            try await broker.restart()
            try await states.waitUntil("reconnected", timeout: .seconds(15)) {
                $0.containsSubsequence(from: mark, [{ $0.isDisconnectedWithError }, { $0.isConnected }])
            }
            try await publisherStates.waitUntil("publisher reconnected", timeout: .seconds(15)) {
                $0.containsSubsequence(from: 0, [{ !$0.isConnected }, { $0.isConnected }])
            }
            try await publisher.publishForTest("numbered/value", "second", qos: .atLeastOnce)
            #expect(try await received.waitForCount(2).map(\.connection) == [1, 2])
            #expect(subscriber.lastEndedConnection == 1)
        }
    }

    @Test("a QoS 1 publish in flight when the connection drops fails with connectionLost, promptly")
    func inflightPublishFailsOnConnectionLoss() async throws {
        try await withTestBroker { broker in
            let logs = CapturedLogs(level: .trace)
            let client = try MQTTClient(configuration: testConfiguration(broker), logger: logs.logger)
            try await withTimeout(.seconds(10), "connect") { try await client.connect() }
            // Frozen broker: the PUBLISH reaches its socket but no PUBACK comes.
            broker.pause()
            let pending = Task {
                try await client.publish(topic: "inflight/x", payload: [1], qos: .atLeastOnce, timeout: .seconds(30))
            }
            // libmosquitto logs the PUBLISH while the client registers it, so
            // once this line is seen the publish is in flight.
            try await logs.waitForLine(containing: "sending PUBLISH")
            // Killing the frozen broker resets the TCP connection.
            await broker.kill()
            let (error, elapsed) = await measure {
                await #expect(throws: MQTTError.self) {
                    try await withTimeout(.seconds(10), "pending publish") { try await pending.valueCancellingOnExit() }
                }
            }
            #expect(error?.code == .connectionLost, "\(String(describing: error))")
            #expect(elapsed < .seconds(5))
        }
    }

    @Test("a QoS 1 publish without acknowledgement fails with timeout after its time limit")
    func publishTimeout() async throws {
        try await withTestBroker { broker in
            let client = try await connectedClient(broker)
            broker.pause()
            defer { broker.resume() }
            let (error, elapsed) = await measure {
                await #expect(throws: MQTTError.self) {
                    try await withTimeout(.seconds(10), "publish") {
                        try await client.publish(
                            topic: "timeout/x",
                            payload: [1],
                            qos: .atLeastOnce,
                            timeout: .milliseconds(300)
                        )
                    }
                }
            }
            #expect(error?.code == .timeout)
            #expect(elapsed >= .milliseconds(300))
            #expect(elapsed < .seconds(5), "the operation timeout, not the 10 s guard, ended it")
        }
    }

    @Test("cancelling a publish or subscribe that waits for the broker ends it at once; the client works on")
    func cancelWaitingOperations() async throws {
        try await withTestBroker { broker in
            let client = try await connectedClient(broker)
            broker.pause()
            let publish = Task {
                try await client.publish(topic: "cancel/x", payload: [1], qos: .exactlyOnce, timeout: .seconds(60))
            }
            let subscribe = Task { try await client.subscribe("cancel/#", qos: .atLeastOnce, timeout: .seconds(60)) }
            // Both are sent and waiting (a paused broker answers nothing); nothing announces
            // that, so this polls, bounded.
            try await withTimeout(.seconds(10), "both operations to wait for the broker") {
                while client.pendingOperationCount < 2 { try await Task.sleep(for: .milliseconds(10)) }
            }
            publish.cancel()
            subscribe.cancel()
            await #expect(throws: CancellationError.self) {
                try await withTimeout(.seconds(5), "the cancelled publish") { try await publish.value }
            }
            await #expect(throws: CancellationError.self) {
                try await withTimeout(.seconds(5), "the cancelled subscribe") { _ = try await subscribe.value }
            }
            #expect(client.pendingOperationCount == 0)
            broker.resume()
            try await client.publishForTest("cancel/after", "still working", qos: .atLeastOnce)
            await client.disconnect()
        }
    }

    @Test("operations on a client that never connected fail at once with notConnected")
    func notConnected() async throws {
        let refusing = try RefusingLoopbackPort()
        defer { refusing.release() }  // also keeps it alive to the end
        let client = try MQTTClient(
            configuration: MQTTConfiguration(host: "127.0.0.1", port: refusing.port),
            logger: testLogger
        )
        #expect(client.state == .disconnected(reason: nil))
        for qos in MQTTQoS.allCases {
            let error = await #expect(throws: MQTTError.self) {
                try await client.publish(topic: "x", payload: [1], qos: qos)
            }
            #expect(error?.code == .notConnected)
        }
        let subscribeError = await #expect(throws: MQTTError.self) { try await client.subscribe("x") }
        #expect(subscribeError?.code == .notConnected)
        let unsubscribeError = await #expect(throws: MQTTError.self) { try await client.unsubscribe("x") }
        #expect(unsubscribeError?.code == .notConnected)
    }

    @Test("connecting to a port nobody listens on fails fast with the socket error")
    func connectionRefused() async throws {
        let refusing = try RefusingLoopbackPort()
        defer { refusing.release() }  // also keeps it alive to the end
        var configuration = MQTTConfiguration(host: "127.0.0.1", port: refusing.port)
        // A refusal must end connect() at once, not at the connect timeout: the margin between
        // the two is wide so that a loaded machine cannot blur them.
        configuration.connectTimeout = .seconds(30)
        let client = try MQTTClient(configuration: configuration, logger: testLogger)
        let (error, elapsed) = await measure {
            await #expect(throws: MQTTError.self) {
                try await withTimeout(.seconds(40), "connect") { try await client.connect() }
            }
        }
        #expect(error?.code == .networkError)
        #expect(error?.reason.contains("Connection refused") == true, "\(String(describing: error))")
        #expect(elapsed < .seconds(10))
        #expect(client.state.isConnected == false)
    }

    @Test("a server that never answers CONNECT makes connect() time out")
    func connackTimeout() async throws {
        try await withTestBroker { broker in
            broker.pause()
            defer { broker.resume() }
            var configuration = testConfiguration(broker)
            configuration.connectTimeout = .milliseconds(500)
            let client = try MQTTClient(configuration: configuration, logger: testLogger)
            let (error, elapsed) = await measure {
                await #expect(throws: MQTTError.self) {
                    try await withTimeout(.seconds(10), "connect") { try await client.connect() }
                }
            }
            #expect(error?.code == .timeout)
            #expect(elapsed < .seconds(3))
        }
    }

    @Test("with retryInitialConnect, connect() waits for a broker that starts later")
    func retryInitialConnect() async throws {
        let refusing = try RefusingLoopbackPort()
        defer { refusing.release() }  // also keeps it alive to the end
        let port = refusing.port
        var configuration = MQTTConfiguration(host: "127.0.0.1", port: port, clientID: "late-broker")
        configuration.reconnect = MQTTReconnectPolicy(
            initialDelay: .milliseconds(50),
            maximumDelay: .milliseconds(200),
            retryInitialConnect: true
        )
        let client = try MQTTClient(configuration: configuration, logger: testLogger)
        let states = StateRecorder(client)
        let connecting = Task { try await client.connect() }
        try await states.waitUntil("a failed attempt") { $0.contains { $0.isDisconnectedWithError } }

        refusing.release()
        let broker = try await TestBroker.start(TestBrokerOptions(), port: port)
        do {
            try await withTimeout(.seconds(10), "connect") { try await connecting.valueCancellingOnExit() }
            #expect(client.state == .connected)
            try await client.disconnectForTest()
            #expect(client.state == .disconnected(reason: nil))
        } catch {
            connecting.cancel()
            await broker.stop()
            throw error
        }
        await broker.stop()
        broker.removeDirectory()
    }

    @Test("cancelling connect() stops the attempts")
    func cancelConnect() async throws {
        // Held for the whole test: a broker of a test running beside this one
        // once took a port chosen here and made the cancelled connect() succeed.
        let refusing = try RefusingLoopbackPort()
        defer { refusing.release() }  // also keeps it alive to the end
        var configuration = MQTTConfiguration(host: "127.0.0.1", port: refusing.port)
        configuration.reconnect = MQTTReconnectPolicy(initialDelay: .milliseconds(50), retryInitialConnect: true)
        let client = try MQTTClient(configuration: configuration, logger: testLogger)
        let states = StateRecorder(client)
        let connecting = Task { try await client.connect() }
        try await states.waitUntil("a failed attempt") { $0.contains { $0.isDisconnectedWithError } }
        connecting.cancel()
        await #expect(throws: CancellationError.self) {
            try await withTimeout(.seconds(5), "cancelled connect") { try await connecting.valueCancellingOnExit() }
        }
        try await states.waitUntil("disconnected without error") { $0.last == .disconnected(reason: nil) }
    }

    @Test("state goes disconnected → connecting → connected → disconnected, and connect() works again")
    func lifecycle() async throws {
        try await withTestBroker { broker in
            let client = try MQTTClient(configuration: testConfiguration(broker), logger: testLogger)
            let states = StateRecorder(client)
            let received = MessageCollector(client)
            try await withTimeout(.seconds(10), "connect") { try await client.connect() }
            try await client.subscribeForTest("lifecycle/#")
            let alreadyConnected = await #expect(throws: MQTTError.self) { try await client.connect() }
            #expect(alreadyConnected?.code == .alreadyConnected)
            try await client.disconnectForTest()
            let history = try await states.waitUntil("disconnected") { $0.count >= 4 }
            #expect(
                Array(history.prefix(4)) == [
                    .disconnected(reason: nil), .connecting, .connected, .disconnected(reason: nil),
                ]
            )

            // The subscription is remembered and restored by the next connect().
            try await withTimeout(.seconds(10), "connect again") { try await client.connect() }
            try await client.publishForTest("lifecycle/again", "back", qos: .atLeastOnce)
            let messages = try await received.waitForCount(1)
            #expect(messages[0].payloadString == "back")
        }
    }
}
