"""Nothing lost, nothing duplicated: reconnects, master restarts and slave restarts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from protocol.messages import Heartbeat
from slave.daemon import SlaveDaemon
from slave.job.context import JobContext
from tests.fakes.master import (
    FakeMaster,
    Script,
    ScriptedExecutor,
    emitting,
    holding,
    stop_task,
)
from tests.integration.test_slave_daemon import IMAGE, SECRET, make_config


@pytest.fixture
async def master() -> AsyncIterator[FakeMaster]:
    async with FakeMaster(SECRET) as m:
        yield m


def start(
    tmp_path: Path, master: FakeMaster, executor: ScriptedExecutor, **kw: object
) -> tuple[SlaveDaemon, asyncio.Task[None]]:
    config = make_config(tmp_path, master, **kw)
    daemon = SlaveDaemon(config, images=[IMAGE], accel="tcg", executor=executor)
    return daemon, asyncio.create_task(daemon.run())


def paced(count: int, gate: asyncio.Event, at: int, *, hold: bool = False) -> Script:
    """A script: ``count`` events, pausing at ``at`` until ``gate`` is set; then ends or holds."""

    async def script(ctx: JobContext) -> str:
        for i in range(count):
            if i == at:
                await gate.wait()
            ctx.log.info("output", phase="tests", line=f"line {i}")
            await asyncio.sleep(0)
        if hold:
            await asyncio.Event().wait()
        return "passed"

    return script


async def test_unacked_events_resent_after_reconnect_exactly_once_stored(
    master: FakeMaster, tmp_path: Path
) -> None:
    """After a dropped connection the slave re-sends unacknowledged events; none lost or doubled."""
    master.ack_events = False
    gate = asyncio.Event()
    executor = ScriptedExecutor(paced(200, gate, at=100))
    _, task = start(tmp_path, master, executor)
    try:
        await master.wait_session()
        await master.offer(3, first_seq=10)
        # job_started + 100 lines arrive, none acknowledged
        await master.wait_for(lambda: len(master.seqs(3)) >= 101)
        await master.kick()
        gate.set()
        second = await master.wait_session(count=2)
        hb = second.received[0]
        assert isinstance(hb, Heartbeat)
        assert [(r.job_id, r.lease) for r in hb.running] == [(3, 1)]
        assert hb.running[0].last_seq >= 10 + 100
        master.ack_events = True
        result = await master.wait_result(3)
        assert result.outcome == "passed"
        assert master.seqs(3) == list(range(10, result.last_seq + 1))
        # The first 101 events came twice (re-sent) and were stored once.
        assert master.duplicates[3] >= 101
    finally:
        await stop_task(task)


async def test_acked_events_are_not_resent(master: FakeMaster, tmp_path: Path) -> None:
    """Events the master acknowledged before a reconnect are not sent again."""
    gate = asyncio.Event()
    executor = ScriptedExecutor(paced(100, gate, at=50))
    daemon, task = start(tmp_path, master, executor)
    try:
        await master.wait_session()
        await master.offer(3)
        await master.wait_for(lambda: 3 in daemon.jobs and daemon.jobs[3].spool.acked_seq >= 51)
        await master.kick()
        gate.set()
        result = await master.wait_result(3)
        assert master.seqs(3) == list(range(1, result.last_seq + 1))
        assert master.duplicates[3] == 0
    finally:
        await stop_task(task)


async def test_result_resent_until_acknowledged_across_master_restart(
    master: FakeMaster, tmp_path: Path
) -> None:
    """A result without result_ack is sent again after the master restarts, then forgotten."""
    master.ack_results = False
    daemon, task = start(tmp_path, master, ScriptedExecutor(emitting(20)))
    try:
        await master.wait_session()
        await master.offer(2)
        first = await master.wait_result(2)
        await master.restart()
        master.ack_results = True
        second = await master.wait_result(2, count=2)
        assert second == first
        await master.wait_for(lambda: not daemon.jobs, timeout=5)
        assert master.seqs(2) == list(range(1, first.last_seq + 1))
        assert master.duplicates[2] == 0
        # After result_ack the job is gone: a later session does not send it again.
        await master.kick()
        await master.wait_session(count=3)
        await master.round_trip()
        assert len(master.results[2]) == 2
    finally:
        await stop_task(task)


async def test_spool_survives_a_slave_restart(master: FakeMaster, tmp_path: Path) -> None:
    """Events and the result a master never acknowledged are sent by the next slave process."""
    master.ack_events = False
    master.ack_results = False
    daemon, task = start(tmp_path, master, ScriptedExecutor(emitting(50)), shutdown_grace=1)
    await master.wait_session()
    await master.offer(11, first_seq=5)
    result = await master.wait_result(11)
    daemon.request_stop()
    await stop_task(task)
    # The master "loses" what it got (as if it had crashed before storing it).
    master.events.clear()
    master.results.clear()
    master.ack_events = master.ack_results = True
    daemon2, task2 = start(tmp_path, master, ScriptedExecutor(emitting(1)))
    try:
        again = await master.wait_result(11)
        assert again == result
        assert master.seqs(11) == list(range(5, result.last_seq + 1))
        await master.wait_for(lambda: not daemon2.jobs, timeout=5)
        assert not any((tmp_path / "work" / "spool").iterdir())
    finally:
        await stop_task(task2)


async def test_job_interrupted_by_a_slave_crash_reported_as_infra_error(
    master: FakeMaster, tmp_path: Path
) -> None:
    """A job running when the slave process died is reported by the next one as infra_error."""
    executor = ScriptedExecutor(holding(asyncio.Event(), before=5))
    _, task = start(tmp_path, master, executor)
    await master.wait_session()
    await master.offer(12)
    await executor.any_started.wait()
    await master.wait_for(lambda: len(master.seqs(12)) >= 6)
    await stop_task(task)  # a hard stop: no result written
    assert 12 not in master.results
    _, task2 = start(tmp_path, master, ScriptedExecutor(emitting(1)))
    try:
        result = await master.wait_result(12)
        assert result.outcome == "infra_error"
        assert "restarted" in (result.summary.error or "")
        assert master.seqs(12) == list(range(1, result.last_seq + 1))
        assert master.names(12)[-2:] == ["job_lost", "job_finished"]
    finally:
        await stop_task(task2)


async def test_stale_lease_events_answered_with_drop(master: FakeMaster, tmp_path: Path) -> None:
    """When the master re-leased the job meanwhile, its job_drop makes the slave forget it."""
    gate = asyncio.Event()
    executor = ScriptedExecutor(paced(40, gate, at=20, hold=True))
    daemon, task = start(tmp_path, master, executor)
    try:
        await master.wait_session()
        await master.offer(13, lease=1)
        await master.wait_for(lambda: len(master.seqs(13)) >= 21)
        master.leases[13] = 2  # the master gave the job to someone else
        gate.set()
        await master.wait_for(lambda: not daemon.jobs, timeout=5)
        assert 13 in executor.torn_down
        await master.round_trip()
        assert 13 not in master.results
    finally:
        await stop_task(task)
