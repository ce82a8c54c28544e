#!/usr/bin/env bash
# The test command: installs what the tests need (Tests/setup.sh), builds, and runs every test
# target in its own process, the end-to-end bridge tests one at a time, then the MQTT client's
# tests under the thread sanitizer. One process per target keeps a failure attributable and the
# load bounded: the end-to-end tests start brokers, Python clients and the bridge program, and
# several have time windows (ack timeouts) that a 2-core machine running everything at once can
# overrun. (`swift test` with everything in one parallel process also passes.)
# Arguments are passed to a single `swift test` instead (for example --filter ModbusCoreTests).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x /opt/swift/usr/bin/swift ] && ! command -v swift >/dev/null 2>&1 && export PATH="/opt/swift/usr/bin:$PATH"
Tests/setup.sh
swift build --build-tests
if [ "$#" -gt 0 ]; then
    exec swift test --skip-build "$@"
fi
# Every run is bounded: a hang fails the run instead of stalling CI.
for target in ModbusCoreTests ModbusTCPServerTests MosquittoTests MQTTModbusBridgeTests; do
    echo "run.sh: $target"
    timeout --kill-after=10 600 swift test --skip-build --filter "$target"
done
echo "run.sh: BridgeEndToEndTests (serially)"
timeout --kill-after=10 600 swift test --skip-build --no-parallel --filter BridgeEndToEndTests
echo "run.sh: MQTT client tests under the thread sanitizer"
swift build --build-tests --sanitize=thread --scratch-path .build-tsan
timeout --kill-after=10 600 swift test --skip-build --sanitize=thread --scratch-path .build-tsan --filter MosquittoTests
