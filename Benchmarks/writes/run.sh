#!/usr/bin/env bash
# Acknowledged writes through the bridge beside the raw MQTT 5 exchange they are made of, in one
# run, on a real mosquitto:
#   write-through  one Modbus master (modbus_writer.c: FC6, one write at a time) writes a holding
#                  register; the bridge publishes an MQTT 5 command (QoS 1, Response Topic,
#                  Correlation Data); a C device (mqtt5_device.c) answers on the response topic;
#                  only then does the master get its reply. Beside it: one C MQTT 5 client
#                  (mqtt5_requester.c) making the same request/response with the same device,
#                  without the bridge. The difference of the medians is what the bridge adds.
#   masters        MASTERS masters at once, each writing its own register (its own point, its
#                  own command topic), beside MASTERS raw MQTT 5 clients at once.
# Every write must succeed: a write answered with an exception, a timeout or a wrong transaction
# id is reported in the table. Prints one table; saves it in .build-bench/writes/results-DATE.md.
#
#   Benchmarks/writes/run.sh [--seconds N] [--masters N] [--repeat N] [--no-build] [--no-wait]
#
#   --seconds N   measured seconds per run (default 5), after 1 s of warm-up
#   --masters N   concurrent masters and raw clients in the second part (default 16, 1...64)
#   --repeat N    rounds (default 1); the table shows medians, ranges in brackets
#   --no-build    reuse the binaries of an earlier run
#   --no-wait     do not wait for compiles or busy CPUs before each measurement
#
#   Environment: SERVER_CPU (0) runs the bridge, or the raw MQTT 5 client(s) in its place;
#   LOADGEN_CPU (1) runs the broker, the device and the Modbus masters; BUILD_LOCK, if set, is a
#   file the Swift build takes with flock(1); PORT_BASE (16700) is the first port tried;
#   BRIDGE_BINARY (default .build-bench/release/mqtt-modbus-bridge) is the bridge measured.
#
# Before each measurement it waits until no compiler runs and the CPUs are idle (15 minutes at
# most over the whole run). Loopback only; every process it starts is stopped when it exits.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
SCRATCH="$ROOT/.build-bench"
OUT="$SCRATCH/writes"
SECONDS_PER_RUN=5
WARMUP=1
MASTERS=16
REPEAT=1
BUILD=1
WAIT_FOR_QUIET=1
SERVER_CPU=${SERVER_CPU:-0}
LOADGEN_CPU=${LOADGEN_CPU:-1}
PORT=${PORT_BASE:-16700}

while [ $# -gt 0 ]; do
    case "$1" in
    --seconds) SECONDS_PER_RUN=$2; shift 2 ;;
    --masters) MASTERS=$2; shift 2 ;;
    --repeat) REPEAT=$2; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    --no-wait) WAIT_FOR_QUIET=0; shift ;;
    -h | --help) sed -n '2,29p' "$0"; exit 0 ;;
    *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
number() { case "$2" in '' | *[!0-9]*) echo "$1 takes a whole number" >&2; exit 2 ;; esac; }
number --seconds "$SECONDS_PER_RUN"; number --masters "$MASTERS"; number --repeat "$REPEAT"
[ "$SECONDS_PER_RUN" -ge 1 ] && [ "$SECONDS_PER_RUN" -le 60 ] || { echo "--seconds: 1...60" >&2; exit 2; }
[ "$MASTERS" -ge 1 ] && [ "$MASTERS" -le 64 ] || { echo "--masters: 1...64" >&2; exit 2; }
[ "$REPEAT" -ge 1 ] && [ "$REPEAT" -le 9 ] || { echo "--repeat: 1...9" >&2; exit 2; }

mkdir -p "$OUT"
declare -A R # R[key,round]
# shellcheck source=../common.sh
source "$HERE/../common.sh"

# ---------------------------------------------------------------------------------------------
if [ "$BUILD" = 1 ]; then
    log "building the C programs (gcc -O2 -Wall -Wextra)"
    gcc -O2 -Wall -Wextra -Werror -pthread -o "$OUT/modbus_writer" "$HERE/modbus_writer.c"
    gcc -O2 -Wall -Wextra -Werror -o "$OUT/mqtt5_device" "$HERE/mqtt5_device.c" -lmosquitto
    gcc -O2 -Wall -Wextra -Werror -pthread -o "$OUT/mqtt5_requester" "$HERE/mqtt5_requester.c" -lmosquitto
    log "building mqtt-modbus-bridge (swift build -c release, scratch path .build-bench)"
    (cd "$ROOT" && swift_build -c release --scratch-path "$SCRATCH" --product mqtt-modbus-bridge --static-swift-stdlib) >&2
fi
BRIDGE=${BRIDGE_BINARY:-$SCRATCH/release/mqtt-modbus-bridge}
for binary in "$OUT/modbus_writer" "$OUT/mqtt5_device" "$OUT/mqtt5_requester" "$BRIDGE"; do
    [ -x "$binary" ] || { log "missing $binary (run without --no-build)"; exit 1; }
done
MOSQUITTO=$(command -v mosquitto || echo /usr/sbin/mosquitto)
[ -x "$MOSQUITTO" ] || { log "needs mosquitto (Debian: mosquitto)"; exit 1; }
command -v curl >/dev/null || { log "needs curl"; exit 1; }

# ---------------------------------------------------------------------------------------------
# The broker and the device, on LOADGEN_CPU.
free_port BROKER_PORT
cat >"$OUT/mosquitto.conf" <<EOF
listener $BROKER_PORT 127.0.0.1
allow_anonymous true
persistence false
set_tcp_nodelay true
log_dest file $OUT/mosquitto.log
log_type error
log_type warning
EOF
[ "$(id -u)" = 0 ] && echo "user root" >>"$OUT/mosquitto.conf"
: >"$OUT/mosquitto.log"
taskset -c "$LOADGEN_CPU" "$MOSQUITTO" -c "$OUT/mosquitto.conf" >"$OUT/mosquitto.stdout" 2>&1 &
BROKER_PID=$!
PIDS+=("$BROKER_PID")
wait_listening "$BROKER_PORT" "$BROKER_PID" || { log "mosquitto did not start (log: $OUT/mosquitto.log)"; exit 1; }

taskset -c "$LOADGEN_CPU" "$OUT/mqtt5_device" -p "$BROKER_PORT" >"$OUT/device.out" 2>"$OUT/device.err" &
DEVICE_PID=$!
PIDS+=("$DEVICE_PID")
for _ in $(seq 1 100); do grep -q READY "$OUT/device.err" && break; sleep 0.05; done
grep -q READY "$OUT/device.err" || { log "the device did not subscribe: $(cat "$OUT/device.err")"; exit 1; }

# The bridge: MASTERS holding registers w0…, each its own MQTT 5 command topic, acknowledged by
# the device's response (ack mode mqtt5), commands and acks on their own connection (the default).
free_port MODBUS_PORT
free_port STATUS_PORT
{
    cat <<EOF
broker:
  host: 127.0.0.1
  port: $BROKER_PORT
  client_id: bench-bridge
  protocol: mqtt5
modbus:
  host: 127.0.0.1
  port: $MODBUS_PORT
units:
  - id: 1
    templates:
      - for: { n: "0...$((MASTERS - 1))" }
        name: "w{{n}}"
        area: holding_register
        address: "{{n}}"
        type: int16
        command_topic: "bench/cmd/b{{n}}"
        ack: { mode: mqtt5, timeout: 5s }
EOF
} >"$OUT/bridge.yaml"
"$BRIDGE" validate "$OUT/bridge.yaml" >"$OUT/validate.out" 2>&1 ||
    { log "the generated configuration does not validate: $OUT/validate.out"; exit 1; }
taskset -c "$SERVER_CPU" "$BRIDGE" run --config "$OUT/bridge.yaml" --status-listen "127.0.0.1:$STATUS_PORT" \
    --log-level warning >"$OUT/bridge.log" 2>&1 &
BRIDGE_PID=$!
PIDS+=("$BRIDGE_PID")
for _ in $(seq 1 300); do
    curl -fs "http://127.0.0.1:$STATUS_PORT/ready" >/dev/null 2>&1 && break
    kill -0 "$BRIDGE_PID" 2>/dev/null || break
    sleep 0.1
done
curl -fs "http://127.0.0.1:$STATUS_PORT/ready" >/dev/null 2>&1 || { log "the bridge is not ready: $OUT/bridge.log"; exit 1; }
# One acknowledged write per register proves the whole path before anything is measured.
"$OUT/modbus_writer" "$MODBUS_PORT" 1 0 "$MASTERS" | grep -q ' exceptions=0 other=0 ' ||
    { log "a first write through the bridge failed (bridge log: $OUT/bridge.log)"; exit 1; }

# ---------------------------------------------------------------------------------------------
record() { # prefix round result
    local prefix=$1 round=$2 result=$3
    R[${prefix}_p50,$round]=$(field p50_us "$result")
    R[${prefix}_p99,$round]=$(field p99_us "$result")
    R[${prefix}_rate,$round]=$(field writes_per_s "$result")
    [ -n "${R[${prefix}_rate,$round]}" ] || R[${prefix}_rate,$round]=$(field rps "$result")
    R[${prefix}_count,$round]=$(field writes "$result")
    [ -n "${R[${prefix}_count,$round]}" ] || R[${prefix}_count,$round]=$(field requests "$result")
    local exceptions other errors
    exceptions=$(field exceptions "$result"); other=$(field other "$result"); errors=$(field errors "$result")
    R[${prefix}_bad,$round]=$((${exceptions:-0} + ${other:-0} + ${errors:-0}))
    # No result line at all (a crash, a timeout of the whole run) counts as a failure too.
    [ -n "$result" ] || R[${prefix}_bad,$round]=1
}
# CPU use of the broker, the device and the bridge during a run, in % of one core (the whole
# run, warm-up included), so a table can say which process was the bottleneck.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
CPU_PIDS=()
cpu_start() { CPU_T0=$(date +%s%N); CPU_C0=(); local pid; for pid in "${CPU_PIDS[@]}"; do CPU_C0+=("$(cpu_ticks "$pid")"); done; }
cpu_stop() { # prefix round
    local t1 i name
    t1=$(date +%s%N)
    for i in "${!CPU_PIDS[@]}"; do
        name=${CPU_NAMES[$i]}
        R[${1}_cpu_$name,$2]=$(awk -v t="$(($(cpu_ticks "${CPU_PIDS[$i]}") - CPU_C0[i]))" -v hz="$(getconf CLK_TCK)" \
            -v ns="$((t1 - CPU_T0))" 'BEGIN { printf "%.0f", 100 * (t / hz) / (ns / 1e9) }')
    done
}
cpu_note() { # prefix -> "broker X %, device Y %, bridge Z %"
    local i out=""
    for i in "${!CPU_NAMES[@]}"; do out+="${out:+, }${CPU_NAMES[$i]} $(median "${1}_cpu_${CPU_NAMES[$i]}") %"; done
    echo "$out"
}
raw() { # prefix clients round
    local result
    wait_for_quiet
    cpu_start
    result=$(timeout $((SECONDS_PER_RUN + WARMUP + 20)) taskset -c "$SERVER_CPU" "$OUT/mqtt5_requester" \
        -p "$BROKER_PORT" -c "$2" -t "$SECONDS_PER_RUN" -w "$WARMUP" 2>>"$OUT/requester.log") || true
    cpu_stop "$1" "$3"
    log "  [$3] raw MQTT 5, $2 client(s): $result ($(cpu_note "$1"))"
    record "$1" "$3" "$result"
}
bridge() { # prefix masters round
    local result
    wait_for_quiet
    cpu_start
    result=$(timeout $((SECONDS_PER_RUN + WARMUP + 20)) taskset -c "$LOADGEN_CPU" "$OUT/modbus_writer" \
        "$MODBUS_PORT" "$SECONDS_PER_RUN" 0 "$2" "$WARMUP" 2>>"$OUT/writer.log") || true
    cpu_stop "$1" "$3"
    log "  [$3] bridge, $2 master(s): $result ($(cpu_note "$1"))"
    record "$1" "$3" "$result"
}

CPU_PIDS=("$BROKER_PID" "$DEVICE_PID" "$BRIDGE_PID")
CPU_NAMES=(broker device bridge)
START_LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
for round in $(seq 1 "$REPEAT"); do
    log "round $round of $REPEAT"
    raw raw1 1 "$round"
    bridge bridge1 1 "$round"
    raw rawN "$MASTERS" "$round"
    bridge bridgeN "$MASTERS" "$round"
done
DEVICE_CPU_S=$(awk -v hz="$(getconf CLK_TCK)" '{ printf "%.1f", ($14 + $15) / hz }' "/proc/$DEVICE_PID/stat")

# ---------------------------------------------------------------------------------------------
us() { local v; v=$(cat); [ "$v" = "-" ] && echo "-" || awk -v v="$v" 'BEGIN { printf "%.0f µs", v }'; }
difference() { [ "$1" = "-" ] || [ "$2" = "-" ] && { echo "-"; return; }; awk -v a="$1" -v b="$2" 'BEGIN { printf "%+.0f µs", a - b }'; }
bad_note() { local n; n=$(($(total "$1_bad") + $(total "$2_bad"))); [ "$n" = 0 ] || echo " **$n failed**"; }

REPORT="$OUT/results-$(date -u +%Y%m%dT%H%M%SZ).md"
{
    echo "### Acknowledged writes: the bridge beside raw MQTT 5 request/response (bridge or raw clients on CPU $SERVER_CPU; broker, device and masters on CPU $LOADGEN_CPU)"
    echo
    echo "| measurement | bridge | raw MQTT 5, C clients | bridge − raw / bridge ÷ raw |"
    echo "|---|---:|---:|---:|"
    printf '| write-through, 1 master, FC6 → MQTT 5 command → device response → reply: p50%s | %s%s | %s%s | %s |\n' \
        "$(bad_note bridge1 raw1)" "$(median bridge1_p50 | us)" "$(spread bridge1_p50 us)" \
        "$(median raw1_p50 | us)" "$(spread raw1_p50 us)" "$(difference "$(median bridge1_p50)" "$(median raw1_p50)")"
    printf '| write-through, 1 master: p99 | %s%s | %s%s | %s |\n' \
        "$(median bridge1_p99 | us)" "$(spread bridge1_p99 us)" "$(median raw1_p99 | us)" "$(spread raw1_p99 us)" \
        "$(difference "$(median bridge1_p99)" "$(median raw1_p99)")"
    printf '| write-through, 1 master: acknowledged writes/s | %s%s | %s%s | %s |\n' \
        "$(median bridge1_rate | k)" "$(spread bridge1_rate k)" "$(median raw1_rate | k)" "$(spread raw1_rate k)" \
        "$(ratio "$(median bridge1_rate)" "$(median raw1_rate)")"
    printf '| %s masters at once, each its own point: acknowledged writes/s%s | %s%s | %s%s | %s |\n' \
        "$MASTERS" "$(bad_note bridgeN rawN)" "$(median bridgeN_rate | k)" "$(spread bridgeN_rate k)" \
        "$(median rawN_rate | k)" "$(spread rawN_rate k)" "$(ratio "$(median bridgeN_rate)" "$(median rawN_rate)")"
    printf '| %s masters at once: p50 / p99 | %s / %s | %s / %s | |\n' "$MASTERS" \
        "$(median bridgeN_p50 | us)" "$(median bridgeN_p99 | us)" "$(median rawN_p50 | us)" "$(median rawN_p99 | us)"
    echo
    echo "CPU during the runs (median, % of one core, warm-up included): 1 raw client: $(cpu_note raw1); 1 master: $(cpu_note bridge1); $MASTERS raw clients: $(cpu_note rawN); $MASTERS masters: $(cpu_note bridgeN)."
    echo
    echo "Writes measured: bridge $(total bridge1_count) + $(total bridgeN_count), raw $(total raw1_count) + $(total rawN_count); failed (exception, timeout, wrong transaction): bridge $(($(total bridge1_bad) + $(total bridgeN_bad))), raw $(($(total raw1_bad) + $(total rawN_bad))). The device used ${DEVICE_CPU_S} s of CPU in all and said: $(kill -TERM "$DEVICE_PID"; sleep 0.5; cat "$OUT/device.out")."
    echo
    echo "Conditions: $(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) CPUs ($(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)); kernel $(uname -r); $(swift --version 2>/dev/null | head -n 1); $(gcc --version | head -n 1); mosquitto and libmosquitto $(dpkg-query -W -f '${Version}' libmosquitto1 2>/dev/null || echo '?'). $REPEAT round(s); ${WARMUP} s warm-up + ${SECONDS_PER_RUN} s per run; load average at start $START_LOAD."
    quiet_note
} | tee "$REPORT"
log "report saved to $REPORT"
