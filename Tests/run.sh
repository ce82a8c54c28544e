#!/usr/bin/env bash
# The test command: installs what the tests need (Tests/setup.sh), builds and runs every test
# target, then runs the MQTT client's tests again under the thread sanitizer (its loop thread
# and Swift tasks share state, so data races are checked on every run).
# Arguments are passed to the first `swift test` (for example --filter ModbusCoreTests); with
# arguments the sanitizer pass is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x /opt/swift/usr/bin/swift ] && ! command -v swift >/dev/null 2>&1 && export PATH="/opt/swift/usr/bin:$PATH"
Tests/setup.sh
swift build --build-tests
swift test --skip-build "$@"
if [ "$#" -eq 0 ]; then
    echo "run.sh: MQTT client tests under the thread sanitizer"
    swift build --build-tests --sanitize=thread --scratch-path .build-tsan
    swift test --skip-build --sanitize=thread --scratch-path .build-tsan --filter MosquittoTests
fi
