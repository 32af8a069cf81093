"""Soak with random faults (docs/reliability.md, row 15): a master and 2 slaves for an hour.

A real ``pyti master`` and two real ``pyti slave --accel tcg`` (1 slot each) on
loopback, a fake PyPI on loopback as their index. Slave ``s1`` works in a tmpfs of
``--tmpfs-mib`` (so its disk can be filled; needs root, else the disk-full fault is
left out and the run says so); slave ``s2`` reaches the master through a loopback
relay (`tests.fakes.relay.Relay`, so it can be partitioned). Jobs (a tiny pure
wheel built here, uploaded with ``rerun``) are submitted evenly at ``--rate`` jobs
an hour for ``--duration`` seconds; every ``--fault-every`` seconds one fault,
taken in a random order that uses each kind once before repeating:

- ``slave_kill``: SIGKILL a random slave, start it again 2 s later;
- ``master_kill``: SIGKILL the master, start it again at once on the same data dir
  and ports (submissions meanwhile are retried until the master takes them);
- ``partition``: the relay stops forwarding (nothing closed) for ``--partition-s``;
- ``disk_full``: ``s1``'s work dir (the tmpfs) filled to ``ENOSPC`` for ``--disk-full-s``.

RSS of every daemon is sampled every ``--sample-every`` seconds, ``/metrics`` just
before and after every fault. At the end (after the queue drained, up to
``--drain-timeout``) the daemons are stopped and the master's database is read:

- lost jobs: a submitted job not ``finished``, or any job in the store not final;
- duplicate verdicts: a job with more than one ``finished`` attempt;
- memory flat: each daemon's last RSS sample ≤ its first (after warm-up) × (1 +
  ``--rss-tolerance``), per daemon name across restarts;
- every fault visible in ``/metrics``: the counter that fault must move moved
  (``slave_kill``/``partition``: ``pyti_slave_connections_total`` (a new session);
  ``master_kill``: the counters were reset, as Prometheus' ``resets()`` sees a
  restart; ``disk_full``: an ``infra_error`` result, a re-queue, or
  ``pyti_slave_disk_short_total`` (the slave's heartbeats said its work dir is under
  ``min_free_mb``, so it took no job); if none moved but
  ``s1`` logged ``ENOSPC`` errors the fault is counted invisible, and if neither
  happened (no job on ``s1`` meanwhile) it is reported as "not hit").

Exit status 1 if any check fails, or if a slave finished no job at all (the faults
on it would have tested nothing: the first hour-long run's ``s1`` had 512 MiB free,
under the default ``min_free_mb`` of 1024, and refused every offer; the slaves now
get ``--min-free-mb``, 128 by default).

The default rate. PyPI's average is about 10,000 releases a day (the figure
``docs/feed.md`` plans with), ≈ 420 an hour. A fleet sized for it with the usual
2× headroom for peaks runs at half its capacity on average, so "2× PyPI's average
rate, scaled to this machine" is this machine's whole measured capacity: the warm-up
runs 2 jobs per slave at once and times them, giving C jobs/h for the 2 slots;
``--rate`` defaults to ``--load`` (1.0) × C. The fault recoveries eat into C, so the
queue grows during a fault and must drain after it.

    python benchmarks/soak.py [--duration 3600] [--fault-every 600] [--rate JOBS_PER_H]
        [--faults slave_kill,master_kill,partition,disk_full] [--seed N] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

# Run as a script: the repository root is the import root (tests.fakes, benchmarks).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.cluster import ClusterError
from benchmarks.fleet import Fleet, rss_kib
from tests.fakes.dists import build_wheel
from tests.fakes.pypi import FakePyPI
from tests.fakes.relay import Relay

FAULTS = ("slave_kill", "master_kill", "partition", "disk_full")
PYPI_RELEASES_PER_DAY = 10_000


def tiny_wheel(dest: Path) -> Path:
    return build_wheel(dest, "soakcheck", "1.0", {"soakcheck/__init__.py": "VALUE = 1\n"})


def counter_sum(metrics: dict[str, float], name: str, label: str = "") -> float:
    """Sum of a metric over its label sets (those containing ``label``, if given)."""
    return sum(v for k, v in metrics.items()
               if (k == name or k.startswith(name + "{")) and label in k)  # fmt: skip


def moved(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """Counters (``*_total``) that changed between two scrapes of one master."""
    out: dict[str, float] = {}
    for key, value in after.items():
        if "_total" in key and value != before.get(key, 0.0):
            out[key] = value - before.get(key, 0.0)
    return out


class Soak:
    """One soak run: the fleet, the submitter, the sampler, the faults."""

    def __init__(self, args: argparse.Namespace, fleet: Fleet, relay: Relay, wheel: Path) -> None:
        self.args = args
        self.fleet = fleet
        self.relay = relay
        self.wheel = wheel
        self.data = wheel.read_bytes()
        self.rng = random.Random(args.seed)
        self.submitted: list[int] = []
        self.submit_retries = 0
        self.rss: list[dict[str, Any]] = []
        self.faults: list[dict[str, Any]] = []
        self.warmup_ids: list[int] = []
        self.started = time.monotonic()

    def t(self) -> float:
        return round(time.monotonic() - self.started, 1)

    async def submit_one(self) -> None:
        while True:
            try:
                self.submitted.append(await self.fleet.upload(self.wheel, self.data))
                return
            except (aiohttp.ClientError, OSError, TimeoutError, ClusterError):
                self.submit_retries += 1
                await asyncio.sleep(1)

    async def submitter(self, rate_per_h: float, until: float) -> None:
        interval = 3600.0 / rate_per_h
        next_at = time.monotonic()
        while next_at < until:
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            await self.submit_one()
            next_at += interval

    async def sampler(self) -> None:
        while True:
            row: dict[str, Any] = {"t": self.t()}
            for daemon in [self.fleet.master, *self.fleet.slaves.values()]:
                if daemon is not None and daemon.running:
                    row[daemon.name] = rss_kib(daemon.pid)
            with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
                metrics = await self.fleet.metrics()
                row["queued"] = counter_sum(metrics, "pyti_jobs", 'state="queued"')
            self.rss.append(row)
            await asyncio.sleep(self.args.sample_every)

    async def scrape(self) -> dict[str, float]:
        for _ in range(60):
            with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
                return await self.fleet.metrics()
            await asyncio.sleep(1)
        return {}

    async def all_connected(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
                if await self.fleet.connected_slaves() >= set(self.fleet.slaves):
                    return True
            await asyncio.sleep(1)
        return False

    async def fault(self, kind: str) -> dict[str, Any]:
        """Do one fault, wait for the fleet to come back, say what /metrics showed."""
        record: dict[str, Any] = {"kind": kind, "t": self.t()}
        before = await self.scrape()
        t0 = time.monotonic()
        if kind == "slave_kill":
            name = self.rng.choice(sorted(self.fleet.slaves))
            record["slave"] = name
            daemon = self.fleet.slaves[name]
            await self.fleet.kill(daemon)
            await asyncio.sleep(2)
            await self.fleet.start_slave(name, wait=False)
        elif kind == "master_kill":
            assert self.fleet.master is not None
            await self.fleet.kill(self.fleet.master)
            await self.fleet.start_master()
            record["master_back_s"] = round(time.monotonic() - t0, 2)
        elif kind == "partition":
            self.relay.partition()
            await asyncio.sleep(self.args.partition_s)
            self.relay.heal()
        elif kind == "disk_full":
            enospc = self.enospc_lines()
            record |= await self.fill_disk(self.fleet.work / "s1")
        record["fleet_back"] = await self.all_connected(180)
        record["recovered_s"] = round(time.monotonic() - t0, 1)
        await asyncio.sleep(self.args.observe_s)  # let re-queues and results land
        after = await self.scrape()
        record["moved"] = moved(before, after)
        record["visible"], record["evidence"] = self.visible(kind, before, after)
        if kind == "disk_full":
            record["slave_enospc_log_lines"] = logged = self.enospc_lines() - enospc
            if logged and record["visible"] is not True:  # "not hit" is truthy
                record["visible"] = False
                record["evidence"] += f"; but s1 logged {logged} ENOSPC errors"
        print(f"[{record['t']:7.1f}s] fault {kind}: back after {record['recovered_s']} s, "
              f"visible={record['visible']} ({record['evidence']})", flush=True)  # fmt: skip
        return record

    @staticmethod
    def visible(kind: str, before: dict[str, float], after: dict[str, float]) -> tuple[Any, str]:
        conns = "pyti_slave_connections_total"
        if kind in ("slave_kill", "partition"):
            delta = counter_sum(after, conns) - counter_sum(before, conns)
            requeued = counter_sum(after, "pyti_jobs_requeued_total") - counter_sum(
                before, "pyti_jobs_requeued_total"
            )
            return delta >= 1, f"{conns} +{delta:g}, pyti_jobs_requeued_total +{requeued:g}"
        if kind == "master_kill":
            reset = counter_sum(after, "pyti_http_requests_total") < counter_sum(
                before, "pyti_http_requests_total"
            )
            return reset, f"counters reset: {reset}; {conns} now {counter_sum(after, conns):g}"
        infra = counter_sum(after, "pyti_job_outcomes_total", 'outcome="infra_error"') - (
            counter_sum(before, "pyti_job_outcomes_total", 'outcome="infra_error"')
        )
        requeued = counter_sum(after, "pyti_jobs_requeued_total") - counter_sum(
            before, "pyti_jobs_requeued_total"
        )
        short = counter_sum(after, "pyti_slave_disk_short_total") - counter_sum(
            before, "pyti_slave_disk_short_total"
        )
        hit = infra + requeued + short
        evidence = f"infra_error +{infra:g}, requeued +{requeued:g}, disk_short +{short:g}"
        return (True if hit else "not hit"), evidence

    def enospc_lines(self) -> int:
        """Lines of ``s1``'s log naming ENOSPC so far (the slave has no /metrics of its own)."""
        with contextlib.suppress(OSError):
            return (
                self.fleet.slaves["s1"]
                .log.read_text(errors="replace")
                .count("No space left on device")
            )
        return 0

    async def fill_disk(self, root: Path) -> dict[str, Any]:
        """Fill the tmpfs under ``root`` to ENOSPC (unbuffered), hold, then free it."""
        filler = root / "soak-filler"
        chunk = b"\0" * (1 << 20)

        def fill() -> int:
            written = 0
            fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                while True:
                    try:
                        written += os.write(fd, chunk)
                    except OSError as exc:
                        if exc.errno != errno.ENOSPC:
                            raise
                        return written
            finally:
                os.close(fd)

        written = await asyncio.to_thread(fill)
        await asyncio.sleep(self.args.disk_full_s)
        filler.unlink()
        return {"filled_mib": written >> 20}

    async def fault_loop(self, kinds: list[str], until: float) -> None:
        order: list[str] = []
        next_at = time.monotonic() + self.args.fault_every
        while next_at < until:
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            if not order:
                order = self.rng.sample(kinds, len(kinds))
            self.faults.append(await self.fault(order.pop()))
            next_at += self.args.fault_every

    async def measure_capacity(self) -> float:
        """Jobs an hour of the fleet: 2 jobs per slave submitted at once, timed."""
        t0 = time.monotonic()
        ids = [
            await self.fleet.upload(self.wheel, self.data)
            for _ in range(2 * len(self.fleet.slaves))
        ]
        for job_id in ids:
            job = await self.fleet.wait(job_id, 1800)
            if job.get("outcome") not in ("passed", "incomplete"):  # no tests: incomplete
                raise SystemExit(f"warm-up job {job_id} ended {job.get('outcome')}")
        self.warmup_ids = ids
        return len(ids) * 3600.0 / (time.monotonic() - t0)


def mount_tmpfs(path: Path, mib: int) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        return False
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={mib}m,mode=0700", "tmpfs",
                           str(path)], capture_output=True, check=False)  # fmt: skip
    return done.returncode == 0


def check_store(db: Path, submitted: list[int]) -> dict[str, Any]:
    """Lost jobs and duplicate verdicts, from the master's database (master stopped)."""
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        states = dict(conn.execute("SELECT id, state FROM jobs").fetchall())
        outcomes = dict(conn.execute(
            "SELECT outcome, count(*) FROM jobs GROUP BY outcome").fetchall())  # fmt: skip
        finished = dict(conn.execute(
            "SELECT job_id, count(*) FROM attempts WHERE status = 'finished' GROUP BY job_id"
        ).fetchall())  # fmt: skip
        attempts = dict(conn.execute(
            "SELECT status, count(*) FROM attempts GROUP BY status").fetchall())  # fmt: skip
        by_slave = dict(conn.execute(
            "SELECT slave, count(*) FROM attempts WHERE status = 'finished' GROUP BY slave"
        ).fetchall())  # fmt: skip
        integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
    lost = [j for j in submitted if states.get(j) != "finished"]
    not_final = [j for j, s in states.items() if s not in ("finished", "cancelled")]
    duplicates = [j for j, n in finished.items() if n > 1]
    no_verdict = [j for j in submitted if finished.get(j, 0) == 0]
    return {
        "jobs_in_store": len(states),
        "lost": lost,
        "not_final": not_final,
        "duplicate_verdicts": duplicates,
        "without_finished_attempt": no_verdict,
        "outcomes": {str(k): v for k, v in outcomes.items()},
        "attempts_by_status": attempts,
        "finished_by_slave": {str(k): v for k, v in by_slave.items()},
        "integrity": integrity,
    }


def rss_flat(samples: list[dict[str, Any]], tolerance: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    names = sorted({k for row in samples for k in row if k not in ("t", "queued")})
    for name in names:
        series = [row[name] for row in samples if name in row]
        if len(series) >= 2:
            first, last = series[0], series[-1]
            out[name] = {"first_kib": first, "last_kib": last, "max_kib": max(series),
                         "flat": last <= first * (1 + tolerance)}  # fmt: skip
    return out


async def run(args: argparse.Namespace, work: Path, kinds: list[str]) -> dict[str, Any]:
    wheel = tiny_wheel(work / "dist")
    # The slaves' min_free_mb must be under s1's tmpfs, or s1 never takes a job (the
    # first hour-long run: 512 MiB free < the default 1024, 485 offers refused, every
    # job on s2); it is what keeps s1 from starting a job while its disk is full.
    settings = work / "slave.toml"
    settings.write_text(f"min_free_mb = {args.min_free_mb}\n")
    slave_args = ("--config", str(settings))
    async with (
        FakePyPI() as pypi,
        Fleet(work, args.image_dir, pypi_url=pypi.base_url, slave_args=slave_args) as fleet,
    ):
        relay = Relay(fleet.slave_port)
        await relay.start()
        try:
            await fleet.start_master()
            await fleet.start_slave("s1", work_dir=work / "s1")
            await fleet.start_slave("s2", port=relay.port, work_dir=work / "s2")
            soak = Soak(args, fleet, relay, wheel)
            capacity = await soak.measure_capacity()
            rate = args.rate or args.load * capacity
            print(f"capacity {capacity:.0f} jobs/h (2 slots); submitting {rate:.0f} jobs/h "
                  f"for {args.duration:g} s, a fault every {args.fault_every:g} s "
                  f"({', '.join(kinds)})", flush=True)  # fmt: skip
            soak.started = time.monotonic()
            until = soak.started + args.duration
            sampler = asyncio.create_task(soak.sampler())
            await asyncio.gather(soak.submitter(rate, until), soak.fault_loop(kinds, until))
            drain_t0 = time.monotonic()
            pending = list(soak.submitted)
            for job_id in pending:
                left = args.drain_timeout - (time.monotonic() - drain_t0)
                with contextlib.suppress(ClusterError):
                    await fleet.wait(job_id, max(left, 1.0), poll=2.0)
            drain_s = time.monotonic() - drain_t0
            sampler.cancel()
            await asyncio.gather(sampler, return_exceptions=True)
        finally:
            await fleet.close()
            await relay.close()
    store = check_store(work / "master" / "pyti.sqlite3", soak.submitted + soak.warmup_ids)
    memory = rss_flat(soak.rss, args.rss_tolerance)
    problems: list[str] = []
    for key in ("lost", "not_final", "duplicate_verdicts", "without_finished_attempt"):
        if store[key]:
            problems.append(f"{key}: {store[key][:20]}")
    if store["integrity"] != "ok":
        problems.append(f"integrity_check: {store['integrity']}")
    idle = [n for n in ("s1", "s2") if not store["finished_by_slave"].get(n)]
    problems += [f"slave {n} finished no job: the faults on it tested nothing" for n in idle]
    problems += [f"RSS of {n} grew: {m}" for n, m in memory.items() if not m["flat"]]
    problems += [f"fault {f['kind']} at {f['t']} s not visible in /metrics: {f['evidence']}"
                 for f in soak.faults if f["visible"] is False]  # fmt: skip
    problems += [f"fault {f['kind']} at {f['t']} s: the fleet did not come back"
                 for f in soak.faults if not f["fleet_back"]]  # fmt: skip
    return {
        "duration_s": args.duration,
        "fault_every_s": args.fault_every,
        "capacity_jobs_per_h": round(capacity, 1),
        "rate_jobs_per_h": round(rate, 1),
        "pypi_releases_per_h": round(PYPI_RELEASES_PER_DAY / 24, 1),
        "submitted": len(soak.submitted),
        "submit_retries": soak.submit_retries,
        "drain_s": round(drain_s, 1),
        "faults": soak.faults,
        "store": store,
        "memory": memory,
        "rss_samples": soak.rss,
        "notes": [],
        "problems": problems,
        "work_dir": str(work),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=3600.0, help="seconds of submissions")
    parser.add_argument("--fault-every", type=float, default=600.0, help="seconds between faults")
    parser.add_argument("--faults", default=",".join(FAULTS), help="kinds to draw from")
    parser.add_argument("--rate", type=float, help="jobs an hour (default: --load × capacity)")
    parser.add_argument("--load", type=float, default=1.0, help="rate as a share of capacity")
    parser.add_argument("--partition-s", type=float, default=60.0, help="length of a partition")
    parser.add_argument(
        "--disk-full-s", type=float, default=60.0, help="how long s1's disk is full"
    )
    parser.add_argument("--observe-s", type=float, default=15.0,
                        help="wait this long after a recovery, then scrape /metrics")  # fmt: skip
    parser.add_argument("--sample-every", type=float, default=60.0, help="RSS sample interval")
    parser.add_argument("--rss-tolerance", type=float, default=0.10, help="last vs first sample")
    parser.add_argument("--drain-timeout", type=float, default=1800.0)
    parser.add_argument("--tmpfs-mib", type=int, default=512, help="size of s1's work dir tmpfs")
    parser.add_argument("--min-free-mb", type=int, default=128,
                        help="the slaves' min_free_mb (under --tmpfs-mib)")  # fmt: skip
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--image-dir", default=os.environ.get("PYTI_IMAGE_DIR",
                                                              "~/.cache/pyti/images"))  # fmt: skip
    parser.add_argument("--work-dir", help="logs and state (default: a new temp dir)")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args(argv)
    args.image_dir = Path(args.image_dir).expanduser()
    if args.seed is None:
        args.seed = random.randrange(1 << 30)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="pyti-soak-"))
    work.mkdir(parents=True, exist_ok=True)
    kinds = [k.strip() for k in args.faults.split(",") if k.strip()]
    notes: list[str] = []
    tmpfs = "disk_full" in kinds and mount_tmpfs(work / "s1", args.tmpfs_mib)
    if "disk_full" in kinds and not tmpfs:
        kinds.remove("disk_full")
        notes.append("disk_full left out: no tmpfs could be mounted (needs root)")
    try:
        figures = asyncio.run(run(args, work, kinds))
    finally:
        if tmpfs:
            subprocess.run(["umount", "-l", str(work / "s1")], check=False)
    figures["notes"] = notes
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))
    summary = {k: figures[k] for k in ("capacity_jobs_per_h", "rate_jobs_per_h", "submitted",
                                       "submit_retries", "drain_s")}  # fmt: skip
    print(json.dumps(summary))
    print("store:", json.dumps({k: v for k, v in figures["store"].items()}))
    print("memory:", json.dumps(figures["memory"]))
    for note in figures["notes"]:
        print("NOTE:", note)
    for line in figures["problems"]:
        print("PROBLEM:", line)
    return 1 if figures["problems"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
