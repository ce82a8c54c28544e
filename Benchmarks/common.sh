# Shell functions the benchmark scripts share (sourced, not run): stopping what they started,
# the Swift build under an optional lock, waiting for a quiet machine, free loopback ports, and
# the medians and ranges of their tables.
#
# The sourcing script sets, before using them: WAIT_FOR_QUIET (1 or 0), REPEAT (rounds), and the
# associative array R (R[key,round]); it may set BUILD_LOCK and PORT (the first port tried).
# shellcheck shell=bash

log() { printf '%s\n' "$*" >&2; }

# --- Processes: everything started goes into PIDS and is stopped on exit --------------------------
# stop_pid sends SIGTERM (SIGKILL after 10 s), reaps the process and leaves its exit status in
# STOPPED_STATUS (143: ended by SIGTERM's default action; empty: it had already ended).
PIDS=()
STOPPED_STATUS=""
stop_pid() {
    local pid=$1
    STOPPED_STATUS=""
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
        if ! kill -0 "$pid" 2>/dev/null; then
            STOPPED_STATUS=0
            wait "$pid" 2>/dev/null || STOPPED_STATUS=$?
            return 0
        fi
        sleep 0.1
    done
    log "  process $pid did not stop within 10 s of SIGTERM: killing it"
    kill -KILL "$pid" 2>/dev/null || true
    STOPPED_STATUS=0
    wait "$pid" 2>/dev/null || STOPPED_STATUS=$?
}
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

swift_build() {
    if [ -n "${BUILD_LOCK:-}" ]; then flock "$BUILD_LOCK" swift build "$@"; else swift build "$@"; fi
}

# --- Waiting for quiet: no compiler running and the CPUs < 15 % busy, 15 minutes at most per run --
compiler_processes() {
    pgrep -af 'swift-frontend|swift-driver|swift-autolink-extract|/cc1 |/cc1plus |collect2|ld\.gold|ld\.lld|/ld ' |
        grep -v -e "pgrep" -e "$0" || true
}
cpu_busy_percent() {
    local _cpu a b c d e f g h t1 i1 t2 i2
    read -r _cpu a b c d e f g h _ </proc/stat
    t1=$((a + b + c + d + e + f + g + h)); i1=$((d + e))
    sleep 1
    read -r _cpu a b c d e f g h _ </proc/stat
    t2=$((a + b + c + d + e + f + g + h)); i2=$((d + e))
    echo $((100 * ((t2 - t1) - (i2 - i1)) / (t2 - t1 > 0 ? t2 - t1 : 1)))
}
WAIT_LEFT=900
WAITED_TOTAL=0
DISTURBED=0
wait_for_quiet() {
    [ "$WAIT_FOR_QUIET" = 1 ] || return 0
    local busy pct
    while :; do
        busy=$(compiler_processes)
        pct=$(cpu_busy_percent)
        if [ -z "$busy" ] && [ "$pct" -lt 15 ]; then return 0; fi
        if [ "$WAIT_LEFT" -le 0 ]; then
            log "machine still busy (${pct} % CPU) and the 15-minute waiting budget is spent: measuring anyway"
            DISTURBED=$((DISTURBED + 1))
            return 0
        fi
        log "machine busy (${pct} % CPU; $(printf '%s\n' "$busy" | grep -c .) compiler processes): waiting 30 s"
        sleep 30
        WAIT_LEFT=$((WAIT_LEFT - 30))
        WAITED_TOTAL=$((WAITED_TOTAL + 30))
    done
}
quiet_note() { # the "Machine:" line of a table
    if [ "$WAIT_FOR_QUIET" = 1 ]; then
        echo "Machine: each measurement started with no compiler running and < 15 % CPU busy (waited ${WAITED_TOTAL} s in all); measurements taken without that after the waiting budget ran out: $DISTURBED."
    else
        echo "Machine: not checked (--no-wait)."
    fi
}

# --- Loopback ports -------------------------------------------------------------------------------
is_listening() {
    local hex
    hex=$(printf ':%04X' "$1")
    awk -v p="$hex" '$4 == "0A" && substr($2, length($2) - 4) == p { found = 1 } END { exit !found }' \
        /proc/net/tcp /proc/net/tcp6
}
free_port() { # NAME: sets the variable NAME to the next port nobody listens on, from PORT on
    while is_listening "$PORT"; do PORT=$((PORT + 1)); done
    printf -v "$1" '%s' "$PORT"
    # Not in a $(...) subshell, so that ports handed out before anything listens differ.
    PORT=$((PORT + 1))
}
wait_listening() { # port pid
    for _ in $(seq 1 300); do
        is_listening "$1" && return 0
        kill -0 "$2" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

# --- Results --------------------------------------------------------------------------------------
field() { sed -n "s/.*[[:space:]]$1=\([^[:space:]]*\).*/\1/p" <<<" $2"; }
median() { # key -> median of R[key,1..REPEAT] (numbers only), or -
    local values
    values=$(for round in $(seq 1 "$REPEAT"); do echo "${R[$1,$round]:--}"; done | grep -v '^-$' | sort -g)
    [ -n "$values" ] || { echo "-"; return; }
    awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }' <<<"$values"
}
spread() { # key formatter -> " (lo–hi)" with several rounds
    [ "$REPEAT" -gt 1 ] || return 0
    local values
    values=$(for round in $(seq 1 "$REPEAT"); do echo "${R[$1,$round]:--}"; done | grep -v '^-$' | sort -g)
    [ -n "$values" ] || return 0
    echo " ($(head -n 1 <<<"$values" | "$2")–$(tail -n 1 <<<"$values" | "$2"))"
}
total() { local sum=0; for round in $(seq 1 "$REPEAT"); do sum=$((sum + ${R[$1,$round]:-0})); done; echo "$sum"; }
k() { local v; v=$(cat); [ "$v" = "-" ] && echo "-" || awk -v v="$v" 'BEGIN { printf "%.1fk", v / 1000 }'; }
ratio() { [ "$1" = "-" ] || [ "$2" = "-" ] && { echo "-"; return; }; awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f×", a / b }'; }
