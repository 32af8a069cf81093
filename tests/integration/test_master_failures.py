"""Failure paths on a real master: lost slaves, duplicates, stale leases, cancel, quarantine."""

from __future__ import annotations

from master.jobs import JobState
from protocol.messages import EventsAck, JobCancel, JobDrop, JobOffer, ResultAck, RunningJob
from tests.integration.conftest import Harness


async def test_slave_lost_mid_job_requeues_it_after_the_grace(harness: Harness) -> None:
    """A running job whose slave dies goes back to the queue (attempt + 1) and runs elsewhere."""
    doomed = await harness.slave("doomed")
    job = await harness.submit()
    offer = await doomed.next(JobOffer)
    await doomed.accept(offer)
    await doomed.send_events(job.id, offer.lease, 3)
    await doomed.next(EventsAck)
    await harness.until_job(job.id, lambda j: j.state is JobState.RUNNING)
    await doomed.kill()
    requeued = await harness.until_job(job.id, lambda j: j.state is not JobState.RUNNING)
    assert requeued.state is JobState.QUEUED and requeued.attempt == 2
    rescuer = await harness.slave("rescuer")
    again = await rescuer.next(JobOffer)
    assert again.attempt == 2 and again.lease > offer.lease and again.first_seq == 4
    attempts = await harness.ctx.store.jobs.attempts(job.id)
    assert [(a.slave, a.status) for a in attempts] == [("doomed", "lost"), ("rescuer", "assigned")]


async def test_slave_back_within_grace_keeps_its_job(harness: Harness) -> None:
    """A slave that reconnects in time and lists the job keeps it under the same lease."""
    first = await harness.slave("s1")
    job = await harness.submit()
    offer = await first.next(JobOffer)
    await first.accept(offer)
    await harness.until_job(job.id, lambda j: j.state is JobState.RUNNING)
    await first.kill()
    back = await harness.slave(
        "s1", running=[RunningJob(job_id=job.id, lease=offer.lease, last_seq=0)]
    )
    back.adopt(offer)
    await back.send_events(job.id, offer.lease, 2)
    assert (await back.next(EventsAck)).seq == 2
    await back.send_result(job.id, offer.lease, "failed", last_seq=2)
    await back.next(ResultAck)
    done = await harness.job(job.id)
    assert done.state is JobState.FINISHED and done.outcome == "failed" and done.attempt == 1


async def test_duplicate_event_batches_are_stored_once(harness: Harness) -> None:
    """A batch re-sent (after a lost ack) is acked again and stored only once."""
    slave = await harness.slave("s1", mode="accept")
    job = await harness.submit()
    offer = await slave.next(JobOffer)
    await harness.until_job(job.id, lambda j: j.state is JobState.RUNNING)
    batch = await slave.send_events(job.id, offer.lease, 4)
    await slave.send_events(job.id, offer.lease, batch)
    await slave.send_events(job.id, offer.lease, batch[2:])
    await slave.wait_for(lambda: len(slave.inbox["events_ack"]) == 3)
    assert [a.seq for a in slave.inbox["events_ack"]] == [4, 4, 4]  # type: ignore[attr-defined]
    rows = await harness.ctx.store.events.read(job.id)
    assert [r.seq for r in rows] == [1, 2, 3, 4]
    assert harness.ctx.metrics.counter("events_stored_total", "").value() == 4


async def test_stale_attempt_is_dropped_and_its_result_only_recorded(harness: Harness) -> None:
    """After a re-queue, the old slave's events are refused with job_drop and its result
    lands in the attempt history without touching the new attempt."""
    old = await harness.slave("old")
    job = await harness.submit()
    stale = await old.next(JobOffer)
    await old.accept(stale)
    await harness.until_job(job.id, lambda j: j.state is JobState.RUNNING)
    await old.kill()
    await harness.until_job(job.id, lambda j: j.state is JobState.QUEUED)
    new = await harness.slave("new", mode="accept")
    current = await new.next(JobOffer)
    await harness.until_job(job.id, lambda j: j.state is JobState.RUNNING)
    # The old slave comes back still believing it runs the job.
    ghost = await harness.slave(
        "old", running=[RunningJob(job_id=job.id, lease=stale.lease, last_seq=0)]
    )
    drop = await ghost.next(JobDrop)
    assert (drop.job_id, drop.lease) == (job.id, stale.lease)
    ghost.adopt(stale)
    await ghost.send_events(job.id, stale.lease, 2)
    await ghost.wait_for(lambda: len(ghost.inbox["job_drop"]) >= 2)
    await ghost.send_result(job.id, stale.lease, "failed")
    await ghost.next(ResultAck)
    assert await harness.ctx.store.events.read(job.id) == []
    stale_counter = harness.ctx.metrics.counter("stale_lease_rejected_total", "", ["kind"])
    assert stale_counter.value("events") == 1 and stale_counter.value("heartbeat") == 1
    after = await harness.job(job.id)
    assert after.state is JobState.RUNNING and after.lease == current.lease
    history = {a.lease: a for a in await harness.ctx.store.jobs.attempts(job.id)}
    assert history[stale.lease].status == "stale_result"
    assert history[stale.lease].outcome == "failed"
    assert history[current.lease].outcome is None


async def test_cancel_reaches_the_slave_and_its_report_is_absorbed(harness: Harness) -> None:
    """Cancelling a running job sends job_cancel; the slave's cancelled result is acked."""
    slave = await harness.slave("s1", mode="accept")
    job = await harness.submit()
    offer = await slave.next(JobOffer)
    await harness.until_job(job.id, lambda j: j.state is JobState.RUNNING)
    with harness.ctx.bus.subscribe_ends() as ends:
        cancelled = await harness.ctx.scheduler.cancel_job(job.id, "user asked")
        assert cancelled.state is JobState.CANCELLED
        assert (await ends.get()).id == job.id
    msg = await slave.next(JobCancel)
    assert (msg.job_id, msg.lease, msg.reason) == (job.id, offer.lease, "user asked")
    await slave.send_result(job.id, offer.lease, "cancelled")
    await slave.next(ResultAck)
    final = await harness.job(job.id)
    assert final.state is JobState.CANCELLED and final.outcome == "cancelled"
    await harness.until(lambda: harness.ctx.slaves.list()[0].busy == 0)


async def test_job_killing_its_slave_repeatedly_is_quarantined(harness: Harness) -> None:
    """After quarantine_after lost slaves in a row the job is final: infra_error, quarantined."""
    job = await harness.submit("killer")
    for attempt in (1, 2):
        victim = await harness.slave(f"victim{attempt}")
        offer = await victim.next(JobOffer)
        assert offer.attempt == attempt
        await victim.accept(offer)
        await harness.until_job(job.id, lambda j: j.state is JobState.RUNNING)
        await victim.kill()
        await harness.until_job(job.id, lambda j: j.state is not JobState.RUNNING)
    final = await harness.job(job.id)
    assert final.state is JobState.FINISHED and final.outcome == "infra_error"
    assert final.quarantined and "quarantined" in (final.error or "")
    bystander = await harness.slave("bystander")
    await harness.submit("innocent")
    assert (await bystander.next(JobOffer)).project == "innocent"


async def test_infra_error_result_is_retried_once_then_final(harness: Harness) -> None:
    """An infra_error result re-queues the job up to retry_limit; package failures never."""
    slave = await harness.slave("s1")
    job = await harness.submit()
    for attempt, expect in ((1, JobState.QUEUED), (2, JobState.FINISHED)):
        offer = await slave.take(JobOffer)
        assert offer.attempt == attempt
        await slave.accept(offer)
        await slave.send_result(job.id, offer.lease, "infra_error")
        await slave.take(ResultAck)
        if expect is JobState.FINISHED:
            assert (await harness.job(job.id)).outcome == "infra_error"
    # Both results count towards the infra_error rate (the re-queued one too).
    assert 'pyti_job_outcomes_total{outcome="infra_error"} 2' in await harness.ctx.metrics.render()


async def test_job_whose_vm_dies_on_every_retry_is_quarantined(harness: Harness) -> None:
    """infra_error results whose VM died: retried up to retry_limit, then final and
    quarantined "kills its VM", counted; one whose VM did not die is final, not quarantined."""
    slave = await harness.slave("s1")
    died = {"error": "the VM died: QEMU was killed by signal 9 (SIGKILL); ...",
            "vm_exit": "QEMU was killed by signal 9 (SIGKILL)"}  # fmt: skip
    for project, summary in (("vmkiller", died), ("flaky", {"error": "index down"})):
        job = await harness.submit(project)
        for attempt in (1, 2):
            offer = await slave.take(JobOffer)
            assert (offer.job_id, offer.attempt) == (job.id, attempt)
            await slave.accept(offer)
            await slave.send_result(job.id, offer.lease, "infra_error", summary=summary)
            await slave.take(ResultAck)
        final = await harness.job(job.id)
        assert final.state is JobState.FINISHED and final.outcome == "infra_error"
        statuses = [a.status for a in await harness.ctx.store.jobs.attempts(job.id)]
        if project == "vmkiller":
            assert final.quarantined and statuses == ["retried", "quarantined"]
            assert (final.error or "").startswith(
                "quarantined: kills its VM (2 attempts, last: QEMU was killed by signal 9"
            ), final.error
        else:
            assert not final.quarantined and statuses == ["retried", "finished"]
            assert final.error == "index down"
    assert "pyti_jobs_quarantined_total 1" in await harness.ctx.metrics.render()


async def test_claim_a_connected_slave_never_got_is_requeued(harness: Harness) -> None:
    """A claim recorded for a connected slave that does not hold it (offer lost) is put
    back by the watchdog and offered again."""
    slave = await harness.slave("s1")
    await harness.submit()
    await slave.take(JobOffer)  # the real offer, left unanswered: the slot stays busy
    job2 = await harness.submit("orphan")
    orphan = await harness.ctx.store.jobs.claim_next("s1", ["bookworm"])  # never offered
    assert orphan is not None and orphan.id == job2.id
    back = await harness.until_job(job2.id, lambda j: j.lease != orphan.lease)
    assert back.attempt == 1 and back.slave_losses == 1
    statuses = [a.status for a in await harness.ctx.store.jobs.attempts(job2.id)]
    assert statuses[0] == "lost"
