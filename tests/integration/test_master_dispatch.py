"""Dispatch against a real master: offers, accept/refuse, events, results, priorities, files."""

from __future__ import annotations

import hashlib
from pathlib import Path

from master.jobs import JobState
from protocol.messages import EventsAck, JobDrop, JobOffer, ResultAck
from tests.integration.conftest import Harness


async def test_job_runs_end_to_end(harness: Harness) -> None:
    """A queued job is offered, accepted, its events stored and acked, its result stored."""
    slave = await harness.slave("s1")
    job = await harness.submit("demo", callback_url=None)
    offer = await slave.next(JobOffer)
    assert (offer.job_id, offer.lease, offer.attempt, offer.first_seq) == (job.id, 1, 1, 1)
    assert offer.project == "demo" and offer.image == "bookworm"
    assert offer.files[0].url.startswith("http://127.0.0.1")
    await slave.accept(offer)
    await harness.until_job(job.id, lambda j: j.state is JobState.RUNNING)
    with harness.ctx.bus.subscribe(job.id) as sub:
        await slave.send_events(job.id, offer.lease, 5)
        ack = await slave.next(EventsAck)
        assert (ack.job_id, ack.lease, ack.seq) == (job.id, offer.lease, 5)
        assert [(await sub.get()).seq for _ in range(5)] == [1, 2, 3, 4, 5]  # type: ignore[union-attr]
        await slave.send_result(
            job.id,
            offer.lease,
            "passed",
            last_seq=5,
            phases={"install": {"status": "passed"}},
        )
        await slave.next(ResultAck)
        end = await sub.get()
    assert getattr(end, "state", None) is JobState.FINISHED
    done = await harness.job(job.id)
    assert done.outcome == "passed" and done.isolation == "tcg" and done.slave == "s1"
    assert len(await harness.ctx.store.events.read(job.id)) == 5
    assert harness.ctx.metrics.counter("events_stored_total", "").value() == 5
    info = harness.ctx.slaves.list()[0]
    assert info.name == "s1" and info.busy == 0 and info.images == ["bookworm"]


async def test_refused_offer_goes_to_another_slave_without_an_attempt(harness: Harness) -> None:
    """A refusal sends the job back to the queue unchanged; another slave gets it."""
    picky = await harness.slave("picky", mode="refuse")
    job = await harness.submit()
    first = await picky.next(JobOffer)
    await harness.until_job(job.id, lambda j: j.state is JobState.QUEUED)
    willing = await harness.slave("willing", mode="accept")
    second = await willing.next(JobOffer)
    assert second.job_id == job.id and second.attempt == 1 and second.lease > first.lease
    running = await harness.until_job(job.id, lambda j: j.state is JobState.RUNNING)
    assert running.slave == "willing" and running.attempt == 1
    statuses = [a.status for a in await harness.ctx.store.jobs.attempts(job.id)]
    assert statuses == ["refused", "running"]


async def test_priority_then_fifo_decides_the_order(harness: Harness) -> None:
    """With one slot, a high-priority job goes first, then the others in submission order."""
    low1 = await harness.submit("low1", priority=0)
    low2 = await harness.submit("low2", priority=0)
    high = await harness.submit("high", priority=10)
    slave = await harness.slave("s1", slots=1)
    order = []
    for _ in range(3):
        offer = await slave.take(JobOffer)
        order.append(offer.job_id)
        await slave.accept(offer)
        await slave.send_result(offer.job_id, offer.lease, "passed")
        await slave.take(ResultAck)
    assert order == [high.id, low1.id, low2.id]


async def test_only_slaves_with_the_image_get_the_job(harness: Harness) -> None:
    """A job for an image a slave lacks waits for a slave that has it."""
    bookworm = await harness.slave("bw", images=("bookworm",))
    job = await harness.submit(image="trixie")
    other = await harness.submit("other")
    offer = await bookworm.next(JobOffer)
    assert offer.job_id == other.id
    trixie = await harness.slave("tx", images=("trixie", "bookworm"))
    got = await trixie.next(JobOffer)
    assert got.job_id == job.id and got.image == "trixie"
    assert len(bookworm.inbox["job_offer"]) == 1


async def test_uploaded_files_follow_the_offer_in_chunks(harness: Harness, tmp_path: Path) -> None:
    """A file with a master-local path is sent as ≤512 KiB job_file chunks after the offer."""
    data = bytes(range(256)) * (5 * 1024 + 3)  # ~1.25 MiB: three chunks
    path = tmp_path / "up-1.0.tar.gz"
    path.write_bytes(data)
    files = [
        {
            "filename": path.name,
            "sha256": hashlib.sha256(data).hexdigest(),
            "size": len(data),
            "packagetype": "sdist",
            "url": "",
            "path": str(path),
        }
    ]
    slave = await harness.slave("s1")
    job = await harness.submit("up", files=files, source="upload")
    offer = await slave.next(JobOffer)
    assert offer.files[0].url == "" and offer.files[0].size == len(data)
    await slave.wait_for(lambda: len(slave.inbox["job_file"]) >= 3)
    chunks = slave.inbox["job_file"]
    assert all(len(c.data) <= 512 * 1024 for c in chunks)  # type: ignore[attr-defined]
    assert [c.final for c in chunks] == [False, False, True]  # type: ignore[attr-defined]
    assert hashlib.sha256(slave.files[(job.id, path.name)]).hexdigest() == offer.files[0].sha256
    assert "path" not in (await harness.job(job.id)).to_dict()["files"][0]


async def test_unreadable_upload_is_an_infra_error_not_a_stall(
    harness: Harness, tmp_path: Path
) -> None:
    """An uploaded file the master cannot read drops the offer and ends as infra_error
    after the retries; the slave keeps getting other work."""
    files = [
        {
            "filename": "gone-1.0.tar.gz",
            "sha256": "0" * 64,
            "size": 1,
            "packagetype": "sdist",
            "url": "",
            "path": str(tmp_path / "missing.tar.gz"),
        }
    ]
    slave = await harness.slave("s1", slots=1)
    job = await harness.submit("gone", files=files, source="upload")
    for attempt in (1, 2):  # retry_limit is 1
        offer = await slave.take(JobOffer)
        assert (offer.job_id, offer.attempt) == (job.id, attempt)
        drop = await slave.take(JobDrop)
        assert drop.lease == offer.lease and "unavailable" in drop.reason
    final = await harness.until_job(job.id, lambda j: j.state is JobState.FINISHED)
    assert final.outcome == "infra_error" and "unavailable" in (final.error or "")
    other = await harness.submit("fine")
    assert (await slave.take(JobOffer)).job_id == other.id
