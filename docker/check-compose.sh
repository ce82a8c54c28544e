#!/usr/bin/env bash
# Checks docker/compose.yaml without a Docker engine: `docker-compose config -q` from PyPI's
# docker-compose 1.29.2 (the Python implementation, which parses and validates the file against
# the Compose schema and needs no daemon for `config`).
#
# It installs docker-compose into a private virtual environment, .build-compose/venv (ignored by
# git, reused while its pinned requirements are unchanged; pip's log is .build-compose/pip.log),
# then:
#   1. runs `docker-compose -f docker/compose.yaml config -q`: exit status 0 or this script fails;
#   2. runs it on a copy with an unknown key and a malformed port mapping, which must be rejected,
#      so that a checker that accepts everything cannot pass unnoticed.
#
# docker-compose 1.29.2 requires PyYAML < 6. PyYAML 5.4.1 has no wheel for Python 3.11, and its
# source build fails with Cython 3, which pip's isolated build environment picks by default. So
# Cython < 3 is installed into the environment first, and PyYAML is built against it without build
# isolation. docker < 7 and requests < 2.32 are the SDK versions docker-compose 1.29.2 was made
# for (docker 7 dropped arguments it passes; requests 2.32 broke docker < 7.1's http+docker URLs).
#
# Needs python3 with the venv module (Debian: python3-venv, which Tests/setup.sh installs) and
# access to PyPI. COMPOSE_CHECK_PYTHON chooses the interpreter (default: Debian's /usr/bin/python3).
#
#   docker/check-compose.sh
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "check-compose: $*"; }
fail() { echo "check-compose: FAILED: $*" >&2; exit 1; }

compose_file=docker/compose.yaml
work_dir="$PWD/.build-compose"
venv="$work_dir/venv"
python="${COMPOSE_CHECK_PYTHON:-/usr/bin/python3}"
[ -x "$python" ] || python="$(command -v python3)" || fail "python3 is not installed (apt-get install python3 python3-venv)"
[ -f "$compose_file" ] || fail "no $compose_file"

# Everything pip installs, in order; a change here rebuilds the environment.
build_requirements=("cython<3" "wheel")
pyyaml_requirement="PyYAML==5.4.1"
compose_requirements=("docker-compose==1.29.2" "docker<7" "requests<2.32")
stamp_content="$("$python" --version 2>&1) ${build_requirements[*]} $pyyaml_requirement ${compose_requirements[*]}"
stamp="$venv/.check-compose-complete"
log="$work_dir/pip.log"

pip_install() {   # bounded: a stalled download fails the check instead of hanging CI
    timeout --kill-after=10 600 "$venv/bin/python" -m pip install --disable-pip-version-check --no-input \
        --timeout 60 --retries 3 -q "$@" >>"$log" 2>&1 \
        || { tail -n 30 "$log" >&2; fail "pip install $* (log: $log; is PyPI reachable?)"; }
}

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$stamp_content" ] && [ -x "$venv/bin/docker-compose" ]; then
    say "reusing $venv"
else
    rm -rf "$venv"
    mkdir -p "$work_dir"
    : >"$log"
    say "installing ${compose_requirements[*]} into $venv (about half a minute)"
    timeout 120 "$python" -m venv "$venv" >>"$log" 2>&1 \
        || { tail -n 20 "$log" >&2; fail "$python -m venv failed: install python3-venv (Debian) or set COMPOSE_CHECK_PYTHON"; }
    pip_install "${build_requirements[@]}"
    pip_install --no-build-isolation "$pyyaml_requirement"
    pip_install "${compose_requirements[@]}"
    echo "$stamp_content" >"$stamp"
fi
compose=("$venv/bin/docker-compose")
say "$("${compose[@]}" version --short 2>/dev/null || echo "docker-compose (version unknown)")"

# 1. The real file.
output="$(timeout 60 "${compose[@]}" -f "$compose_file" config -q 2>&1)" \
    || { echo "$output" >&2; fail "docker-compose config -q rejects $compose_file (above)"; }
[ -z "$output" ] || echo "$output"
services="$(timeout 60 "${compose[@]}" -f "$compose_file" config --services 2>/dev/null | sort | paste -sd ' ')"
say "docker-compose -f $compose_file config -q: valid (services: $services)"

# 2. A broken copy must be rejected. It sits next to the real file so relative paths resolve alike.
broken="$(mktemp docker/.check-compose-broken.XXXXXX.yaml)"
trap 'rm -f "$broken"' EXIT
sed -e '0,/^    restart: unless-stopped/ s//    restrat: unless-stopped/' \
    -e 's/^      - "5020:5020"$/      - "5020:5020:bad"/' "$compose_file" >"$broken"
cmp -s "$compose_file" "$broken" && fail "could not make a broken copy of $compose_file; update this script"
if output="$(timeout 60 "${compose[@]}" -f "$broken" config -q 2>&1)"; then
    fail "docker-compose config -q accepted a broken copy of $compose_file; the check proves nothing"
fi
say "a copy with an unknown key and a bad port mapping is rejected: $(echo "$output" | grep -m 1 -E 'Unsupported config option|contains an invalid type' || echo "$output" | tail -n 1)"
say "PASSED"
