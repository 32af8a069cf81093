"""Fault table row 12: slaves whose clocks are ±10 min off keep their leases."""

from __future__ import annotations

import asyncio
import time

from master.jobs import JobState
from protocol.messages import EventsAck, JobOffer, ResultAck
from tests.integration.conftest import FAST, Harness

SKEW = 600.0


async def test_leases_are_judged_by_the_master_clock_only(harness: Harness) -> None:
    """Jobs on slaves 10 min ahead and 10 min behind outlive the heartbeat timeout plus
    the grace with no re-lease, and finish on their first attempt."""
    ahead = await harness.slave("ahead", clock_skew=SKEW)
    behind = await harness.slave("behind", clock_skew=-SKEW)
    first = await harness.submit("one")
    second = await harness.submit("two")
    held = {}
    for slave in (ahead, behind):
        offer = await slave.next(JobOffer)
        await slave.accept(offer)
        held[slave.name] = (slave, offer)
    for job in (first, second):
        await harness.until_job(job.id, lambda j: j.state is JobState.RUNNING)
    wall = time.time()
    # Twice what a lost slave is given before its job is re-queued.
    await asyncio.sleep(2 * (FAST["heartbeat_timeout"] + FAST["reconnect_grace"]))
    for slave, offer in held.values():
        await slave.send_events(offer.job_id, offer.lease, 2)
        await slave.next(EventsAck)
        await slave.send_result(offer.job_id, offer.lease, "passed", last_seq=2)
        await slave.next(ResultAck)
    for job in (first, second):
        done = await harness.until_job(job.id, lambda j: j.state is JobState.FINISHED)
        assert (done.outcome, done.attempt) == ("passed", 1)
        attempts = await harness.ctx.store.jobs.attempts(job.id)
        assert [a.status for a in attempts] == ["finished"]
        assert done.finished_at is not None and abs(done.finished_at - time.time()) < 60
    stale = harness.ctx.metrics.counter("stale_lease_rejected_total", "", ["kind"])
    assert all(stale.value(kind) == 0 for kind in ("events", "heartbeat", "accept"))
    for info in harness.ctx.slaves.list():  # what GET /api/v1/slaves shows
        assert info.last_heartbeat is not None
        assert abs(info.last_heartbeat - wall) < 60  # the master's clock, not theirs
