#!/usr/bin/env bash
# Runs everything CI runs: set-up, ruff, mypy, the wheel smoke test
# (scripts/wheel_smoke.sh: a non-editable install in a fresh venv), the whole pytest suite
# (system tests with real QEMU included; the guest image is built once and
# cached under ~/.cache/pyti). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
VENV=${PYTI_VENV:-.venv}
echo "==> ruff"
"$VENV/bin/ruff" check .
"$VENV/bin/ruff" format --check .
echo "==> mypy"
"$VENV/bin/mypy"
bash scripts/wheel_smoke.sh
echo "==> pytest"
exec "$VENV/bin/python" -m pytest "$@"
