#!/usr/bin/env bash
# The test command (the status page test needs Debian's chromium, which setup.sh installs): checks the import rules and the formatting (Tests/check-imports.sh,
# Tests/check-format.sh), installs what the tests need (Tests/setup.sh), builds, and runs every test
# target in its own process, the end-to-end bridge tests one at a time, then the server, MQTT and
# end-to-end tests under the thread sanitizer (Tests/sanitizers/tsan.sh), the connection-abuse
# checks (Tests/abuse/run.sh), a short fault-injection soak of the bridge binary (Tests/soak, about
# a minute), the fuzzers for 30 s each (Fuzz/run.sh), and finally the compose file, checked offline
# (docker/check-compose.sh), and the container's runtime stage in a Debian minbase root filesystem
# (docker/verify-runtime.sh).
#
# One process per target keeps a failure attributable and the load bounded: the end-to-end tests
# start brokers, Python clients and the bridge program, and several have time windows (ack
# timeouts) that a 2-core machine running everything at once can overrun.
#
# Run as root (as CI does), it builds as root but runs the tests as an unprivileged user
# (uid/gid 65534, "nobody"), because root hides bugs: an unprivileged process may not set some
# socket options, bind ports below 1024 or read other users' files, and that is how the program
# runs in its container and under systemd. A checkout that user cannot reach (under /root, say)
# is copied to /var/tmp first. MQTT_MODBUS_TESTS_AS_ROOT=1 keeps everything as root.
#
# Arguments are passed to a single `swift test` instead (for example --filter ModbusCoreTests),
# run as the invoking user.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x /opt/swift/usr/bin/swift ] && ! command -v swift >/dev/null 2>&1 && export PATH="/opt/swift/usr/bin:$PATH"

test_uid=65534
unprivileged=0
if [ "$(id -u)" -eq 0 ] && [ -z "${MQTT_MODBUS_TESTS_AS_ROOT:-}" ] && [ "$#" -eq 0 ]; then
    unprivileged=1
    as_test_user_probe() { setpriv --reuid="$test_uid" --regid="$test_uid" --clear-groups "$@"; }
    if ! as_test_user_probe test -r "$PWD/Package.swift" -a -x "$PWD/Tests"; then
        [ -z "${MQTT_MODBUS_TESTS_RELOCATED:-}" ] || { echo "run.sh: $PWD is not readable by uid $test_uid" >&2; exit 1; }
        copy="/var/tmp/swift-mqtt-modbus-tests-$(printf '%s' "$PWD" | sha256sum | cut -c1-12)"
        echo "run.sh: uid $test_uid cannot read $PWD; testing a copy in $copy"
        mkdir -p "$copy"
        chmod 755 "$copy"
        # Keep the copy's build folders (an incremental build), replace everything else.
        find "$copy" -mindepth 1 -maxdepth 1 ! -name '.build*' -exec rm -rf {} +
        tar -C "$PWD" --exclude='./.build*' --exclude='./Fuzz/.build*' --exclude='./.git' -cf - . | tar -C "$copy" -xf -
        MQTT_MODBUS_TESTS_RELOCATED=1 exec "$copy/Tests/run.sh"
    fi
fi

Tests/check-imports.sh
Tests/check-format.sh
Tests/setup.sh
swift build --build-tests
if [ "$#" -gt 0 ]; then
    exec swift test --skip-build "$@"
fi

# The test bundle is run directly rather than through `swift test`: SwiftPM takes a lock file in
# /tmp that the unprivileged user cannot open. These are the arguments `swift test` passes it.
bundle="$(swift build --show-bin-path)/swift-mqtt-modbusPackageTests.xctest"
test_home=""
if [ "$unprivileged" -eq 1 ]; then
    test_home="$(mktemp -d /tmp/swift-mqtt-modbus-test-home.XXXXXX)"
    chown "$test_uid:$test_uid" "$test_home"
    trap 'rm -rf "$test_home"' EXIT
    echo "run.sh: running the tests as uid/gid $test_uid (not root)"
fi
as_test_user() {
    if [ "$unprivileged" -eq 1 ]; then
        setpriv --reuid="$test_uid" --regid="$test_uid" --clear-groups env HOME="$test_home" "$@"
    else
        "$@"
    fi
}
# Every run is bounded: a hang fails the run instead of stalling CI.
run_tests() {
    local bundle="$1"
    shift
    as_test_user timeout --kill-after=10 600 "$bundle" --testing-library swift-testing "$@"
}

for target in ModbusCoreTests ModbusTCPServerTests MosquittoTests MQTTModbusBridgeTests; do
    echo "run.sh: $target"
    run_tests "$bundle" --filter "$target"
done
echo "run.sh: BridgeEndToEndTests (serially)"
run_tests "$bundle" --no-parallel --filter BridgeEndToEndTests
echo "run.sh: the server, the MQTT client and the end-to-end tests under the thread sanitizer"
# Tests/sanitizers/tsan.sh builds into .build-tsan, runs the bridge program of that build in the
# end-to-end tests and fails on any report of any process (docs/testing.md). Skipped: tests bound
# by wall-clock windows that the sanitized build, several times slower, overruns.
tsan_user=()
[ "$unprivileged" -eq 0 ] || tsan_user=(SANITIZER_RUN_AS_UID="$test_uid")
env "${tsan_user[@]}" SANITIZER_SKIP='AckUnderFlood' Tests/sanitizers/tsan.sh \
    ModbusTCPServerTests MosquittoTests BridgeEndToEndTests

echo "run.sh: connection abuse against the bridge program (Tests/abuse/run.sh), the policy checks and half-open"
# The p99 scenarios need a release build to mean anything on two cores (docs/testing.md); this
# debug build checks the documented limit and idle-timeout behaviour and the stopped clients.
as_test_user Tests/abuse/run.sh --bridge "$(swift build --show-bin-path)/mqtt-modbus-bridge" --only policy --only half-open

echo "run.sh: the fault-injection soak, short run (Tests/soak, docs/soak.md)"
as_test_user timeout --kill-after=10 600 Tests/soak/soak.sh --bridge "$(swift build --show-bin-path)/mqtt-modbus-bridge" --writes 20000

# The fuzzers, briefly (docs/fuzzing.md): built as root like the tests, run as the test user,
# two at a time (one per core), with their new corpus entries and any reproducer in a folder of
# their own, not the checkout.
fuzz_seconds="${MQTT_MODBUS_FUZZ_SECONDS:-30}"
echo "run.sh: the fuzzers, $fuzz_seconds s each (Fuzz/run.sh)"
Fuzz/run.sh --build-only
fuzz_work="$(mktemp -d /tmp/swift-mqtt-modbus-fuzz.XXXXXX)"
if [ "$unprivileged" -eq 1 ]; then chown "$test_uid:$test_uid" "$fuzz_work"; fi
as_test_user env FUZZ_JOBS=2 Fuzz/run.sh --no-build --work "$fuzz_work" "$fuzz_seconds"
rm -rf "$fuzz_work"

echo "run.sh: the compose file, offline (docker/check-compose.sh)"
docker/check-compose.sh

echo "run.sh: the container's runtime stage (docker/verify-runtime.sh)"
if [ "$(id -u)" -eq 0 ]; then
    docker/verify-runtime.sh
elif sudo -n true 2>/dev/null; then
    sudo -n docker/verify-runtime.sh
else
    echo "run.sh: skipped docker/verify-runtime.sh: it needs root (debootstrap, chroot); CI runs it as root"
fi
