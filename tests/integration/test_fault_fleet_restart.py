"""Fault table row 4: the master SIGKILLed and restarted under a fleet of slaves streaming events.

A real ``pyti master`` subprocess (``tests/system/daemons.py``) on one data dir;
``SLAVES`` real slave daemons (``slave.daemon.SlaveDaemon``: the real link, spool,
backoff and reconnect code) run in this process with a scripted executor instead of
QEMU, ``SLOTS`` jobs each. Every job logs ``BEFORE`` events, which the master
acknowledges; then all jobs log ``AFTER`` more, one every ``PACE`` s, and while
they do the master gets SIGKILL and is started again at once on the same data dir
and ports. Each job has a live tail open through the kill: the real ``pyti tail``
follower (``master.client.tail.Tail``), which resumes with ``Last-Event-ID``.

The slaves' ``master_connection_failed`` / ``master_connected`` log lines are
captured with their time and slave name: they show each slave's attempts after the
kill, the delay it chose before each (``retry_in``) and when it came back.
``PYTI_FLEET_SLAVES`` sets the fleet's size (default 12).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import itertools
import json
import os
import signal
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Iterator, MutableMapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import structlog

from master.client.api import Api
from master.client.tail import Tail
from master.jobs import JobRequest
from master.store import Store
from protocol.messages import ImageInfo
from protocol.results import PhaseResult
from protocol.vocabulary import PhaseStatus
from slave.config import SlaveConfig
from slave.daemon import SlaveDaemon
from slave.job.context import JobContext
from tests.fakes.master import Script, ScriptedExecutor, stop_task
from tests.system.daemons import SECRET, Cluster, MasterProcess

#: Slaves in the fleet (the issue asks for at least 10).
SLAVES = int(os.environ.get("PYTI_FLEET_SLAVES", "12"))
SLOTS = 2
#: Events per job acknowledged before the kill, and logged from just before it on.
BEFORE, AFTER = 40, 150
PACE = 0.02
IMAGE = ImageInfo(name="fleet-image", python="3.11", digest="0123456789abcdef")
#: A window this narrow holding many reconnects would be a thundering herd: without
#: jitter a whole fleet that lost the master in one instant comes back in one.
HERD_WINDOW = 0.010


class Fleet:
    """The jobs' script: ``BEFORE`` events at once, then ``AFTER`` paced ones once ``go`` is set."""

    def __init__(self) -> None:
        self.waiting: set[int] = set()  # jobs that logged their first BEFORE events
        self.go = asyncio.Event()

    def script(self) -> Script:
        async def run(ctx: JobContext) -> str:
            for i in range(BEFORE + AFTER):
                if i == BEFORE:
                    self.waiting.add(ctx.offer.job_id)
                    await self.go.wait()
                ctx.log.info("output", phase="tests", stream="stdout", line=f"line {i:05d}")
                await asyncio.sleep(PACE if i >= BEFORE else 0)
            ctx.phases["tests"] = PhaseResult(PhaseStatus.PASSED)
            return "passed"

        return run


@dataclass
class Follower:
    """One live tail (the real ``Tail``) and what it saw."""

    tail: Tail
    seqs: list[int] = field(default_factory=list)
    lost: list[float] = field(default_factory=list)  # when its stream broke
    #: when it meant to connect again (lost + its chosen delay: the loop of this
    #: busy test process may run the timers late, and late together)
    retry_at: list[float] = field(default_factory=list)


def _follower(api: Api, job_id: int) -> Follower:
    async def sleep(delay: float) -> None:
        now = time.time()
        follower.lost.append(now)
        follower.retry_at.append(now + delay)
        await asyncio.sleep(delay)

    def emit(event: dict[str, Any]) -> None:
        follower.seqs.append(int(event["seq"]))

    follower = Follower(Tail(api, job_id, 0, emit, sleep=sleep))
    return follower


def _slave(tmp_path: Path, master: MasterProcess, name: str, fleet: Fleet) -> SlaveDaemon:
    config = SlaveConfig(
        master_host="127.0.0.1",
        master_port=master.slave_port,
        secret=SECRET.encode(),
        image_dir=tmp_path / "images",
        work_dir=tmp_path / name,
        name=name,
        slots=SLOTS,
        accel="tcg",
        shutdown_grace=1.0,
    )  # the reconnect policy is the default one (reconnect_min 0.5 s, reconnect_max 30 s)
    executor = ScriptedExecutor(fleet.script())
    return SlaveDaemon(config, images=[IMAGE], accel="tcg", executor=executor)


def _start(daemon: SlaveDaemon) -> asyncio.Task[None]:
    """Run the daemon with its name in its log context (its link's lines carry it)."""
    context = contextvars.copy_context()
    context.run(structlog.contextvars.bind_contextvars, fleet_slave=daemon.config.name)
    return asyncio.create_task(daemon.run(), context=context)


def _stamp(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    event["t"] = time.time()
    return event


async def _queue(db: Path, n: int, first: int = 0) -> None:
    store = await Store.open(db)
    try:
        for i in range(first, first + n):
            await store.jobs.submit(JobRequest(f"fleet{i}", "1.0", [], IMAGE.name))
    finally:
        await store.close()


def _rows(db: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(db, timeout=10)) as conn:
        return conn.execute(sql, args).fetchall()


def _master_log(path: Path, event: str) -> Iterator[dict[str, Any]]:
    for line in path.read_text(errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            entry = json.loads(line)
            if isinstance(entry, dict) and entry.get("event") == event:
                entry["t"] = datetime.fromisoformat(entry["timestamp"]).timestamp()
                yield entry


def _busiest(times: list[float], width: float = HERD_WINDOW) -> int:
    """The most of ``times`` within any one window of ``width`` seconds."""
    times = sorted(times)
    return max(sum(1 for u in times[i:] if u - t < width) for i, t in enumerate(times))


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return round(values[min(len(values) - 1, int(q * len(values)))], 3)


async def _until(check: Callable[[], bool], timeout: float) -> None:
    async with asyncio.timeout(timeout):
        while not check():  # noqa: ASYNC110 (state of another process and many objects)
            await asyncio.sleep(0.05)


@dataclass
class Run:
    """What one run observed."""

    daemons: list[SlaveDaemon]
    followers: dict[int, Follower]
    ended: list[dict[str, Any]]
    logs: list[MutableMapping[str, Any]]
    master: MasterProcess
    db: Path
    killed: float
    restart_s: float
    unacked_at_kill: int
    stored_at_kill: int


async def _run(tmp_path: Path, stop: str) -> Run:
    jobs_n = SLAVES * SLOTS
    cluster = Cluster(tmp_path / "c", pypi_url="http://127.0.0.1:9")
    master = cluster.master(config={"master_name": "fleet"})
    db = tmp_path / "c" / "master-data" / "pyti.sqlite3"
    db.parent.mkdir(parents=True)
    await _queue(db, jobs_n)
    fleet = Fleet()
    tasks: list[asyncio.Task[Any]] = []
    processors = [structlog.contextvars.merge_contextvars, _stamp]
    with structlog.testing.capture_logs(processors=processors) as logs:
        try:
            await master.start()
            daemons = [_slave(tmp_path, master, f"f{i:02d}", fleet) for i in range(SLAVES)]
            tasks += [_start(d) for d in daemons]

            def acked() -> bool:
                held = [j for d in daemons for j in d.jobs.values()]
                ready = len(fleet.waiting) == jobs_n
                return ready and all(j.spool.acked_seq >= BEFORE for j in held)

            await _until(acked, 60)
            async with Api(master.http_url) as api:
                followers = {i: _follower(api, i) for i in sorted(fleet.waiting)}
                follow = [asyncio.create_task(f.tail.follow()) for f in followers.values()]
                tasks += follow
                await _until(lambda: all(len(f.seqs) >= BEFORE for f in followers.values()), 30)

                fleet.go.set()
                await asyncio.sleep(0.5)  # every job streaming
                spools = [j.spool for d in daemons for j in d.jobs.values()]
                # The master stops answering (SIGSTOP) until every job has events it sent
                # and got no ack for: on a fast host acks keep up with the stream, and a
                # kill between two acks would test nothing in flight.
                os.kill(master.pid, signal.SIGSTOP)
                await _until(lambda: all(s.last_seq > s.acked_seq for s in spools), 10)
                unacked = sum(s.last_seq - s.acked_seq for s in spools)
                stored = _rows(db, "SELECT count(*) FROM events")[0][0]
                if stop != "kill":
                    os.kill(master.pid, signal.SIGCONT)  # SIGTERM is handled once it runs
                killed = time.time()
                await (master.kill() if stop == "kill" else master.terminate())
                await _queue(db, SLAVES, jobs_n)  # new work for the fleet after the restart
                await master.start()
                restart_s = time.time() - killed

                def done() -> bool:
                    sql = "SELECT count(*) FROM jobs WHERE state = 'finished'"
                    return bool(_rows(db, sql)[0][0] == jobs_n + SLAVES)

                await _until(done, 120)
                ended = await asyncio.wait_for(asyncio.gather(*follow), 60)
        finally:
            for task in tasks:
                await stop_task(task)
            await cluster.stop()
    return Run(daemons, followers, ended, logs, master, db, killed, restart_s, unacked, stored)


@pytest.mark.parametrize("stop", ["kill", "term"])
async def test_fleet_reconnects_with_jittered_backoff_and_loses_nothing(
    tmp_path: Path, stop: str
) -> None:
    """After a master SIGKILL and restart, every slave reconnects once on its own jittered,
    doubling delays (no herd), every job's events are stored 1..N once, each job finishes
    once on its first attempt, and live tails see their stream close at once (no hang),
    come back jittered, resume after their last seq and end with the job."""
    run = await _run(tmp_path, stop)
    killed = run.killed

    # -- the slaves ----------------------------------------------------------------------
    lines: dict[str, list[MutableMapping[str, Any]]] = {}
    for entry in run.logs:
        wanted = entry["event"] in ("master_connected", "master_connection_failed")
        if wanted and entry["t"] >= killed:
            lines.setdefault(entry["fleet_slave"], []).append(entry)
    reconnected = [e["t"] for ls in lines.values() for e in ls if e["event"] == "master_connected"]
    first_retry = [ls[0].get("retry_in", 0.0) for ls in lines.values()]
    # The attempt that succeeded started when the delay chosen after the last failure ran out.
    attempted = [ls[-2]["t"] + ls[-2]["retry_in"] for ls in lines.values() if len(ls) >= 2]
    up = [e["t"] for e in _master_log(run.master.log_path, "master_started")]
    back = [e["slave"] for e in _master_log(run.master.log_path, "slave_connected")]

    # -- the jobs and their events -------------------------------------------------------
    db = run.db
    ids = [row[0] for row in _rows(db, "SELECT id FROM jobs ORDER BY id")]
    tailed = sorted(run.followers)
    jobs = _rows(db, "SELECT id, state, outcome, attempt FROM jobs ORDER BY id")
    attempts = _rows(db, "SELECT job_id, status FROM attempts ORDER BY job_id")
    sql = "SELECT seq, event, fields FROM events WHERE job_id = ? ORDER BY seq"
    events = {i: _rows(db, sql, i) for i in ids}
    duplicates = _rows(
        db, "SELECT count(*) FROM (SELECT 1 FROM events GROUP BY job_id, seq HAVING count(*) > 1)"
    )[0][0]
    gaps = sum(
        1 for rows in events.values() if [r[0] for r in rows] != list(range(1, len(rows) + 1))
    )
    tails = run.followers.values()
    tail_retries = [f.retry_at[0] for f in tails if f.retry_at]

    figures = {
        "slaves": SLAVES,
        "jobs": len(ids),
        "events": sum(len(rows) for rows in events.values()),
        "stored_at_kill": run.stored_at_kill,
        "unacked_at_kill": run.unacked_at_kill,
        "restart_s": round(run.restart_s, 3),
        "reconnect_s_p50": _pct([t - killed for t in reconnected], 0.5),
        "reconnect_s_max": _pct([t - killed for t in reconnected], 1.0),
        "reconnect_after_up_s": sorted(round(t - up[-1], 3) for t in reconnected),
        "retry_in_s": {n: [e.get("retry_in") for e in ls[:-1]] for n, ls in sorted(lines.items())},
        "attempts_busiest_10ms": _busiest(attempted) if attempted else None,
        "connected_busiest_10ms": _busiest(reconnected),
        "tail_closing_markers": sum(f.tail.closings for f in tails),
        "tail_lost_after_kill_s_max": round(max(f.lost[0] for f in tails if f.lost) - killed, 3),
        "tail_retry_s": sorted(round(t - killed, 3) for t in tail_retries),
        "tail_retries_busiest_10ms": _busiest(tail_retries),
        "duplicates": duplicates,
        "gaps": gaps,
    }
    print(f"fleet restart ({stop}):", json.dumps(figures))

    # Each slave lost the session, waited, retried on doubling equal-jittered delays
    # ([b/2, b], b = reconnect_min * 2**step, capped), never sooner than it chose, and came
    # back once. The ladder goes on from the failures before the kill (a session shorter
    # than 10 s does not reset it; with many slaves some first logins were refused by
    # the per-address cap on pending handshakes), so the first step is found, not assumed.
    assert sorted(lines) == sorted(d.config.name for d in run.daemons)
    first, cap = run.daemons[0].config.reconnect_min, run.daemons[0].config.reconnect_max

    def fits(step: int, delay: float) -> bool:
        base: float = min(cap, first * 2**step)
        return base / 2 <= delay <= base

    earlier = Counter(
        e["fleet_slave"]
        for e in run.logs
        if e["event"] == "master_connection_failed" and e["t"] < killed
    )
    for name, ls in lines.items():
        kinds = [e["event"] for e in ls]
        assert kinds == ["master_connection_failed"] * (len(ls) - 1) + ["master_connected"], ls
        steps = [j for j in range(earlier[name] + 1) if fits(j, ls[0]["retry_in"])]
        assert steps, (name, earlier[name], ls)
        for k, (entry, nxt) in enumerate(itertools.pairwise(ls)):
            assert fits(steps[0] + k, entry["retry_in"]), (name, k, ls)
            assert nxt["t"] - entry["t"] >= entry["retry_in"] - 0.005, (name, k, ls)
    # Jitter: the first retries spread over their window, and the restarted master got no
    # herd: at most half the fleet in any 10 ms (with 12 slaves drawn over the narrowest
    # window, 0.25 s, 7 or more happens about 2 times in 100,000).
    assert max(first_retry) - min(first_retry) >= 0.05, first_retry
    assert len(attempted) == SLAVES and _busiest(attempted) <= SLAVES // 2, figures
    assert len(up) == 2
    assert sorted(back) == sorted([d.config.name for d in run.daemons] * 2)  # in, then back once

    # Every job: finished passed on its first attempt (adopted, not re-run), its events
    # stored 1..N once with the script's lines in order, ``job_finished`` last.
    # The jobs queued while the master was down ran too: the fleet took new work after
    # the restart (a drain asked by the stopped master does not outlive its session).
    assert len(ids) == len(tailed) + SLAVES
    assert [(j[1], j[2], j[3]) for j in jobs] == [("finished", "passed", 1)] * len(ids)
    assert attempts == [(i, "finished") for i in ids]
    assert duplicates == 0 and gaps == 0
    assert run.unacked_at_kill > 0  # some events were in flight: they were re-sent
    for job_id, rows in events.items():
        output = [json.loads(r[2])["line"] for r in rows if r[1] == "output"]
        assert output == [f"line {i:05d}" for i in range(BEFORE + AFTER)], job_id
        assert rows[-1][1] == "job_finished"
        if job_id not in run.followers:
            continue
        # Its live tail: the stream closed at the kill, it resumed, saw every event once.
        follower = run.followers[job_id]
        assert follower.seqs == [r[0] for r in rows], job_id
        assert follower.lost and follower.lost[0] - killed < 2.0, (job_id, follower.lost)
    assert [j["state"] for j in run.ended] == ["finished"] * len(tailed)
    # A killed master cuts the streams; a stopping one first sends each a ``closing`` marker.
    assert [f.tail.closings for f in tails] == [0 if stop == "kill" else 1] * len(tailed)
    # The tails came back jittered too, not all in one instant (24 tails drawn over 0.2 s:
    # more than 12 in 10 ms never happened in 100,000 draws; 9 or more 2 in 10,000).
    assert _busiest(tail_retries) <= len(tailed) // 2, figures["tail_retry_s"]
