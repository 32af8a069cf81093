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
    "$VENV/bin/pip" install -q -e '.[dev]'
    touch "$stamp"
fi
