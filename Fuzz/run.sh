#!/usr/bin/env bash
# Builds the libFuzzer targets (debug, -sanitize=fuzzer,address) and runs each one for a bounded
# time on its seed corpus in Fuzz/Corpus/<fuzzer>/ (docs/fuzzing.md).
#
#   Fuzz/run.sh [options] [SECONDS] [FUZZER...]
#
#   SECONDS           time per fuzzer (libFuzzer's -max_total_time), 30 by default
#   FUZZER...         only these fuzzers (default: all of them)
#   --build-only      build, run nothing
#   --no-build        run what an earlier build left in the build folder
#   --work DIR        where new corpus entries and reproducers go (default: a new folder in
#                     /tmp, printed); the repository is not written to unless...
#   --update-corpus   ...this is given: then the entries that add coverage are merged into
#                     Fuzz/Corpus/<fuzzer>/ after the run
#
# Environment: FUZZ_SCRATCH (the build folder, default Fuzz/.build), FUZZ_JOBS (parallel
# fuzzers, default 1), FUZZ_NICE (niceness of the fuzzers, default 0).
#
# Exits non-zero when a fuzzer crashed, broke an invariant, leaked, timed out or ran out of
# memory, after printing each reproducer's path and the command that replays it. Any user can
# run it from a fresh clone (uid 65534 included): it writes only to the build folder, the work
# folder and a HOME of its own when $HOME is not writable.
set -euo pipefail
fuzz_dir="$(cd "$(dirname "$0")" && pwd)"
cd "$fuzz_dir"
[ -x /opt/swift/usr/bin/swift ] && ! command -v swift >/dev/null 2>&1 && export PATH="/opt/swift/usr/bin:$PATH"

all_fuzzers=(
    FuzzFrameAssembler FuzzRequestParser FuzzReplyEncoding FuzzJSON FuzzPayloadDecoder
    FuzzCommandTemplate FuzzAckEvaluator FuzzConfigLoader FuzzSparkplug
)
seconds=30
build=1
run=1
work=""
update_corpus=0
fuzzers=()
while [ "$#" -gt 0 ]; do
    case "$1" in
        --build-only) run=0 ;;
        --no-build) build=0 ;;
        --work) work="$2"; shift ;;
        --update-corpus) update_corpus=1 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        [0-9]*) seconds="$1" ;;
        Fuzz*) fuzzers+=("$1") ;;
        *) echo "run.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
    shift
done
[ "${#fuzzers[@]}" -gt 0 ] || fuzzers=("${all_fuzzers[@]}")
scratch="${FUZZ_SCRATCH:-$fuzz_dir/.build}"

# SwiftPM keeps caches and its configuration under $HOME; uid 65534's is usually not writable.
cleanup=()
build_env=()
trap 'rm -rf "${cleanup[@]}"' EXIT
if [ -z "${HOME:-}" ] || ! { mkdir -p "$HOME" 2>/dev/null && [ -w "$HOME" ]; }; then
    HOME="$(mktemp -d /tmp/fuzz-home.XXXXXX)"
    export HOME
    cleanup+=("$HOME")
    # SwiftPM's lock files, named after the cache's path, would otherwise stay behind in /tmp.
    mkdir "$HOME/tmp"
    build_env=(env TMPDIR="$HOME/tmp")
fi

# SwiftPM fetches the dependencies with git, and git refuses a repository owned by another user,
# such as a package mirror that root installed. An unprivileged build trusts them, for its own git
# calls only: a global configuration of its own that includes the user's. (safe.directory counts
# only in a global or system configuration, not in GIT_CONFIG_* variables.)
if [ "$build" -eq 1 ] && [ "$(id -u)" -ne 0 ]; then
    git_config="$(mktemp /tmp/fuzz-gitconfig.XXXXXX)"
    cleanup+=("$git_config")
    user_config="${GIT_CONFIG_GLOBAL:-$HOME/.gitconfig}"
    if [ -r "$user_config" ]; then printf '[include]\n\tpath = %s\n' "$user_config" >"$git_config"; fi
    printf '[safe]\n\tdirectory = *\n' >>"$git_config"
    export GIT_CONFIG_GLOBAL="$git_config"
fi

if [ "$build" -eq 1 ]; then
    echo "run.sh: building the fuzzers in $scratch"
    started=$SECONDS
    # gold warns about every AddressSanitizer helper symbol it cannot export; that is the
    # toolchain's noise, not the project's, and it would bury real messages.
    "${build_env[@]}" swift build -c debug -Xswiftc -sanitize=fuzzer,address --scratch-path "$scratch" 2>&1 \
        | { grep -v "warning: Cannot export local symbol" || true; }
    echo "run.sh: built in $((SECONDS - started)) s"
fi
[ "$run" -eq 1 ] || exit 0
bin="$scratch/debug"

[ -n "$work" ] || work="$(mktemp -d /tmp/fuzz-work.XXXXXX)"
mkdir -p "$work"
echo "run.sh: $seconds s per fuzzer; new corpus entries and reproducers in $work"

# The Swift runtime's own crash reporter would catch the trap before libFuzzer can save the
# input; libFuzzer's handler and AddressSanitizer's report are what we want.
export SWIFT_BACKTRACE=enable=no
export ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=0:detect_leaks=1:symbolize=1}"

run_one() {
    local name="$1"
    local corpus="$work/corpus/$name" artifacts="$work/artifacts/$name" log="$work/$name.log"
    mkdir -p "$corpus" "$artifacts"
    [ -x "$bin/$name" ] || { echo "run.sh: $bin/$name is not built" >&2; return 1; }
    local status=0
    # libFuzzer writes new entries to the first corpus folder only; the seeds are read, never
    # written. -timeout flags an input that takes more than 10 s; the outer timeout is a last
    # resort if the process hangs outside libFuzzer's control.
    nice -n "${FUZZ_NICE:-0}" timeout --kill-after=10 "$((seconds + 120))" "$bin/$name" \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$artifacts/" "$corpus" "$fuzz_dir/Corpus/$name" >"$log" 2>&1 || status=$?
    local runs
    runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)"
    local entries
    entries="$(find "$corpus" "$fuzz_dir/Corpus/$name" -type f | wc -l)"
    if [ "$status" -ne 0 ]; then
        echo "run.sh: $name FAILED (exit $status) after ${runs:-?} runs; log: $log"
        grep -E '^(==[0-9]+==ERROR|SUMMARY|.*Fatal error|.*invariant broken)' "$log" | head -5 | sed 's/^/    /'
        local found=0
        for reproducer in "$artifacts"/*; do
            [ -e "$reproducer" ] || continue
            case "$(basename "$reproducer")" in slow-unit-*) continue ;; esac
            found=1
            echo "    reproducer: $reproducer"
            echo "    replay:     SWIFT_BACKTRACE=enable=no $bin/$name $reproducer"
        done
        [ "$found" -eq 1 ] || echo "    no reproducer was written; see the log"
        return 1
    fi
    echo "run.sh: $name ok: ${runs:-?} runs in $seconds s, corpus $entries entries"
    if [ "$update_corpus" -eq 1 ]; then
        SWIFT_BACKTRACE=enable=no "$bin/$name" -merge=1 "$fuzz_dir/Corpus/$name" "$corpus" >>"$log" 2>&1
        echo "run.sh: $name: corpus now $(find "$fuzz_dir/Corpus/$name" -type f | wc -l) entries"
    fi
}

failed=()
jobs="${FUZZ_JOBS:-1}"
if [ "$jobs" -le 1 ]; then
    for name in "${fuzzers[@]}"; do run_one "$name" || failed+=("$name"); done
else
    # Parallel: each fuzzer in the background, at most $jobs at a time.
    declare -A pids=()
    for name in "${fuzzers[@]}"; do
        while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do sleep 1; done
        run_one "$name" &
        pids[$name]=$!
    done
    for name in "${!pids[@]}"; do wait "${pids[$name]}" || failed+=("$name"); done
fi
if [ "${#failed[@]}" -gt 0 ]; then
    echo "run.sh: ${#failed[@]} of ${#fuzzers[@]} fuzzers failed: ${failed[*]}"
    exit 1
fi
echo "run.sh: ${#fuzzers[@]} fuzzers ran $seconds s each without a failure"
