#!/usr/bin/env bash
# The main job, in one command: set up this machine, build (or reuse) the guest
# image, start a master and one slave here, submit a real PyPI release, follow
# its live log, and print the result. Idempotent; state lives in ~/.cache/pyti.
#
#   bash scripts/demo.sh [PROJECT[==VERSION]]      (default: six)
#
# Environment: PYTI_ACCEL (default tcg: machines like these have no working KVM;
# set "auto" where KVM works), PYTI_DEMO_DIR, PYTI_SLAVE_PORT, PYTI_HTTP_PORT,
# PYTI_BIN (default .venv/bin/pyti; e.g. the `pyti` of a venv the wheel was installed into).
set -euo pipefail
cd "$(dirname "$0")/.."
RELEASE=${1:-six}
ACCEL=${PYTI_ACCEL:-tcg}
DEMO=${PYTI_DEMO_DIR:-$HOME/.cache/pyti/demo}
IMAGES=${PYTI_IMAGE_DIR:-$HOME/.cache/pyti/images}
SLAVE_PORT=${PYTI_SLAVE_PORT:-7600}
HTTP_PORT=${PYTI_HTTP_PORT:-7680}
PYTI=${PYTI_BIN:-.venv/bin/pyti}

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

step "setting up (system packages, venv)"
bash scripts/setup.sh

mkdir -p "$DEMO" "$IMAGES"
umask 077
[ -s "$DEMO/secret" ] || head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$DEMO/secret"
[ -s "$DEMO/tokens" ] || head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$DEMO/tokens"
umask 022
TOKEN=$(head -n1 "$DEMO/tokens")
export PYTI_MASTER_URL="http://127.0.0.1:$HTTP_PORT" PYTI_TOKEN="$TOKEN"

step "guest image 'trixie', the default (built once, then reused from $IMAGES)"
"$PYTI" image build trixie --image-dir "$IMAGES" --accel "$ACCEL"

pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT INT TERM

step "starting the master (http://127.0.0.1:$HTTP_PORT, slaves on port $SLAVE_PORT; log $DEMO/master.log)"
"$PYTI" master --data-dir "$DEMO/master" --slave-addr "127.0.0.1:$SLAVE_PORT" \
    --http-addr "127.0.0.1:$HTTP_PORT" --secret-file "$DEMO/secret" \
    --token-file "$DEMO/tokens" --no-feed >"$DEMO/master.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
    curl -fsS "$PYTI_MASTER_URL/healthz" >/dev/null 2>&1 && break
    kill -0 "${pids[0]}" 2>/dev/null || { tail -n 20 "$DEMO/master.log"; exit 1; }
    sleep 0.2
done

step "starting a slave (accelerator: $ACCEL; log $DEMO/slave.log)"
"$PYTI" slave --master "127.0.0.1:$SLAVE_PORT" --secret-file "$DEMO/secret" \
    --image-dir "$IMAGES" --accel "$ACCEL" --work-dir "$DEMO/slave" --name demo-slave \
    >"$DEMO/slave.log" 2>&1 &
pids+=($!)
for _ in $(seq 150); do
    "$PYTI" slaves 2>/dev/null | grep -q demo-slave && break
    kill -0 "${pids[1]}" 2>/dev/null || { tail -n 20 "$DEMO/slave.log"; exit 1; }
    sleep 0.2
done
"$PYTI" slaves

step "submitting $RELEASE (a real release from PyPI)"
JOB=$("$PYTI" submit --rerun --json "$RELEASE" | python3 -c 'import json, sys; print(json.load(sys.stdin)["job"]["id"])')
echo "job $JOB — web page: $PYTI_MASTER_URL/jobs/$JOB"

step "live log of job $JOB"
set +e
"$PYTI" tail "$JOB"
rc=$?
set -e

step "result"
"$PYTI" job "$JOB"
exit "$rc"
