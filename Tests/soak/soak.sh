#!/usr/bin/env bash
# The fault-injection soak (docs/soak.md): the real bridge binary, a mosquitto that is killed and
# restarted, a device that mistreats acknowledgements, a telemetry flood and 16 Modbus masters;
# checks the invariants at the end and exits 1 if one failed. Loopback only, bounded by its write
# count (and, around it, by `timeout`).
#
#   Tests/soak/soak.sh [--release] [--bridge PATH] [soak.py options]
#
#   --release      build the release binary (under the build lock) and soak that
#   --bridge PATH  soak this binary (default: the debug build, .build/debug/mqtt-modbus-bridge)
#   soak.py options: --writes N (20000), --seed S (random), --restarts K (4), --flood-rate R (1000),
#                    --abandon-rate F (0.005), --out DIR (keep the logs)
#
# The short run CI makes (Tests/run.sh):   Tests/soak/soak.sh --writes 20000
# The long run (docs/soak.md):             nice Tests/soak/soak.sh --release --writes 1000000 --restarts 40
#
# Needs mosquitto, and pymodbus and paho-mqtt for $MQTT_MODBUS_TEST_PYTHON (default
# /usr/bin/python3); Tests/setup.sh installs them.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
bridge=""
release=0
args=()
while [ $# -gt 0 ]; do
    case "$1" in
    --release) release=1; shift ;;
    --bridge) bridge=$2; shift 2 ;;
    -h | --help) sed -n '2,18p' "$0"; exit 0 ;;
    *) args+=("$1"); shift ;;
    esac
done
if [ "$release" -eq 1 ]; then
    (cd "$root" && flock /tmp/swift-build.lock swift build -c release --product mqtt-modbus-bridge >&2)
    bridge="$root/.build/release/mqtt-modbus-bridge"
fi
bridge=${bridge:-$root/.build/debug/mqtt-modbus-bridge}
[ -x "$bridge" ] || { echo "soak.sh: no bridge binary at $bridge (build it, or pass --bridge)" >&2; exit 1; }
python=${MQTT_MODBUS_TEST_PYTHON:-/usr/bin/python3}
exec "$python" "$root/Tests/soak/soak.py" --bridge "$bridge" "${args[@]}"
