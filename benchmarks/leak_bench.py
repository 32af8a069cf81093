"""Leak check (docs/reliability.md, row 14): N jobs through one real slave, before vs after.

A real ``pyti master`` and one real ``pyti slave --accel tcg`` (1 slot) on loopback,
a fake PyPI on loopback as their index (nothing leaves the machine), and a tiny
release built here (one pure wheel, no tests, no dependencies), uploaded ``--jobs``
times (``rerun``) and run one after another. After one warm-up job (caches filled)
and again after the N jobs, once the slave is idle, it takes:

- the slave's and the master's RSS (``VmRSS``), open fds and, of them, sockets;
- ``qemu-system`` processes whose command line names this run's work dir;
- what is under the slave's work dir: job dirs (``jobs/*``), VM dirs, overlays
  (``*.qcow2``), pidfiles (``*.pid``), Unix sockets, all files, and its disk usage;
- every file in the daemons' private ``TMPDIR`` (QMP socket dirs, temp files).

It prints a table, writes the figures as JSON (``--json``), and exits 1 if RSS,
fds, sockets or disk usage are outside the baseline ± ``--tolerance`` (5 %; fds and
sockets at least ± 1) or if anything is left over: a QEMU process, a job dir,
overlay, pidfile or socket, a new temp file, or a job that did not end as the
warm-up one did (``incomplete``: the wheel ships no tests). Both daemons' RSS is also
sampled every 10 jobs (``rss_samples``), and ``second_half_growth_kib`` is each one's
growth over the second half of the jobs: a cache that fills up (SQLite's page cache of
each connection, 2 MiB by default) flattens out, a leak keeps its slope.

    python benchmarks/leak_bench.py [--jobs 200] [--image-dir DIR] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import stat
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# Run as a script: the repository root is the import root (tests.fakes, benchmarks).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.fleet import Fleet, open_fds, processes_mentioning, rss_kib
from tests.fakes.dists import build_wheel
from tests.fakes.pypi import FakePyPI

JOB_TIMEOUT_S = 900.0
SETTLE_S = 60.0
#: A wheel without an sdist ships no tests: its job ends ``incomplete`` ("no sdist: no
#: tests shipped"), verdict ``clean``; every job must end as the warm-up one did.
EXPECTED_OUTCOMES = ("passed", "incomplete")


def tiny_wheel(dest: Path) -> Path:
    """One pure wheel: a module, no tests, no dependencies (each job is short)."""
    return build_wheel(dest, "leakcheck", "1.0", {"leakcheck/__init__.py": "VALUE = 1\n"})


def tree(root: Path) -> dict[str, int]:
    """Counts of what is under ``root``: files, sockets, overlays, pidfiles, bytes used."""
    out = {"files": 0, "sockets": 0, "overlays": 0, "pidfiles": 0, "disk_kib": 0}
    if not root.exists():
        return out
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            out["files"] += 1
            out["disk_kib"] += st.st_blocks // 2
            if stat.S_ISSOCK(st.st_mode):
                out["sockets"] += 1
            if name.endswith((".qcow2", ".overlay")):
                out["overlays"] += 1
            if name.endswith(".pid"):
                out["pidfiles"] += 1
    return out


def job_dirs(slave_work: Path) -> int:
    """Entries under the slave's ``jobs/`` (each a job's scratch space)."""
    jobs = slave_work / "jobs"
    return len(list(jobs.iterdir())) if jobs.exists() else 0


def master_rss_kib(fleet: Fleet) -> int:
    assert fleet.master is not None
    return rss_kib(fleet.master.pid)


def sample(fleet: Fleet, slave_work: Path) -> dict[str, int]:
    """Everything row 14 compares, now."""
    assert fleet.master is not None
    slave = fleet.slaves["leak"]
    out: dict[str, int] = {}
    for who, pid in (("slave", slave.pid), ("master", fleet.master.pid)):
        fds, socks = open_fds(pid)
        out |= {f"{who}_rss_kib": rss_kib(pid), f"{who}_fds": fds, f"{who}_sockets": socks}
    out["qemu_processes"] = len(processes_mentioning(str(fleet.work)))
    out["job_dirs"] = job_dirs(slave_work)
    out |= {f"work_{k}": v for k, v in tree(slave_work).items()}
    tmp = [tree(fleet.work / name) for name in ("tmp-master", "tmp-leak")]
    out["tmp_files"] = sum(t["files"] for t in tmp)
    out["tmp_sockets"] = sum(t["sockets"] for t in tmp)
    return out


async def settle(fleet: Fleet, slave_work: Path) -> dict[str, int]:
    """Sample once the slave is idle: no job dir, no QEMU (or after ``SETTLE_S``)."""
    deadline = time.monotonic() + SETTLE_S
    while time.monotonic() < deadline:
        now = sample(fleet, slave_work)
        if now["job_dirs"] == 0 and now["qemu_processes"] == 0:
            break
        await asyncio.sleep(1)
    await asyncio.sleep(2)  # let the last result's writes and frees land
    return sample(fleet, slave_work)


#: figure → how "after" may differ from "before": ("pct", p) within ± p (at least
#: ``floor``), ("zero", _) must be 0 after, ("le", _) must not grow.
CHECKS: dict[str, tuple[str, int]] = {
    "slave_rss_kib": ("pct", 0), "master_rss_kib": ("pct", 0),
    "slave_fds": ("pct", 1), "master_fds": ("pct", 1),
    "slave_sockets": ("pct", 1), "master_sockets": ("pct", 1),
    "work_disk_kib": ("pct", 0),
    "qemu_processes": ("zero", 0), "job_dirs": ("zero", 0), "work_overlays": ("zero", 0),
    "work_pidfiles": ("zero", 0), "work_sockets": ("zero", 0),
    "tmp_files": ("le", 0), "tmp_sockets": ("zero", 0), "work_files": ("le", 0),
}  # fmt: skip


def judge(before: dict[str, int], after: dict[str, int], tolerance: float) -> list[str]:
    """The figures outside their bound, as lines."""
    bad: list[str] = []
    for key, (kind, floor) in CHECKS.items():
        b, a = before[key], after[key]
        if kind == "pct":
            allowed = max(floor, tolerance * b)
            if abs(a - b) > allowed:
                bad.append(f"{key}: {b} -> {a} (allowed ± {allowed:g})")
        elif kind == "zero" and a != 0:
            bad.append(f"{key}: {a} left after the jobs")
        elif kind == "le" and a > b:
            bad.append(f"{key}: {b} -> {a}")
    return bad


def table(before: dict[str, int], after: dict[str, int]) -> str:
    lines = ["| figure | baseline | after | change |", "|---|---|---|---|"]
    for key, b in before.items():
        a = after[key]
        change = f"{(a - b) / b:+.1%}" if b else f"{a - b:+d}"
        lines.append(f"| {key} | {b} | {a} | {change} |")
    return "\n".join(lines)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="pyti-leak-"))
    slave_work = work / "sw"  # short: the VM's Unix sockets live under it (108-byte limit)
    wheel = tiny_wheel(work / "dist")
    data = wheel.read_bytes()
    started = time.monotonic()
    outcomes: dict[str, int] = {}
    durations: list[float] = []
    samples: list[dict[str, int | None]] = []  # RSS every 10 jobs: a plateau or a slope
    async with FakePyPI() as pypi, Fleet(work, args.image_dir, pypi_url=pypi.base_url) as fleet:
        await fleet.start_master()
        await fleet.start_slave("leak", work_dir=slave_work)
        warm = await fleet.wait(await fleet.upload(wheel, data), JOB_TIMEOUT_S)
        expected = str(warm.get("outcome"))
        if expected not in EXPECTED_OUTCOMES:
            raise SystemExit(f"warm-up job ended {expected}: {warm.get('summary')}")
        before = await settle(fleet, slave_work)
        print("baseline:", json.dumps(before), flush=True)
        for i in range(args.jobs):
            t0 = time.monotonic()
            job = await fleet.wait(await fleet.upload(wheel, data), JOB_TIMEOUT_S)
            durations.append(time.monotonic() - t0)
            outcome = str(job.get("outcome") or job.get("state"))
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
            if (i + 1) % 10 == 0 or i + 1 == args.jobs:
                slave_rss, master_rss = rss_kib(fleet.slaves["leak"].pid), master_rss_kib(fleet)
                samples.append({"jobs": i + 1, "slave_rss_kib": slave_rss,
                                "master_rss_kib": master_rss})  # fmt: skip
                print(f"{i + 1}/{args.jobs} jobs, {outcomes}, slave RSS {slave_rss} KiB, "
                      f"master RSS {master_rss} KiB", flush=True)  # fmt: skip
        after = await settle(fleet, slave_work)
    problems = judge(before, after, args.tolerance)
    if outcomes.get(expected, 0) != args.jobs:
        problems.append(f"outcomes {outcomes}: every job should end {expected} as the warm-up did")
    durations.sort()
    figures: dict[str, Any] = {
        "jobs": args.jobs,
        "outcomes": outcomes,
        "job_s_p50": round(durations[len(durations) // 2], 1) if durations else None,
        "total_s": round(time.monotonic() - started, 1),
        "tolerance": args.tolerance,
        "before": before,
        "after": after,
        "rss_samples": samples,
        "second_half_growth_kib": second_half_growth(samples),
        "problems": problems,
        "work_dir": str(work),
    }
    print(table(before, after))
    return figures


def second_half_growth(samples: list[dict[str, int | None]]) -> dict[str, int | None]:
    """RSS growth of each daemon over the second half of the jobs: a cache that fills up
    flattens out (≈ 0), a leak keeps the slope of the first half."""
    if len(samples) < 2:
        return {}
    mid, last = samples[(len(samples) - 1) // 2], samples[-1]
    growth: dict[str, int | None] = {}
    for key in ("slave_rss_kib", "master_rss_kib"):
        a, b = mid.get(key), last.get(key)
        growth[key] = b - a if a is not None and b is not None else None
    return growth


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=200, help="jobs after the warm-up one")
    parser.add_argument("--image-dir", default=os.environ.get("PYTI_IMAGE_DIR",
                                                              "~/.cache/pyti/images"))  # fmt: skip
    parser.add_argument("--tolerance", type=float, default=0.05, help="RSS/fds/disk bound")
    parser.add_argument("--work-dir", help="logs and state (default: a new temp dir)")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args(argv)
    args.image_dir = Path(args.image_dir).expanduser()
    figures = asyncio.run(run(args))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))
    for line in figures["problems"]:
        print("LEAK:", line)
    print(f"{figures['jobs']} jobs, {figures['outcomes']}, job p50 {figures['job_s_p50']} s, "
          f"{figures['total_s']} s in all; {len(figures['problems'])} problems")  # fmt: skip
    return 1 if figures["problems"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
