#!/usr/bin/env bash
# The demo, on a fresh Debian machine with Swift 6: a local mosquitto broker, the bridge, and
# a simulated boiler, pumps, a Tasmota plug and a Sparkplug B edge node, readable by any Modbus
# client on port 5020.
#
#   ./examples/demo.sh            # Ctrl-C stops everything
#
# Installs mosquitto, mosquitto-clients (mosquitto_sub and mosquitto_pub, which the demo suggests)
# and mbpoll if missing (apt, sudo when not root), builds the bridge, starts a broker on 127.0.0.1:1883 (with TCP_NODELAY: see README), the device simulator and the
# bridge with examples/configs/demo.yaml, then shows a few Modbus reads and a write.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x /opt/swift/usr/bin/swift ] && ! command -v swift >/dev/null 2>&1 && export PATH="/opt/swift/usr/bin:$PATH"

sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
missing=()
for package in mosquitto mosquitto-clients libmosquitto-dev mbpoll; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "demo: installing ${missing[*]}"
    sudo_if_needed apt-get update -qq
    sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

echo "demo: building the bridge (the first build takes a few minutes)"
swift build -c release --product mqtt-modbus-bridge
bridge="$(swift build -c release --show-bin-path)/mqtt-modbus-bridge"

workdir="$(mktemp -d)"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$workdir"
}
trap cleanup EXIT INT TERM

if (exec 3<>/dev/tcp/127.0.0.1/1883) 2>/dev/null; then
    echo "demo: a broker already listens on 127.0.0.1:1883; using it"
else
    cp docker/mosquitto.conf "$workdir/mosquitto.conf"
    sed -i 's/^listener 1883$/listener 1883 127.0.0.1/' "$workdir/mosquitto.conf"
    /usr/sbin/mosquitto -c "$workdir/mosquitto.conf" >"$workdir/mosquitto.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 1 50); do (exec 3<>/dev/tcp/127.0.0.1/1883) 2>/dev/null && break; sleep 0.1; done
fi

"$bridge" simulate --config examples/configs/demo.yaml --log-level warning &
pids+=($!)
"$bridge" run --config examples/configs/demo.yaml --status-listen 127.0.0.1:9102 &
pids+=($!)
for _ in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/5020) 2>/dev/null && break; sleep 0.1; done
sleep 1  # let the simulator's first values arrive

cat <<'TEXT'

=== The bridge serves Modbus TCP on port 5020. Try (in another terminal):
  mbpoll -m tcp -p 5020 -0 -1 -a 1 -B -t 3:float -r 0 127.0.0.1      # boiler temperature (float32)
  mbpoll -m tcp -p 5020 -0 -1 -a 1 -t 4 -r 0 127.0.0.1               # boiler setpoint ×10
  mbpoll -m tcp -p 5020 -0 -1 -a 1 -t 4 -r 0 127.0.0.1 215           # write 21.5 °C: held until the device acks
  mbpoll -m tcp -p 5020 -0 -1 -a 2 -t 1 -r 0 -c 3 127.0.0.1          # pumps running
  mbpoll -m tcp -p 5020 -0 -1 -a 3 -t 0 -r 0 127.0.0.1 0             # switch the Tasmota hall light off
  mbpoll -m tcp -p 5020 -0 -1 -a 4 -B -t 3:float -r 0 127.0.0.1      # Sparkplug filler: tank level (a Float metric)
  mbpoll -m tcp -p 5020 -0 -1 -a 4 -t 4 -r 0 127.0.0.1 120           # its speed: a DCMD, confirmed by DDATA
  mosquitto_sub -v -t 'demo/#'                                      # the MQTT side
  mosquitto_sub -v -t 'cmnd/#' -t 'stat/#' -t 'tele/#'              # the Tasmota side, as a real one speaks
  mosquitto_sub -v -t 'spBv1.0/#' | cat -v                           # the Sparkplug side (protobuf payloads)
  curl -s 127.0.0.1:9102/ready; curl -s 127.0.0.1:9102/metrics       # readiness and Prometheus metrics
TEXT
echo "=== Now:"
mbpoll -m tcp -p 5020 -0 -1 -a 1 -B -t 3:float -r 0 127.0.0.1 | grep '^\[' || true
mbpoll -m tcp -p 5020 -0 -1 -a 1 -t 4 -r 0 127.0.0.1 215 | grep -i 'written' || true
mbpoll -m tcp -p 5020 -0 -1 -a 1 -t 4 -r 0 127.0.0.1 | grep '^\[' || true
(exec 3<>/dev/tcp/127.0.0.1/9102 && printf 'GET /ready HTTP/1.0\r\n\r\n' >&3 && tail -n 1 <&3; echo) || true
echo "=== Running; Ctrl-C stops the demo."
wait
