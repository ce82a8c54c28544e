// swift-tools-version: 6.0
import PackageDescription

let package = Package(
    name: "swift-mqtt-modbus",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "ModbusCore", targets: ["ModbusCore"]),
        .library(name: "ModbusTCPServer", targets: ["ModbusTCPServer"]),
        .library(name: "Mosquitto", targets: ["Mosquitto"]),
        .library(name: "MQTTModbusBridgeConfiguration", targets: ["MQTTModbusBridgeConfiguration"]),
        .library(name: "SparkplugB", targets: ["SparkplugB"]),
        .library(name: "MQTTModbusBridge", targets: ["MQTTModbusBridge"]),
        .library(name: "MQTTModbusBridgeStatus", targets: ["MQTTModbusBridgeStatus"]),
        .library(name: "MQTTModbusBridgeSimulator", targets: ["MQTTModbusBridgeSimulator"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-protobuf.git", from: "1.39.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-certificates.git", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-asn1.git", from: "1.7.4"),
    ],
    targets: [
        // Pure Modbus: MBAP framing, PDU requests and responses, exception codes. No I/O.
        .target(
            name: "ModbusCore",
            dependencies: [.product(name: "NIOCore", package: "swift-nio")]
        ),
        // The callback-based Modbus TCP server on SwiftNIO, with the Modbus/TCP Security (TLS,
        // roles from client certificates) listener on swift-nio-ssl and swift-certificates.
        .target(
            name: "ModbusTCPServer",
            dependencies: [
                "ModbusCore",
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // The bridge's configuration: the topic-map model, YAML loading and validation, and the
        // point value codecs. No I/O: `validate`, `explain` and `registers` need nothing else.
        // Allowed and forbidden imports per module: docs/architecture.md (checked by
        // Tests/check-imports.sh).
        .target(
            name: "MQTTModbusBridgeConfiguration",
            dependencies: [
                "ModbusCore",
                .product(name: "Yams", package: "Yams"),
                .product(name: "Logging", package: "swift-log"),
            ],
            exclude: ["README.md"]
        ),
        // The configuration's `broker:` section applied to the MQTT client's settings, for the
        // runtime and the simulator.
        .target(
            name: "MQTTModbusBridgeBroker",
            dependencies: ["MQTTModbusBridgeConfiguration", "Mosquitto"],
            exclude: ["README.md"]
        ),
        // The Sparkplug B codec (protobuf types generated from sparkplug_b.proto and committed;
        // regenerate.sh makes them again), value conversions, and the node sessions. No I/O.
        .target(
            name: "SparkplugB",
            dependencies: [
                "MQTTModbusBridgeConfiguration",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            exclude: ["sparkplug_b.proto", "regenerate.sh", "README.md"]
        ),
        // The bridge's runtime: register cache, write path and acknowledgements, the service.
        .target(
            name: "MQTTModbusBridge",
            dependencies: [
                "MQTTModbusBridgeConfiguration",
                "SparkplugB",
                "MQTTModbusBridgeBroker",
                "ModbusCore",
                "ModbusTCPServer",
                "Mosquitto",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            exclude: ["README.md"]
        ),
        // The read-only status listener on Hummingbird: the status page, its JSON API, /health
        // and /metrics (Prometheus).
        .target(
            name: "MQTTModbusBridgeStatus",
            dependencies: [
                "MQTTModbusBridge",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            exclude: ["README.md"]
        ),
        // Simulated devices for a configuration: `simulate`, the demo and the tests.
        .target(
            name: "MQTTModbusBridgeSimulator",
            dependencies: [
                "MQTTModbusBridgeConfiguration",
                "SparkplugB",
                "MQTTModbusBridgeBroker",
                "Mosquitto",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            exclude: ["README.md"]
        ),
        // libmosquitto (Debian libmosquitto-dev) as a system library.
        .systemLibrary(
            name: "CMosquitto",
            pkgConfig: "libmosquitto",
            providers: [.apt(["libmosquitto-dev"]), .brew(["mosquitto"])]
        ),
        // The Swift MQTT client over libmosquitto; no C type in its API.
        .target(
            name: "Mosquitto",
            dependencies: [
                "CMosquitto",
                .product(name: "Logging", package: "swift-log"),
            ],
            exclude: ["README.md"]
        ),
        // The command-line program: one file per subcommand, no logic.
        .executableTarget(
            name: "mqtt-modbus-bridge",
            dependencies: [
                "MQTTModbusBridgeConfiguration",
                "MQTTModbusBridge",
                "MQTTModbusBridgeStatus",
                "MQTTModbusBridgeSimulator",
                "ModbusCore",
                "Mosquitto",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ]
        ),
        .executableTarget(
            name: "DictionaryStoreExample",
            dependencies: [
                "ModbusTCPServer",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "examples/dictionary-store"
        ),
        .executableTarget(
            name: "ReadOnlyExample",
            dependencies: ["ModbusTCPServer"],
            path: "examples/read-only"
        ),
        .executableTarget(
            name: "ModbusServerBenchmark",
            dependencies: ["ModbusTCPServer"],
            path: "Benchmarks/ModbusServerBenchmark"
        ),
        .testTarget(
            name: "ModbusCoreTests",
            dependencies: [
                "ModbusCore",
                "MQTTTestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOTestUtils", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "ModbusTCPServerTests",
            dependencies: [
                "ModbusTCPServer",
                "MQTTTestSupport",
                "ModbusCore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "MetricsTestKit", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            resources: [.copy("Interop")]
        ),
        // The real-mosquitto test harness (TestBroker, TestPKI, waiting helpers) and small test
        // utilities (SplitMix64), shared by the test targets.
        .target(
            name: "MQTTTestSupport",
            dependencies: [
                "Mosquitto",
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Tests/MQTTTestSupport"
        ),
        .testTarget(
            name: "MosquittoTests",
            dependencies: [
                "Mosquitto",
                "MQTTTestSupport",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "MQTTModbusBridgeTests",
            dependencies: [
                "MQTTModbusBridgeConfiguration", "MQTTModbusBridge", "ModbusCore", "ModbusTCPServer", "MQTTTestSupport",
                "SparkplugB",
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        // End to end: a real mosquitto, the bridge in-process, a simulated device and pymodbus.
        .testTarget(
            name: "BridgeEndToEndTests",
            dependencies: [
                "MQTTModbusBridgeConfiguration",
                "MQTTModbusBridgeBroker",
                "MQTTModbusBridge",
                "MQTTModbusBridgeStatus",
                "MQTTModbusBridgeSimulator",
                "MQTTTestSupport",
                "Mosquitto",
                "ModbusCore",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            resources: [.copy("Python"), .copy("Fixtures")]
        ),
    ],
    swiftLanguageModes: [.v6]
)
