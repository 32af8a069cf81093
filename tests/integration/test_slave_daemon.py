"""The slave daemon against a fake master on loopback: offers, events, results, cancel, drain."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from protocol.messages import (
    Drain,
    FileSpec,
    Heartbeat,
    ImageInfo,
    JobAccept,
    JobCancel,
    JobDrop,
    JobFile,
    JobRefuse,
)
from protocol.results import phases_to_json
from slave.config import SlaveConfig
from slave.daemon import SlaveDaemon
from slave.job.context import JobContext
from tests.fakes.master import FakeMaster, ScriptedExecutor, emitting, holding, stop_task

SECRET = b"integration-test-secret-0123456789"
IMAGE = ImageInfo(name="test-image", python="3.11", digest="0123456789abcdef")


def make_config(tmp_path: Path, master: FakeMaster, **overrides: object) -> SlaveConfig:
    values: dict[str, object] = {
        "master_host": "127.0.0.1",
        "master_port": master.port,
        "secret": SECRET,
        "image_dir": tmp_path / "images",
        "work_dir": tmp_path / "work",
        "name": "slave-1",
        "accel": "tcg",
        "reconnect_min": 0.05,
        "reconnect_max": 0.2,
        "shutdown_grace": 5.0,
        "upload_wait": 5.0,
    }
    values.update(overrides)
    return SlaveConfig(**values)  # type: ignore[arg-type]


@dataclass
class Running:
    daemon: SlaveDaemon
    task: asyncio.Task[None]
    executor: ScriptedExecutor


@pytest.fixture
async def master() -> AsyncIterator[FakeMaster]:
    async with FakeMaster(SECRET) as m:
        yield m


StartSlave = Callable[..., Awaitable[Running]]


@pytest.fixture
async def start_slave(tmp_path: Path, master: FakeMaster) -> AsyncIterator[StartSlave]:
    started: list[Running] = []

    async def start(executor: ScriptedExecutor, **overrides: object) -> Running:
        config = make_config(tmp_path, master, **overrides)
        daemon = SlaveDaemon(config, images=[IMAGE], accel="tcg", executor=executor)
        running = Running(daemon, asyncio.create_task(daemon.run()), executor)
        started.append(running)
        return running

    yield start
    for r in started:
        await stop_task(r.task)


async def test_handshake_reports_capabilities_and_heartbeat_first(
    master: FakeMaster, start_slave: StartSlave
) -> None:
    """The slave authenticates with its images and slots, and its first message is a heartbeat."""
    await start_slave(ScriptedExecutor(emitting(1)), slots=2)
    session = await master.wait_session()
    caps = session.auth.capabilities
    assert caps.slots == 2 and caps.accel == "tcg"
    assert caps.images == (IMAGE,)
    first = session.received[0]
    assert isinstance(first, Heartbeat)
    assert first.free_slots == 2 and first.running == () and not first.draining


async def test_job_runs_events_in_order_and_result_acknowledged(
    master: FakeMaster, start_slave: StartSlave, tmp_path: Path
) -> None:
    """An accepted job's events arrive with contiguous seqs from first_seq; the result follows."""
    await start_slave(ScriptedExecutor(emitting(30)))
    await master.wait_session()
    await master.offer(7, first_seq=41)
    assert isinstance(await master.wait_reply(7), JobAccept)
    result = await master.wait_result(7)
    assert result.outcome == "passed" and result.isolation == "tcg"
    assert phases_to_json(result.phases) == {"tests": {"status": "passed"}}
    seqs = master.seqs(7)
    assert seqs == list(range(41, result.last_seq + 1))
    names = master.names(7)
    assert names[0] == "job_started" and names[-1] == "job_finished"
    assert names.count("output") == 30
    assert master.duplicates[7] == 0
    # result_ack makes the slave forget the job and its spool.
    spool_dir = tmp_path / "work" / "spool"
    await master.wait_for(lambda: not any(spool_dir.iterdir()), timeout=5)


async def test_refuses_unknown_image_full_slots_and_duplicates(
    master: FakeMaster, start_slave: StartSlave
) -> None:
    """Offers are refused (with a reason) for an unknown image, with no free slot, or twice."""
    release = asyncio.Event()
    await start_slave(ScriptedExecutor(holding(release)), slots=1)
    await master.wait_session()
    await master.offer(1, image="no-such-image")
    reply = await master.wait_reply(1)
    assert isinstance(reply, JobRefuse) and "no-such-image" in reply.reason
    await master.offer(2)
    reply = await master.wait_reply(2)
    assert isinstance(reply, JobAccept), reply
    await master.offer(3)
    reply = await master.wait_reply(3)
    assert isinstance(reply, JobRefuse) and reply.reason == "no free slot"
    release.set()
    assert (await master.wait_result(2)).outcome == "passed"


async def test_work_dir_below_min_free_takes_no_job(
    master: FakeMaster, start_slave: StartSlave
) -> None:
    """A work dir with less than ``min_free_mb`` free: heartbeats say no free slot and an
    offer is refused with the free space named (a full disk would pause the job's guest)."""
    await start_slave(ScriptedExecutor(emitting(1)), slots=2, min_free_mb=1 << 40)
    session = await master.wait_session()
    await master.offer(1)
    reply = await master.wait_reply(1)
    assert isinstance(reply, JobRefuse), reply
    assert reply.reason.startswith("the slave's work dir is nearly full: "), reply.reason
    assert reply.reason.endswith(f"MiB free, below min_free_mb = {1 << 40}")
    beats = session.of_type(Heartbeat)
    assert beats and all(b.free_slots == 0 for b in beats), beats


async def test_events_batched_under_the_frame_cap(
    master: FakeMaster, start_slave: StartSlave
) -> None:
    """Events go in batches bounded by count and by the master's announced frame size."""
    master.max_frame = 64 * 1024
    await start_slave(ScriptedExecutor(emitting(600, size=2000)), events_per_batch=100)
    await master.wait_session()
    await master.offer(1)
    result = await master.wait_result(1)
    assert master.seqs(1) == list(range(1, result.last_seq + 1))
    assert len(master.event_batches) >= 600 * 2000 // (64 * 1024)
    assert all(n <= 100 for n, _ in master.event_batches)
    assert all(size <= 64 * 1024 for _, size in master.event_batches)


async def test_cancel_stops_the_job_and_reports_cancelled(
    master: FakeMaster, start_slave: StartSlave
) -> None:
    """job_cancel stops the executor at once and the result says cancelled, with partial phases."""
    executor = ScriptedExecutor(holding(asyncio.Event()))
    await start_slave(executor)
    await master.wait_session()
    await master.offer(5)
    await executor.any_started.wait()
    await master.send(JobCancel(5, 1, "user asked"))
    result = await master.wait_result(5, timeout=5)
    assert result.outcome == "cancelled"
    assert phases_to_json(result.phases) == {"install": {"status": "passed"}}
    assert result.summary.error == "user asked"
    assert executor.cancelled == {5} and executor.torn_down == {5}


async def test_drop_forgets_the_job_without_a_result(
    master: FakeMaster, start_slave: StartSlave, tmp_path: Path
) -> None:
    """job_drop stops the job, frees its slot and deletes its spool; no result is sent."""
    executor = ScriptedExecutor(holding(asyncio.Event()))
    running = await start_slave(executor)
    await master.wait_session()
    await master.offer(6)
    await executor.any_started.wait()
    await master.send(JobDrop(6, 1, "lease is stale"))
    await master.wait_for(lambda: 6 in executor.torn_down, timeout=5)
    await master.wait_for(lambda: not running.daemon.jobs, timeout=5)
    assert running.daemon.heartbeat().free_slots == 1
    assert not any((tmp_path / "work" / "spool").iterdir())
    await master.round_trip()
    assert 6 not in master.results


async def test_drop_with_another_lease_is_ignored(
    master: FakeMaster, start_slave: StartSlave
) -> None:
    """A drop naming another lease of the job does not touch the running attempt."""
    release = asyncio.Event()
    executor = ScriptedExecutor(holding(release))
    await start_slave(executor)
    await master.wait_session()
    await master.offer(8, lease=3)
    await executor.any_started.wait()
    await master.send(JobDrop(8, 2, "old lease"))
    await master.round_trip()
    assert 8 not in executor.torn_down
    release.set()
    assert (await master.wait_result(8)).outcome == "passed"


async def test_drain_refuses_new_offers_and_finishes_running_jobs(
    master: FakeMaster, start_slave: StartSlave
) -> None:
    """After drain, offers are refused and heartbeats say draining; running jobs still finish."""
    release = asyncio.Event()
    executor = ScriptedExecutor(holding(release))
    running = await start_slave(executor, slots=2)
    await master.wait_session()
    await master.offer(1)
    await executor.any_started.wait()
    await master.send(Drain("maintenance"))
    await master.wait_for(lambda: running.daemon.draining)
    await master.offer(2)
    reply = await master.wait_reply(2)
    assert isinstance(reply, JobRefuse) and "draining" in reply.reason
    hb = running.daemon.heartbeat()
    assert hb.draining and hb.free_slots == 0
    release.set()
    assert (await master.wait_result(1)).outcome == "passed"


async def test_drain_ends_with_the_masters_session(
    master: FakeMaster, start_slave: StartSlave
) -> None:
    """A master that drained its slaves and comes back gets them undrained: offers are taken."""
    executor = ScriptedExecutor(holding(asyncio.Event()))
    running = await start_slave(executor)
    await master.wait_session()
    await master.send(Drain("master shutting down"))
    await master.wait_for(lambda: running.daemon.draining)
    await master.restart()
    second = await master.wait_session(2)
    assert not second.of_type(Heartbeat)[0].draining
    assert not running.daemon.draining
    await master.offer(5)
    await executor.any_started.wait()


async def test_stop_aborts_running_jobs_after_grace_and_reports_them(
    master: FakeMaster, start_slave: StartSlave
) -> None:
    """request_stop (SIGTERM) gives jobs the grace period, then reports them as infra_error."""
    executor = ScriptedExecutor(holding(asyncio.Event()))
    running = await start_slave(executor, shutdown_grace=0.3)
    await master.wait_session()
    await master.offer(4)
    await executor.any_started.wait()
    running.daemon.request_stop()
    result = await master.wait_result(4, timeout=5)
    assert result.outcome == "infra_error"
    assert "shut down" in (result.summary.error or "")
    async with asyncio.timeout(15):
        await running.task
    assert executor.torn_down == {4}


async def test_stop_lets_a_job_finish_within_grace(
    master: FakeMaster, start_slave: StartSlave
) -> None:
    """A job that ends within the grace period reports its own outcome on shutdown."""
    release = asyncio.Event()
    executor = ScriptedExecutor(holding(release))
    running = await start_slave(executor, shutdown_grace=10.0)
    await master.wait_session()
    await master.offer(4)
    await executor.any_started.wait()
    running.daemon.request_stop()
    asyncio.get_running_loop().call_later(0.2, release.set)
    result = await master.wait_result(4, timeout=15)
    assert result.outcome == "passed"
    async with asyncio.timeout(15):
        await running.task


async def test_uploaded_file_is_assembled_and_checked(
    master: FakeMaster, start_slave: StartSlave
) -> None:
    """job_file chunks are assembled in order and handed to the executor once the sha256 fits."""
    data = bytes(range(256)) * 4000
    digest = hashlib.sha256(data).hexdigest()
    seen: dict[str, bytes] = {}

    async def script(ctx: JobContext) -> str:
        seen.update({name: path.read_bytes() for name, path in ctx.uploads.items()})
        return "passed"

    await start_slave(ScriptedExecutor(script))
    await master.wait_session()
    spec = FileSpec("demo-1.0.tar.gz", digest, len(data), "sdist", "")
    await master.offer(9, files=(spec,))
    await master.wait_reply(9)
    chunk = 300_000
    for offset in range(0, len(data), chunk):
        piece = data[offset : offset + chunk]
        final = offset + chunk >= len(data)
        await master.send(JobFile(9, 1, spec.filename, offset, piece, final))
    assert (await master.wait_result(9)).outcome == "passed"
    assert seen == {"demo-1.0.tar.gz": data}


async def test_uploaded_file_with_wrong_sha256_is_an_infra_error(
    master: FakeMaster, start_slave: StartSlave
) -> None:
    """A file whose bytes do not match the offer's sha256 never reaches the executor."""
    executor = ScriptedExecutor(emitting(1))
    await start_slave(executor)
    await master.wait_session()
    spec = FileSpec("demo-1.0.tar.gz", "0" * 64, 5, "sdist", "")
    await master.offer(9, files=(spec,))
    await master.wait_reply(9)
    await master.send(JobFile(9, 1, spec.filename, 0, b"hello", True))
    result = await master.wait_result(9)
    assert result.outcome == "infra_error"
    assert "sha256" in (result.summary.error or "")
    assert 9 not in executor.contexts


async def test_wrong_secret_gets_no_session(master: FakeMaster, start_slave: StartSlave) -> None:
    """A slave with the wrong secret is rejected and keeps retrying without a session."""
    running = await start_slave(
        ScriptedExecutor(emitting(1)), secret=b"another-secret-of-enough-length"
    )
    async with asyncio.timeout(10):
        await running.daemon.link.wait_failed(2)
    assert master.sessions == []
    assert running.daemon.link.last_error is not None
    assert "authentication failed" in running.daemon.link.last_error
