#!/usr/bin/env bash
# Load-insensitive profiles of the bridge (valgrind), for a machine too busy for wall-clock
# figures: instruction counts repeat exactly whatever else runs.
#
#   Benchmarks/bridge/profile.sh reads  BINARY [OUT]   # callgrind: Ir per request, 16 conns x 8 in flight
#   Benchmarks/bridge/profile.sh server BINARY [OUT]   # the same against ModbusServerBenchmark
#   Benchmarks/bridge/profile.sh ingest BINARY [OUT]   # callgrind: Ir per MQTT message of a flood
#   Benchmarks/bridge/profile.sh heap   BINARY [OUT]   # massif: live heap with a full cache
#
# BINARY: a release build (mqtt-modbus-bridge, or ModbusServerBenchmark for `server`); a copy
# without DWARF (objcopy --strip-debug, symbols kept) is what valgrind 3.19 can read. Needs the C
# tools of Benchmarks/bridge/run.sh (run it once, or --no-build after a build) in
# .build-bench/bridge, valgrind, mosquitto. Environment: POINTS (10000), ROUNDS (3: flood rounds
# for ingest), SECS (5: load seconds for reads), CONNS (set: 100 Modbus connections before the
# heap snapshot). Instrumentation is on only while the load runs (--instr-atstart=no), so Ir per
# request or message is the process's instructions in that window divided by the replies the
# load generator counted, or by the messages published.
set -euo pipefail
MODE=${1:?mode}; BIN=${2:?binary}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
TOOLS="$ROOT/.build-bench/bridge"
OUT=${3:-$ROOT/.build-bench/profile/$MODE-$(date -u +%Y%m%dT%H%M%SZ)}
POINTS=${POINTS:-10000}; ROUNDS=${ROUNDS:-3}; SECS=${SECS:-5}
mkdir -p "$OUT"
SWIFT_LIB=$(dirname "$(command -v swift)")/../lib/swift/linux
SHIM="$OUT/dispatch_main_shim.so"
gcc -O2 -shared -fPIC -o "$SHIM" "$HERE/dispatch_main_shim.c" -L"$SWIFT_LIB" -ldispatch -Wl,-rpath,"$SWIFT_LIB"
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
BP=$(port); MP=$(port)
printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 0\nset_tcp_nodelay true\n' \
    "$BP" >"$OUT/mosquitto.conf"
[ "$(id -u)" = 0 ] && echo "user root" >>"$OUT/mosquitto.conf"
MOSQUITTO=$(command -v mosquitto || echo /usr/sbin/mosquitto)
taskset -c 1 "$MOSQUITTO" -c "$OUT/mosquitto.conf" >"$OUT/mosquitto.log" 2>&1 &
MPID=$!
trap 'kill $MPID 2>/dev/null; [ -n "${VPID:-}" ] && kill $VPID 2>/dev/null; true' EXIT
sleep 0.5
"$TOOLS/mqtt_flood" -p "$BP" -n "$POINTS" -R 1 -r >/dev/null
cat >"$OUT/bridge.yaml" <<YAML
broker: { host: 127.0.0.1, port: $BP, client_id: bench-bridge, protocol: mqtt311 }
modbus: { host: 127.0.0.1, port: $MP, max_connections: 1100, idle_timeout: none }
units:
  - id: 1
    templates:
      - for: { n: "0...$((POINTS - 1))" }
        name: "p{{n}}"
        area: holding_register
        address: "{{n}}"
        type: uint16
        qos: 0
        state_topic: "bench/{{n}}"
YAML
case "$MODE" in
reads | ingest) TOOL=(--tool=callgrind --instr-atstart=no "--callgrind-out-file=$OUT/callgrind.out") ;;
server) TOOL=(--tool=callgrind --instr-atstart=no "--callgrind-out-file=$OUT/callgrind.out") ;;
heap) TOOL=(--tool=massif --vgdb=yes "--massif-out-file=$OUT/massif.out" --threshold=0.2) ;;
*) echo "unknown mode $MODE" >&2; exit 2 ;;
esac
if [ "$MODE" = server ]; then
    taskset -c 0 valgrind "${TOOL[@]}" "$BIN" "$MP" sync-in-place default >"$OUT/valgrind.log" 2>&1 &
    VPID=$!
    for _ in $(seq 1 600); do (echo >"/dev/tcp/127.0.0.1/$MP") 2>/dev/null && break; sleep 0.2; done
else
    LD_PRELOAD="$SHIM" taskset -c 0 valgrind "${TOOL[@]}" "$BIN" run --config "$OUT/bridge.yaml" >"$OUT/valgrind.log" 2>&1 &
    VPID=$!
    "$TOOLS/bridge_probe" -m "$MP" -n "$POINTS" -B 1 -T 600 >"$OUT/probe-start.out"
fi
sleep 1
if [ "$MODE" = heap ]; then
    [ -n "${CONNS:-}" ] && { taskset -c 1 "$TOOLS/loadgen" -p "$MP" -c 100 -d 1 -t 3 -w 0 >/dev/null 2>&1 || true; }
    sleep 2
    vgdb --pid="$VPID" detailed_snapshot "$OUT/live.massif" >/dev/null
    ms_print --threshold=1 "$OUT/live.massif" >"$OUT/live.txt"
    echo "heap $POINTS points: $(awk '/^ +[0-9]+ +[0-9,]+ +[0-9,]+/ { print "total_bytes=" $3 " useful_bytes=" $4; exit }' "$OUT/live.txt") ($OUT/live.txt)"
    exit 0
fi
callgrind_control -z "$VPID" >/dev/null
callgrind_control -i on "$VPID" >/dev/null
if [ "$MODE" = ingest ]; then
    BASE=1001
    "$TOOLS/bridge_probe" -m "$MP" -n "$POINTS" -B $(((ROUNDS + BASE) % 65536)) -w -T 1200 >"$OUT/probe.out" &
    PROBE=$!
    "$TOOLS/mqtt_flood" -p "$BP" -n "$POINTS" -R "$ROUNDS" -b "$BASE" >"$OUT/flood.out"
    wait "$PROBE"
    COUNT=$((POINTS * ROUNDS))
else
    taskset -c 1 "$TOOLS/loadgen" -p "$MP" -c 16 -d 8 -t "$SECS" -w 0 >"$OUT/loadgen.out" 2>"$OUT/loadgen.err" || true
    COUNT=$(sed -n 's/.* total=\([0-9]*\).*/\1/p' "$OUT/loadgen.out")
fi
callgrind_control -i off "$VPID" >/dev/null
callgrind_control -d "$VPID" >/dev/null
sleep 1
kill -TERM "$VPID"; wait "$VPID" || true
FILE=$(ls -t "$OUT"/callgrind.out.* | head -1)
TOTAL=$(callgrind_annotate "$FILE" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }')
echo "$MODE: count=$COUNT Ir=$TOTAL Ir_per=$(awk -v t="$TOTAL" -v c="$COUNT" 'BEGIN { printf "%.0f", t / c }') ($FILE)"
