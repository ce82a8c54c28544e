# Proves the Debian package the way docker/verify-runtime.sh proves the container image.
# Not a program of its own: docker/verify-runtime.sh sources it at its end, after the container
# checks, with their broker and simulated device still running; it uses that script's variables
# ($rootfs, $image_user, $work, $broker_port, $pids) and functions (say, fail, wait_for, free_port,
# health, show_logs; its EXIT trap kills what is started here). VERIFY_RUNTIME_SKIP_DEB=1 skips it.
#
#   1. builds the package with packaging/build-deb.sh (the same binary as the container);
#   2. copies the runtime root filesystem (Debian bookworm minbase with the package's
#      dependencies, libmosquitto1 and ca-certificates) to .build-rootfs-deb without the
#      container's additions (its binary, configurations and user), and installs the package
#      there with dpkg -i, inside the chroot;
#   3. checks what the postinst made (the system user, the secrets directory) and, as the
#      package's user: --version, validate on every /etc/mqtt-modbus-bridge configuration, a
#      secret readable by that user and by no other, then the unit's ExecStart command line
#      against the broker on loopback, /ready and a Modbus read from outside with mbpoll, and
#      a graceful SIGTERM; then port 502 with the unit's capability settings (setpriv), and
#      without them, which must fail;
#   4. systemd-analyze verify (and the offline security review) of the installed unit on the
#      host, when it has systemd-analyze;
#   5. dpkg -r (conffiles stay) and dpkg --purge (only the administrator's own file stays), and
#      compares the root filesystem's file list with the one before the installation.

deb_package=mqtt-modbus-bridge
deb_user=mqtt-modbus-bridge
deb_rootfs="$PWD/.build-rootfs-deb"
deb_unit=/lib/systemd/system/$deb_package.service
deb_log="$work/dpkg.log"
deb_started=$SECONDS

# --- 1. The package -------------------------------------------------------------------------------
say "building the Debian package (packaging/build-deb.sh)"
packaging/build-deb.sh >"$work/deb-path" 2>"$work/build-deb.log" \
    || { tail -n 30 "$work/build-deb.log" >&2; fail "packaging/build-deb.sh failed (above)"; }
grep -E '^build-deb: (mqtt-modbus-bridge_|lintian)' "$work/build-deb.log" | sed 's/^build-deb: /verify-runtime: package: /' || true
deb="$(tail -n 1 "$work/deb-path")"
[ -f "$deb" ] || fail "packaging/build-deb.sh did not print the package's path (got '$deb')"
deb_version="$(dpkg-deb --field "$deb" Version)"
deb_depends="$(dpkg-deb --field "$deb" Depends)"
for dependency in libmosquitto1 ca-certificates; do
    echo "$deb_depends" | grep -qE "(^|, )$dependency( |,|$)" || fail "the package does not depend on $dependency: $deb_depends"
done

# --- 2. A clean copy of the runtime root filesystem, and dpkg -i ----------------------------------
rm -rf "$deb_rootfs"
cp -a "$rootfs" "$deb_rootfs"
rm -rf "$deb_rootfs/usr/local/bin/mqtt-modbus-bridge" "$deb_rootfs/etc/mqtt-modbus-bridge" \
    "$deb_rootfs/.verify-runtime-complete" "$deb_rootfs/tmp/"*
as_root_in_deb_rootfs() {
    unshare --mount --pid --fork --kill-child=SIGKILL --mount-proc="$deb_rootfs/proc" chroot "$deb_rootfs" \
        /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive "$@"
}
as_root_in_deb_rootfs userdel "$image_user" || fail "removing the container's user $image_user from the copy"
snapshot() {   # the root filesystem's paths, without what dpkg and the kernel change anyway
    (cd "$deb_rootfs" && find . -xdev \( -path ./proc -o -path ./tmp -o -path ./var/lib/dpkg -o -path ./var/log \
        -o -path ./var/cache \) -prune -o -print | sort)
}
snapshot >"$work/files-before"
cp "$deb" "$deb_rootfs/tmp/package.deb"
say "dpkg -i $(basename "$deb") in a copy of the root filesystem ($deb_rootfs)"
as_root_in_deb_rootfs dpkg -i /tmp/package.deb >"$deb_log" 2>&1 \
    || { cat "$deb_log" >&2; fail "dpkg -i failed in the minbase root filesystem (above)"; }
grep '^mqtt-modbus-bridge:' "$deb_log" | sed 's/^/verify-runtime: postinst says: /' || true
status="$(as_root_in_deb_rootfs dpkg-query -W -f='${Status} ${Version}' "$deb_package")"
[ "$status" = "install ok installed $deb_version" ] || fail "dpkg reports '$status' after dpkg -i"
say "installed: $status; Depends: $deb_depends"

# --- 3. What the postinst made, and the program as the package's user ----------------------------
deb_passwd="$(grep "^$deb_user:" "$deb_rootfs/etc/passwd")" || fail "the postinst did not create the user $deb_user"
deb_uid="$(echo "$deb_passwd" | cut -d: -f3)"
deb_gid="$(echo "$deb_passwd" | cut -d: -f4)"
[ "$deb_uid" -lt 1000 ] || fail "$deb_user is not a system user (uid $deb_uid)"
[ "$(echo "$deb_passwd" | cut -d: -f7)" = /usr/sbin/nologin ] || fail "$deb_user has a login shell: $deb_passwd"
[ ! -e "$deb_rootfs/nonexistent" ] || fail "the postinst made $deb_user a home directory"
grep -q "^$deb_user:x:$deb_gid:" "$deb_rootfs/etc/group" || fail "no group $deb_user with gid $deb_gid"
# Numeric ids: the host's user and group names are not the root filesystem's.
secrets_mode="$(stat -c '%u:%g %a' "$deb_rootfs/etc/mqtt-modbus-bridge/secrets")" || fail "no /etc/mqtt-modbus-bridge/secrets"
[ "$secrets_mode" = "0:$deb_gid 750" ] \
    || fail "/etc/mqtt-modbus-bridge/secrets is $secrets_mode (uid:gid mode), not root:$deb_user (0:$deb_gid) 750"
secrets_mode="root:$deb_user 750"
for path in /usr/bin/mqtt-modbus-bridge "$deb_unit" /usr/share/doc/$deb_package/copyright /usr/share/doc/$deb_package/README; do
    [ -f "$deb_rootfs$path" ] || fail "the package did not install $path"
done
conffiles="$(as_root_in_deb_rootfs dpkg-query -W -f='${Conffiles}' "$deb_package" | awk 'NF { print $1 }' | sort | paste -sd ' ')"
expected_conffiles="$(for config in examples/configs/*.yaml; do echo "/etc/mqtt-modbus-bridge/$(basename "$config")"; done | sort | paste -sd ' ')"
[ "$conffiles" = "$expected_conffiles" ] || fail "conffiles are '$conffiles', not '$expected_conffiles'"
say "postinst: system user $deb_user (uid $deb_uid, no home, nologin), secrets directory $secrets_mode; conffiles: $conffiles"

in_package=(unshare --mount --pid --fork --kill-child=SIGKILL --mount-proc="$deb_rootfs/proc"
    chroot --userspec="$deb_uid:$deb_gid" --groups="$deb_gid" "$deb_rootfs"
    /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/nonexistent)
[ "$("${in_package[@]}" /usr/bin/id -u)" = "$deb_uid" ] || fail "the package's commands do not run as uid $deb_uid"
package_version="$("${in_package[@]}" mqtt-modbus-bridge --version)" || fail "--version failed as $deb_user"
[ "$package_version" = "$deb_version" ] || fail "--version prints $package_version, the package is $deb_version"
say "--version as $deb_user (uid $deb_uid): $package_version"
for config in "$deb_rootfs"/etc/mqtt-modbus-bridge/*.yaml; do
    name="/etc/mqtt-modbus-bridge/$(basename "$config")"
    output="$("${in_package[@]}" mqtt-modbus-bridge validate "$name" 2>&1)" || { echo "$output" >&2; fail "validate $name as $deb_user"; }
    say "validate $name as $deb_user: $(echo "$output" | tail -n 1)"
done

# A secret as the README tells the administrator to make it: readable by the service's user only.
install -m 0640 -o root -g "$deb_gid" /dev/null "$deb_rootfs/etc/mqtt-modbus-bridge/secrets/mqtt-password"
echo "not-a-real-password" >"$deb_rootfs/etc/mqtt-modbus-bridge/secrets/mqtt-password"
"${in_package[@]}" /bin/cat /etc/mqtt-modbus-bridge/secrets/mqtt-password >/dev/null \
    || fail "$deb_user cannot read a root:$deb_user 0640 file in /etc/mqtt-modbus-bridge/secrets"
if unshare --mount --pid --fork --mount-proc="$deb_rootfs/proc" chroot --userspec=65534:65534 "$deb_rootfs" \
    /bin/cat /etc/mqtt-modbus-bridge/secrets/mqtt-password >/dev/null 2>&1; then
    fail "another user (nobody) can read /etc/mqtt-modbus-bridge/secrets/mqtt-password"
fi
say "a root:$deb_user 0640 secret in /etc/mqtt-modbus-bridge/secrets: readable by $deb_user, not by nobody"

# The administrator's configuration, /etc/mqtt-modbus-bridge/bridge.yaml as the unit expects it:
# the demo with the Modbus listener on a free loopback port.
deb_modbus_port="$(free_port)"
deb_status_port="$(free_port)"
sed -e "/^modbus:/,/^[a-z]/ s/^  host: .*/  host: 127.0.0.1/" -e "/^modbus:/,/^[a-z]/ s/^  port: .*/  port: $deb_modbus_port/" \
    examples/configs/demo.yaml >"$deb_rootfs/etc/mqtt-modbus-bridge/bridge.yaml"
chmod 0644 "$deb_rootfs/etc/mqtt-modbus-bridge/bridge.yaml"
grep -q "port: $deb_modbus_port" "$deb_rootfs/etc/mqtt-modbus-bridge/bridge.yaml" || fail "could not set the Modbus port in bridge.yaml"

# The unit's command line, as installed, with the status endpoint on a free port and the broker
# on loopback (the two overrides a drop-in would make on a real host).
exec_start="$(sed -n 's/^ExecStart=//p' "$deb_rootfs$deb_unit")"
unit_status="--status-listen 127.0.0.1:9102"
[[ "$exec_start" == "/usr/bin/mqtt-modbus-bridge run --config /etc/mqtt-modbus-bridge/bridge.yaml $unit_status" ]] \
    || fail "the unit's ExecStart changed ('$exec_start'); update this script and the README"
read -r -a deb_command <<<"${exec_start/$unit_status/--status-listen 127.0.0.1:$deb_status_port}"
"${in_package[@]}" "${deb_command[@]}" --broker-host 127.0.0.1 --broker-port "$broker_port" >"$work/deb-bridge.log" 2>&1 &
deb_bridge_pid="$!"
pids+=("$deb_bridge_pid")
say "running the unit's ExecStart as $deb_user: ${deb_command[*]} --broker-host 127.0.0.1 --broker-port $broker_port"
deb_health() { status_port="$deb_status_port" health; }
show_deb_logs() { echo "--- deb-bridge.log" >&2; tail -n 30 "$work/deb-bridge.log" >&2; show_logs; }
wait_for 30 "/ready answers 200 from the packaged bridge" deb_health || { show_deb_logs; fail "/ready never answered 200 (package)"; }
deb_read() { mbpoll -m tcp -p "$deb_modbus_port" -0 -1 -o 2 -a 1 "$@" 127.0.0.1; }
wait_for 20 "boiler temperature readable through the packaged bridge" deb_read -t 3:float -r 0 -B \
    || { deb_read -t 3:float -r 0 -B >&2 || true; show_deb_logs; fail "no Modbus read through the packaged bridge"; }
say "Modbus read (FC4, input register 0, float32): $(deb_read -t 3:float -r 0 -B | grep -E '^\[0\]' | tr -s '[:space:]' ' ')"
deb_child="$(pgrep -P "$deb_bridge_pid" | head -n 1)" || fail "no packaged bridge process under unshare"
grep -qE "^Uid:[[:space:]]+$deb_uid[[:space:]]+$deb_uid[[:space:]]+$deb_uid[[:space:]]+$deb_uid$" "/proc/$deb_child/status" \
    || fail "the packaged bridge does not run as uid $deb_uid: $(grep ^Uid: "/proc/$deb_child/status")"
kill -TERM "$deb_child"
deadline=$((SECONDS + 15))
while kill -0 "$deb_bridge_pid" 2>/dev/null; do
    [ "$SECONDS" -lt "$deadline" ] || { show_deb_logs; fail "the packaged bridge did not stop within 15 s of SIGTERM"; }
    sleep 0.2
done
status=0
wait "$deb_bridge_pid" || status=$?
[ "$status" -eq 0 ] || { show_deb_logs; fail "the packaged bridge exited $status after SIGTERM, not 0"; }
say "SIGTERM: the packaged bridge stopped gracefully, exit status 0"

# Port 502 as the unit grants it: AmbientCapabilities=CAP_NET_BIND_SERVICE,
# CapabilityBoundingSet=CAP_NET_BIND_SERVICE and NoNewPrivileges=yes, reproduced with setpriv
# (util-linux, in the root filesystem) after the chroot. Without the capability the bind must
# fail. Skipped if something on the host already listens on 127.0.0.1:502.
grep -qx 'AmbientCapabilities=CAP_NET_BIND_SERVICE' "$deb_rootfs$deb_unit" \
    && grep -qx 'CapabilityBoundingSet=CAP_NET_BIND_SERVICE' "$deb_rootfs$deb_unit" \
    || fail "the unit no longer grants CAP_NET_BIND_SERVICE as this check assumes; update it and docs/operations.md §2"
if python3 -c "import socket; socket.create_connection(('127.0.0.1', 502), 1)" 2>/dev/null; then
    say "127.0.0.1:502 is in use on this host: the port 502 check is skipped"
else
    sed -e "s/^  port: $deb_modbus_port$/  port: 502/" "$deb_rootfs/etc/mqtt-modbus-bridge/bridge.yaml" \
        >"$deb_rootfs/tmp/bridge-502.yaml"
    chmod 0644 "$deb_rootfs/tmp/bridge-502.yaml"
    grep -q '^  port: 502$' "$deb_rootfs/tmp/bridge-502.yaml" || fail "could not set port 502 in a copy of bridge.yaml"
    as_unit_user() {   # as_unit_user [setpriv capability options…] -- command…
        local caps=()
        while [ "$1" != -- ]; do caps+=("$1"); shift; done
        shift
        # exec: run in the background, unshare is the job's process and the bridge its child.
        exec unshare --mount --pid --fork --kill-child=SIGKILL --mount-proc="$deb_rootfs/proc" chroot "$deb_rootfs" \
            /usr/bin/setpriv --reuid="$deb_uid" --regid="$deb_gid" --init-groups --no-new-privs "${caps[@]}" \
            /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/nonexistent "$@"
    }
    if output="$(as_unit_user --bounding-set=-all -- timeout 20 mqtt-modbus-bridge run --config /tmp/bridge-502.yaml \
        --broker-host 127.0.0.1 --broker-port "$broker_port" 2>&1)"; then
        fail "the bridge ran on port 502 as $deb_user without CAP_NET_BIND_SERVICE"
    fi
    echo "$output" | grep -q "cannot listen on 127.0.0.1:502" \
        || { echo "$output" >&2; fail "without the capability, the bridge did not report 'cannot listen on 127.0.0.1:502'"; }
    say "port 502 as $deb_user without the capability: refused, $(echo "$output" | grep -m 1 -o 'cannot listen on 127.0.0.1:502.*')"
    as_unit_user --inh-caps=+net_bind_service --ambient-caps=+net_bind_service --bounding-set=-all,+net_bind_service -- \
        mqtt-modbus-bridge run --config /tmp/bridge-502.yaml --broker-host 127.0.0.1 --broker-port "$broker_port" \
        >"$work/deb-bridge-502.log" 2>&1 &
    deb_502_pid="$!"
    pids+=("$deb_502_pid")
    read_502() { mbpoll -m tcp -p 502 -0 -1 -o 2 -a 1 -t 3:float -r 0 -B 127.0.0.1; }
    wait_for 20 "the packaged bridge listens on 127.0.0.1:502 with the unit's capability" read_502 \
        || { tail -n 20 "$work/deb-bridge-502.log" >&2; fail "no Modbus read on port 502 with CAP_NET_BIND_SERVICE"; }
    deb_502_child="$(pgrep -P "$deb_502_pid" | head -n 1)" || fail "no bridge process for port 502"
    caps="$(grep -E '^(Uid|CapEff|CapBnd|NoNewPrivs):' "/proc/$deb_502_child/status" | tr -s '[:space:]' ' ')"
    echo "$caps" | grep -qE "Uid: $deb_uid $deb_uid $deb_uid $deb_uid CapEff: 0+400 CapBnd: 0+400 NoNewPrivs: 1" \
        || fail "the bridge on port 502 does not run as uid $deb_uid with CAP_NET_BIND_SERVICE only: $caps"
    say "Modbus read on port 502: $(read_502 | grep -E '^\[0\]' | tr -s '[:space:]' ' ')— as uid $deb_uid, CapEff/CapBnd 0x400 (CAP_NET_BIND_SERVICE only), NoNewPrivs 1"
    kill -TERM "$deb_502_child"
    wait "$deb_502_pid" || fail "the bridge on port 502 did not exit 0 after SIGTERM"
fi

# --- 4. The unit, checked by systemd's own tools ---------------------------------------------------
if command -v systemd-analyze >/dev/null 2>&1; then
    # On the host, as the root filesystem has no systemd (systemd-analyze --root needs its
    # targets): the installed unit with ExecStart= pointing at the installed binary through the
    # host's path to it; that the binary is at the unit's path inside was checked above.
    mkdir -p "$work/unit"
    sed "s|^ExecStart=/usr/bin/|ExecStart=$deb_rootfs/usr/bin/|" "$deb_rootfs$deb_unit" >"$work/unit/$deb_package.service"
    if ! analyze_output="$(timeout 60 systemd-analyze verify --man=no "$work/unit/$deb_package.service" 2>&1)" \
        || [ -n "$analyze_output" ]; then
        echo "$analyze_output" >&2
        fail "systemd-analyze verify reports problems with $deb_unit (above; packaging/mqtt-modbus-bridge.service)"
    fi
    say "systemd-analyze verify $deb_unit: no findings ($(systemd-analyze --version | head -n 1))"
    exposure="$(timeout 60 systemd-analyze security --offline=yes "$work/unit/$deb_package.service" 2>/dev/null \
        | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]* [A-Z]*\).*/\1/p' || true)"
    [ -z "$exposure" ] || say "systemd-analyze security --offline: overall exposure level $exposure"
else
    say "systemd-analyze is not installed: the unit's syntax was not checked (apt-get install systemd)"
fi

# --- 5. Removal and purge -------------------------------------------------------------------------
rm -f "$deb_rootfs/etc/mqtt-modbus-bridge/secrets/mqtt-password"
as_root_in_deb_rootfs dpkg -r "$deb_package" >>"$deb_log" 2>&1 || { tail -n 20 "$deb_log" >&2; fail "dpkg -r $deb_package"; }
status="$(as_root_in_deb_rootfs dpkg-query -W -f='${Status}' "$deb_package")"
[ "$status" = "deinstall ok config-files" ] || fail "dpkg reports '$status' after dpkg -r"
for path in /usr/bin/mqtt-modbus-bridge "$deb_unit"; do
    [ ! -e "$deb_rootfs$path" ] || fail "dpkg -r left $path"
done
for path in $expected_conffiles; do
    [ -f "$deb_rootfs$path" ] || fail "dpkg -r removed the conffile $path (only a purge may)"
done
say "dpkg -r: binary and unit removed, conffiles kept ($status)"
as_root_in_deb_rootfs dpkg --purge "$deb_package" >>"$deb_log" 2>&1 || { tail -n 20 "$deb_log" >&2; fail "dpkg --purge $deb_package"; }
if as_root_in_deb_rootfs dpkg-query -W "$deb_package" >/dev/null 2>&1; then
    fail "dpkg still knows $deb_package after --purge"
fi
for path in $expected_conffiles /etc/mqtt-modbus-bridge/secrets; do
    [ ! -e "$deb_rootfs$path" ] || fail "dpkg --purge left $path"
done
[ -f "$deb_rootfs/etc/mqtt-modbus-bridge/bridge.yaml" ] || fail "dpkg --purge removed the administrator's bridge.yaml"
getent_user="$(grep -c "^$deb_user:" "$deb_rootfs/etc/passwd" || true)"
[ "$getent_user" = 1 ] || fail "the system user $deb_user is gone after the purge (it is meant to stay)"
rm -rf "$deb_rootfs/etc/mqtt-modbus-bridge"
snapshot >"$work/files-after"
if ! diff -u "$work/files-before" "$work/files-after" >"$work/files.diff"; then
    cat "$work/files.diff" >&2
    fail "the purge left files behind or removed others (diff above: before the installation, after the purge)"
fi
say "dpkg --purge: conffiles and the empty secrets directory removed; the administrator's bridge.yaml and the system user kept; no other file left behind"
rm -rf "$deb_rootfs"
say "PASSED: the Debian package installs in a bookworm minbase root filesystem and serves Modbus as $deb_user ($((SECONDS - deb_started)) s)"
