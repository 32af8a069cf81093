"""Fault table row 5: replayed, duplicated and foreign results never change a finished job."""

from __future__ import annotations

from typing import Any

from master.jobs import JobState
from protocol.messages import JobOffer, ResultAck
from tests.integration.conftest import Harness


async def _running_with_intruder(harness: Harness) -> tuple[Any, Any, Any, JobOffer]:
    """Slave ``owner`` running a job it accepted; slave ``intruder`` connected beside it."""
    owner = await harness.slave("owner")
    intruder = await harness.slave("intruder")
    job = await harness.submit()
    offer = await owner.next(JobOffer)
    await owner.accept(offer)
    await harness.until_job(job.id, lambda j: j.state is JobState.RUNNING)
    return owner, intruder, job, offer


async def test_result_for_a_job_the_slave_does_not_hold_is_refused_and_flagged(
    harness: Harness,
) -> None:
    """Another slave's result carrying the job's current (guessed) lease changes nothing."""
    owner, intruder, job, offer = await _running_with_intruder(harness)
    for guess in (offer.lease, offer.lease + 1, offer.lease - 1):
        await intruder.send_result(job.id, guess, "failed")
    await intruder.wait_for(lambda: len(intruder.inbox["result_ack"]) >= 3)
    still = await harness.job(job.id)
    assert still.state is JobState.RUNNING and still.slave == "owner"
    assert still.outcome is None
    attempts = await harness.ctx.store.jobs.attempts(job.id)
    assert [(a.slave, a.status, a.outcome) for a in attempts] == [("owner", "running", None)]
    flagged = harness.ctx.metrics.counter("slave_violations_total", "", ["slave", "kind"])
    assert flagged.value("intruder", "foreign_result") == 3
    results = harness.ctx.metrics.counter("job_results_total", "", ["disposition"])
    assert results.value("foreign") == 3
    await owner.send_result(job.id, offer.lease, "passed")
    await owner.next(ResultAck)
    done = await harness.until_job(job.id, lambda j: j.state is JobState.FINISHED)
    assert done.outcome == "passed"


async def test_replayed_and_foreign_results_never_change_a_finished_job(
    harness: Harness,
) -> None:
    """Once finished, a result replayed by its slave or sent by another slave is acked, ignored."""
    owner, intruder, job, offer = await _running_with_intruder(harness)
    await owner.send_result(job.id, offer.lease, "passed", summary={"tests_passed": 3})
    await owner.next(ResultAck)
    before = await harness.until_job(job.id, lambda j: j.state is JobState.FINISHED)
    history_before = await harness.ctx.store.jobs.attempts(job.id)
    owner.adopt(offer)
    for _ in range(3):  # replayed, duplicated, and a different outcome on the same lease
        await owner.send_result(job.id, offer.lease, "passed")
    await owner.send_result(job.id, offer.lease, "failed", summary={"tests_failed": 9})
    await owner.wait_for(lambda: len(owner.inbox["result_ack"]) >= 5)
    await intruder.send_result(job.id, offer.lease, "infra_error")
    await intruder.next(ResultAck)
    after = await harness.job(job.id)
    assert (after.state, after.outcome, after.verdict, after.finished_at) == (
        before.state,
        before.outcome,
        before.verdict,
        before.finished_at,
    )
    assert after.summary == before.summary
    assert await harness.ctx.store.jobs.attempts(job.id) == history_before
    results = harness.ctx.metrics.counter("job_results_total", "", ["disposition"])
    assert results.value("stored") == 1 and results.value("duplicate") == 4
    flagged = harness.ctx.metrics.counter("slave_violations_total", "", ["slave", "kind"])
    assert flagged.value("intruder", "foreign_result") == 1
    assert flagged.value("owner", "foreign_result") == 0
