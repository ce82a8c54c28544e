// swift-tools-version: 6.0
// The libFuzzer targets, a package of their own so that the root package's `swift build
// --build-tests` never sees them: they only link with `-sanitize=fuzzer`. Build and run them with
// Fuzz/run.sh (docs/fuzzing.md).
import Foundation
import PackageDescription

// A package found by path is named after its directory, and this checkout's directory may be
// called anything (`main`, a worktree, CI's clone).
let root = URL(fileURLWithPath: Context.packageDirectory).deletingLastPathComponent()
let rootPackage = root.lastPathComponent

func fuzzer(_ name: String, _ products: [String], nio: Bool = false) -> Target {
    .executableTarget(
        name: name,
        dependencies: ["FuzzSupport"] + products.map { .product(name: $0, package: rootPackage) }
            + (nio ? [.product(name: "NIOCore", package: "swift-nio")] : []),
        swiftSettings: [.unsafeFlags(["-parse-as-library"])]
    )
}

let package = Package(
    name: "swift-mqtt-modbus-fuzz",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(path: ".."),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
    ],
    targets: [
        // libFuzzer's LLVMFuzzerRunDriver, declared for Swift.
        .target(name: "CFuzzerDriver"),
        // The entry point every fuzzer shares, input slicing and invariant checks.
        .target(name: "FuzzSupport", dependencies: ["CFuzzerDriver"]),
        fuzzer("FuzzFrameAssembler", ["ModbusCore"], nio: true),
        fuzzer("FuzzRequestParser", ["ModbusCore"], nio: true),
        fuzzer("FuzzReplyEncoding", ["ModbusCore"], nio: true),
        fuzzer("FuzzJSON", ["MQTTModbusBridgeConfiguration"]),
        fuzzer("FuzzPayloadDecoder", ["MQTTModbusBridgeConfiguration"]),
        fuzzer("FuzzCommandTemplate", ["MQTTModbusBridgeConfiguration"]),
        fuzzer("FuzzAckEvaluator", ["MQTTModbusBridgeConfiguration", "ModbusCore"]),
        fuzzer("FuzzConfigLoader", ["MQTTModbusBridgeConfiguration", "ModbusCore"]),
        fuzzer("FuzzSparkplug", ["SparkplugB", "MQTTModbusBridgeConfiguration"]),
    ],
    swiftLanguageModes: [.v6]
)
