# Shared by tsan.sh and asan.sh: build the package and its tests with one sanitizer in a scratch
# path of its own, check that the bridge program next to the test bundle is instrumented (the
# end-to-end tests start that binary: the first place they look is beside the bundle), and run
# the test targets, one process each, collecting every sanitizer report of every process (the
# test bundle and each bridge it starts) in one directory. Any report fails the run.
#
# Expects: sanitizer (thread|address), scratch (.build-tsan|.build-asan), runtime_symbol
# (__tsan_init|__asan_init), options_variable (TSAN_OPTIONS|ASAN_OPTIONS), options (the rest of
# the options; log_path is added here), and the targets to run in "$@" (a target name, or
# target/test as `--filter` takes it).
#
# SANITIZER_SKIP_BUILD=1 runs what is already built. SWIFT_BUILD_LOCK=<file> wraps the build in
# `flock <file>` (for machines where several checkouts build at once). SANITIZER_RUN_AS_UID=<uid>,
# when run as root, runs the tests as that user (Tests/run.sh passes 65534, the user CI runs the
# tests as). SANITIZER_TIMEOUT bounds each target (seconds). Tests/sanitizers/<sanitizer>.supp,
# if present, holds the suppressions.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
[ -x /opt/swift/usr/bin/swift ] && ! command -v swift >/dev/null 2>&1 && export PATH="/opt/swift/usr/bin:$PATH"

build() {
    if [ -n "${SWIFT_BUILD_LOCK:-}" ]; then flock "$SWIFT_BUILD_LOCK" swift build "$@"; else swift build "$@"; fi
}
started=$(date +%s)
echo "$sanitizer: building into $scratch"
[ -n "${SANITIZER_SKIP_BUILD:-}" ] || build --build-tests --sanitize="$sanitizer" --scratch-path "$scratch"
# Only a query: no lock needed.
bin="$(swift build --sanitize="$sanitizer" --scratch-path "$scratch" --show-bin-path)"
bundle="$bin/swift-mqtt-modbusPackageTests.xctest"
bridge="$bin/mqtt-modbus-bridge"
# Not `grep -q`: it stops reading early, nm dies of SIGPIPE, and pipefail fails the check.
if ! nm "$bridge" 2>/dev/null | grep " $runtime_symbol$" >/dev/null; then
    echo "$sanitizer: $bridge is missing or not built with the $sanitizer sanitizer" >&2
    exit 1
fi
built=$(date +%s)

reports="$(mktemp -d /tmp/swift-mqtt-modbus-$sanitizer.XXXXXX)"
home="$reports/home"
mkdir -p "$home"
runner=()
if [ -n "${SANITIZER_RUN_AS_UID:-}" ] && [ "$(id -u)" -eq 0 ]; then
    chown -R "$SANITIZER_RUN_AS_UID:$SANITIZER_RUN_AS_UID" "$reports"
    runner=(setpriv --reuid="$SANITIZER_RUN_AS_UID" --regid="$SANITIZER_RUN_AS_UID" --clear-groups)
fi
suppressions="$PWD/Tests/sanitizers/$sanitizer.supp"
[ -f "$suppressions" ] && options="$options:suppressions=$suppressions"
export "$options_variable=$options:log_path=$reports/report"

# SANITIZER_SKIP: a regular expression of tests not to run (tests bound by wall-clock windows that
# a sanitized build, several times slower, overruns).
skip=()
[ -z "${SANITIZER_SKIP:-}" ] || skip=(--skip "$SANITIZER_SKIP")
status=0
for target in "$@"; do
    echo "$sanitizer: $target"
    parallel=()
    # The end-to-end tests start brokers, Python clients and the bridge program: one at a time.
    case "$target" in BridgeEndToEndTests*) parallel=(--no-parallel) ;; esac
    "${runner[@]}" env HOME="$home" timeout --kill-after=10 "${SANITIZER_TIMEOUT:-1800}" \
        "$bundle" --testing-library swift-testing "${parallel[@]}" "${skip[@]}" --filter "$target" || {
        code=$?
        echo "$sanitizer: $target failed (exit status $code; TSan exits 66 on a report, ASan 1)" >&2
        status=1
    }
done

found=$(find "$reports" -maxdepth 1 -name 'report*' -size +0 | sort)
if [ -n "$found" ]; then
    echo "$sanitizer: reports (test bundle and child processes):" >&2
    for file in $found; do
        echo "== $file" >&2
        cat "$file" >&2
    done
    status=1
fi
finished=$(date +%s)
echo "$sanitizer: build $((built - started)) s, tests $((finished - built)) s, reports in $reports: ${found:-none}"
exit "$status"
