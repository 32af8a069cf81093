"""Before any phase: the job's entropy and clock, the package's memory cgroup, the scratch dirs.

Every restored VM starts from the same RAM (same RNG state, same clock); the job
document gives each job its own.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import struct
import time
from typing import Any

from guest_runner.archive import chown_tree
from guest_runner.limits import CGROUP, MEMORY_RESERVE, OOM_RUNNER, memory_cgroup, set_oom_score
from guest_runner.workspace import Workspace

RNDADDENTROPY = 0x40085203
#: _IO('R', 0x07): reseed the CRNG from the input pool now (Linux >= 4.17, root).
RNDRESEEDCRNG = 0x5207
PR_SET_CHILD_SUBREAPER = 36


def set_up_guest(ws: Workspace) -> None:
    """Credit the entropy, set the clock, make the cgroup; emits ``guest_setup``.

    Never raises for a bad value: each problem is one entry of the event's ``errors``.
    """
    fields: dict[str, Any] = {"errors": []}
    job, enabled = ws.job, ws.opts.guest_setup
    if job.entropy and enabled:
        try:
            data = bytes.fromhex(job.entropy)
            fields["entropy_bytes"] = len(data)
            fields["entropy_credited"] = credit_entropy(data)
        except (ValueError, OSError) as exc:
            fields["errors"].append(f"entropy: {exc}")
    if job.epoch is not None and enabled:
        try:
            time.clock_settime(time.CLOCK_REALTIME, job.epoch)
            fields["clock_set"] = True
        except (ValueError, OverflowError, OSError) as exc:
            fields["errors"].append(f"clock: {exc}")
    if enabled and ws.uid is not None:
        set_oom_score(OOM_RUNNER)
        try:
            fields["memory_cap"] = memory_cgroup(CGROUP, MEMORY_RESERVE)
            ws.exec.cgroup = CGROUP
        except (OSError, ValueError) as exc:
            fields["errors"].append(f"memory cgroup: {exc}")
    ws.out.emit("guest_setup", "setup", **fields)
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    for sub in ("tmp", "src", "run"):
        (ws.scratch / sub).mkdir(exist_ok=True)
    os.chmod(ws.scratch, 0o755)  # noqa: S103 - tester must traverse it, nothing secret
    if ws.uid is not None and ws.gid is not None:
        chown_tree(ws.scratch, ws.uid, ws.gid)
        # pip runs as tester and must read the release files; job.json stays root's.
        os.chmod(ws.job_dir, 0o755)  # noqa: S103
        for name in job.files:
            with contextlib.suppress(OSError):
                os.chmod(ws.job_dir / name, 0o644)


def credit_entropy(data: bytes) -> bool:
    """Add ``data`` to the kernel pool and credit it, then reseed the CRNG from it; False
    when only mixed in (no credit).

    Crediting alone is not enough: since Linux 5.18 the CRNG reseeds from the pool only
    when its last reseed is old enough, and a restored VM's clock says it is as young as
    the snapshot, so two VMs from one snapshot read the same ``/dev/urandom`` bytes
    (seen on bookworm's 6.1: ``test_each_restored_vm_has_its_own_entropy_and_the_right_clock``).
    ``RNDRESEEDCRNG`` reseeds at once.
    """
    with open("/dev/urandom", "wb") as rnd:
        try:
            info = struct.pack("ii", len(data) * 8, len(data)) + data
            fcntl.ioctl(rnd.fileno(), RNDADDENTROPY, info)
        except OSError:
            rnd.write(data)
            return False
        with contextlib.suppress(OSError):
            fcntl.ioctl(rnd.fileno(), RNDRESEEDCRNG)
        return True
