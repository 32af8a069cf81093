#!/usr/bin/env bash
# A normal install works: build the sdist and the wheel from it (python -m build),
# install the wheel (not editable) into a fresh venv in a temp dir outside the
# source tree, and from there run `pyti --version`, the daemons' --help, find the
# image recipes, guest files and runner as package data (same recipe hash as the
# source tree: an image built by one is current for the other), and start a master
# on a loopback port until /healthz answers. Run by scripts/test.sh; ≈ 30 s.
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=$PWD
VENV=${PYTI_VENV:-.venv}
DEV_PY="$SRC/$VENV/bin/python"

tmp=$(mktemp -d /tmp/pyti-wheel-smoke.XXXXXX)
master_pid=""
cleanup() {
    if [ -n "$master_pid" ]; then kill "$master_pid" 2>/dev/null || true; wait "$master_pid" 2>/dev/null || true; fi
    rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "wheel smoke: $*" >&2; [ -f "$tmp/master.log" ] && tail -20 "$tmp/master.log" >&2; exit 1; }

echo "==> wheel smoke test in $tmp"
"$DEV_PY" -m build --outdir "$tmp/dist" . >"$tmp/build.log" 2>&1 || { tail -30 "$tmp/build.log" >&2; fail "build failed"; }
wheel=$(ls "$tmp"/dist/pyti_infra-*.whl)
tar -tzf "$tmp"/dist/pyti_infra-*.tar.gz | grep "/docs/deploy/pyti-master.service$" >/dev/null \
    || fail "the sdist lacks docs/deploy"
# The dev venv's pip installs into the new venv (--python): no ensurepip, same result.
python3 -m venv --without-pip "$tmp/venv"
"$DEV_PY" -m pip --python "$tmp/venv/bin/python" install -q "$wheel" >"$tmp/pip.log" 2>&1 \
    || { grep -v "^WARNING: Location" "$tmp/pip.log" | tail -20 >&2; fail "pip install of the wheel failed"; }

cd "$tmp"  # nothing of the source tree on sys.path from here on
pyti="$tmp/venv/bin/pyti"
"$pyti" --version | grep "^pyti [0-9]" >/dev/null || fail "pyti --version"
"$pyti" master --help >/dev/null || fail "pyti master --help"
"$pyti" slave --help >/dev/null || fail "pyti slave --help"
# The slave resolves the guest's dependency pins with the uv installed beside it.
"$tmp/venv/bin/python" -c "from slave.prepare.pins import uv_binary; import sys; sys.exit(uv_binary() is None)" \
    || fail "the slave finds no uv binary in the installed wheel's venv"
"$pyti" image build --help | grep -- "--mirror" >/dev/null || fail "pyti image build --help"
"$pyti" image list --image-dir "$tmp/images" | grep "^bookworm " >/dev/null || fail "recipes not found"

where=$("$pyti" image hash bookworm)
for path in $(echo "$where" | awk 'NR > 1 {print $NF}'); do
    case $path in "$tmp"/venv/*) ;; *) fail "package data read from $path, not the installed wheel";; esac
    [ -e "$path" ] || fail "$path is missing"
done
[ -f "$(echo "$where" | awk '$1 == "guest" {print $NF}')/setup.sh" ] || fail "guest files lack setup.sh"
installed_hash=$(echo "$where" | head -1)
source_hash=$(cd "$SRC" && "$DEV_PY" -m pyti.cli image hash bookworm)
source_hash=${source_hash%%$'\n'*}
[ "$installed_hash" = "$source_hash" ] || fail "recipe hash $installed_hash (wheel) != $source_hash (source tree)"

port=$("$DEV_PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
head -c 32 /dev/urandom | base64 >"$tmp/secret"
echo "smoke-token" >"$tmp/tokens"
"$pyti" master --data-dir "$tmp/data" --http-addr "127.0.0.1:$port" --slave-addr 127.0.0.1:0 \
    --secret-file "$tmp/secret" --token-file "$tmp/tokens" --no-feed >"$tmp/master.log" 2>&1 &
master_pid=$!
for _ in $(seq 300); do  # up to 30 s: CI machines are shared
    if curl -fsS "http://127.0.0.1:$port/healthz" >"$tmp/healthz" 2>/dev/null; then break; fi
    kill -0 "$master_pid" 2>/dev/null || fail "the master exited"
    sleep 0.1
done
[ -s "$tmp/healthz" ] || fail "/healthz did not answer"
"$pyti" jobs --master "http://127.0.0.1:$port" >/dev/null || fail "pyti jobs against the master"
kill "$master_pid"
wait "$master_pid" || fail "the master did not exit 0 on SIGTERM"
master_pid=""
echo "==> wheel smoke test passed ($(basename "$wheel"), recipe hash ${installed_hash:0:12})"
