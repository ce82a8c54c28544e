#!/usr/bin/env bash
# Write latency of the bridge, quiet and under a telemetry flood, side by side in one run.
#
# A local mosquitto (set_tcp_nodelay true, otherwise its defaults), the bridge (release build)
# with TOPICS telemetry points and one MQTT 5 setpoint, the project's simulator answering the
# setpoint's commands (an empty-handed MQTT 5 response, no telemetry of its own), and a C Modbus
# master (../writes/modbus_writer.c: FC6, one write at a time on one connection). Two phases of SECONDS each:
#   quiet  the master writes; nothing else happens;
#   flood  the same while a publisher process (Tests/BridgeEndToEndTests/Python/mqtt_flood.py,
#          raw MQTT 3.1.1, QoS 0) publishes as fast as the broker takes it, round-robin over
#          TOPICS topics the bridge subscribes to.
# Prints p50/p99/max and writes/s of both phases, the ratio flood/quiet, what the flood
# published, and the bridge's dropped-message and ack counters (from its /metrics). Every write
# must succeed; a write answered with an exception or not at all is reported. Loopback only;
# everything it starts is stopped on exit.
#
#   Benchmarks/ack-under-flood/run.sh [--seconds N] [--topics N] [--no-build] [--bridge PATH]
#
#   --seconds N   length of each phase (default 5)
#   --topics N    telemetry topics and points (default 1000)
#   --no-build    reuse the release binary of an earlier build
#   --bridge PATH run this mqtt-modbus-bridge binary instead (to compare builds in one run)
#   --command-connection MODE  broker.command_connection of the bridge: separate (the default)
#                 or shared (commands and acks on the telemetry connection)
#   Environment: PORT_BASE (16600) is the first port used; PYTHON (python3).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
OUT="$ROOT/.build-bench/ack-under-flood"
SECONDS_PER_PHASE=5
TOPICS=1000
BUILD=1
BRIDGE=""
COMMAND_CONNECTION=separate
PYTHON=${PYTHON:-python3}
PORT=${PORT_BASE:-16600}
while [ $# -gt 0 ]; do
    case "$1" in
    --seconds) SECONDS_PER_PHASE=$2; shift 2 ;;
    --topics) TOPICS=$2; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    --bridge) BRIDGE=$2; BUILD=0; shift 2 ;;
    --command-connection) COMMAND_CONNECTION=$2; shift 2 ;;
    -h | --help) sed -n '2,24p' "$0"; exit 0 ;;
    *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
mkdir -p "$OUT"
log() { printf '%s\n' "$*" >&2; }

PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    done
}
trap cleanup EXIT

if [ "$BUILD" = 1 ]; then
    log "building the bridge (release)..."
    (cd "$ROOT" && flock /tmp/swift-build.lock swift build -c release --product mqtt-modbus-bridge >&2)
fi
BRIDGE=${BRIDGE:-$ROOT/.build/release/mqtt-modbus-bridge}
[ -x "$BRIDGE" ] || { log "no bridge binary at $BRIDGE (build it, or pass --bridge)"; exit 1; }
gcc -O2 -Wall -Wextra -Werror -pthread -o "$OUT/writer" "$HERE/../writes/modbus_writer.c"
FLOOD="$ROOT/Tests/BridgeEndToEndTests/Python/mqtt_flood.py"

BROKER_PORT=$PORT
MODBUS_PORT=$((PORT + 1))
STATUS_PORT=$((PORT + 2))
cat > "$OUT/mosquitto.conf" <<CONF
listener $BROKER_PORT 127.0.0.1
allow_anonymous true
set_tcp_nodelay true
CONF
mosquitto -c "$OUT/mosquitto.conf" > "$OUT/mosquitto.log" 2>&1 &
PIDS+=($!)

{
    cat <<YAML
broker: { host: 127.0.0.1, port: $BROKER_PORT, client_id: bench-bridge, protocol: mqtt5, status_topic: bench/bridge/status, command_connection: $COMMAND_CONNECTION }
modbus: { host: 127.0.0.1, port: $MODBUS_PORT }
units:
  - id: 1
    points:
      - { name: sp, area: holding_register, address: 0, type: int16, command_topic: bench/dev/sp/set, ack: { mode: mqtt5, timeout: 5s } }
YAML
    for ((i = 0; i < TOPICS; i++)); do
        echo "      - { name: t$i, area: input_register, address: $i, type: int16, state_topic: flood/$i }"
    done
} > "$OUT/bridge.yaml"
cat > "$OUT/device.yaml" <<YAML
broker: { host: 127.0.0.1, port: $BROKER_PORT, client_id: bench-device, protocol: mqtt5 }
units:
  - id: 1
    points:
      - { name: sp, area: holding_register, address: 0, type: int16, command_topic: bench/dev/sp/set, ack: { mode: mqtt5, timeout: 5s } }
YAML

sleep 0.3
"$BRIDGE" run -c "$OUT/bridge.yaml" --status-listen "127.0.0.1:$STATUS_PORT" --log-level warning > "$OUT/bridge.log" 2>&1 &
PIDS+=($!)
"$BRIDGE" simulate -c "$OUT/device.yaml" --interval 0 --log-level warning > "$OUT/device.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 100); do
    curl -fs "http://127.0.0.1:$STATUS_PORT/ready" > /dev/null 2>&1 && break
    sleep 0.1
done
curl -fs "http://127.0.0.1:$STATUS_PORT/ready" > /dev/null || { log "the bridge is not ready; see $OUT/bridge.log"; exit 1; }
# The simulator subscribes to the command topic: one write, retried, proves it is there.
for _ in $(seq 1 50); do
    "$OUT/writer" "$MODBUS_PORT" 0.2 | grep -q ' exceptions=0 ' && break
    sleep 0.1
done

metric() { curl -fs "http://127.0.0.1:$STATUS_PORT/metrics" | awk -v name="$1" '$1 == name { print $2 }' | head -1; }
field() { tr ' ' '\n' <<< "$1" | awk -F= -v key="$2" '$1 == key { print $2 }'; }

log "quiet: $SECONDS_PER_PHASE s of writes"
QUIET=$("$OUT/writer" "$MODBUS_PORT" "$SECONDS_PER_PHASE" || true)
DROPPED_BEFORE=$(metric bridge_mqtt_messages_dropped_total)
RECEIVED_BEFORE=$(metric bridge_mqtt_messages_received_total)
log "flood: $SECONDS_PER_PHASE s of writes while $TOPICS topics are flooded"
"$PYTHON" "$FLOOD" "$BROKER_PORT" 0 "$TOPICS" flood "$((SECONDS_PER_PHASE + 1))" > "$OUT/flood.out" 2>&1 &
FLOOD_PID=$!
PIDS+=($FLOOD_PID)
sleep 0.5
FLOODED=$("$OUT/writer" "$MODBUS_PORT" "$SECONDS_PER_PHASE" || true)
wait "$FLOOD_PID" || true
sleep 2
DROPPED_AFTER=$(metric bridge_mqtt_messages_dropped_total)
RECEIVED_AFTER=$(metric bridge_mqtt_messages_received_total)

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
{
    echo "# ack-under-flood, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, $SECONDS_PER_PHASE s per phase, $TOPICS topics"
    echo
    echo "| phase | writes | ok | exceptions | p50 µs | p99 µs | max µs | writes/s |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|"
    for phase in quiet flood; do
        line=$([ $phase = quiet ] && echo "$QUIET" || echo "$FLOODED")
        echo "| $phase | $(field "$line" writes) | $(field "$line" ok) | $(field "$line" exceptions) | $(field "$line" p50_us) | $(field "$line" p99_us) | $(field "$line" max_us) | $(field "$line" writes_per_s) |"
    done
    echo
    echo "flood / quiet: p50 $(ratio "$(field "$FLOODED" p50_us)" "$(field "$QUIET" p50_us)") ×, p99 $(ratio "$(field "$FLOODED" p99_us)" "$(field "$QUIET" p99_us)") ×, writes/s $(ratio "$(field "$FLOODED" writes_per_s)" "$(field "$QUIET" writes_per_s)") ×"
    echo "flood publisher: $(cat "$OUT/flood.out")"
    echo "bridge during the flood: received $(awk -v a="$RECEIVED_AFTER" -v b="$RECEIVED_BEFORE" 'BEGIN { print a - b }') messages, dropped $(awk -v a="$DROPPED_AFTER" -v b="$DROPPED_BEFORE" 'BEGIN { print a - b }') from its telemetry buffer; late acks $(metric bridge_late_acks_total), unmatched $(metric bridge_unmatched_acks_total)"
} | tee "$OUT/results-$(date -u +%Y%m%d-%H%M).md"
