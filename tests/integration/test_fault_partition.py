"""Fault table row 2: a silent partition (a relay that stops forwarding, closes nothing)."""

from __future__ import annotations

import re
import time

from master.jobs import JobState
from protocol.messages import EventsAck, JobDrop, JobOffer, ResultAck, RunningJob
from tests.fakes.relay import Relay
from tests.integration.conftest import Harness


def _metric(text: str, name: str) -> float:
    """One sample of the /metrics text (0 when absent)."""
    m = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


async def test_silent_partition_re_leases_and_refuses_the_stale_holder(harness: Harness) -> None:
    """Cut off past the lease, the job runs elsewhere; the old slave's stale events and
    result are refused and counted when it comes back; the job gets one verdict."""
    relay = Relay(harness.port)
    await relay.start()
    try:
        old = await harness.slave("old", port=relay.port)
        job = await harness.submit()
        offer = await old.next(JobOffer)
        await old.accept(offer)
        await old.send_events(job.id, offer.lease, 3)
        await old.next(EventsAck)
        await harness.until_job(job.id, lambda j: j.state is JobState.RUNNING)

        relay.partition()
        cut = time.monotonic()
        await old.send_events(job.id, offer.lease, 2)  # held in the relay
        await harness.until_job(job.id, lambda j: j.state is JobState.QUEUED, timeout=10)
        requeued_after = time.monotonic() - cut
        rescuer = await harness.slave("rescuer")
        current = await rescuer.next(JobOffer)
        assert current.lease > offer.lease and current.attempt == 2 and current.first_seq == 4
        await rescuer.accept(current)
        await harness.until_job(job.id, lambda j: j.state is JobState.RUNNING)

        relay.heal()  # the held frames reach a connection the master has closed
        ghost = await harness.slave(
            "old",
            port=relay.port,
            running=[RunningJob(job_id=job.id, lease=offer.lease, last_seq=5)],
        )
        await ghost.next(JobDrop)
        ghost.adopt(offer, next_seq=4)
        await ghost.send_events(job.id, offer.lease, 2)
        await ghost.wait_for(lambda: len(ghost.inbox["job_drop"]) >= 2)
        await ghost.send_result(job.id, offer.lease, "failed", last_seq=5)
        await ghost.next(ResultAck)

        await rescuer.send_events(job.id, current.lease, 2)
        await rescuer.next(EventsAck)
        await rescuer.send_result(job.id, current.lease, "passed", last_seq=5)
        await rescuer.next(ResultAck)
        done = await harness.until_job(job.id, lambda j: j.state is JobState.FINISHED)
    finally:
        await relay.close()

    assert done.outcome == "passed" and done.slave == "rescuer" and done.attempt == 2
    assert 1.5 <= requeued_after < 6.0, requeued_after  # heartbeat timeout + grace
    events = await harness.ctx.store.events.read(job.id)
    assert [e.seq for e in events] == [1, 2, 3, 4, 5]
    text = await harness.ctx.metrics.render()
    assert _metric(text, 'pyti_stale_lease_rejected_total{kind="events"}') == 1
    assert _metric(text, 'pyti_stale_lease_rejected_total{kind="heartbeat"}') == 1
    assert _metric(text, 'pyti_job_results_total{disposition="stale"}') == 1
    assert _metric(text, 'pyti_job_results_total{disposition="stored"}') == 1
    history = {a.lease: a for a in await harness.ctx.store.jobs.attempts(job.id)}
    assert (history[offer.lease].slave, history[offer.lease].status) == ("old", "stale_result")
    assert history[current.lease].status == "finished"
    print(f"partition: job re-queued {requeued_after:.2f} s after the cut")
