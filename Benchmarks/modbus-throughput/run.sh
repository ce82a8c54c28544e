#!/usr/bin/env bash
# Modbus TCP throughput, side by side in one run: a trivial C responder (the ceiling), the
# libmodbus server (as shipped, and with TCP_NODELAY), our ModbusServer with each read-handler
# form (sync-in-place, sync, async) and, if it is installed, pymodbus. Each server gets CPU 0,
# the C load generator CPU 1; each is measured with 16 connections x 1 request in flight and
# 16 connections x 8 pipelined, then its heap allocations per request are counted
# (malloc_counter.so). Loopback only; every server it starts is stopped on exit. Takes about
# 5 minutes on a quiet machine (one round).
#
#   Benchmarks/modbus-throughput/run.sh [--seconds N] [--repeat N] [--no-build] [--no-wait] [--only LIST]
#                                       [--connections N] [--depths LIST] [--no-allocs]
#
#   --seconds N   measured seconds per run (default 5), after 1 s of warm-up
#   --repeat N    rounds (default 1); every round measures every cell once, and the table shows
#                 the median round's figures with the range of requests/s
#   --no-build    reuse the binaries of an earlier run
#   --no-wait     do not wait for compiles or tests running on the machine to finish
#   --only LIST   comma-separated servers: trivial,libmodbus,libmodbus-nodelay,sync-in-place,
#                 sync,async,pymodbus (the default), and sync-in-place-default (no group
#                 passed: the server's own, one thread per CPU the process may use) and
#                 sync-in-place-nio-singleton (NIO's shared group, one thread per core of the
#                 machine: the server's default before it read the affinity mask)
#   --connections N  connections of the load generator (default 16; 1 = lockstep)
#   --depths LIST    requests in flight per connection, 1 and/or 8 (default 1,8)
#   --no-allocs      skip the heap allocation counts
#
#   Environment: PYTHON (default python3) is the interpreter for the pymodbus row;
#   SERVER_CPU (0) and LOADGEN_CPU (1) place the two sides; PORT_BASE (15500) is the first port;
#   BUILD_LOCK, if set, is a file the Swift build takes with flock(1).
#
# Before each measurement it waits until no compiler runs and the CPUs are idle (< 15 % busy)
# (15 minutes at most over the whole run), and measures again (3 tries) a cell during which
# other processes used more than 10 % of a core (system CPU time less the server's and the load
# generator's).
# Binaries, server logs and the results (results-DATE.md) go to .build-bench/modbus-throughput/.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
SCRATCH="$ROOT/.build-bench"
OUT="$SCRATCH/modbus-throughput"
SECONDS_PER_RUN=5
REPEAT=1
WARMUP=1
CONNECTIONS=16
DEPTHS="1 8"
ALLOCS=1
BUILD=1
WAIT_FOR_QUIET=1
ONLY="trivial,libmodbus,libmodbus-nodelay,sync-in-place,sync,async,pymodbus"
PYTHON=${PYTHON:-python3}
SERVER_CPU=${SERVER_CPU:-0}
LOADGEN_CPU=${LOADGEN_CPU:-1}
PORT=${PORT_BASE:-15500}

while [ $# -gt 0 ]; do
    case "$1" in
    --seconds) SECONDS_PER_RUN=$2; shift 2 ;;
    --repeat) REPEAT=$2; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    --no-wait) WAIT_FOR_QUIET=0; shift ;;
    --only) ONLY=$2; shift 2 ;;
    --connections) CONNECTIONS=$2; shift 2 ;;
    --depths) DEPTHS=${2//,/ }; shift 2 ;;
    --no-allocs) ALLOCS=0; shift ;;
    -h | --help) sed -n '2,35p' "$0"; exit 0 ;;
    *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
case "$SECONDS_PER_RUN" in '' | *[!0-9]*) echo "--seconds takes whole seconds" >&2; exit 2 ;; esac
[ "$SECONDS_PER_RUN" -ge 1 ] && [ "$SECONDS_PER_RUN" -le 60 ] || { echo "--seconds: 1...60" >&2; exit 2; }
case "$REPEAT" in '' | *[!0-9]*) echo "--repeat takes a whole number" >&2; exit 2 ;; esac
[ "$REPEAT" -ge 1 ] && [ "$REPEAT" -le 9 ] || { echo "--repeat: 1...9" >&2; exit 2; }
case "$CONNECTIONS" in '' | *[!0-9]*) echo "--connections takes a whole number" >&2; exit 2 ;; esac
[ "$CONNECTIONS" -ge 1 ] && [ "$CONNECTIONS" -le 1024 ] || { echo "--connections: 1...1024" >&2; exit 2; }
for depth in $DEPTHS; do
    case "$depth" in 1 | 8) ;; *) echo "--depths: 1 and/or 8" >&2; exit 2 ;; esac
done

mkdir -p "$OUT"
log() { printf '%s\n' "$*" >&2; }

# ---------------------------------------------------------------------------------------------
# Servers started by this script; all of them are stopped when it exits, whatever the reason.
SERVER_PIDS=()
stop_pid() {
    local pid=$1
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    log "  process $pid did not stop within 10 s of SIGTERM: killing it"
    kill -KILL "$pid" 2>/dev/null || true
}
cleanup() {
    local pid
    for pid in "${SERVER_PIDS[@]}"; do stop_pid "$pid"; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------------------------------------
# Build.
LIBMODBUS_FLAGS=$(pkg-config --cflags --libs libmodbus 2>/dev/null || echo "-I/usr/include/modbus -lmodbus")
if [ "$BUILD" = 1 ]; then
    log "building the C programs (gcc -O2 -Wall -Wextra)"
    gcc -O2 -Wall -Wextra -Werror -o "$OUT/loadgen" "$HERE/loadgen.c"
    gcc -O2 -Wall -Wextra -Werror -o "$OUT/trivial_responder" "$HERE/trivial_responder.c"
    gcc -O2 -Wall -Wextra -Werror -shared -fPIC -o "$OUT/malloc_counter.so" "$HERE/malloc_counter.c"
    # shellcheck disable=SC2086
    gcc -O2 -Wall -Wextra -Werror -o "$OUT/libmodbus_server" "$HERE/libmodbus_server.c" $LIBMODBUS_FLAGS
    log "building ModbusServerBenchmark (swift build -c release, scratch path .build-bench)"
    # BUILD_LOCK: a file the build takes with flock(1), on machines where builds must not overlap.
    if [ -n "${BUILD_LOCK:-}" ]; then
        (cd "$ROOT" && flock "$BUILD_LOCK" swift build -c release --scratch-path "$SCRATCH" --product ModbusServerBenchmark) >&2
    else
        (cd "$ROOT" && swift build -c release --scratch-path "$SCRATCH" --product ModbusServerBenchmark) >&2
    fi
fi
SWIFT_SERVER="$SCRATCH/release/ModbusServerBenchmark"
for binary in "$OUT/loadgen" "$OUT/trivial_responder" "$OUT/libmodbus_server" "$OUT/malloc_counter.so" "$SWIFT_SERVER"; do
    [ -e "$binary" ] || { log "missing $binary (run without --no-build)"; exit 1; }
done

# ---------------------------------------------------------------------------------------------
# Wait until nobody else is compiling or testing, so the figures are not polluted.
# Compiler and linker processes (alive only while they work). Idle swift-build / swift-test
# processes (waiting for a lock, say) do not count; a test run that uses CPU shows in the CPU
# check below and, during a measurement, in the cell's "other CPU".
compiler_processes() {
    pgrep -af 'swift-frontend|swift-driver|swift-autolink-extract|/cc1 |/cc1plus |collect2|ld\.gold|ld\.lld|/ld ' |
        grep -v -e "pgrep" -e "$HERE/run.sh" || true
}
# Percent of all CPUs busy over one second.
cpu_busy_percent() {
    local _cpu a b c d e f g h t1 i1 t2 i2
    read -r _cpu a b c d e f g h _ </proc/stat
    t1=$((a + b + c + d + e + f + g + h)); i1=$((d + e))
    sleep 1
    read -r _cpu a b c d e f g h _ </proc/stat
    t2=$((a + b + c + d + e + f + g + h)); i2=$((d + e))
    echo $((100 * ((t2 - t1) - (i2 - i1)) / (t2 - t1 > 0 ? t2 - t1 : 1)))
}
# Waits (30 s between looks) until no compiler runs and the CPUs are idle, within
# what is left of a 15-minute budget for the whole run. Returns 1 if the budget ran out.
WAIT_LEFT=900
WAITED_TOTAL=0
wait_for_quiet() {
    local busy pct
    while :; do
        busy=$(compiler_processes)
        pct=$(cpu_busy_percent)
        if [ -z "$busy" ] && [ "$pct" -lt 15 ]; then return 0; fi
        if [ "$WAIT_LEFT" -le 0 ]; then
            log "machine still busy (${pct} % CPU) and the 15-minute waiting budget is spent: measuring anyway"
            return 1
        fi
        log "machine busy (${pct} % CPU; $(printf '%s\n' "$busy" | grep -c .) compiler processes): waiting 30 s"
        sleep 30
        WAIT_LEFT=$((WAIT_LEFT - 30))
        WAITED_TOTAL=$((WAITED_TOTAL + 30))
    done
}

# ---------------------------------------------------------------------------------------------
# One measurement: start a server pinned to SERVER_CPU, load it from LOADGEN_CPU, record.
is_listening() {
    local hex
    hex=$(printf ':%04X' "$1")
    awk -v p="$hex" '$4 == "0A" && substr($2, length($2) - 4) == p { found = 1 } END { exit !found }' \
        /proc/net/tcp /proc/net/tcp6
}
cpu_ticks() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
    stat=${stat##*) }
    # shellcheck disable=SC2086
    set -- $stat
    echo $((${12} + ${13}))
}
system_busy_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat; }
field() { sed -n "s/.*[[:space:]]$1=\([^[:space:]]*\).*/\1/p" <<<" $2"; }

declare -A R  # R[server,depth,key]

# Starts "$@" (with {port} replaced by a free port) pinned to SERVER_CPU, output to $1, and waits
# until it listens. Sets STARTED_PID and STARTED_PORT; fails if it does not listen within 30 s.
start_server() {
    local slog=$1
    shift
    while is_listening "$PORT"; do PORT=$((PORT + 1)); done
    STARTED_PORT=$PORT
    PORT=$((PORT + 1))
    local argv=() word
    for word in "$@"; do argv+=("${word//\{port\}/$STARTED_PORT}"); done
    taskset -c "$SERVER_CPU" "${argv[@]}" >"$slog" 2>&1 &
    STARTED_PID=$!
    SERVER_PIDS+=("$STARTED_PID")
    local waited=0
    until is_listening "$STARTED_PORT"; do
        if ! kill -0 "$STARTED_PID" 2>/dev/null || [ "$waited" -ge 300 ]; then
            stop_pid "$STARTED_PID"
            return 1
        fi
        sleep 0.1
        waited=$((waited + 1))
    done
}

# Heap allocations per request: the server runs with malloc_counter.so preloaded; two loads
# (1 s and 4 s, each after 0.5 s of warm-up, new connections each time) and the difference in
# allocations over the difference in requests, so start-up and per-connection costs cancel out.
allocation_count() { # pid log -> the count the server reports on SIGUSR1
    local before after
    before=$(grep -c '^allocs ' "$2" || true)
    kill -USR1 "$1" 2>/dev/null || return 1
    for _ in $(seq 1 50); do
        after=$(grep -c '^allocs ' "$2" || true)
        [ "$after" -gt "$before" ] && { grep '^allocs ' "$2" | tail -n 1 | cut -d' ' -f2; return 0; }
        sleep 0.05
    done
    return 1
}
measure_allocations() {
    local server=$1 depth=$2
    shift 2
    local slog="$OUT/allocs-$server-d$depth.log" pid port c0 c1 c2 n1 n2 r
    R[$server,$depth,allocs]="-"
    start_server "$slog" env LD_PRELOAD="$OUT/malloc_counter.so" "$@" ||
        { PROBLEMS+=("$server: did not start with malloc_counter.so (log: $slog)"); return; }
    pid=$STARTED_PID
    port=$STARTED_PORT
    local glog="$OUT/allocs-loadgen-$server-d$depth.log"
    : >"$glog"
    if c0=$(allocation_count "$pid" "$slog") &&
        r=$(timeout 30 taskset -c "$LOADGEN_CPU" "$OUT/loadgen" -p "$port" -c "$CONNECTIONS" -d "$depth" -t 1 -w 0.5 2>>"$glog") &&
        n1=$(field total "$r") && c1=$(allocation_count "$pid" "$slog") &&
        r=$(timeout 30 taskset -c "$LOADGEN_CPU" "$OUT/loadgen" -p "$port" -c "$CONNECTIONS" -d "$depth" -t 4 -w 0.5 2>>"$glog") &&
        n2=$(field total "$r") && c2=$(allocation_count "$pid" "$slog"); then
        # a = K + x n1 and b = K + x n2 (K: connections' set-up): x = (b - a) / (n2 - n1). If the
        # second load did not answer clearly more requests, give the upper bound b / n2 instead.
        R[$server,$depth,allocs]=$(awk -v a="$((c1 - c0))" -v b="$((c2 - c1))" -v n1="$n1" -v n2="$n2" \
            'BEGIN { if (n2 > 1.5 * n1) printf "%.2f", (b - a) / (n2 - n1); else printf "≤ %.2f", b / (n2 > 0 ? n2 : 1) }')
    else
        PROBLEMS+=("$server, depth $depth: allocation count failed (logs: $slog, $glog)")
    fi
    stop_pid "$pid"
    wait "$pid" 2>/dev/null || true
    log "  $server depth $depth: ${R[$server,$depth,allocs]} heap allocations per request"
}
PROBLEMS=()
CLK_TCK=$(getconf CLK_TCK)

# One cell of one round: server $1, depth $2, round $3, command "${@:4}". Results go to
# R[server,depth,round,key]; problems to CELL_PROBLEMS.
measure() {
    local server=$1 depth=$2 round=$3
    shift 3
    local c="$server,$depth,$round"
    local slog="$OUT/server-$server-d$depth-r$round.log" glog="$OUT/loadgen-$server-d$depth-r$round.log" pid port
    R[$c,rps]="-"
    R[$c,busy]=0
    start_server "$slog" "$@" || { CELL_PROBLEMS+=("$server: did not start listening (log: $slog)"); return; }
    pid=$STARTED_PID
    port=$STARTED_PORT
    local ticks0 t0 t1 rc=0 result sys0 sys1
    ticks0=$(cpu_ticks "$pid")
    sys0=$(system_busy_ticks)
    t0=$(date +%s%N)
    result=$(timeout $((SECONDS_PER_RUN + WARMUP + 20)) taskset -c "$LOADGEN_CPU" "$OUT/loadgen" \
        -p "$port" -c "$CONNECTIONS" -d "$depth" -t "$SECONDS_PER_RUN" -w "$WARMUP" 2>"$glog") || rc=$?
    t1=$(date +%s%N)
    local ticks1 hwm
    ticks1=$(cpu_ticks "$pid")
    sys1=$(system_busy_ticks)
    hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status" 2>/dev/null || true)
    local alive=1
    kill -0 "$pid" 2>/dev/null || alive=0
    for key in rps errors lost closed p50_us p99_us max_us loadgen_cpu cpu_s; do
        R[$c,$key]=$(field "$key" "$result")
    done
    [ -n "${R[$c,rps]}" ] || R[$c,rps]="-"
    R[$c,cpu]=$(awk -v t="$((ticks1 - ticks0))" -v hz="$CLK_TCK" -v ns="$((t1 - t0))" \
        'BEGIN { printf "%.0f", 100 * (t / hz) / (ns / 1e9) }')
    R[$c,hwm]=${hwm:--}
    # CPU that neither the server nor the load generator used, in % of one core: other work on
    # the machine. Above 10 % the cell counts as disturbed.
    R[$c,foreign]=$(awk -v sys="$((sys1 - sys0))" -v srv="$((ticks1 - ticks0))" -v hz="$CLK_TCK" \
        -v lg="${R[$c,cpu_s]:-0}" -v ns="$((t1 - t0))" \
        'BEGIN { f = 100 * ((sys - srv) / hz - lg) / (ns / 1e9); printf "%.0f", f < 0 ? 0 : f }')
    [ "${R[$c,foreign]}" -gt 10 ] && R[$c,busy]=1
    if [ "$rc" = 124 ]; then
        CELL_PROBLEMS+=("$server, depth $depth: the load generator timed out (server hang?); log: $glog")
    elif [ -z "$result" ]; then
        CELL_PROBLEMS+=("$server, depth $depth: no result from the load generator (exit $rc); log: $glog")
    elif [ "$rc" != 0 ]; then
        CELL_PROBLEMS+=("$server, depth $depth: ${R[$c,errors]} invalid replies, ${R[$c,lost]} requests never answered, ${R[$c,closed]} connections closed by the server; log: $glog")
    fi
    if [ "$alive" = 0 ]; then
        local status=0
        wait "$pid" || status=$?
        CELL_PROBLEMS+=("$server, depth $depth: the server died during the run (exit $status; log: $slog)")
    else
        stop_pid "$pid"
        local status=0
        wait "$pid" 2>/dev/null || status=$?
        # 143 = ended by SIGTERM's default action (pymodbus); everything else should exit 0.
        if [ "$status" != 0 ] && [ "$status" != 143 ]; then
            CELL_PROBLEMS+=("$server, depth $depth: exit $status after SIGTERM (log: $slog)")
        fi
    fi
    log "  [$round] $server depth $depth: ${result:-no result} server_cpu=${R[$c,cpu]}% other_cpu=${R[$c,foreign]}% VmHWM=${R[$c,hwm]}kB"
}

# The figures of a cell: the round with the median requests/s, the range over rounds, errors,
# losses and closed connections added up over rounds, disturbed if any round was.
aggregate() {
    local server=$1 depth=$2 round key median lo hi
    local rows=""
    for round in $(seq 1 "$REPEAT"); do
        [ "${R[$server,$depth,$round,rps]:--}" = "-" ] || rows+="${R[$server,$depth,$round,rps]} $round"$'\n'
    done
    R[$server,$depth,rps]="-"
    [ -n "$rows" ] || return 0
    median=$(printf '%s' "$rows" | sort -n | awk '{ r[NR] = $2 } END { print r[int((NR + 1) / 2)] }')
    lo=$(printf '%s' "$rows" | sort -n | head -n 1 | cut -d' ' -f1)
    hi=$(printf '%s' "$rows" | sort -n | tail -n 1 | cut -d' ' -f1)
    for key in rps p50_us p99_us max_us loadgen_cpu cpu hwm foreign; do
        R[$server,$depth,$key]=${R[$server,$depth,$median,$key]:-}
    done
    R[$server,$depth,lo]=$lo
    R[$server,$depth,hi]=$hi
    local sum
    for key in errors lost closed busy; do
        sum=0
        for round in $(seq 1 "$REPEAT"); do
            sum=$((sum + ${R[$server,$depth,$round,$key]:-0}))
        done
        R[$server,$depth,$key]=$sum
    done
}

# ---------------------------------------------------------------------------------------------
SERVERS=()
LABELS=()
declare -A COMMAND
add_server() { SERVERS+=("$1"); LABELS+=("$2"); COMMAND[$1]=$3; }
wanted() { [[ ",$ONLY," == *",$1,"* ]]; }
wanted trivial && add_server trivial "trivial C responder (epoll, no data store)" "$OUT/trivial_responder {port}"
LIBMODBUS_VERSION=$(pkg-config --modversion libmodbus 2>/dev/null || echo '?')
wanted libmodbus && add_server libmodbus "libmodbus $LIBMODBUS_VERSION (select loop, default socket options)" "$OUT/libmodbus_server {port}"
wanted libmodbus-nodelay && add_server libmodbus-nodelay "libmodbus $LIBMODBUS_VERSION (select loop, TCP_NODELAY)" "$OUT/libmodbus_server {port} nodelay"
wanted sync-in-place && add_server sync-in-place "ModbusServer, .syncInPlace" "$SWIFT_SERVER {port} sync-in-place"
wanted sync && add_server sync "ModbusServer, .sync" "$SWIFT_SERVER {port} sync"
wanted async && add_server async "ModbusServer, .async" "$SWIFT_SERVER {port} async"
wanted sync-in-place-default && add_server sync-in-place-default \
    "ModbusServer, .syncInPlace, its default group (threads from the CPU affinity)" "$SWIFT_SERVER {port} sync-in-place default"
wanted sync-in-place-nio-singleton && add_server sync-in-place-nio-singleton \
    "ModbusServer, .syncInPlace, NIO's shared group (threads from the core count)" "$SWIFT_SERVER {port} sync-in-place nio-singleton"
PYMODBUS_NOTE="not installed: row skipped"
if wanted pymodbus; then
    if pyver=$("$PYTHON" -c 'import pymodbus; print(pymodbus.__version__)' 2>/dev/null); then
        PYMODBUS_NOTE="pymodbus $pyver"
        add_server pymodbus "pymodbus $pyver (asyncio)" "$PYTHON $HERE/pymodbus_server.py {port}"
    else
        log "pymodbus is not importable with $PYTHON: its row is skipped"
    fi
fi

log "running: ${SERVERS[*]} x depth ${DEPTHS// /, }; $CONNECTIONS connections; ${WARMUP} s warm-up + ${SECONDS_PER_RUN} s each"
START_LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
if [ "$WAIT_FOR_QUIET" = 1 ]; then
    log "waiting for quiet before each cell (no compiler running, CPUs < 15 % busy; 15 min at most in all)"
fi
POLLUTED_CELLS=0
for round in $(seq 1 "$REPEAT"); do
    [ "$REPEAT" = 1 ] || log "round $round of $REPEAT"
    for server in "${SERVERS[@]}"; do
        for depth in $DEPTHS; do
            for attempt in 1 2 3; do
                [ "$WAIT_FOR_QUIET" = 1 ] && { wait_for_quiet || true; }
                CELL_PROBLEMS=()
                # shellcheck disable=SC2086
                measure "$server" "$depth" "$round" ${COMMAND[$server]}
                [ "${R[$server,$depth,$round,busy]}" -gt 0 ] || break
                log "  other processes used ${R[$server,$depth,$round,foreign]} % of a core during $server depth $depth (try $attempt)"
                [ "$WAIT_FOR_QUIET" = 1 ] || break
            done
            PROBLEMS+=("${CELL_PROBLEMS[@]}")
            [ "${R[$server,$depth,$round,busy]}" -gt 0 ] && POLLUTED_CELLS=$((POLLUTED_CELLS + 1))
        done
    done
done
for server in "${SERVERS[@]}"; do
    for depth in $DEPTHS; do aggregate "$server" "$depth"; done
done
log "allocations per request (malloc_counter.so preloaded; pymodbus not counted: Python's own allocator hides most)"
for server in "${SERVERS[@]}"; do
    { [ "$server" = pymodbus ] || [ "$ALLOCS" = 0 ]; } && continue
    for depth in $DEPTHS; do
        [ "$WAIT_FOR_QUIET" = 1 ] && { wait_for_quiet || true; }
        # shellcheck disable=SC2086
        measure_allocations "$server" "$depth" ${COMMAND[$server]}
    done
done

# ---------------------------------------------------------------------------------------------
# Report.
k() { [ "$1" = "-" ] || [ -z "$1" ] && { echo "-"; return; }; awk -v v="$1" 'BEGIN { printf "%.1fk", v / 1000 }'; }
mark() { [ "${R[$1,$2,busy]:-0}" -gt 0 ] && echo " ⚠" || true; }
range() { # " (lo–hi)" when there are several rounds
    [ "$REPEAT" -gt 1 ] && [ "${R[$1,$2,rps]:--}" != "-" ] && echo " ($(k "${R[$1,$2,lo]}")–$(k "${R[$1,$2,hi]}"))" || true
}
mib() { [ "$1" = "-" ] || [ -z "$1" ] && { echo "-"; return; }; awk -v v="$1" 'BEGIN { printf "%.1f", v / 1024 }'; }
ok() { # errors/lost/closed of one cell
    local e=${R[$1,$2,errors]:-} l=${R[$1,$2,lost]:-} c=${R[$1,$2,closed]:-}
    [ -z "$e" ] && { echo "-"; return; }
    if [ "$e" = 0 ] && [ "$l" = 0 ] && [ "$c" = 0 ]; then echo "0"; else echo "**${e} err, ${l} lost, ${c} closed**"; fi
}
REPORT="$OUT/results-$(date -u +%Y%m%dT%H%M%SZ).md"
{
    echo "### Modbus TCP, FC3 x 10 registers, $CONNECTIONS connections, server on CPU $SERVER_CPU, load generator on CPU $LOADGEN_CPU"
    echo
    echo "| server | req/s, 1 in flight | p50 / p99 (µs) | req/s, 8 pipelined | errors (D1; D8) | server CPU (D1; D8) | peak RSS MiB (D1; D8) | heap allocs / request (D1; D8) |"
    echo "|---|---:|---:|---:|---|---:|---:|---:|"
    for i in "${!SERVERS[@]}"; do
        s=${SERVERS[$i]}
        printf '| %s | %s | %s / %s | %s | %s; %s | %s %%; %s %% | %s; %s | %s; %s |\n' "${LABELS[$i]}" \
            "$(k "${R[$s,1,rps]:--}")$(range "$s" 1)$(mark "$s" 1)" "${R[$s,1,p50_us]:--}" "${R[$s,1,p99_us]:--}" \
            "$(k "${R[$s,8,rps]:--}")$(range "$s" 8)$(mark "$s" 8)" \
            "$(ok "$s" 1)" "$(ok "$s" 8)" "${R[$s,1,cpu]:--}" "${R[$s,8,cpu]:--}" \
            "$(mib "${R[$s,1,hwm]:--}")" "$(mib "${R[$s,8,hwm]:--}")" "${R[$s,1,allocs]:--}" "${R[$s,8,allocs]:--}"
    done
    echo
    echo "Load generator CPU in the measured seconds, 1 = one core; other processes' CPU during the cell, % of a core (D1; D8):"
    for i in "${!SERVERS[@]}"; do
        s=${SERVERS[$i]}
        printf -- '- %s: load generator %s; %s, other %s %%; %s %%\n' "$s" "${R[$s,1,loadgen_cpu]:--}" "${R[$s,8,loadgen_cpu]:--}" \
            "${R[$s,1,foreign]:--}" "${R[$s,8,foreign]:--}"
    done
    echo
    echo "Conditions: $(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) CPUs ($(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo));" \
        "kernel $(uname -r); $(swift --version 2>/dev/null | head -n 1); $(gcc --version | head -n 1); $PYMODBUS_NOTE."
    if [ "$WAIT_FOR_QUIET" = 1 ]; then
        echo "Machine: each cell started with no compiler running and < 15 % CPU busy (waited ${WAITED_TOTAL} s in all); a cell during which other processes used > 10 % of a core was measured again (up to 3 tries); cells still disturbed: ${POLLUTED_CELLS} (marked ⚠). Load average at start $START_LOAD."
    else
        echo "Machine: not checked (--no-wait); cells during which other processes used > 10 % of a core: ${POLLUTED_CELLS} (marked ⚠). Load average at start $START_LOAD."
    fi
    echo "Each cell: a fresh server, ${WARMUP} s warm-up, ${SECONDS_PER_RUN} s measured; ${REPEAT} round(s), the median round shown (range of requests/s in brackets); errors added up over rounds. Server CPU is its user+system time over the load generator's whole run (100 % = one core)."
    echo "Heap allocations per request: malloc & co. counted by malloc_counter.so in a separate run of each server (difference between a 1 s and a 4 s load, so connection set-up cancels out; ≤: upper bound, when the machine was too busy for the difference); not measured for pymodbus."
    if [ "${#PROBLEMS[@]}" -gt 0 ]; then
        echo
        echo "Problems:"
        for p in "${PROBLEMS[@]}"; do echo "- $p"; done
    fi
} | tee "$REPORT"
log "report saved to $REPORT"
