#!/usr/bin/env bash
# Connection abuse against the real bridge program: a well-behaved master's p99 alone, then
# beside a connection flood, 200 slowloris clients, clients that never read and stopped
# (SIGSTOP) clients, each within max(2 x baseline p99, baseline p99 + 2 ms); the documented
# connection limit and idle timeout behaviour; the bridge's memory while clients do not read.
# Method, limits and figures: docs/testing.md. Needs mosquitto, mosquitto_pub and python3.
#
#   Tests/abuse/run.sh                       the bridge of `swift build` (.build/debug)
#   Tests/abuse/run.sh --bridge PATH         another build of it (a release build, say)
#   Tests/abuse/run.sh --only slowloris      one scenario (policy, connect-flood, slowloris,
#                                            non-reader, half-open; repeatable)
#
# Other options (--seconds, --masters, --allowance-ms, --interval): Tests/abuse/driver.py --help.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ -x /opt/swift/usr/bin/swift ] && ! command -v swift >/dev/null 2>&1 && export PATH="/opt/swift/usr/bin:$PATH"

args=("$@")
if [[ " $* " != *" --bridge "* ]]; then
    args+=(--bridge "$(swift build --show-bin-path)/mqtt-modbus-bridge")
fi
# Bounded: a hang fails the run instead of stalling CI.
exec timeout --kill-after=10 300 python3 Tests/abuse/driver.py "${args[@]}"
