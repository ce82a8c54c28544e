#!/usr/bin/env bash
# Checks the module boundaries of docs/architecture.md: every `import` in Sources/<Module>/*.swift
# must be on that module's list below, and a module listed as forbidden fails with its reason.
# Run by Tests/run.sh (and so by CI) before anything is built; it takes a fraction of a second.
#
#   Tests/check-imports.sh            # exit 0 when every module imports only what it may
set -euo pipefail
cd "$(dirname "$0")/.."

platform="Foundation Dispatch Synchronization Glibc Musl Darwin"

# module | may import (besides the platform modules where noted) | why the rest is forbidden
declare -A allowed=(
    [ModbusCore]="NIOCore"
    [ModbusTCPServer]="ModbusCore NIOConcurrencyHelpers NIOCore NIOPosix NIOSSL NIOTLS X509 SwiftASN1 Logging CoreMetrics ServiceLifecycle Synchronization Glibc Musl Darwin"
    [CMosquitto]=""
    [Mosquitto]="CMosquitto Logging $platform"
    [MQTTModbusBridgeConfiguration]="ModbusCore Yams Logging Foundation"
    [MQTTModbusBridgeBroker]="MQTTModbusBridgeConfiguration Mosquitto Foundation"
    [SparkplugB]="MQTTModbusBridgeConfiguration SwiftProtobuf Foundation FoundationEssentials"
    [MQTTModbusBridge]="MQTTModbusBridgeConfiguration MQTTModbusBridgeBroker SparkplugB ModbusCore ModbusTCPServer Mosquitto Logging Metrics ServiceLifecycle NIOCore NIOConcurrencyHelpers $platform"
    [MQTTModbusBridgeStatus]="MQTTModbusBridge Hummingbird NIOCore Logging Prometheus ServiceLifecycle Synchronization Foundation"
    [MQTTModbusBridgeSimulator]="MQTTModbusBridgeConfiguration MQTTModbusBridgeBroker SparkplugB Mosquitto Logging ServiceLifecycle $platform"
    [mqtt-modbus-bridge]="ArgumentParser MQTTModbusBridgeConfiguration MQTTModbusBridge MQTTModbusBridgeStatus MQTTModbusBridgeSimulator ModbusCore Mosquitto Logging Metrics Prometheus ServiceLifecycle UnixSignals Foundation"
)
declare -A reason=(
    [ModbusCore]="pure Modbus: no I/O, no logging, no MQTT"
    [ModbusTCPServer]="a Modbus server that knows nothing of MQTT, YAML, HTTP or the bridge"
    [Mosquitto]="an MQTT client that knows nothing of NIO, Modbus or the bridge"
    [MQTTModbusBridgeConfiguration]="configuration and codecs without I/O: no NIO, no MQTT client, no Modbus server, no metrics"
    [MQTTModbusBridgeBroker]="only maps broker settings onto the MQTT client"
    [SparkplugB]="the Sparkplug B codec and sessions: no I/O, no MQTT client, no Modbus server"
    [MQTTModbusBridge]="the runtime: no YAML parsing, no HTTP, no Prometheus"
    [MQTTModbusBridgeStatus]="HTTP and metrics export: no MQTT client, no YAML, no Modbus server"
    [MQTTModbusBridgeSimulator]="simulated devices: no Modbus server, no NIO, no HTTP, not the bridge runtime"
    [mqtt-modbus-bridge]="subcommands only"
)

failures=0
for directory in Sources/*/; do
    module="$(basename "$directory")"
    if [ -z "${allowed[$module]+set}" ]; then
        echo "check-imports: Sources/$module is not in Tests/check-imports.sh; add its rules (and docs/architecture.md)" >&2
        failures=$((failures + 1))
        continue
    fi
    while IFS=: read -r file line text; do
        imported="$(echo "$text" | sed -E 's/^[[:space:]]*(@[A-Za-z_]+[[:space:]]+)*import[[:space:]]+(class |struct |enum |protocol |func |var |let |typealias )?([A-Za-z_0-9]+).*/\3/')"
        case " ${allowed[$module]} " in
            *" $imported "*) ;;
            *)
                echo "check-imports: $file:$line: $module must not import $imported (${reason[$module]:-see docs/architecture.md})" >&2
                failures=$((failures + 1))
                ;;
        esac
    done < <(grep -rnE '^[[:space:]]*(@[A-Za-z_]+[[:space:]]+)*import[[:space:]]' --include='*.swift' "$directory" || true)
done
if [ "$failures" -gt 0 ]; then
    echo "check-imports: $failures forbidden import(s); the module rules are in docs/architecture.md" >&2
    exit 1
fi
echo "check-imports: every module imports only what docs/architecture.md allows"
