#!/usr/bin/env bash
# Installs what the tests need on a Debian (bookworm) machine, and nothing it already has:
# the mosquitto broker and libmosquitto, libmodbus's mbpoll, openssl, pymodbus, paho-mqtt, debootstrap
# (docker/verify-runtime.sh builds the container's runtime root filesystem with it) and
# python3-venv (docker/check-compose.sh installs docker-compose into a virtual environment) and
# dpkg-dev (packaging/build-deb.sh computes the package's dependencies with dpkg-shlibdeps).
# Safe to run again; uses sudo when not root.
set -euo pipefail

sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

apt_packages=(mosquitto mosquitto-clients libmosquitto-dev libmodbus-dev mbpoll openssl pkg-config python3 python3-pip
    python3-venv debootstrap dpkg-dev chromium fonts-dejavu-core)
missing=()
for package in "${apt_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    sudo_if_needed apt-get update -qq
    sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The packaged broker starts a system-wide service on port 1883; the tests start their own
# brokers on free ports and do not need it.

# pymodbus for the one interpreter the tests run (Tests/MQTTTestSupport/TestPython.swift):
# Debian's python3, not whatever python3 comes first on PATH. Installed as root it goes to
# /usr/local, where the unprivileged user the tests run as (Tests/run.sh) can import it.
pymodbus_version="3.16.1"
test_python="${MQTT_MODBUS_TEST_PYTHON:-/usr/bin/python3}"
if ! "$test_python" -c "import pymodbus, sys; sys.exit(0 if pymodbus.__version__ == '$pymodbus_version' else 1)" 2>/dev/null; then
    echo "setup: installing pymodbus $pymodbus_version for $test_python"
    if [ "$(id -u)" -eq 0 ]; then scope=(); else scope=(--user); fi
    "$test_python" -m pip install -q "${scope[@]}" "pymodbus==$pymodbus_version" 2>/dev/null \
        || "$test_python" -m pip install -q "${scope[@]}" --break-system-packages "pymodbus==$pymodbus_version"
fi
# paho-mqtt for the same interpreter: the soak's simulated device (Tests/soak) speaks MQTT 5
# through it (correlation data, user properties).
paho_version="2.1.0"
if ! "$test_python" -c "import paho.mqtt, sys; sys.exit(0 if paho.mqtt.__version__ == '$paho_version' else 1)" 2>/dev/null; then
    echo "setup: installing paho-mqtt $paho_version for $test_python"
    if [ "$(id -u)" -eq 0 ]; then scope=(); else scope=(--user); fi
    "$test_python" -m pip install -q "${scope[@]}" "paho-mqtt==$paho_version" 2>/dev/null \
        || "$test_python" -m pip install -q "${scope[@]}" --break-system-packages "paho-mqtt==$paho_version"
fi

if ! command -v swift >/dev/null 2>&1; then
    if [ -x /opt/swift/usr/bin/swift ]; then
        echo "setup: swift is at /opt/swift/usr/bin; add it to PATH" >&2
    else
        echo "setup: Swift 6 is required (https://swift.org/install)" >&2
    fi
    exit 1
fi
