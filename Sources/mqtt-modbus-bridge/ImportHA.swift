import ArgumentParser
import Foundation
import Logging
import MQTTModbusBridgeConfiguration
import Mosquitto

/// `import-ha`: a topic map from Home Assistant MQTT discovery configs.
struct ImportHA: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import-ha",
        abstract:
            "Write a topic-map configuration (YAML, on standard output) from Home Assistant MQTT discovery configs.",
        discussion: """
            Reads the retained discovery configs under <prefix>/<component>/[<node_id>/]<object_id>/config, \
            from a broker (--broker) or from a captured file (--from-file), and prints a configuration \
            that `validate` accepts: sensors as input registers, binary sensors as discrete inputs, \
            switches and lights as coils, brightness, setpoints and numbers as holding registers, \
            availability topics as devices. Whatever is not translated is listed as comments at the top.

            A captured file is either lines of `<topic> <payload>`, as `mosquitto_sub -v -t \
            'homeassistant/#'` prints them, or one JSON object of topic → config.

            Examples:
              mqtt-modbus-bridge import-ha --broker 192.168.1.10 > plant.yaml
              mosquitto_sub -h 192.168.1.10 -v -t 'homeassistant/#' -W 5 > discovery.txt
              mqtt-modbus-bridge import-ha --from-file discovery.txt > plant.yaml
            """
    )

    @Option(
        help: ArgumentHelp(
            "Read the retained discovery configs from this broker; also the broker the configuration connects to.",
            valueName: "host[:port]"
        )
    )
    var broker: String?

    @Option(help: "User name for --broker.")
    var username: String?

    @Option(help: "A file holding the password for --broker (one trailing new line is ignored).")
    var passwordFile: String?

    @Option(
        name: .customLong("from-file"),
        help: ArgumentHelp(
            "Read captured discovery messages instead: lines of '<topic> <payload>' (mosquitto_sub -v) or a JSON object of topic → config.",
            valueName: "path"
        )
    )
    var fromFile: String?

    @Option(help: "The discovery prefix.")
    var prefix = "homeassistant"

    @Option(help: "The Modbus unit id of the points (0…255).")
    var unit: UInt8 = 1

    @Option(
        help:
            "With --broker: seconds to collect retained messages at most (0.1…60); collection ends earlier once 1 s passes without one."
    )
    var wait: Double = 5

    @Option(
        help: "max_age of points whose discovery config names neither an availability topic nor expire_after."
    )
    var maxAge = "10m"

    func validate() throws {
        if (broker == nil) == (fromFile == nil) {
            throw ValidationError("give exactly one of --broker and --from-file")
        }
        if fromFile != nil, username != nil || passwordFile != nil {
            throw ValidationError("--username and --password-file go with --broker")
        }
        if !(0.1...60).contains(wait) { throw ValidationError("--wait must be between 0.1 and 60 seconds") }
        if let broker, Self.address(broker) == nil {
            throw ValidationError("--broker '\(broker)' is not host or host:port")
        }
        if (try? DurationSyntax.parse(maxAge)) == nil {
            throw ValidationError("--max-age '\(maxAge)' is not a duration")
        }
    }

    func run() async throws {
        var options = HomeAssistantImport.Options()
        options.prefix = prefix
        options.unit = unit
        options.maxAge = try DurationSyntax.parse(maxAge)
        let messages: [HomeAssistantDiscoveryMessage]
        if let fromFile {
            let text: String
            do {
                text = try String(contentsOfFile: fromFile, encoding: .utf8)
            } catch {
                Self.printError("cannot read \(fromFile): \(error.localizedDescription)")
                throw ExitCode(2)
            }
            do {
                messages = try HomeAssistantCapture.parse(text)
            } catch {
                Self.printError("\(fromFile): \(error)")
                throw ExitCode(2)
            }
            options.source = fromFile
        } else {
            let (host, port) = Self.address(broker!)!
            options.brokerHost = host
            options.brokerPort = port
            options.username = username
            options.passwordFile = passwordFile
            options.source = "retained messages on \(host):\(port)"
            messages = try await collect(host: host, port: port)
        }
        let output = HomeAssistantImport(options: options).translate(messages)
        print(output.yaml, terminator: "")
        Self.printError(
            "import-ha: \(output.entityCount) entit\(output.entityCount == 1 ? "y" : "ies"), \(output.pointCount) point(s), \(output.notTranslated.count) item(s) not translated (listed as comments)"
        )
        // The output must load; anything else is a bug of the translation.
        do {
            _ = try BridgeConfiguration.parse(yaml: output.yaml, file: "<import-ha output>")
        } catch {
            Self.printError("import-ha: the generated configuration does not load:\n\(error)")
            throw ExitCode(output.pointCount == 0 ? 1 : 3)
        }
    }

    /// The messages under the prefix: subscribes and collects until nothing came for a second, or
    /// `--wait` seconds passed.
    func collect(host: String, port: Int) async throws -> [HomeAssistantDiscoveryMessage] {
        var password: String?
        if let passwordFile {
            do {
                var text = try String(contentsOfFile: passwordFile, encoding: .utf8)
                if text.hasSuffix("\n") { text.removeLast() }
                password = text
            } catch {
                Self.printError("cannot read --password-file \(passwordFile): \(error.localizedDescription)")
                throw ExitCode(2)
            }
        }
        var configuration = MQTTConfiguration(
            host: host,
            port: port,
            clientID: "mqtt-modbus-bridge-import-ha-\(ProcessInfo.processInfo.processIdentifier)",
            username: username,
            password: password,
            connectTimeout: .seconds(10),
            operationTimeout: .seconds(10)
        )
        configuration.reconnect.retryInitialConnect = false
        var logger = Logger(label: "import-ha")
        logger.logLevel = .error
        let client = try MQTTClient(configuration: configuration, logger: logger)
        do {
            try await client.connect()
        } catch {
            Self.printError("import-ha: cannot connect to \(host):\(port): \(error)")
            throw ExitCode(2)
        }
        let collector = Collector()
        let reader = Task {
            for await message in client.messages { await collector.add(message) }
        }
        var base = prefix
        while base.hasSuffix("/") { base.removeLast() }
        do {
            try await client.subscribe(base + "/#", qos: .atLeastOnce)
        } catch {
            reader.cancel()
            await client.disconnect()
            Self.printError("import-ha: cannot subscribe to \(base)/#: \(error)")
            throw ExitCode(2)
        }
        let clock = ContinuousClock()
        let deadline = clock.now + .milliseconds(Int(wait * 1000))
        await collector.touch(clock.now)
        while clock.now < deadline {
            let quiet = clock.now - (await collector.lastArrival)
            if quiet >= .seconds(1) { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        reader.cancel()
        await client.disconnect()
        return await collector.messages
    }

    /// `host`, `host:port`, `[v6]` or `[v6]:port`.
    static func address(_ text: String) -> (String, Int)? {
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return nil }
            let host = String(text[text.index(after: text.startIndex)..<close])
            let rest = text[text.index(after: close)...]
            if rest.isEmpty { return host.isEmpty ? nil : (host, 1883) }
            guard rest.hasPrefix(":"), let port = Int(rest.dropFirst()), (1...65535).contains(port) else { return nil }
            return (host, port)
        }
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard let host = parts.first, !host.isEmpty else { return nil }
        if parts.count == 1 { return (String(host), 1883) }
        guard parts.count == 2, let port = Int(parts[1]), (1...65535).contains(port) else { return nil }
        return (String(host), port)
    }

    static func printError(_ text: String) {
        FileHandle.standardError.write(Data("\(text)\n".utf8))
    }
}

/// The messages received so far, the last payload of each topic.
private actor Collector {
    private var payloads: [String: [UInt8]] = [:]
    private var order: [String] = []
    private(set) var lastArrival = ContinuousClock.now

    func add(_ message: MQTTMessage) {
        if payloads.updateValue(message.payload, forKey: message.topic) == nil { order.append(message.topic) }
        lastArrival = .now
    }

    func touch(_ instant: ContinuousClock.Instant) { lastArrival = instant }

    var messages: [HomeAssistantDiscoveryMessage] {
        order.map { HomeAssistantDiscoveryMessage(topic: $0, payload: payloads[$0] ?? []) }
    }
}
