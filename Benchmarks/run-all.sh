#!/usr/bin/env bash
# Every benchmark of the project, in one command: the Modbus server beside libmodbus and the
# trivial C responder (modbus-throughput/run.sh: each handler form, 16 connections, 1 and 8
# requests in flight), then the bridge beside the bare server, mosquitto_sub and a C
# subscriber (bridge/run.sh: cache reads up to 1,000 connections, ingest, cold start, RSS), then
# acknowledged writes beside raw MQTT 5 request/response (writes/run.sh: write-through with one
# master, 16 masters at once). Prints the three tables and saves them together in
# .build-bench/results-all-DATE.md. Needs 2 CPUs, gcc, libmodbus-dev, libmosquitto-dev,
# mosquitto, mosquitto-clients, curl and util-linux (taskset); about 20 minutes per round on a
# quiet machine.
#
#   Benchmarks/run-all.sh [--repeat N] [--seconds N] [--no-build] [--no-wait]
#
# The options go to every script (see their --help). Environment: BUILD_LOCK (a file the Swift
# builds take with flock(1)), SERVER_CPU, LOADGEN_CPU, PYTHON (for a pymodbus row).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OUT="$HERE/../.build-bench"
mkdir -p "$OUT"
for arg in "$@"; do
    case "$arg" in -h | --help) sed -n '2,15p' "$0"; exit 0 ;; esac
done
REPORT="$OUT/results-all-$(date -u +%Y%m%dT%H%M%SZ).md"
{
    "$HERE/modbus-throughput/run.sh" "$@"
    echo
    "$HERE/bridge/run.sh" "$@"
    echo
    "$HERE/writes/run.sh" "$@"
} | tee "$REPORT"
echo "the tables saved to $REPORT" >&2
