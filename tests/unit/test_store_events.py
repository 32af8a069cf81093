"""Event storage: exactly once per (job, seq), ack watermarks, fencing, rising seqs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from master.jobs import Job
from master.store import StaleLease, Store
from protocol.events import Event


def ev(seq: int, **fields: object) -> Event:
    return Event(
        seq=seq, ts=1000.0 + seq, level="info", event="output", phase="tests", fields=dict(fields)
    )


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = await Store.open(tmp_path / "pyti.sqlite3")
    yield s
    await s.close()


async def running(store: Store, project: str = "demo") -> Job:
    from master.jobs import JobRequest

    await store.jobs.submit(JobRequest(project, "1.0", [], "bookworm"))
    job = await store.jobs.claim_next("s1", ["bookworm"])
    assert job is not None
    return await store.jobs.start(job.id, job.lease)


async def test_duplicate_batches_are_stored_once(store: Store) -> None:
    """The same batch twice (a re-send after reconnect) stores each event once."""
    job = await running(store)
    first = await store.events.save(job.id, job.lease, [ev(1), ev(2), ev(3)])
    assert first.acked == 3 and [r.seq for r in first.new] == [1, 2, 3]
    again = await store.events.save(job.id, job.lease, [ev(2), ev(3), ev(4)])
    assert again.acked == 4 and [r.seq for r in again.new] == [4]
    rows = await store.events.read(job.id)
    assert [r.seq for r in rows] == [1, 2, 3, 4]
    assert await store.events.read(job.id, after=2, limit=1) == [rows[2]]


async def test_ack_watermark_is_the_highest_contiguous_seq(store: Store) -> None:
    """Out-of-order batches are stored at once but acknowledged only up to the first gap."""
    job = await running(store)
    assert await store.events.add(job.id, job.lease, [ev(1), ev(2)]) == 2
    assert await store.events.add(job.id, job.lease, [ev(5), ev(6)]) == 2
    assert await store.events.add(job.id, job.lease, [ev(3)]) == 3
    assert await store.events.add(job.id, job.lease, [ev(4)]) == 6


async def test_stale_lease_events_are_rejected_and_not_stored(store: Store) -> None:
    """Events carrying an older claim's lease raise StaleLease and leave no row."""
    job = await running(store)
    await store.jobs.requeue(job.id, job.lease, "lost", infra=True)
    with pytest.raises(StaleLease):
        await store.events.add(job.id, job.lease, [ev(1)])
    with pytest.raises(StaleLease):
        await store.events.add(424242, 1, [ev(1)])
    assert await store.events.read(job.id) == []


async def test_next_attempt_starts_after_the_highest_stored_seq(store: Store) -> None:
    """A re-claimed job's first_seq is max stored + 1, even over a gap the old attempt left."""
    job = await running(store)
    await store.events.add(job.id, job.lease, [ev(1), ev(2), ev(7)])
    await store.jobs.requeue(job.id, job.lease, "lost", infra=True)
    again = await store.jobs.claim_next("s2", ["bookworm"])
    assert again is not None and again.event_seq + 1 == 8
    await store.jobs.start(again.id, again.lease)
    assert await store.events.add(again.id, again.lease, [ev(8), ev(9)]) == 9


async def test_concurrent_batches_of_many_jobs_group_commit(store: Store) -> None:
    """Batches from many jobs submitted at once are all stored, each job's acks exact."""
    jobs = [await running(store, f"p{i}") for i in range(8)]

    async def feed(job: Job) -> int:
        acked = 0
        for start in range(1, 500, 50):
            acked = await store.events.add(
                job.id, job.lease, [ev(s, line="x" * 20) for s in range(start, start + 50)]
            )
        return acked

    acks = await asyncio.gather(*(feed(j) for j in jobs))
    assert acks == [500] * 8
    for job in jobs:
        assert len(await store.events.read(job.id, limit=10_000)) == 500
        assert await store.events.max_seq(job.id) == 500


async def test_untrusted_event_content_is_capped(store: Store) -> None:
    """Huge fields are replaced by a marker, long names cut, bytes stored as text."""
    job = await running(store)
    big = Event(
        seq=1,
        ts=1.0,
        level="info",
        event="e" * 1000,
        phase="p" * 1000,
        fields={"blob": "x" * 200_000},
    )
    small = Event(seq=2, ts=1.0, level="info", event="raw", fields={"data": b"\xffok"})
    await store.events.add(job.id, job.lease, [big, small])
    rows = await store.events.read(job.id)
    assert rows[0].fields == {"truncated": True, "original_bytes": rows[0].fields["original_bytes"]}
    assert len(rows[0].event) == 200 and rows[0].phase is not None and len(rows[0].phase) == 200
    assert rows[1].fields == {"data": "\ufffdok"}
