"""What keeps a package from taking the guest down: memory cgroup, OOM scores, the phase watch."""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path

# Package processes are the OOM killer's first choice, the runner never is.
OOM_PACKAGE = 1000
OOM_RUNNER = -1000
DISK_SAMPLE_S = 0.25  # how often a phase's free disk space is sampled
# Package processes live in a cgroup whose memory.max leaves this much of the guest's
# RAM to the rest (sshd and its relay, the runner): a memory hog is OOM-killed inside
# the cgroup, and the guest as a whole never runs out (which broke the SSH relay).
CGROUP = Path("/sys/fs/cgroup/pyti-package")
MEMORY_RESERVE = 128 << 20
MEMORY_MIN = 64 << 20


def memory_cgroup(path: Path, reserve: int) -> int:
    """Make ``path`` a cgroup v2 with ``memory.max`` = guest RAM - ``reserve``; returns the cap.

    Raises OSError (or ValueError) when cgroup v2 or its memory controller is missing.
    """
    root = path.parent
    if "memory" not in (root / "cgroup.controllers").read_text().split():
        raise OSError("no memory controller in cgroup v2")
    if "memory" not in (root / "cgroup.subtree_control").read_text().split():
        (root / "cgroup.subtree_control").write_text("+memory")
    total = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                total = int(line.split()[1]) * 1024
    cap = max(MEMORY_MIN, total - reserve)
    path.mkdir(exist_ok=True)
    (path / "memory.max").write_text(str(cap))
    with contextlib.suppress(OSError):
        (path / "memory.swap.max").write_text("0")
    return cap


def set_oom_score(value: int) -> None:
    """This process's ``oom_score_adj`` (inherited by children); no-op where not allowed."""
    with contextlib.suppress(OSError), open("/proc/self/oom_score_adj", "w") as f:
        f.write(str(value))


def oom_kills() -> int | None:
    """The kernel's count of OOM kills since boot (``/proc/vmstat``), if it has one."""
    try:
        with open("/proc/vmstat") as f:
            for line in f:
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
    except (OSError, ValueError):
        return None
    return None


class PhaseWatch:
    """Watches what a phase does to the guest as a whole: free disk space, OOM kills.

    A thread samples the space left to unprivileged users on the filesystem of the
    job's scratch dir every ``DISK_SAMPLE_S``; a package that fills the disk and
    deletes its files at once can slip between samples, one that leaves them cannot.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.free_min: int | None = None
        self.total: int | None = None
        self._oom_before = oom_kills()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="phase-watch", daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        try:
            st = os.statvfs(self.path)
        except OSError:
            return
        free = st.f_bavail * st.f_frsize
        self.total = st.f_blocks * st.f_frsize
        self.free_min = free if self.free_min is None else min(self.free_min, free)

    def _run(self) -> None:
        while True:
            self._sample()
            if self._stop.wait(DISK_SAMPLE_S):
                return

    def finish(self) -> dict[str, int]:
        """Stop sampling; the fields for ``phase_finished``."""
        self._stop.set()
        self._thread.join(timeout=5.0)
        self._sample()
        fields: dict[str, int] = {}
        if self.free_min is not None and self.total is not None:
            fields.update(disk_free_min=self.free_min, disk_total=self.total)
        after = oom_kills()
        if after is not None and self._oom_before is not None:
            fields["oom_kills"] = max(0, after - self._oom_before)
        return fields
