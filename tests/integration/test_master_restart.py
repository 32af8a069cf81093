"""Master restarts over the same database: every job state survives and is picked up."""

from __future__ import annotations

from pathlib import Path

from master.jobs import JobRequest, JobState
from master.store import Store
from protocol.messages import EventsAck, JobOffer, ResultAck, RunningJob
from tests.integration.conftest import Harness, make_config


def _req(project: str) -> JobRequest:
    return JobRequest(project, "1.0", [], "bookworm")


async def test_restart_with_jobs_in_every_state(tmp_path: Path) -> None:
    """Queued, assigned, running, finished and cancelled jobs come back right after a restart:
    the running one is adopted by its returning slave, the orphaned assignment re-queued."""
    config = make_config(tmp_path)
    store = await Store.open(config.db_path)
    ids: dict[str, int] = {}
    ids["finished"] = (await store.jobs.submit(_req("finished"))).job.id
    c = await store.jobs.claim_next("gone", ["bookworm"])
    assert c is not None
    await store.jobs.start(c.id, c.lease)
    await store.jobs.finish(c.id, c.lease, _result(c.id, c.lease))
    ids["running"] = (await store.jobs.submit(_req("running"))).job.id
    running = await store.jobs.claim_next("s1", ["bookworm"])
    assert running is not None
    await store.jobs.start(running.id, running.lease)
    await store.events.add(running.id, running.lease, [])
    ids["assigned"] = (await store.jobs.submit(_req("assigned"))).job.id
    assigned = await store.jobs.claim_next("gone", ["bookworm"])
    assert assigned is not None and assigned.id == ids["assigned"]
    ids["cancelled"] = (await store.jobs.submit(_req("cancelled"))).job.id
    await store.jobs.cancel(ids["cancelled"], "no")
    ids["queued"] = (await store.jobs.submit(_req("queued"))).job.id
    await store.close()

    harness = Harness(config)
    await harness.start()
    try:
        s1 = await harness.slave(
            "s1",
            slots=3,
            running=[RunningJob(job_id=running.id, lease=running.lease, last_seq=0)],
        )
        # The returning slave keeps its job; the queued one is offered to its free slot.
        offer = await s1.next(JobOffer)
        assert offer.job_id == ids["queued"]
        kept = await harness.job(ids["running"])
        assert kept.state is JobState.RUNNING and kept.lease == running.lease
        # The assignment of a slave that never returns is re-queued after the grace.
        back = await harness.until_job(ids["assigned"], lambda j: j.lease != assigned.lease)
        assert back.attempt == 1  # never accepted: not an attempt
        await s1.wait_for(lambda: len(s1.inbox["job_offer"]) == 2)
        assert s1.inbox["job_offer"][1].job_id == ids["assigned"]  # type: ignore[attr-defined]
        assert (await harness.job(ids["finished"])).outcome == "passed"
        assert (await harness.job(ids["cancelled"])).state is JobState.CANCELLED
        # The adopted job finishes normally under its old lease.
        s1.adopt(_offer(running.id, running.lease))
        await s1.send_events(running.id, running.lease, 2)
        assert (await s1.next(EventsAck)).seq == 2
        await s1.send_result(running.id, running.lease, "passed", last_seq=2)
        await s1.next(ResultAck)
        assert (await harness.job(ids["running"])).state is JobState.FINISHED
    finally:
        await harness.stop()


async def test_restart_keeps_acknowledged_events_and_rising_seqs(harness: Harness) -> None:
    """Events acked before a restart are there after it; the next attempt continues the seqs."""
    slave = await harness.slave("s1", mode="accept")
    job = await harness.submit()
    offer = await slave.next(JobOffer)
    await slave.send_events(job.id, offer.lease, 7)
    assert (await slave.next(EventsAck)).seq == 7
    await harness.restart()  # graceful: the job is re-queued after the drain grace
    requeued = await harness.job(job.id)
    assert requeued.state is JobState.QUEUED and requeued.attempt == 2
    assert [r.seq for r in await harness.ctx.store.events.read(job.id)] == list(range(1, 8))
    again = await harness.slave("s2")
    offer2 = await again.next(JobOffer)
    assert offer2.first_seq == 8 and offer2.attempt == 2


def _result(job_id: int, lease: int):  # type: ignore[no-untyped-def]
    from protocol.messages import JobResult
    from protocol.vocabulary import Outcome

    return JobResult(
        job_id=job_id, lease=lease, outcome=Outcome.PASSED, isolation="tcg", last_seq=0
    )


def _offer(job_id: int, lease: int) -> JobOffer:
    return JobOffer(
        job_id=job_id,
        lease=lease,
        attempt=1,
        project="running",
        version="1.0",
        image="bookworm",
        files=(),
    )
