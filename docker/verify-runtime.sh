#!/usr/bin/env bash
# Proves the container image's runtime stage without a Docker engine.
#
# It does what docker/Dockerfile does, step by step:
#   1. builds the binary with the build stage's command (release, --static-swift-stdlib);
#   2. makes a Debian bookworm minbase root filesystem with debootstrap, with the apt sources of
#      the debian:bookworm image, and installs only the runtime stage's packages into it, then
#      adds the image's non-root user and copies the binary and the shipped configs where the
#      image has them;
#   3. runs the binary inside that root filesystem (chroot, in its own mount and PID namespaces,
#      so it is PID 1 as in a container) as the image's user, never as root:
#      --version, validate on every shipped config, simulate (the compose file's device) and
#      run against a mosquitto broker on loopback, then reads and an acknowledged write from
#      outside with mbpoll (libmodbus), /ready over HTTP, and SIGTERM to PID 1, which must
#      stop the bridge gracefully;
#   4. then proves the Debian package the same way (docker/verify-deb.sh, sourced at the end):
#      packaging/build-deb.sh, dpkg -i into a copy of that root filesystem, the program as the
#      package's system user against the same broker, systemd-analyze verify of its unit, and
#      dpkg -r and --purge. VERIFY_RUNTIME_SKIP_DEB=1 skips this part.
#
# The commands and packages below are checked against the Dockerfile, so the two cannot drift
# apart silently. Needs root (debootstrap, chroot, unshare), network access to the Debian
# mirror, and mosquitto, mbpoll and dpkg-dev on the host (Tests/setup.sh installs them).
#
#   docker/verify-runtime.sh              # the root filesystem is made fresh each time
#   VERIFY_RUNTIME_KEEP_ROOTFS=1 docker/verify-runtime.sh   # reuse .build-rootfs when complete
#   DEBIAN_MIRROR=http://my-mirror/debian docker/verify-runtime.sh
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x /opt/swift/usr/bin/swift ] && ! command -v swift >/dev/null 2>&1 && export PATH="/opt/swift/usr/bin:$PATH"

say() { echo "verify-runtime: $*"; }
fail() { echo "verify-runtime: FAILED: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || fail "needs root (debootstrap, chroot, unshare); run it with sudo"
for tool in debootstrap unshare chroot mosquitto mbpoll python3 dpkg-deb dpkg-shlibdeps; do
    command -v "$tool" >/dev/null 2>&1 || fail "$tool is not installed (Tests/setup.sh installs what this needs)"
done

# --- What the Dockerfile says, checked rather than assumed ---------------------------------------
dockerfile=docker/Dockerfile
build_command="swift build -c release --product mqtt-modbus-bridge --static-swift-stdlib"
runtime_packages="libmosquitto1 ca-certificates"
image_uid=10001
image_user=bridge
grep -qF "RUN $build_command" "$dockerfile" || fail "$dockerfile no longer builds with '$build_command'; update this script"
grep -qF "FROM debian:bookworm-slim" "$dockerfile" || fail "$dockerfile's runtime stage is no longer debian:bookworm-slim"
grep -qF "apt-get install -y -qq --no-install-recommends $runtime_packages " "$dockerfile" \
    || fail "$dockerfile's runtime packages are no longer '$runtime_packages'; update this script"
grep -qF "useradd --system --uid $image_uid $image_user" "$dockerfile" || fail "$dockerfile's user is no longer $image_user ($image_uid)"
grep -qF "USER $image_user" "$dockerfile" || fail "$dockerfile no longer runs as USER $image_user"
grep -qF "COPY examples/configs /etc/mqtt-modbus-bridge" "$dockerfile" || fail "$dockerfile's configs moved"

# --- 1. The build stage ---------------------------------------------------------------------------
say "building: $build_command"
$build_command 2>&1 | tail -n 3
binary="$(swift build -c release --show-bin-path)/mqtt-modbus-bridge"
[ -x "$binary" ] || fail "no binary at $binary"

# --- 2. The runtime stage's root filesystem -------------------------------------------------------
rootfs="$PWD/.build-rootfs"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
marker="$rootfs/.verify-runtime-complete"
rootfs_log="$PWD/.build/verify-runtime-rootfs.log"
if [ -n "${VERIFY_RUNTIME_KEEP_ROOTFS:-}" ] && [ -f "$marker" ] && [ "$(cat "$marker")" = "$runtime_packages" ]; then
    say "reusing the root filesystem in $rootfs"
else
    rm -rf "$rootfs"
    say "debootstrap --variant=minbase bookworm from $mirror (a minute or two)"
    debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$rootfs_log" 2>&1 \
        || { tail -n 20 "$rootfs_log" >&2; fail "debootstrap failed (log: $rootfs_log)"; }
    # The apt sources of the debian:bookworm image: the release, its updates and security.
    rm -f "$rootfs/etc/apt/sources.list"
    cat >"$rootfs/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    cp /etc/resolv.conf "$rootfs/etc/resolv.conf"
    say "installing the runtime stage's packages: $runtime_packages"
    # The Dockerfile's runtime RUN line, as root inside the root filesystem.
    unshare --mount --pid --fork --mount-proc="$rootfs/proc" chroot "$rootfs" /bin/sh -c "
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq && apt-get install -y -qq --no-install-recommends $runtime_packages \
            && rm -rf /var/lib/apt/lists/* && useradd --system --uid $image_uid $image_user" \
        >>"$rootfs_log" 2>&1 \
        || { tail -n 20 "$rootfs_log" >&2; fail "installing $runtime_packages failed (log: $rootfs_log)"; }
    echo "$runtime_packages" >"$marker"
fi
install -m 0755 "$binary" "$rootfs/usr/local/bin/mqtt-modbus-bridge"
rm -rf "$rootfs/etc/mqtt-modbus-bridge"
cp -r examples/configs "$rootfs/etc/mqtt-modbus-bridge"
chmod -R a+rX "$rootfs/etc/mqtt-modbus-bridge"
passwd_line="$(grep "^$image_user:" "$rootfs/etc/passwd")" || fail "no user $image_user in the root filesystem"
[ "$(echo "$passwd_line" | cut -d: -f3)" = "$image_uid" ] || fail "user $image_user does not have uid $image_uid"
image_gid="$(echo "$passwd_line" | cut -d: -f4)"
image_home="$(echo "$passwd_line" | cut -d: -f6)"
say "root filesystem: $(du -sh "$rootfs" | cut -f1), packages: $(chroot "$rootfs" dpkg-query -W -f='${Package}\n' | wc -l)"

# A command prefix that runs in the image as its user: its own mount and PID namespaces (PID 1,
# its own /proc), the image's environment and no capabilities. The network is the host's, so
# loopback reaches the broker, as with `docker run --network host`. unshare forks once and the
# child execs chroot, env and the program in turn, so the program is unshare's only child.
in_image=(unshare --mount --pid --fork --kill-child=SIGKILL --mount-proc="$rootfs/proc"
    chroot --userspec="$image_uid:$image_gid" --groups="$image_gid" "$rootfs"
    /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME="$image_home")

# --- 3. The binary in the image, as the image's user ---------------------------------------------
work="$(mktemp -d /tmp/verify-runtime.XXXXXX)"
pids=()
cleanup() {
    # The program in the image is unshare's only child. It must be killed itself: the parent-death
    # signal that --kill-child sets is cleared when chroot --userspec or setpriv changes the
    # credentials, so killing unshare alone would leave it running (holding inherited files).
    # Grouped with standard error discarded: bash's "Killed" notices for these jobs are expected.
    {
        for pid in "${pids[@]}"; do
            pkill -KILL -P "$pid" || true
            kill -KILL "$pid" || true
        done
        wait || true
    } 2>/dev/null
    rm -rf "$work" "$rootfs/tmp/verify-run.yaml"
}
trap cleanup EXIT

version="$("${in_image[@]}" mqtt-modbus-bridge --version)" || fail "--version failed in the image"
say "--version as uid $image_uid: $version"
whoami_in_image="$("${in_image[@]}" /usr/bin/id -u)"
[ "$whoami_in_image" = "$image_uid" ] || fail "the image's commands run as uid $whoami_in_image, not $image_uid"

for config in "$rootfs"/etc/mqtt-modbus-bridge/*.yaml; do
    name="/etc/mqtt-modbus-bridge/$(basename "$config")"
    output="$("${in_image[@]}" mqtt-modbus-bridge validate "$name" 2>&1)" || { echo "$output" >&2; fail "validate $name"; }
    say "validate $name: $(echo "$output" | tail -n 1)"
done

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
broker_port="$(free_port)"
modbus_port="$(free_port)"
status_port="$(free_port)"

cat >"$work/mosquitto.conf" <<EOF
listener $broker_port 127.0.0.1
allow_anonymous true
persistence false
set_tcp_nodelay true
EOF
chmod a+r "$work/mosquitto.conf"
mosquitto -c "$work/mosquitto.conf" >"$work/broker.log" 2>&1 &
pids+=("$!")

# The demo config with the Modbus listener on a free loopback port.
sed -e "/^modbus:/,/^[a-z]/ s/^  host: .*/  host: 127.0.0.1/" -e "/^modbus:/,/^[a-z]/ s/^  port: .*/  port: $modbus_port/" \
    examples/configs/demo.yaml >"$rootfs/tmp/verify-run.yaml"
chmod a+r "$rootfs/tmp/verify-run.yaml"
grep -q "port: $modbus_port" "$rootfs/tmp/verify-run.yaml" || fail "could not set the Modbus port in the demo config"

wait_for() {   # wait_for SECONDS DESCRIPTION COMMAND...: retries COMMAND every 0.2 s
    local deadline=$((SECONDS + $1)) what="$2"
    shift 2
    until "$@" >/dev/null 2>&1; do
        [ "$SECONDS" -lt "$deadline" ] || return 1
        sleep 0.2
    done
    say "$what"
}
wait_for 10 "broker listening on 127.0.0.1:$broker_port" \
    python3 -c "import socket; socket.create_connection(('127.0.0.1', $broker_port), 1)" \
    || { cat "$work/broker.log" >&2; fail "the broker did not start"; }

"${in_image[@]}" mqtt-modbus-bridge simulate --config /etc/mqtt-modbus-bridge/demo.yaml \
    --broker-host 127.0.0.1 --broker-port "$broker_port" >"$work/simulator.log" 2>&1 &
pids+=("$!")
"${in_image[@]}" mqtt-modbus-bridge run --config /tmp/verify-run.yaml --broker-host 127.0.0.1 --broker-port "$broker_port" \
    --status-listen "127.0.0.1:$status_port" >"$work/bridge.log" 2>&1 &
bridge_pid="$!"
pids+=("$bridge_pid")

show_logs() { for log in bridge simulator broker; do echo "--- $log.log" >&2; tail -n 30 "$work/$log.log" >&2; done; }
health() {
    python3 - "$status_port" <<'EOF'
import sys, urllib.request
with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/ready", timeout=2) as response:
    body = response.read().decode()
    if response.status != 200:
        sys.exit(1)
    print(body)
EOF
}
wait_for 30 "/ready answers 200 from the bridge in the image" health || { show_logs; fail "/ready never answered 200"; }
say "/ready: $(health)"

mbpoll_read() { mbpoll -m tcp -p "$modbus_port" -0 -1 -o 2 -a 1 "$@" 127.0.0.1; }
# The simulator publishes the boiler's telemetry; a read succeeds once a value has arrived.
wait_for 20 "boiler temperature readable through the bridge" mbpoll_read -t 3:float -r 0 -B \
    || { mbpoll_read -t 3:float -r 0 -B >&2 || true; show_logs; fail "no Modbus read through the bridge"; }
temperature="$(mbpoll_read -t 3:float -r 0 -B | grep -E '^\[0\]' | tr -s '[:space:]' ' ')" || fail "reading the temperature"
say "Modbus read (FC4, input register 0, float32): $temperature"

# An acknowledged write: FC6 to the setpoint; the bridge publishes the command, the simulator
# acknowledges it (MQTT 5 response topic), and only then does the bridge answer.
write_output="$(mbpoll -m tcp -p "$modbus_port" -0 -1 -o 8 -a 1 -t 4 -r 0 127.0.0.1 215 2>&1)" \
    || { echo "$write_output" >&2; show_logs; fail "the write to holding register 0 was not acknowledged"; }
echo "$write_output" | grep -q "Written 1 references" || { echo "$write_output" >&2; fail "mbpoll did not report the write"; }
say "Modbus write (FC6, holding register 0 = 215): acknowledged by the device ($(echo "$write_output" | grep Written))"
setpoint="$(mbpoll_read -t 4 -r 0 | grep -E '^\[0\]' | tr -s '[:space:]' ' ')" || fail "reading the setpoint back"
echo "$setpoint" | grep -qE '^\[0\]: 215 ?$' || { show_logs; fail "the setpoint reads '$setpoint', not 215"; }
say "Modbus read back (FC3, holding register 0): $setpoint"
grep -q "Modbus TCP server listening" "$work/bridge.log" || fail "the bridge log does not show the Modbus listener"

# docker stop: SIGTERM to PID 1 of the container. The bridge must stop gracefully and exit 0.
bridge_child="$(pgrep -P "$bridge_pid" | head -n 1)" || fail "no bridge process under unshare"
[ "$(cat "/proc/$bridge_child/comm")" = "mqtt-modbus-bri" ] || fail "unshare's child is not the bridge"
status_file="/proc/$bridge_child/status"
grep -qE "^NSpid:[[:space:]]+$bridge_child[[:space:]]+1$" "$status_file" || fail "the bridge is not PID 1 of its namespace"
grep -qE "^Uid:[[:space:]]+$image_uid[[:space:]]+$image_uid[[:space:]]+$image_uid[[:space:]]+$image_uid$" "$status_file" \
    || fail "the bridge does not run as uid $image_uid: $(grep ^Uid: "$status_file")"
grep -qE "^CapEff:[[:space:]]+0+$" "$status_file" || fail "the bridge has capabilities: $(grep ^CapEff: "$status_file")"
say "the bridge runs as PID 1 of its namespace, uid $image_uid, no capabilities"
kill -TERM "$bridge_child"
status=0
deadline=$((SECONDS + 15))
while kill -0 "$bridge_pid" 2>/dev/null; do
    [ "$SECONDS" -lt "$deadline" ] || { show_logs; fail "the bridge (PID 1) did not stop within 15 s of SIGTERM"; }
    sleep 0.2
done
wait "$bridge_pid" || status=$?
[ "$status" -eq 0 ] || { show_logs; fail "the bridge exited $status after SIGTERM, not 0"; }
say "SIGTERM to the bridge as PID 1: stopped gracefully, exit status 0"
say "PASSED: the runtime stage serves Modbus as uid $image_uid ($image_user)"

if [ -n "${VERIFY_RUNTIME_SKIP_DEB:-}" ]; then
    say "skipped the Debian package (VERIFY_RUNTIME_SKIP_DEB is set)"
else
    # shellcheck source=docker/verify-deb.sh
    source docker/verify-deb.sh
fi
