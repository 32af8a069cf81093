#!/usr/bin/env bash
# Idempotent set-up of a development/demo machine (Debian 12):
# system packages pyti needs (QEMU, debootstrap, ...) and the project's venv.
# Safe to run again: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(qemu-system-x86 qemu-utils debootstrap e2fsprogs openssh-client strace curl
              chromium chromium-driver python3-venv)
missing=()
for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "==> installing system packages: ${missing[*]}"
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

VENV=${PYTI_VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
    echo "==> creating venv $VENV"
    python3 -m venv "$VENV"
fi
stamp="$VENV/.pyti-installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "==> installing pyti and its dev dependencies into $VENV"
    "$VENV/bin/pip" install -q --upgrade pip
    # The distribution was called "pyti" before (an unrelated PyPI project has that name).
    "$VENV/bin/pip" uninstall -q -y pyti 2>/dev/null || true
    "$VENV/bin/pip" install -q -e '.[dev]'
    touch "$stamp"
fi

# promtool checks docs/deploy/pyti-alerts.yml (tests/unit/test_alerting.py). It comes
# from Debian's prometheus package, unpacked into the venv rather than installed:
# installing it would also start a Prometheus server on port 9090.
if [ ! -x "$VENV/bin/promtool" ]; then
    echo "==> promtool (from Debian's prometheus package) into $VENV/bin"
    deb_dir=$(mktemp -d)
    trap 'rm -rf "$deb_dir"' EXIT
    if ! (cd "$deb_dir" && apt-get download -qq prometheus 2>/dev/null); then
        SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
        $SUDO apt-get update -qq
        (cd "$deb_dir" && apt-get download -qq prometheus)
    fi
    dpkg-deb --fsys-tarfile "$deb_dir"/prometheus_*.deb | tar -xO ./usr/bin/promtool >"$VENV/bin/promtool.tmp"
    chmod 0755 "$VENV/bin/promtool.tmp"
    mv "$VENV/bin/promtool.tmp" "$VENV/bin/promtool"
    "$VENV/bin/promtool" --version | head -1
fi
