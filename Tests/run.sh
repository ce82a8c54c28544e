#!/usr/bin/env bash
# The test command: installs what the tests need (Tests/setup.sh), then builds and runs every
# test target. Arguments are passed to `swift test` (for example --filter ModbusCoreTests).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x /opt/swift/usr/bin/swift ] && ! command -v swift >/dev/null 2>&1 && export PATH="/opt/swift/usr/bin:$PATH"
Tests/setup.sh
swift build --build-tests
swift test --skip-build "$@"
