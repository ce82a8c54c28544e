#!/usr/bin/env bash
# Builds the Debian package mqtt-modbus-bridge_<version>_<arch>.deb into .build-deb/.
#
#   1. builds the binary exactly as the container's build stage does (docker/Dockerfile, checked
#      below): swift build -c release --product mqtt-modbus-bridge --static-swift-stdlib;
#   2. stages the package:
#        /usr/bin/mqtt-modbus-bridge
#        /etc/mqtt-modbus-bridge/*.yaml            examples/configs, as conffiles
#        /lib/systemd/system/mqtt-modbus-bridge.service   packaging/mqtt-modbus-bridge.service
#        /usr/share/doc/mqtt-modbus-bridge/        README (packaging/README), copyright
#                                                  (packaging/copyright plus one paragraph per
#                                                  statically linked Swift package),
#                                                  operations.md.gz, CONFIGURATION.md.gz,
#                                                  changelog.gz
#        DEBIAN/postinst, prerm, postrm            packaging/debian/ (system user, no autostart)
#   3. writes DEBIAN/control: Version from BridgeVersion.current (what --version prints, checked
#      against the built binary), Architecture from dpkg --print-architecture, Depends from
#      dpkg-shlibdeps on the binary (the C libraries it links, libmosquitto1 among them) plus
#      ca-certificates (the container's runtime packages);
#   4. dpkg-deb --build --root-owner-group, then lintian if it is installed (errors fail).
#
# It does not install anything; docker/verify-deb.sh installs the package into a Debian
# bookworm minbase root filesystem and runs it there as the package's user.
#
#   packaging/build-deb.sh                  # prints the package's path on its last line
#   DEB_MAINTAINER='Name <mail>' packaging/build-deb.sh   # default: HEAD's git author
# Needs dpkg-dev (dpkg-shlibdeps; Tests/setup.sh installs it) and the Swift toolchain.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x /opt/swift/usr/bin/swift ] && ! command -v swift >/dev/null 2>&1 && export PATH="/opt/swift/usr/bin:$PATH"

say() { echo "build-deb: $*" >&2; }
fail() { echo "build-deb: FAILED: $*" >&2; exit 1; }

for tool in swift dpkg-deb dpkg-shlibdeps gzip; do
    command -v "$tool" >/dev/null 2>&1 || fail "$tool is not installed (apt-get install dpkg-dev; Swift 6 for swift)"
done

package=mqtt-modbus-bridge
build_command="swift build -c release --product mqtt-modbus-bridge --static-swift-stdlib"
grep -qF "RUN $build_command" docker/Dockerfile \
    || fail "docker/Dockerfile no longer builds with '$build_command'; build the package the same way (update this script)"
version_source=Sources/mqtt-modbus-bridge/BridgeCommand.swift
version="$(sed -n 's/^ *static let current = "\([^"]*\)".*/\1/p' "$version_source")"
[ -n "$version" ] || fail "no 'static let current = \"…\"' (BridgeVersion) in $version_source"
echo "$version" | grep -qE '^[0-9][A-Za-z0-9.+~-]*$' || fail "BridgeVersion '$version' is not a Debian version"
arch="$(dpkg --print-architecture)"

# --- 1. The binary --------------------------------------------------------------------------------
say "building: $build_command"
$build_command >&2
binary="$(swift build -c release --show-bin-path)/$package"
[ -x "$binary" ] || fail "no binary at $binary"
binary_version="$("$binary" --version)" || fail "$binary --version failed"
[ "$binary_version" = "$version" ] || fail "the binary says --version $binary_version, $version_source says $version; rebuild"

# --- 2. The staged tree ---------------------------------------------------------------------------
out="$PWD/.build-deb"
stage="$out/root"
rm -rf "$stage"
mkdir -p "$out"
install -d -m 0755 "$stage/DEBIAN" "$stage/usr/bin" "$stage/etc/$package" "$stage/lib/systemd/system" \
    "$stage/usr/share/doc/$package" "$stage/usr/share/lintian/overrides"
install -m 0755 "$binary" "$stage/usr/bin/$package"
: >"$stage/DEBIAN/conffiles"
for config in examples/configs/*.yaml; do
    install -m 0644 "$config" "$stage/etc/$package/"
    echo "/etc/$package/$(basename "$config")" >>"$stage/DEBIAN/conffiles"
done
[ -s "$stage/DEBIAN/conffiles" ] || fail "no configurations in examples/configs"
chmod 0644 "$stage/DEBIAN/conffiles"
install -m 0644 packaging/mqtt-modbus-bridge.service "$stage/lib/systemd/system/$package.service"
for script in postinst prerm postrm; do
    install -m 0755 "packaging/debian/$script" "$stage/DEBIAN/$script"
done
install -m 0644 packaging/debian/lintian-overrides "$stage/usr/share/lintian/overrides/$package"

doc="$stage/usr/share/doc/$package"
install -m 0644 packaging/README "$doc/README"
gzip -9n <docs/operations.md >"$doc/operations.md.gz"
gzip -9n <examples/CONFIGURATION.md >"$doc/CONFIGURATION.md.gz"
maintainer="${DEB_MAINTAINER:-$(git log -1 --format='%an <%ae>' 2>/dev/null || true)}"
[ -n "$maintainer" ] || maintainer="swift-mqtt-modbus maintainers <root@localhost>"
# The commit's time stamp, not the clock: two builds of one commit give the same package.
export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}"
commit="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
dirty=""
[ -z "$(git status --porcelain --untracked-files=no 2>/dev/null)" ] || dirty=" (uncommitted changes)"
{
    echo "$package ($version) unstable; urgency=medium"
    echo
    echo "  * packaging/build-deb.sh, commit $commit$dirty."
    echo
    echo " -- $maintainer  $(date -R -u -d "@$SOURCE_DATE_EPOCH")"
} | gzip -9n >"$doc/changelog.gz"

# copyright: the project's paragraphs, then every Swift package the binary was built from.
{
    cat packaging/copyright
    for checkout in .build/checkouts/*/; do
        name="$(basename "$checkout")"
        license_file="$(find "$checkout" -maxdepth 1 -iname 'LICENSE*' | sort | head -n 1)"
        [ -n "$license_file" ] || fail "the Swift package $name has no LICENSE file; add its terms to packaging/copyright"
        echo
        echo "Files: Swift package $name (linked statically)"
        echo "Copyright: the $name authors; see the notice in their license below"
        if grep -q "Apache License" "$license_file" && grep -q "Version 2.0" "$license_file"; then
            echo "License: Apache-2.0"
            echo " The Apache License 2.0 is in /usr/share/common-licenses/Apache-2.0."
        elif grep -q "MIT License" "$license_file" || grep -q "Permission is hereby granted, free of charge" "$license_file"; then
            echo "License: Expat"
            sed -e 's/^[[:space:]]*$/./' -e 's/^/ /' "$license_file"
        else
            fail "cannot tell the license of the Swift package $name ($license_file); extend this script"
        fi
    done
} >"$doc/copyright"
chmod 0644 "$doc/copyright" "$doc"/*.gz

# --- 3. control -----------------------------------------------------------------------------------
# dpkg-shlibdeps needs a debian/control to read; a minimal one in a scratch directory.
shlibs_dir="$out/shlibdeps"
rm -rf "$shlibs_dir"
mkdir -p "$shlibs_dir/debian"
printf 'Source: %s\n\nPackage: %s\nArchitecture: any\n' "$package" "$package" >"$shlibs_dir/debian/control"
shlibs="$(cd "$shlibs_dir" && dpkg-shlibdeps -O "$stage/usr/bin/$package" 2>"$out/shlibdeps.log")" \
    || { cat "$out/shlibdeps.log" >&2; fail "dpkg-shlibdeps on the binary (log: $out/shlibdeps.log)"; }
depends="${shlibs#shlibs:Depends=}"
echo "$depends" | grep -qE '(^|, )libmosquitto1( |,|$)' || fail "the binary's libraries do not include libmosquitto1: $depends"
depends="$depends, ca-certificates"
installed_size="$(du -sk --apparent-size --exclude=DEBIAN "$stage" | cut -f1)"
cat >"$stage/DEBIAN/control" <<EOF
Package: $package
Version: $version
Architecture: $arch
Maintainer: $maintainer
Installed-Size: $installed_size
Depends: $depends
Section: net
Priority: optional
Description: MQTT to Modbus TCP bridge
 Serves values that devices publish over MQTT to Modbus TCP masters (SCADA,
 PLCs), and turns Modbus writes into MQTT commands answered only when the
 device acknowledges them. Configured by a YAML topic map; includes a hardened
 systemd unit (not enabled on installation), the validate, registers and
 explain commands, and a device simulator for tests.
EOF
(cd "$stage" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) >"$stage/DEBIAN/md5sums"
chmod 0644 "$stage/DEBIAN/control" "$stage/DEBIAN/md5sums"

# --- 4. The package -------------------------------------------------------------------------------
deb="$out/${package}_${version}_${arch}.deb"
rm -f "$deb"
dpkg-deb --build --root-owner-group -Zxz "$stage" "$deb" >&2 || fail "dpkg-deb --build"
say "$(basename "$deb"): $(du -h "$deb" | cut -f1), Depends: $depends"
if command -v lintian >/dev/null 2>&1; then
    # The package's own overrides (packaging/debian/lintian-overrides) apply. Also accepted: the
    # program has no manual page yet.
    lintian_output="$(timeout 300 lintian --tag-display-limit 0 --suppress-tags no-manual-page "$deb" 2>&1 \
        | grep -v 'running with root privileges is not recommended' || true)"
    [ -z "$lintian_output" ] || echo "$lintian_output" | sed 's/^/build-deb: lintian: /' >&2
    if echo "$lintian_output" | grep -q '^E: '; then
        fail "lintian reports errors (above)"
    fi
    say "lintian: no errors"
else
    say "lintian is not installed; skipped (apt-get install lintian)"
fi
echo "$deb"
