#!/usr/bin/env bash
# The bridge beside its references, in one run, on a real mosquitto: (a) Modbus reads served
# from the bridge's cache beside the bare ModbusServer (and the trivial C responder, the load
# generator's ceiling), same load generator and scenarios; (b) ingest: a flood of QoS 0 messages
# over POINTS topics, the bridge beside mosquitto_sub and a C libmosquitto subscriber, with
# every cached value checked at the end; (c) cold start: time to a full cache with POINTS
# retained topics, from the broker's log of the bridge's connection; (d) RSS with POINTS points,
# after start and after the read scenarios (up to 1,000 Modbus connections). Prints one table
# with ratios. Read scenarios: a 1 connection lockstep, b 16, c 16 x 8 pipelined, d 100, k 1,000,
# p 1,000 each polling every 100 ms.
#
#   Benchmarks/bridge/run.sh [--points N] [--rounds N] [--seconds N] [--repeat N] [--only LIST]
#                            [--no-build] [--no-wait]
#
#   --points N    points and topics (default 10000)
#   --rounds N    flood rounds over every topic (default 100: 1,000,000 messages with 10,000 points)
#   --seconds N   measured seconds per load-generator run (default 5), after 1 s of warm-up
#   --repeat N    rounds of the whole set (default 1); the table shows medians, ranges in brackets
#   --only LIST   comma-separated parts: cold (always: it starts the bridge), reads, ingest
#   --no-build    reuse the binaries of an earlier run
#   --no-wait     do not wait for compiles or busy CPUs before each measurement
#
#   Environment: SERVER_CPU (0) runs the bridge and the servers and subscribers it is compared
#   with; LOADGEN_CPU (1) runs the load generator, the broker and the flood publisher;
#   BUILD_LOCK, if set, is a file the Swift builds take with flock(1) (machines where builds
#   must not overlap); PORT_BASE (16500) is the first port tried; BRIDGE_BINARY (default
#   .build-bench/release/mqtt-modbus-bridge) is the bridge measured (to compare two builds).
#
# Placement: what is measured runs alone on SERVER_CPU. Before each measurement it waits until
# no compiler runs and the CPUs are idle (15 minutes at most over the whole run), like
# ../modbus-throughput/run.sh. Every process it starts is stopped when it exits. Binaries, logs
# and the results (results-DATE.md) go to .build-bench/bridge/.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
SCRATCH="$ROOT/.build-bench"
OUT="$SCRATCH/bridge"
POINTS=10000
ROUNDS=100
SECONDS_PER_RUN=5
WARMUP=1
REPEAT=1
BUILD=1
ONLY="cold,reads,ingest"
WAIT_FOR_QUIET=1
SERVER_CPU=${SERVER_CPU:-0}
LOADGEN_CPU=${LOADGEN_CPU:-1}
PORT=${PORT_BASE:-16500}

while [ $# -gt 0 ]; do
    case "$1" in
    --points) POINTS=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --seconds) SECONDS_PER_RUN=$2; shift 2 ;;
    --repeat) REPEAT=$2; shift 2 ;;
    --only) ONLY=$2; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    --no-wait) WAIT_FOR_QUIET=0; shift ;;
    -h | --help) sed -n '2,32p' "$0"; exit 0 ;;
    *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
number() { case "$2" in '' | *[!0-9]*) echo "$1 takes a whole number" >&2; exit 2 ;; esac; }
number --points "$POINTS"; number --rounds "$ROUNDS"; number --seconds "$SECONDS_PER_RUN"; number --repeat "$REPEAT"
[ "$POINTS" -ge 125 ] && [ "$POINTS" -le 60000 ] || { echo "--points: 125...60000" >&2; exit 2; }
[ "$REPEAT" -ge 1 ] && [ "$REPEAT" -le 9 ] || { echo "--repeat: 1...9" >&2; exit 2; }
FLOOD=$((POINTS * ROUNDS))
wanted() { [[ ",$ONLY," == *",$1,"* ]]; }

mkdir -p "$OUT"
declare -A R # R[key,round]
# shellcheck source=../common.sh
source "$HERE/../common.sh"

# ---------------------------------------------------------------------------------------------
# Build.
if [ "$BUILD" = 1 ]; then
    log "building the C programs (gcc -O2 -Wall -Wextra)"
    gcc -O2 -Wall -Wextra -Werror -o "$OUT/loadgen" "$HERE/../modbus-throughput/loadgen.c"
    gcc -O2 -Wall -Wextra -Werror -o "$OUT/trivial_responder" "$HERE/../modbus-throughput/trivial_responder.c"
    for tool in mqtt_flood mqtt_count bridge_probe; do
        gcc -O2 -Wall -Wextra -Werror -o "$OUT/$tool" "$HERE/$tool.c" -lmosquitto
    done
    log "building mqtt-modbus-bridge and ModbusServerBenchmark (swift build -c release, scratch path .build-bench)"
    # The bridge as it ships (docker/Dockerfile, packaging/build-deb.sh): the Swift runtime and
    # Foundation linked in, so the resident set counts only the pages of them that it touches.
    (cd "$ROOT" && swift_build -c release --scratch-path "$SCRATCH" --product mqtt-modbus-bridge --static-swift-stdlib) >&2
    # The same flags for both products: a build with other flags in the same scratch path would
    # compile every module again.
    (cd "$ROOT" && swift_build -c release --scratch-path "$SCRATCH" --product ModbusServerBenchmark --static-swift-stdlib) >&2
fi
BRIDGE=${BRIDGE_BINARY:-$SCRATCH/release/mqtt-modbus-bridge}
SERVER=$SCRATCH/release/ModbusServerBenchmark
for binary in "$OUT/loadgen" "$OUT/trivial_responder" "$OUT/mqtt_flood" "$OUT/mqtt_count" "$OUT/bridge_probe" \
    "$BRIDGE" "$SERVER"; do
    [ -x "$binary" ] || { log "missing $binary (run without --no-build)"; exit 1; }
done
command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || { log "needs mosquitto (Debian: mosquitto)"; exit 1; }
MOSQUITTO=$(command -v mosquitto || echo /usr/sbin/mosquitto)
command -v mosquitto_sub >/dev/null || { log "needs mosquitto_sub (Debian: mosquitto-clients)"; exit 1; }

# ---------------------------------------------------------------------------------------------
kib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
status_kb() { awk -v key="$2:" '$1 == key { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }

# The broker: on LOADGEN_CPU, no queue limit (a flood must not be cut at the broker: the figure
# is the subscriber's), TCP_NODELAY, its log on $SYS/broker/log/# for the probe.
free_port BROKER_PORT
cat >"$OUT/mosquitto.conf" <<EOF
listener $BROKER_PORT 127.0.0.1
allow_anonymous true
persistence false
max_queued_messages 0
set_tcp_nodelay true
log_dest topic
log_dest file $OUT/mosquitto.log
log_type error
log_type warning
log_type notice
EOF
# mosquitto started as root switches to the user "mosquitto", which could not write its log here.
[ "$(id -u)" = 0 ] && echo "user root" >>"$OUT/mosquitto.conf"
: >"$OUT/mosquitto.log"
taskset -c "$LOADGEN_CPU" "$MOSQUITTO" -c "$OUT/mosquitto.conf" >"$OUT/mosquitto.stdout" 2>&1 &
BROKER_PID=$!
PIDS+=("$BROKER_PID")
wait_listening "$BROKER_PORT" "$BROKER_PID" || { log "mosquitto did not start (log: $OUT/mosquitto.log)"; exit 1; }
log "mosquitto $("$MOSQUITTO" -h 2>/dev/null | head -n 1 | awk '{ print $3 }') on 127.0.0.1:$BROKER_PORT (CPU $LOADGEN_CPU)"

# The retained set: topic bench/n holds n + 1 (round 1 of mqtt_flood, base 0).
log "publishing $POINTS retained values"
taskset -c "$LOADGEN_CPU" "$OUT/mqtt_flood" -p "$BROKER_PORT" -n "$POINTS" -R 1 -r >"$OUT/retained.out"

# The bridge's configuration: POINTS holding registers of unit 1, register n from topic bench/n.
free_port MODBUS_PORT
cat >"$OUT/bridge.yaml" <<EOF
broker:
  host: 127.0.0.1
  port: $BROKER_PORT
  client_id: bench-bridge
  protocol: mqtt311
modbus:
  host: 127.0.0.1
  port: $MODBUS_PORT
  max_connections: 1100
  idle_timeout: none
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
EOF
"$BRIDGE" validate "$OUT/bridge.yaml" >"$OUT/validate.out" 2>&1 ||
    { log "the generated configuration does not validate: $OUT/validate.out"; exit 1; }

# (c) Cold start: the probe subscribes to the broker's log, then the bridge starts on SERVER_CPU;
# the probe reports when the broker logged the connection and when every register held its
# retained value. Leaves the bridge running (BRIDGE_PID) with a full cache.
cold_start() { # round
    local round=$1 probe_log="$OUT/probe-cold-$1.log" result
    wait_for_quiet
    "$OUT/bridge_probe" -m "$MODBUS_PORT" -n "$POINTS" -B 1 -b "$BROKER_PORT" -i bench-bridge -T 60 \
        >"$OUT/probe-cold-$round.out" 2>"$probe_log" &
    local probe=$!
    for _ in $(seq 1 100); do grep -q READY "$probe_log" && break; sleep 0.05; done
    taskset -c "$SERVER_CPU" "$BRIDGE" run --config "$OUT/bridge.yaml" >"$OUT/bridge-$round.log" 2>&1 &
    BRIDGE_PID=$!
    PIDS+=("$BRIDGE_PID")
    wait "$probe" || true
    result=$(cat "$OUT/probe-cold-$round.out")
    log "  [$round] cold start: $result"
    for key in listen_ms connected_ms full_ms after_connect_ms; do R[cold_$key,$round]=$(field "$key" "$result"); done
    R[rss_start,$round]=$(status_kb "$BRIDGE_PID" VmRSS)
}

# One load-generator run against PORT; results under R[PREFIX_*,round].
load() { # prefix port connections depth round pid [interval_ms]
    local prefix=$1 port=$2 connections=$3 depth=$4 round=$5 pid=$6 result t0 t1 c0 c1 pacing=()
    [ -z "${7:-}" ] || pacing=(-i "$7")
    wait_for_quiet
    c0=$(awk '{ print $14 + $15 }' "/proc/$pid/stat")
    t0=$(date +%s%N)
    result=$(timeout $((SECONDS_PER_RUN + WARMUP + 20)) taskset -c "$LOADGEN_CPU" "$OUT/loadgen" -p "$port" \
        -c "$connections" -d "$depth" "${pacing[@]}" -t "$SECONDS_PER_RUN" -w "$WARMUP" 2>>"$OUT/loadgen.log") || true
    t1=$(date +%s%N)
    c1=$(awk '{ print $14 + $15 }' "/proc/$pid/stat")
    R[${prefix}_rps,$round]=$(field rps "$result")
    R[${prefix}_p50,$round]=$(field p50_us "$result")
    R[${prefix}_p99,$round]=$(field p99_us "$result")
    R[${prefix}_bad,$round]=$(($(field errors "$result") + $(field lost "$result") + $(field closed "$result")))
    R[${prefix}_cpu,$round]=$(awk -v t="$((c1 - c0))" -v hz="$(getconf CLK_TCK)" -v ns="$((t1 - t0))" \
        'BEGIN { printf "%.0f", 100 * (t / hz) / (ns / 1e9) }')
    log "  [$round] $prefix: $result server_cpu=${R[${prefix}_cpu,$round]}%"
}

# name:connections:depth[:interval_ms]; p paces each of 1,000 connections like a master
# polling every 100 ms (loadgen -i), the others are closed loops (the most load each takes).
SCENARIOS="a:1:1 b:16:1 c:16:8 d:100:1 k:1000:1 p:1000:1:100"
cache_reads() { # round target port pid
    local round=$1 target=$2 port=$3 pid=$4 spec name connections depth interval
    for spec in $SCENARIOS; do
        IFS=: read -r name connections depth interval <<<"$spec"
        load "${target}_$name" "$port" "$connections" "$depth" "$round" "$pid" "$interval"
    done
}

# (b) Ingest: the probe watches the last topic, then checks every register; the flood comes
# from LOADGEN_CPU. Rate = messages / time from the flood's start to a cache holding every
# topic's last value.
ingest_bridge() { # round
    local round=$1 result t0 t1
    wait_for_quiet
    local base=$((1 + round * 1000))
    t0=$(date +%s%N)
    "$OUT/bridge_probe" -m "$MODBUS_PORT" -n "$POINTS" -B $(((ROUNDS + base) % 65536)) -w -T 300 \
        >"$OUT/probe-ingest-$round.out" 2>/dev/null &
    local probe=$!
    taskset -c "$LOADGEN_CPU" "$OUT/mqtt_flood" -p "$BROKER_PORT" -n "$POINTS" -R "$ROUNDS" -b "$base" \
        >"$OUT/flood-bridge-$round.out"
    wait "$probe" || true
    t1=$(date +%s%N)
    result=$(cat "$OUT/probe-ingest-$round.out")
    if [ "$(field full_ms "$result")" = "-1.0" ]; then
        R[ingest_bridge,$round]="-"
        R[ingest_bridge_ok,$round]=0
    else
        R[ingest_bridge,$round]=$(awk -v n="$FLOOD" -v ns="$((t1 - t0))" 'BEGIN { printf "%.0f", n / (ns / 1e9) }')
        R[ingest_bridge_ok,$round]=1
    fi
    log "  [$round] ingest, bridge: ${R[ingest_bridge,$round]} msg/s; probe: $result; flood: $(cat "$OUT/flood-bridge-$round.out")"
}
ingest_subscriber() { # round name command...
    local round=$1 name=$2 t0 t1 rc=0
    shift 2
    wait_for_quiet
    local base=$((1 + round * 1000))
    # mosquitto_sub prints every payload: only mqtt_count's summary is kept.
    local output=/dev/null
    [ "$name" = c_subscriber ] && output="$OUT/ingest-$name-$round.out"
    taskset -c "$SERVER_CPU" "$@" >"$output" 2>"$OUT/ingest-$name-$round.err" &
    local pid=$!
    PIDS+=("$pid")
    # mosquitto_sub has no "subscribed" signal: its retained messages (left out of the count)
    # show that it is; mqtt_count prints READY.
    sleep 1
    t0=$(date +%s%N)
    taskset -c "$LOADGEN_CPU" "$OUT/mqtt_flood" -p "$BROKER_PORT" -n "$POINTS" -R "$ROUNDS" -b "$base" \
        >"$OUT/flood-$name-$round.out"
    wait "$pid" || rc=$?
    t1=$(date +%s%N)
    if [ "$rc" = 0 ]; then
        R[ingest_$name,$round]=$(awk -v n="$FLOOD" -v ns="$((t1 - t0))" 'BEGIN { printf "%.0f", n / (ns / 1e9) }')
    else
        R[ingest_$name,$round]="-"
    fi
    log "  [$round] ingest, $name: ${R[ingest_$name,$round]} msg/s (exit $rc) $([ "$name" = c_subscriber ] && cat "$output")"
}

START_LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
for round in $(seq 1 "$REPEAT"); do
    log "round $round of $REPEAT"
    cold_start "$round"
    if wanted reads; then
        cache_reads "$round" bridge "$MODBUS_PORT" "$BRIDGE_PID"
        R[rss_connections,$round]=$(status_kb "$BRIDGE_PID" VmHWM)
    fi
    if wanted ingest; then
        ingest_bridge "$round"
        R[rss_flood,$round]=$(status_kb "$BRIDGE_PID" VmHWM)
    fi
    stop_pid "$BRIDGE_PID"
    wanted reads || wanted ingest || continue

    if wanted reads; then
        free_port port
        taskset -c "$SERVER_CPU" "$SERVER" "$port" sync-in-place default >"$OUT/server-$round.log" 2>&1 &
        pid=$!
        PIDS+=("$pid")
        wait_listening "$port" "$pid" || { log "ModbusServerBenchmark did not start"; exit 1; }
        cache_reads "$round" server "$port" "$pid"
        stop_pid "$pid"

        free_port port
        taskset -c "$SERVER_CPU" "$OUT/trivial_responder" "$port" >"$OUT/trivial-$round.log" 2>&1 &
        pid=$!
        PIDS+=("$pid")
        wait_listening "$port" "$pid" || { log "trivial_responder did not start"; exit 1; }
        cache_reads "$round" trivial "$port" "$pid"
        stop_pid "$pid"
    fi
    wanted ingest || continue

    ingest_subscriber "$round" mosquitto_sub mosquitto_sub -h 127.0.0.1 -p "$BROKER_PORT" -t 'bench/#' -q 0 -R \
        -C "$FLOOD"
    ingest_subscriber "$round" c_subscriber "$OUT/mqtt_count" -p "$BROKER_PORT" -n "$POINTS" -c "$FLOOD" \
        -R "$ROUNDS" -b $((1 + round * 1000)) -T 300
done

# ---------------------------------------------------------------------------------------------
# The table: medians over rounds (ranges in brackets when there are several).
ms() { local v; v=$(cat); [ "$v" = "-" ] && echo "-" || awk -v v="$v" 'BEGIN { printf "%.0f ms", v }'; }
mb() { local v; v=$(cat); [ "$v" = "-" ] && echo "-" || kib "$v" | sed 's/$/ MiB/'; }

REPORT="$OUT/results-$(date -u +%Y%m%dT%H%M%SZ).md"
{
    echo "### The bridge beside its references: $POINTS points, bridge on CPU $SERVER_CPU, load generator, broker and publisher on CPU $LOADGEN_CPU"
    echo
    echo "| measurement | bridge | reference | bridge / reference | C ceiling |"
    echo "|---|---:|---:|---:|---:|"
    for spec in $SCENARIOS; do
        IFS=: read -r name connections depth interval <<<"$spec"
        shape="$connections conn × $depth in flight"
        [ -z "$interval" ] || shape="$connections conn, each polling every $interval ms"
        b=$(median "bridge_${name}_rps"); s=$(median "server_${name}_rps"); t=$(median "trivial_${name}_rps")
        errors=$(($(total "bridge_${name}_bad") + $(total "server_${name}_bad") + $(total "trivial_${name}_bad")))
        printf '| %s: cache reads, %s, FC3 × 10, req/s (p50 / p99 µs)%s | %s%s (%s / %s) | %s%s (%s / %s), bare ModbusServer | %s | %s%s, trivial C responder |\n' \
            "$name" "$shape" "$([ "$errors" = 0 ] || echo " **$errors errors**")" \
            "$(k <<<"$b")" "$(spread "bridge_${name}_rps" k)" "$(median "bridge_${name}_p50")" "$(median "bridge_${name}_p99")" \
            "$(k <<<"$s")" "$(spread "server_${name}_rps" k)" "$(median "server_${name}_p50")" "$(median "server_${name}_p99")" \
            "$(ratio "$b" "$s")" "$(k <<<"$t")" "$(spread "trivial_${name}_rps" k)"
    done
    b=$(median ingest_bridge); s=$(median ingest_mosquitto_sub); c=$(median ingest_c_subscriber)
    ok=$(total ingest_bridge_ok)
    printf '| ingest: %s QoS 0 messages over %s topics, msg/s | %s%s | %s%s, mosquitto_sub | %s | %s%s, C libmosquitto subscriber |\n' \
        "$FLOOD" "$POINTS" "$(k <<<"$b")" "$(spread ingest_bridge k)" "$(k <<<"$s")" "$(spread ingest_mosquitto_sub k)" \
        "$(ratio "$b" "$s")" "$(k <<<"$c")" "$(spread ingest_c_subscriber k)"
    printf '| ingest: cache correct at the end (every register = its topic'"'"'s last value) | %s of %s rounds | | | |\n' "$ok" "$REPEAT"
    printf '| cold start, %s retained topics: full cache after the broker connection | %s%s | target ≤ 300 ms | | |\n' \
        "$POINTS" "$(median cold_after_connect_ms | ms)" "$(spread cold_after_connect_ms ms)"
    printf '| cold start: Modbus listener up / broker connection / full cache, from the process start | %s / %s / %s | | | |\n' \
        "$(median cold_listen_ms | ms)" "$(median cold_connected_ms | ms)" "$(median cold_full_ms | ms)"
    printf '| RSS with %s points: full cache / peak after the read scenarios (up to 1,000 connections) / peak after the flood | %s / %s / %s | | | |\n' \
        "$POINTS" "$(median rss_start | mb)" "$(median rss_connections | mb)" "$(median rss_flood | mb)"
    echo
    echo "Server CPU during the cache reads (median, % of one core): bridge $(for s in $SCENARIOS; do n=${s%%:*}; printf '%s %s %%, ' "$n" "$(median "bridge_${n}_cpu")"; done)bare server $(for s in $SCENARIOS; do n=${s%%:*}; printf '%s %s %%, ' "$n" "$(median "server_${n}_cpu")"; done)trivial $(for s in $SCENARIOS; do n=${s%%:*}; printf '%s %s %% ' "$n" "$(median "trivial_${n}_cpu")"; done)."
    echo
    echo "Conditions: $(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) CPUs ($(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)); kernel $(uname -r); $(swift --version 2>/dev/null | head -n 1); $(gcc --version | head -n 1); mosquitto and libmosquitto $(dpkg-query -W -f '${Version}' libmosquitto1 2>/dev/null || echo '?'). $REPEAT round(s); ${WARMUP} s warm-up + ${SECONDS_PER_RUN} s per load run; load average at start $START_LOAD."
    quiet_note
} | tee "$REPORT"
log "report saved to $REPORT"
