"""Dispatch: queued jobs to slaves with a free slot and the right image; the watchdog.

One dispatcher task wakes on ``kick()`` (a job was queued, a slot freed, a
slave connected) and hands out jobs until nothing more fits: each claim is an
atomic store transaction, each offer is queued on the slave's own session
without waiting for the slave, so a slow slave never stalls dispatch. Slaves
are served round-robin, one claim each per round, so a big slave does not
starve small ones while priorities still decide which job goes first.

The watchdog re-queues live jobs whose slave has been gone longer than the
reconnect grace (a slave that comes back in time keeps its jobs).
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import structlog

from master.bus import EventBus
from master.jobs import Job, JobState
from master.metrics import Metrics
from master.slaves.registry import SlaveLink, SlaveRegistry
from master.store import Store
from master.store.errors import InvalidTransition, StaleLease, StoreError

log = structlog.get_logger("master.scheduler")

#: Jobs claimed for one slave in one transaction, per dispatch round.
CLAIM_BATCH = 16


class Scheduler:
    """Owns the dispatcher and watchdog tasks (``run()`` until cancelled)."""

    def __init__(
        self,
        store: Store,
        registry: SlaveRegistry,
        bus: EventBus,
        metrics: Metrics,
        *,
        reconnect_grace: float,
        watchdog_interval: float,
    ) -> None:
        self._store = store
        self._registry = registry
        self._bus = bus
        self._grace = reconnect_grace
        self._interval = watchdog_interval
        self._wake = asyncio.Event()
        #: (job id, lease) -> when a connected slave was first seen not holding it.
        self._unheld: dict[tuple[int, int], float] = {}
        self._dispatched = metrics.counter("jobs_dispatched_total", "Jobs offered to a slave.")
        self._requeued = metrics.counter(
            "jobs_requeued_total", "Jobs put back in the queue.", ["reason"]
        )
        self._quarantined = metrics.counter(
            "jobs_quarantined_total",
            "Jobs quarantined after losing their slave or killing their VM repeatedly.",
        )

    def kick(self) -> None:
        """Ask the dispatcher to look for work (cheap, never blocks)."""
        self._wake.set()

    async def run(self) -> None:
        """Dispatch and watch until cancelled. A store error is logged and retried."""
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._dispatch_loop(), name="scheduler-dispatch")
            tg.create_task(self._watchdog_loop(), name="scheduler-watchdog")

    async def _dispatch_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self.dispatch()
            except StoreError as exc:
                log.error("dispatch_failed", error=str(exc))
                await asyncio.sleep(1.0)
                self._wake.set()

    async def dispatch(self) -> int:
        """Offer queued jobs to accepting slaves until nothing fits; the number offered.

        Each round gives every slave up to ``CLAIM_BATCH`` jobs (one transaction
        per slave), so slaves are served in turn and priorities decide which jobs.
        """
        offered = 0
        exhausted: set[str] = set()
        while True:
            round_offered = 0
            for link in self._registry:
                if link.name in exhausted or not link.accepting or link.free_slots <= 0:
                    continue
                want = min(link.free_slots, CLAIM_BATCH)
                jobs = await self._store.jobs.claim(link.name, link.images, want)
                if len(jobs) < want:
                    exhausted.add(link.name)
                for job in jobs:
                    if await self._offer(link, job):
                        round_offered += 1
            offered += round_offered
            if round_offered == 0:
                return offered

    async def _offer(self, link: SlaveLink, job: Job) -> bool:
        if link.offer(job):
            self._dispatched.inc()
            return True
        # The slave left between the claim and the offer: the job goes straight back.
        with contextlib.suppress(StaleLease, InvalidTransition):
            await self._store.jobs.release(job.id, job.lease, "slave left before the offer")
        return False

    async def cancel_job(self, job_id: int, reason: str) -> Job:
        """Cancel a job and tell its slave; raises ``JobNotFound``, ``InvalidTransition``.

        The cancel is committed before the slave is told; the slave answers with
        a ``cancelled`` result, which the store records as a duplicate.
        """
        job = await self._store.jobs.cancel(job_id, reason)
        if job.slave is not None:
            link = self._registry.get(job.slave)
            if link is not None and link.holds(job.id, job.lease):
                link.cancel(job.id, job.lease, reason)
        self._bus.publish_end(job)
        log.info("job_cancelled", job_id=job.id, reason=reason)
        self.kick()
        return job

    def note_quarantined(self, job: Job) -> None:
        """Count and log a job its slave's result quarantined (its VM died every time)."""
        self._quarantined.inc()
        log.warning("job_quarantined", job_id=job.id, slave=job.slave, reason=job.error)

    async def requeue_lost(self, job: Job, reason: str) -> Job | None:
        """Put a job whose slave is lost back in the queue (or quarantine it).

        Returns the job after the change, or None if it moved on meanwhile.
        """
        try:
            if job.state is JobState.ASSIGNED:
                after = await self._store.jobs.release(job.id, job.lease, reason, lost=True)
            else:
                after = await self._store.jobs.requeue(job.id, job.lease, reason, infra=True)
        except (StaleLease, InvalidTransition):
            return None
        if after.quarantined:
            self._quarantined.inc()
            self._bus.publish_end(after)
            log.warning("job_quarantined", job_id=job.id, slave=job.slave, reason=reason)
        else:
            self._requeued.inc(1.0, "slave_lost")
            log.info("job_requeued", job_id=job.id, slave=job.slave, reason=reason)
        self.kick()
        return after

    async def _watchdog_loop(self) -> None:
        while True:
            try:
                await self.watch_once()
            except StoreError as exc:
                log.error("watchdog_failed", error=str(exc))
            await asyncio.sleep(self._interval)

    async def watch_once(self) -> int:
        """Re-queue live jobs whose slave is gone past the grace; how many were.

        Also catches a claim a connected, reconciled slave does not hold (its
        offer was lost): after two passes, so a claim between commit and offer
        is not mistaken for one.
        """
        now = time.monotonic()
        count = 0
        seen: set[tuple[int, int]] = set()
        for job in await self._store.jobs.live():
            if job.slave is None:
                continue
            link = self._registry.get(job.slave)
            if link is not None:
                key = (job.id, job.lease)
                if not link.ready or link.holds(job.id, job.lease):
                    continue
                seen.add(key)
                first = self._unheld.setdefault(key, now)
                if now - first < self._interval:
                    continue
                reason = f"slave {job.slave} does not hold this claim"
            elif now - self._registry.gone_since(job.slave) < self._grace:
                continue
            else:
                reason = f"slave {job.slave} gone for more than {self._grace:g} s"
            if await self.requeue_lost(job, reason) is not None:
                count += 1
        self._unheld = {k: v for k, v in self._unheld.items() if k in seen}
        return count
