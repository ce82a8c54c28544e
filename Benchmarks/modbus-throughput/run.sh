#!/usr/bin/env bash
# Modbus TCP throughput, side by side in one run: a trivial C responder (the ceiling), the
# libmodbus server (as shipped, and with TCP_NODELAY), our ModbusServer with each read-handler
# form (sync-in-place, sync, async) and, if it is installed, pymodbus. Each server gets CPU 0,
# the C load generator CPU 1; each is measured in the scenarios below, then its heap allocations
# per request are counted (malloc_counter.so) in b and c. Loopback only; every server it starts
# is stopped on exit. Takes about 8 minutes on a quiet machine (one round).
#
#   a  1 connection, 1 request in flight (lockstep), FC3 x 10 registers
#   b  16 connections, 1 in flight, FC3 x 10
#   c  16 connections, 8 pipelined, FC3 x 10
#   d  100 connections, 1 in flight, FC3 x 125 (the largest read)
#   e  16 connections, 1 in flight, FC16 x 10 (write multiple registers)
#
#   Benchmarks/modbus-throughput/run.sh [--seconds N] [--repeat N] [--no-build] [--no-wait] [--only LIST]
#                                       [--scenarios LIST] [--connections N] [--depths LIST] [--no-allocs]
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
#   --scenarios LIST comma-separated scenarios of the list above (default a,b,c,d,e)
#   --connections N  instead of the scenarios: FC3 x 10 with N connections (1...1024) ...
#   --depths LIST    ... and these requests in flight per connection, 1 and/or 8 (default 1,8)
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
SCENARIO_LIST="a,b,c,d,e"
CONNECTIONS=""
DEPTHS=""
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
    --scenarios) SCENARIO_LIST=$2; shift 2 ;;
    --connections) CONNECTIONS=$2; shift 2 ;;
    --depths) DEPTHS=${2//,/ }; shift 2 ;;
    --no-allocs) ALLOCS=0; shift ;;
    -h | --help) sed -n '2,43p' "$0"; exit 0 ;;
    *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
case "$SECONDS_PER_RUN" in '' | *[!0-9]*) echo "--seconds takes whole seconds" >&2; exit 2 ;; esac
[ "$SECONDS_PER_RUN" -ge 1 ] && [ "$SECONDS_PER_RUN" -le 60 ] || { echo "--seconds: 1...60" >&2; exit 2; }
case "$REPEAT" in '' | *[!0-9]*) echo "--repeat takes a whole number" >&2; exit 2 ;; esac
[ "$REPEAT" -ge 1 ] && [ "$REPEAT" -le 9 ] || { echo "--repeat: 1...9" >&2; exit 2; }
# The scenarios: name -> "connections depth function-code quantity" and a label for the table.
declare -A SCENARIO SCENARIO_LABEL
SCENARIO[a]="1 1 3 10"; SCENARIO_LABEL[a]="a: 1 conn, lockstep, FC3 × 10"
SCENARIO[b]="16 1 3 10"; SCENARIO_LABEL[b]="b: 16 conns, FC3 × 10"
SCENARIO[c]="16 8 3 10"; SCENARIO_LABEL[c]="c: 16 conns × 8 pipelined, FC3 × 10"
SCENARIO[d]="100 1 3 125"; SCENARIO_LABEL[d]="d: 100 conns, FC3 × 125"
SCENARIO[e]="16 1 16 10"; SCENARIO_LABEL[e]="e: 16 conns, FC16 × 10"
SCENARIOS=()
ALLOC_SCENARIOS=" b c "
if [ -n "$CONNECTIONS$DEPTHS" ]; then
    CONNECTIONS=${CONNECTIONS:-16}
    case "$CONNECTIONS" in '' | *[!0-9]*) echo "--connections takes a whole number" >&2; exit 2 ;; esac
    [ "$CONNECTIONS" -ge 1 ] && [ "$CONNECTIONS" -le 1024 ] || { echo "--connections: 1...1024" >&2; exit 2; }
    ALLOC_SCENARIOS=" "
    for depth in ${DEPTHS:-1 8}; do
        case "$depth" in 1 | 8) ;; *) echo "--depths: 1 and/or 8" >&2; exit 2 ;; esac
        name="${CONNECTIONS}x$depth"
        SCENARIO[$name]="$CONNECTIONS $depth 3 10"
        SCENARIO_LABEL[$name]="$CONNECTIONS conns × $depth in flight, FC3 × 10"
        SCENARIOS+=("$name")
        ALLOC_SCENARIOS+="$name "
    done
else
    for name in ${SCENARIO_LIST//,/ }; do
        [ -n "${SCENARIO[$name]:-}" ] || { echo "--scenarios: a, b, c, d and/or e" >&2; exit 2; }
        SCENARIOS+=("$name")
    done
fi

mkdir -p "$OUT"
# shellcheck source=../common.sh
source "$HERE/../common.sh"

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
    # --static-swift-stdlib as the bridge is built (../bridge, ../writes, docker/Dockerfile): one
    # set of flags in the scratch path, so building one product does not recompile the other's
    # modules. BUILD_LOCK: a file the build takes with flock(1) (swift_build, ../common.sh).
    (cd "$ROOT" && swift_build -c release --scratch-path "$SCRATCH" --product ModbusServerBenchmark --static-swift-stdlib) >&2
fi
SWIFT_SERVER="$SCRATCH/release/ModbusServerBenchmark"
for binary in "$OUT/loadgen" "$OUT/trivial_responder" "$OUT/libmodbus_server" "$OUT/malloc_counter.so" "$SWIFT_SERVER"; do
    [ -e "$binary" ] || { log "missing $binary (run without --no-build)"; exit 1; }
done

# ---------------------------------------------------------------------------------------------
# Waiting for a quiet machine (wait_for_quiet, ../common.sh): compiler and linker processes are
# alive only while they work; idle swift-build / swift-test processes (waiting for a lock, say)
# do not count; a test run that uses CPU shows in the CPU check and, during a measurement, in
# the cell's "other CPU".

# One measurement: start a server pinned to SERVER_CPU, load it from LOADGEN_CPU, record.
cpu_ticks() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
    stat=${stat##*) }
    # shellcheck disable=SC2086
    set -- $stat
    echo $((${12} + ${13}))
}
system_busy_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat; }

declare -A R  # R[server,scenario,key], R[server,scenario,round,key]
# The load generator's arguments for a scenario.
loadgen_args() { # scenario
    local connections depth fc quantity
    read -r connections depth fc quantity <<<"${SCENARIO[$1]}"
    echo "-c $connections -d $depth -f $fc -n $quantity"
}

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
    PIDS+=("$STARTED_PID")
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
    local server=$1 scenario=$2
    shift 2
    local slog="$OUT/allocs-$server-$scenario.log" pid port c0 c1 c2 n1 n2 r
    R[$server,$scenario,allocs]="-"
    start_server "$slog" env LD_PRELOAD="$OUT/malloc_counter.so" "$@" ||
        { PROBLEMS+=("$server: did not start with malloc_counter.so (log: $slog)"); return; }
    pid=$STARTED_PID
    port=$STARTED_PORT
    local glog="$OUT/allocs-loadgen-$server-$scenario.log"
    : >"$glog"
    if c0=$(allocation_count "$pid" "$slog") &&
        r=$(timeout 30 taskset -c "$LOADGEN_CPU" "$OUT/loadgen" -p "$port" $(loadgen_args "$scenario") -t 1 -w 0.5 2>>"$glog") &&
        n1=$(field total "$r") && c1=$(allocation_count "$pid" "$slog") &&
        r=$(timeout 30 taskset -c "$LOADGEN_CPU" "$OUT/loadgen" -p "$port" $(loadgen_args "$scenario") -t 4 -w 0.5 2>>"$glog") &&
        n2=$(field total "$r") && c2=$(allocation_count "$pid" "$slog"); then
        # a = K + x n1 and b = K + x n2 (K: connections' set-up): x = (b - a) / (n2 - n1). If the
        # second load did not answer clearly more requests, give the upper bound b / n2 instead.
        R[$server,$scenario,allocs]=$(awk -v a="$((c1 - c0))" -v b="$((c2 - c1))" -v n1="$n1" -v n2="$n2" \
            'BEGIN { if (n2 > 1.5 * n1) printf "%.2f", (b - a) / (n2 - n1); else printf "≤ %.2f", b / (n2 > 0 ? n2 : 1) }')
    else
        PROBLEMS+=("$server, $scenario: allocation count failed (logs: $slog, $glog)")
    fi
    stop_pid "$pid"
    log "  $server $scenario: ${R[$server,$scenario,allocs]} heap allocations per request"
}
PROBLEMS=()
CLK_TCK=$(getconf CLK_TCK)

# One cell of one round: server $1, scenario $2, round $3, command "${@:4}". Results go to
# R[server,scenario,round,key]; problems to CELL_PROBLEMS.
measure() {
    local server=$1 scenario=$2 round=$3
    shift 3
    local c="$server,$scenario,$round"
    local slog="$OUT/server-$server-$scenario-r$round.log" glog="$OUT/loadgen-$server-$scenario-r$round.log" pid port
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
        -p "$port" $(loadgen_args "$scenario") -t "$SECONDS_PER_RUN" -w "$WARMUP" 2>"$glog") || rc=$?
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
        CELL_PROBLEMS+=("$server, scenario $scenario: the load generator timed out (server hang?); log: $glog")
    elif [ -z "$result" ]; then
        CELL_PROBLEMS+=("$server, scenario $scenario: no result from the load generator (exit $rc); log: $glog")
    elif [ "$rc" != 0 ]; then
        CELL_PROBLEMS+=("$server, scenario $scenario: ${R[$c,errors]} invalid replies, ${R[$c,lost]} requests never answered, ${R[$c,closed]} connections closed by the server; log: $glog")
    fi
    if [ "$alive" = 0 ]; then
        local status=0
        wait "$pid" || status=$?
        CELL_PROBLEMS+=("$server, scenario $scenario: the server died during the run (exit $status; log: $slog)")
    else
        stop_pid "$pid"
        local status=${STOPPED_STATUS:-0}
        # 143 = ended by SIGTERM's default action (pymodbus); everything else should exit 0.
        if [ "$status" != 0 ] && [ "$status" != 143 ]; then
            CELL_PROBLEMS+=("$server, scenario $scenario: exit $status after SIGTERM (log: $slog)")
        fi
    fi
    log "  [$round] $server scenario $scenario: ${result:-no result} server_cpu=${R[$c,cpu]}% other_cpu=${R[$c,foreign]}% VmHWM=${R[$c,hwm]}kB"
}

# The figures of a cell: the round with the median requests/s, the range over rounds, errors,
# losses and closed connections added up over rounds, disturbed if any round was.
aggregate() {
    local server=$1 scenario=$2 round key median lo hi
    local rows=""
    for round in $(seq 1 "$REPEAT"); do
        [ "${R[$server,$scenario,$round,rps]:--}" = "-" ] || rows+="${R[$server,$scenario,$round,rps]} $round"$'\n'
    done
    R[$server,$scenario,rps]="-"
    [ -n "$rows" ] || return 0
    median=$(printf '%s' "$rows" | sort -n | awk '{ r[NR] = $2 } END { print r[int((NR + 1) / 2)] }')
    lo=$(printf '%s' "$rows" | sort -n | head -n 1 | cut -d' ' -f1)
    hi=$(printf '%s' "$rows" | sort -n | tail -n 1 | cut -d' ' -f1)
    for key in rps p50_us p99_us max_us loadgen_cpu cpu hwm foreign; do
        R[$server,$scenario,$key]=${R[$server,$scenario,$median,$key]:-}
    done
    R[$server,$scenario,lo]=$lo
    R[$server,$scenario,hi]=$hi
    local sum
    for key in errors lost closed busy; do
        sum=0
        for round in $(seq 1 "$REPEAT"); do
            sum=$((sum + ${R[$server,$scenario,$round,$key]:-0}))
        done
        R[$server,$scenario,$key]=$sum
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

log "running: ${SERVERS[*]} x scenarios ${SCENARIOS[*]}; ${WARMUP} s warm-up + ${SECONDS_PER_RUN} s each"
START_LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
if [ "$WAIT_FOR_QUIET" = 1 ]; then
    log "waiting for quiet before each cell (no compiler running, CPUs < 15 % busy; 15 min at most in all)"
fi
POLLUTED_CELLS=0
for round in $(seq 1 "$REPEAT"); do
    [ "$REPEAT" = 1 ] || log "round $round of $REPEAT"
    for server in "${SERVERS[@]}"; do
        for scenario in "${SCENARIOS[@]}"; do
            for attempt in 1 2 3; do
                [ "$WAIT_FOR_QUIET" = 1 ] && { wait_for_quiet || true; }
                CELL_PROBLEMS=()
                # shellcheck disable=SC2086
                measure "$server" "$scenario" "$round" ${COMMAND[$server]}
                [ "${R[$server,$scenario,$round,busy]}" -gt 0 ] || break
                log "  other processes used ${R[$server,$scenario,$round,foreign]} % of a core during $server scenario $scenario (try $attempt)"
                [ "$WAIT_FOR_QUIET" = 1 ] || break
            done
            PROBLEMS+=("${CELL_PROBLEMS[@]}")
            [ "${R[$server,$scenario,$round,busy]}" -gt 0 ] && POLLUTED_CELLS=$((POLLUTED_CELLS + 1))
        done
    done
done
for server in "${SERVERS[@]}"; do
    for scenario in "${SCENARIOS[@]}"; do aggregate "$server" "$scenario"; done
done
log "allocations per request (malloc_counter.so preloaded; pymodbus not counted: Python's own allocator hides most)"
for server in "${SERVERS[@]}"; do
    { [ "$server" = pymodbus ] || [ "$ALLOCS" = 0 ]; } && continue
    for scenario in "${SCENARIOS[@]}"; do
        [[ "$ALLOC_SCENARIOS" == *" $scenario "* ]] || continue
        [ "$WAIT_FOR_QUIET" = 1 ] && { wait_for_quiet || true; }
        # shellcheck disable=SC2086
        measure_allocations "$server" "$scenario" ${COMMAND[$server]}
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
# The ratio of a cell to libmodbus's (as shipped) in the same scenario, when libmodbus ran.
vs_libmodbus() { # server scenario
    local mine=${R[$1,$2,rps]:--} theirs=${R[libmodbus,$2,rps]:--}
    [ "$1" != libmodbus ] && [ "$mine" != "-" ] && [ "$theirs" != "-" ] || return 0
    awk -v a="$mine" -v b="$theirs" 'BEGIN { printf " (%.2f×)", a / b }'
}
joined() { # server key [suffix]: the key's value in every scenario, "; "-separated
    local out="" scenario
    for scenario in "${SCENARIOS[@]}"; do out+="${out:+; }${R[$1,$scenario,$2]:--}${3:-}"; done
    echo "$out"
}
REPORT="$OUT/results-$(date -u +%Y%m%dT%H%M%SZ).md"
{
    echo "### Modbus TCP servers, requests/s (ratio to libmodbus in the same run), server on CPU $SERVER_CPU, load generator on CPU $LOADGEN_CPU"
    echo
    header="| server |"; rule="|---|"
    for scenario in "${SCENARIOS[@]}"; do header+=" ${SCENARIO_LABEL[$scenario]} |"; rule+="---:|"; done
    echo "$header"
    echo "$rule"
    for i in "${!SERVERS[@]}"; do
        s=${SERVERS[$i]}
        row="| ${LABELS[$i]} |"
        for scenario in "${SCENARIOS[@]}"; do
            row+=" $(k "${R[$s,$scenario,rps]:--}")$(vs_libmodbus "$s" "$scenario")$(range "$s" "$scenario")$(mark "$s" "$scenario") |"
        done
        echo "$row"
    done
    echo
    echo "Latency, p50 / p99 µs (with requests pipelined it includes the wait behind the others):"
    echo
    echo "$header"
    echo "$rule"
    for i in "${!SERVERS[@]}"; do
        s=${SERVERS[$i]}
        row="| ${LABELS[$i]} |"
        for scenario in "${SCENARIOS[@]}"; do row+=" ${R[$s,$scenario,p50_us]:--} / ${R[$s,$scenario,p99_us]:--} |"; done
        echo "$row"
    done
    echo
    echo "Errors, server CPU (100 % = one core), peak RSS MiB and heap allocations per request, per scenario (${SCENARIOS[*]}):"
    echo
    echo "| server | errors | server CPU % | peak RSS MiB | heap allocs / request |"
    echo "|---|---|---|---|---|"
    for i in "${!SERVERS[@]}"; do
        s=${SERVERS[$i]}
        errors="" rss="" allocs=""
        for scenario in "${SCENARIOS[@]}"; do
            errors+="${errors:+; }$(ok "$s" "$scenario")"
            rss+="${rss:+; }$(mib "${R[$s,$scenario,hwm]:--}")"
            allocs+="${allocs:+; }${R[$s,$scenario,allocs]:--}"
        done
        printf '| %s | %s | %s | %s | %s |\n' "${LABELS[$i]}" "$errors" "$(joined "$s" cpu)" "$rss" "$allocs"
    done
    echo
    echo "Load generator CPU in the measured seconds (1 = one core) and other processes' CPU during the cell (% of a core), per scenario (${SCENARIOS[*]}):"
    for i in "${!SERVERS[@]}"; do
        s=${SERVERS[$i]}
        printf -- '- %s: load generator %s; other %s\n' "$s" "$(joined "$s" loadgen_cpu)" "$(joined "$s" foreign " %")"
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
    echo "Heap allocations per request (scenarios${ALLOC_SCENARIOS% }, \"-\" elsewhere): malloc & co. counted by malloc_counter.so in a separate run of each server (difference between a 1 s and a 4 s load, so connection set-up cancels out; ≤: upper bound, when the machine was too busy for the difference); not measured for pymodbus."
    if [ "${#PROBLEMS[@]}" -gt 0 ]; then
        echo
        echo "Problems:"
        for p in "${PROBLEMS[@]}"; do echo "- $p"; done
    fi
} | tee "$REPORT"
log "report saved to $REPORT"
