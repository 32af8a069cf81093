"""The claims one slave holds (master.slaves.holdings) against a real SQLite store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from master.bus import EventBus
from master.jobs import Job, JobRequest, JobState
from master.metrics import Metrics
from master.scheduler import Scheduler
from master.slaves.holdings import RECENT, Holdings
from master.slaves.registry import SlaveRegistry
from master.store import Store


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = await Store.open(tmp_path / "pyti.sqlite3", retry_limit=1, quarantine_after=2)
    yield s
    await s.close()


def req(project: str) -> JobRequest:
    file = {"filename": f"{project}-1.0.tar.gz", "url": "http://127.0.0.1/x", "size": 1}
    return JobRequest(project=project, version="1.0", files=[file], image="bookworm")


def holdings_for(store: Store, slave: str = "s1") -> Holdings:
    scheduler = Scheduler(
        store,
        SlaveRegistry(),
        EventBus(),
        Metrics(),
        reconnect_grace=30.0,
        watchdog_interval=1.0,
    )
    return Holdings(slave, store, scheduler)


async def claim(store: Store, project: str, slave: str = "s1") -> Job:
    await store.jobs.submit(req(project))
    job = await store.jobs.claim_next(slave, ["bookworm"])
    assert job is not None
    return job


async def test_disconnect_hands_back_offers_and_keeps_running_claims(store: Store) -> None:
    """surrender(running=False) releases offered claims (same attempt) and keeps running ones."""
    holdings = holdings_for(store)
    offered, running = await claim(store, "a"), await claim(store, "b")
    holdings.adopt(offered.id, offered.lease, running=False)
    holdings.adopt(running.id, running.lease, running=False)
    await store.jobs.start(running.id, running.lease)
    holdings.mark_running(running.id, running.lease)
    await holdings.surrender("slave left", running=False)
    back = await store.jobs.get(offered.id)
    assert back is not None and back.state is JobState.QUEUED and back.attempt == 1
    still = await store.jobs.get(running.id)
    assert still is not None and still.state is JobState.RUNNING
    assert holdings.job_ids() == [running.id] and not holdings.idle.is_set()


async def test_shutdown_requeues_running_claims_without_an_infra_loss(store: Store) -> None:
    """surrender(running=True) re-queues running jobs as not their fault and leaves it idle."""
    holdings = holdings_for(store)
    job = await claim(store, "a")
    holdings.adopt(job.id, job.lease, running=True)
    await store.jobs.start(job.id, job.lease)
    await holdings.surrender("master shut down", running=True)
    back = await store.jobs.get(job.id)
    assert back is not None and back.state is JobState.QUEUED and back.slave_losses == 0
    assert len(holdings) == 0 and holdings.idle.is_set()
    assert holdings.knows(job.id, job.lease) and not holdings.holds(job.id, job.lease)


async def test_hand_back_of_a_job_that_moved_on_only_forgets_it(store: Store) -> None:
    """A claim whose job was cancelled meanwhile is forgotten; the job stays cancelled."""
    holdings = holdings_for(store)
    job = await claim(store, "a")
    holdings.adopt(job.id, job.lease, running=False)
    await store.jobs.cancel(job.id, "changed my mind")
    await holdings.hand_back(job.id, job.lease, "refused: busy")
    after = await store.jobs.get(job.id)
    assert after is not None and after.state is JobState.CANCELLED
    assert not holdings.holds(job.id, job.lease)


async def test_reconcile_adopts_current_claims_and_requeues_unlisted_ones(store: Store) -> None:
    """The first heartbeat: listed current claims adopted, strangers stale, unlisted lost."""
    holdings = holdings_for(store)
    kept, cancelled, unlisted = [await claim(store, p) for p in ("a", "b", "c")]
    other = await claim(store, "d", slave="s2")
    await store.jobs.cancel(cancelled.id, "stop")
    found = await holdings.reconcile(
        {
            kept.id: kept.lease,
            cancelled.id: cancelled.lease,
            other.id: other.lease,
            999: 1,
        }
    )
    assert sorted(found.stale) == sorted([(other.id, other.lease), (999, 1)])
    assert found.cancelled == [(cancelled.id, cancelled.lease)]
    assert holdings.job_ids() == sorted([kept.id, cancelled.id])
    running = await store.jobs.get(kept.id)
    assert running is not None and running.state is JobState.RUNNING
    lost = await store.jobs.get(unlisted.id)
    assert lost is not None and lost.state is JobState.QUEUED


async def test_forgotten_claims_are_remembered_for_a_while() -> None:
    """knows() answers for the last RECENT forgotten claims, not older ones."""
    holdings = Holdings("s1", None, None)  # type: ignore[arg-type]  # no store needed
    for job_id in range(RECENT + 1):
        holdings.forget(job_id, 1)
    assert not holdings.knows(0, 1) and holdings.knows(RECENT, 1)
