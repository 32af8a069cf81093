"""Master SIGKILL at random points of dispatch and finish, many times, on one database.

Each round: start ``pyti master`` (a subprocess, loopback ports, the same data dir
every round), connect fake slaves (real protocol) that accept every offer, send a
few events and report ``passed`` at once, so that claims, offers, accepts, event
commits and result commits run all the time; after a random 0.05-0.6 s the master
gets SIGKILL. Between rounds new jobs are queued straight into the database and
the store is checked (``check_store``): ``PRAGMA integrity_check`` ok, every job
in one valid state, at most one live lease per job (and it is the job's own), a
queued job held by nobody, a finished job with an outcome. After the last kill a
master runs undisturbed until every job is final: each must be ``finished`` once
(one ``finished`` attempt), ``passed``.

    python benchmarks/master_kill_bench.py --kills 100 [--jobs 20] [--seed N] [--json out.json]

Keys: ``kills``, ``jobs``, ``violations`` (must be 0), ``restart_s_p50`` /
``restart_s_max`` (SIGKILL → restarted master logs ``master_started``),
``drain_s`` (last restart → every job final), ``finished_once`` (must equal
``jobs``), ``kill_after_ms`` (the random kill points), ``in_flight_at_kill``
(jobs assigned or running at each kill: the kills did land mid-work),
``finished_at_kill``.
The CI variant is ``tests/integration/test_fault_master_kill.py`` (a few kills).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import socket
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# The fake slave lives in the test tree; run from a checkout, not an installed package.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from master.jobs import JobRequest
from master.store import Store
from tests.fakes.slave import FakeSlave

SECRET = b"kill-bench-secret-0123456789abcdef"
CONFIG = """
heartbeat_interval = 0.2
heartbeat_timeout = 1.0
reconnect_grace = 0.5
drain_grace = 0.5
# The fake slaves die with every killed master (they do not come back with their
# jobs, as real slaves would), which the master counts as slave losses: keep those
# from quarantining jobs, so that every job must end passed.
quarantine_after = 1000
master_name = "kill-bench"
"""
LIVE = ("assigned", "running")
STATES = ("queued", "assigned", "running", "finished", "cancelled")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class MasterProcess:
    """``pyti master`` in a subprocess on fixed loopback ports and one data dir."""

    def __init__(self, work: Path) -> None:
        (work / "secret").write_bytes(SECRET)
        (work / "master.toml").write_text(CONFIG)
        self.slave_port = _free_port()
        self.argv = [
            "master",
            "--data-dir",
            str(work / "data"),
            "--secret-file",
            str(work / "secret"),
            "--config",
            str(work / "master.toml"),
            "--no-feed",
            "--slave-addr",
            f"127.0.0.1:{self.slave_port}",
            "--http-addr",
            f"127.0.0.1:{_free_port()}",
        ]
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            "import sys; from pyti.cli import main; sys.exit(main())",
            *self.argv,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        assert self.proc.stdout is not None
        async with asyncio.timeout(30):
            while True:
                line = await self.proc.stdout.readline()
                if not line:
                    raise RuntimeError("the master exited during start-up")
                if b'"master_started"' in line:
                    break
        self._drain = asyncio.create_task(self._discard_output())

    async def _discard_output(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        while await self.proc.stdout.read(65536):
            pass

    async def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
            await self._drain


async def queue_jobs(db: Path, n: int, start: int) -> None:
    """``n`` jobs straight into the database (the master is down)."""
    store = await Store.open(db)
    try:
        for i in range(start, start + n):
            await store.jobs.submit(JobRequest(f"p{i}", "1.0", [], "bookworm"))
    finally:
        await store.close()


def check_store(db: Path) -> list[str]:
    """What is wrong with the database after a kill (empty: nothing)."""
    problems: list[str] = []
    with contextlib.closing(sqlite3.connect(db)) as conn:
        if conn.execute("PRAGMA integrity_check").fetchone() != ("ok",):
            problems.append("integrity_check failed")
        jobs = conn.execute("SELECT id, state, lease, slave, outcome FROM jobs").fetchall()
        live: dict[int, list[tuple[int, str]]] = {}
        for job_id, lease, slave in conn.execute(
            "SELECT job_id, lease, slave FROM attempts WHERE status IN ('assigned', 'running')"
        ):
            live.setdefault(job_id, []).append((lease, slave))
    for job_id, state, lease, slave, outcome in jobs:
        leases = live.get(job_id, [])
        if state not in STATES:
            problems.append(f"job {job_id}: unknown state {state!r}")
        if len(leases) > 1:
            problems.append(f"job {job_id}: {len(leases)} live leases {leases}")
        if state in LIVE and leases != [(lease, slave)]:
            problems.append(f"job {job_id} {state} lease {lease} on {slave}: live {leases}")
        if state not in LIVE and leases:
            problems.append(f"job {job_id} {state} still has live attempts {leases}")
        if state == "queued" and slave is not None:
            problems.append(f"job {job_id} queued but held by {slave}")
        if state == "finished" and outcome is None:
            problems.append(f"job {job_id} finished without an outcome")
    return problems


async def _slaves(port: int, n: int) -> list[FakeSlave]:
    slaves = [
        FakeSlave(
            "127.0.0.1",
            port,
            SECRET,
            name=f"k{i}",
            slots=4,
            mode="run",
            events_per_job=5,
            batch=5,
        )
        for i in range(n)
    ]
    for s in slaves:
        await s.connect()
    return slaves


async def _drop(slaves: list[FakeSlave]) -> None:
    for s in slaves:
        with contextlib.suppress(Exception):
            await s.kill()


def _states(db: Path) -> dict[str, int]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return dict(conn.execute("SELECT state, count(*) FROM jobs GROUP BY state").fetchall())


def _final_counts(db: Path) -> tuple[int, int, int, int]:
    """(jobs, finished passed, with exactly one 'finished' attempt, final jobs)."""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        total = conn.execute("SELECT count(*) FROM jobs").fetchone()[0]
        passed = conn.execute(
            "SELECT count(*) FROM jobs WHERE state = 'finished' AND outcome = 'passed'"
        ).fetchone()[0]
        once = conn.execute(
            "SELECT count(*) FROM (SELECT job_id FROM attempts WHERE status = 'finished'"
            " GROUP BY job_id HAVING count(*) = 1)"
        ).fetchone()[0]
        final = conn.execute(
            "SELECT count(*) FROM jobs WHERE state IN ('finished', 'cancelled')"
        ).fetchone()[0]
    return int(total), int(passed), int(once), int(final)


async def run(work: Path, kills: int, jobs_per_round: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    db = work / "data" / "pyti.sqlite3"
    (work / "data").mkdir(parents=True, exist_ok=True)
    master = MasterProcess(work)
    violations: list[str] = []
    restarts: list[float] = []
    kill_after: list[float] = []
    in_flight: list[int] = []  # jobs assigned or running when the master died
    done_at_kill: list[int] = []  # jobs finished by then (all rounds)
    queued = 0
    for _ in range(kills):
        await queue_jobs(db, jobs_per_round, queued)
        queued += jobs_per_round
        t = time.monotonic()
        await master.start()
        restarts.append(time.monotonic() - t)
        slaves = await _slaves(master.slave_port, 2)
        delay = rng.uniform(0.05, 0.6)
        kill_after.append(round(delay * 1000))
        await asyncio.sleep(delay)
        await master.kill()
        await _drop(slaves)
        violations += check_store(db)
        states = _states(db)
        in_flight.append(sum(states.get(s, 0) for s in LIVE))
        done_at_kill.append(states.get("finished", 0))
    t = time.monotonic()
    await master.start()
    slaves = await _slaves(master.slave_port, 2)
    try:
        async with asyncio.timeout(60 + queued * 0.1):
            while _final_counts(db)[3] < queued:  # noqa: ASYNC110 (polling another process)
                await asyncio.sleep(0.2)
        drain = time.monotonic() - t
    finally:
        for s in slaves:
            await s.close()
        await master.kill()
    violations += check_store(db)
    total, passed, once, _ = _final_counts(db)
    restarts.sort()
    return {
        "kills": kills,
        "jobs": total,
        "violations": len(violations),
        "violation_samples": violations[:10],
        "restart_s_p50": round(restarts[len(restarts) // 2], 3),
        "restart_s_max": round(restarts[-1], 3),
        "drain_s": round(drain, 2),
        "finished_passed": passed,
        "finished_once": once,
        "kill_after_ms": kill_after,
        "in_flight_at_kill": in_flight,
        "finished_at_kill": done_at_kill,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kills", type=int, default=100)
    parser.add_argument("--jobs", type=int, default=200, help="jobs queued before each round")
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pyti-kills-") as tmp:
        figures = asyncio.run(run(Path(tmp), args.kills, args.jobs, args.seed))
    figures["seed"] = args.seed
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures))


if __name__ == "__main__":
    main()
