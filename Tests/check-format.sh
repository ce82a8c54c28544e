#!/usr/bin/env bash
# House style, checked: every Swift file of the package (sources, tests, benchmarks) must pass
# `swift format lint --strict` with the repository's .swift-format (swift-nio's settings, 120
# columns). Fix findings with `swift format --in-place --recursive --configuration .swift-format
# Sources Tests Benchmarks Package.swift`.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x /opt/swift/usr/bin/swift ] && ! command -v swift >/dev/null 2>&1 && export PATH="/opt/swift/usr/bin:$PATH"

mapfile -t files < <(git ls-files -- '*.swift' 2>/dev/null || find Sources Tests Benchmarks -name '*.swift')
[ "${#files[@]}" -gt 0 ] || { echo "check-format.sh: no Swift files found" >&2; exit 1; }
if ! swift format lint --strict --configuration .swift-format "${files[@]}"; then
    echo "check-format.sh: the files above do not follow .swift-format; run" >&2
    echo "  swift format --in-place --configuration .swift-format <file>..." >&2
    exit 1
fi
echo "check-format.sh: ${#files[@]} Swift files follow .swift-format"
