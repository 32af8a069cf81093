"""What each message from a slave does, and what its heartbeats say.

``SlaveHandlers.process`` is called by the session's processor task only, one
message at a time in arrival order: an acknowledgement is sent only after what
it acknowledges is committed. Two things happen earlier, on the session's
reader task, because they must not wait behind the pipeline:
``early_commit`` starts committing an event batch of a claim the slave holds
(so many slaves share one group commit), and ``heartbeat`` updates the
``SlaveStatus`` once the slave is reconciled.

The handlers reach the session only through ``Peer`` (its name, an ordered
``send`` and a non-blocking ``post``) and the slave's claims only through its
``Holdings``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import structlog

from master.jobs import EventsStored, FinishDisposition
from master.slaves.holdings import Holdings
from master.store.errors import InvalidTransition, JobNotFound, StaleLease
from protocol.messages import (
    Events,
    EventsAck,
    Heartbeat,
    JobAccept,
    JobCancel,
    JobDrop,
    JobRefuse,
    JobResult,
    Message,
    ResultAck,
)

if TYPE_CHECKING:
    from master.context import MasterContext


class Peer(Protocol):
    """What the handlers need of the session that owns them."""

    @property
    def name(self) -> str: ...

    async def send(self, msg: Message) -> None:
        """Send now, in processing order; raises ``ConnectionClosed``."""
        ...

    def post(self, msg: Message) -> bool:
        """Queue for the sender without waiting; False if the session is closing."""
        ...


@dataclass(slots=True)
class SlaveStatus:
    """What a slave's heartbeats and replies say about giving it work."""

    ready: bool = False  # its first heartbeat is reconciled
    backoff: bool = False  # it refused an offer: no more until its next heartbeat
    draining: bool = False  # it says it drains
    drain_requested: bool = False  # the master asked it to drain
    last_heartbeat: float | None = None
    reported_free: int | None = None
    disk_short: bool = False  # its work dir is under its min_free_mb: offer it nothing

    @property
    def accepting(self) -> bool:
        return self.ready and not (
            self.backoff or self.draining or self.drain_requested or self.disk_short
        )


class SlaveHandlers:
    """The message handlers of one slave session."""

    def __init__(
        self, ctx: MasterContext, peer: Peer, holdings: Holdings, status: SlaveStatus
    ) -> None:
        self._ctx = ctx
        self._peer = peer
        self._holdings = holdings
        self._status = status
        self._log = structlog.get_logger("master.slave").bind(slave=peer.name)
        m = ctx.metrics
        self._m_events = m.counter("events_stored_total", "Events stored (new rows).")
        self._m_batches = m.counter("event_batches_total", "Event batches received.")
        self._m_stale = m.counter(
            "stale_lease_rejected_total", "Messages rejected for a stale lease.", ["kind"]
        )
        self._m_store = m.histogram(
            "event_store_seconds", "From an event batch received to it committed."
        )
        self._m_results = m.counter("job_results_total", "Results received.", ["disposition"])
        self._m_outcomes = m.counter(
            "job_outcomes_total",
            "Results stored or re-queued, by the outcome the slave reported.",
            ["outcome"],
        )
        self._m_cache = m.gauge(
            "slave_cache_bytes", "Bytes in a slave's download cache (its heartbeats).", ["slave"]
        )
        self._m_evicted = m.gauge(
            "slave_cache_evicted_bytes",
            "Bytes a slave's cache bound evicted since the slave started (its heartbeats).",
            ["slave"],
        )
        self._m_disk_short = m.gauge(
            "slave_disk_short",
            "1 while a slave's work dir is under its min_free_mb (it takes no job).",
            ["slave"],
        )
        self._m_disk_short_total = m.counter(
            "slave_disk_short_total",
            "Times a slave's heartbeats began to say its work dir is under its min_free_mb.",
            ["slave"],
        )
        self._m_refusals = m.counter(
            "job_refusals_total",
            "Job offers a slave refused (no free slot, draining, its work dir nearly full...).",
            ["slave"],
        )
        self._m_violations = m.counter(
            "slave_violations_total",
            "Messages a slave had no right to send (a result for a lease it never held).",
            ["slave", "kind"],
        )

    # ------------------------------------------------------- reader side ----

    def early_commit(self, msg: Events) -> Coroutine[Any, Any, EventsStored] | None:
        """Count a batch as it arrives; for a claim the slave holds, the coroutine
        that commits it (the session runs it as a task and hands it to ``process``)."""
        self._m_batches.inc()
        if self._holdings.holds(msg.job_id, msg.lease):
            return self._store_batch(msg)
        return None

    def heartbeat(self, hb: Heartbeat) -> None:
        """Note a heartbeat; once reconciled, tell the slave to drop claims it does not hold."""
        status = self._status
        status.last_heartbeat = time.time()
        status.reported_free = hb.free_slots
        self._m_cache.set(hb.cache_bytes, self._peer.name)
        self._m_evicted.set(hb.cache_evicted_bytes, self._peer.name)
        if hb.disk_short and not status.disk_short:
            self._m_disk_short_total.inc(1, self._peer.name)
            self._log.warning("slave_disk_short")
        elif status.disk_short and not hb.disk_short:
            self._log.info("slave_disk_recovered")
            self._ctx.scheduler.kick()
        status.disk_short = hb.disk_short
        self._m_disk_short.set(int(hb.disk_short), self._peer.name)
        was_draining = status.draining
        status.draining = hb.draining
        if status.backoff or (was_draining and not hb.draining):
            status.backoff = False
            self._ctx.scheduler.kick()
        if not status.ready:
            return
        for r in hb.running:
            if not self._holdings.knows(r.job_id, r.lease):
                self._peer.post(JobDrop(job_id=r.job_id, lease=r.lease, reason="unknown lease"))

    # --------------------------------------------------- processor side ----

    async def process(self, msg: Message, stored: asyncio.Task[EventsStored] | None) -> None:
        """Handle one message (events, result, accept, refuse, the first heartbeat).

        ``stored`` is the task started from ``early_commit`` for this batch, if
        any. Raises ``StoreError`` (nothing was acknowledged) and
        ``ConnectionClosed`` (the answer is lost; the slave re-sends).
        """
        match msg:
            case Events():
                await self.on_events(msg, stored)
            case JobResult():
                await self.on_result(msg)
            case JobAccept():
                await self.on_accept(msg)
            case JobRefuse():
                await self.on_refuse(msg)
            case Heartbeat() if not self._status.ready:
                await self.reconcile(msg)

    async def on_events(self, msg: Events, stored: asyncio.Task[EventsStored] | None) -> None:
        if stored is None:
            # Not a claim we know of: only the store can say whether it is current.
            job = await self._ctx.store.jobs.get(msg.job_id)
            if job is None or job.slave != self._peer.name:
                await self.reject(msg.job_id, msg.lease, "events")
                return
            batch = await self._commit(self._store_batch(msg))
        else:
            batch = await self._commit(stored)
        if batch is None:
            await self.reject(msg.job_id, msg.lease, "events")
            return
        if batch.new:
            self._m_events.inc(len(batch.new))
            self._ctx.bus.publish(msg.job_id, batch.new)
        await self._peer.send(EventsAck(job_id=msg.job_id, lease=msg.lease, seq=batch.acked))

    async def on_result(self, msg: JobResult) -> None:
        log = self._log.bind(job_id=msg.job_id, lease=msg.lease)
        store = self._ctx.store
        try:
            disposition = await store.jobs.finish(msg.job_id, msg.lease, msg, slave=self._peer.name)
        except JobNotFound:
            disposition = FinishDisposition.FOREIGN
        self._m_results.inc(1.0, disposition.value)
        if disposition is FinishDisposition.FOREIGN:
            # Acked so that it is not re-sent; the slave is flagged, the job untouched.
            self._m_violations.inc(1.0, self._peer.name, "foreign_result")
            log.warning("foreign_result_refused", outcome=msg.outcome)
            await self._peer.send(ResultAck(job_id=msg.job_id, lease=msg.lease))
            return
        if disposition in (FinishDisposition.STORED, FinishDisposition.REQUEUED):
            self._m_outcomes.inc(1.0, str(msg.outcome))
        self._holdings.forget(msg.job_id, msg.lease)
        if disposition is FinishDisposition.STORED:
            job = await store.jobs.get(msg.job_id)
            if job is not None:
                if job.event_seq < msg.last_seq:
                    log.warning("result_before_events", stored=job.event_seq, last=msg.last_seq)
                self._ctx.bus.publish_end(job)
                if job.quarantined:
                    self._ctx.scheduler.note_quarantined(job)
            log.info("job_finished", outcome=msg.outcome, isolation=msg.isolation)
        else:
            log.info("job_result", disposition=disposition.value, outcome=msg.outcome)
        await self._peer.send(ResultAck(job_id=msg.job_id, lease=msg.lease))
        self._ctx.scheduler.kick()

    async def on_accept(self, msg: JobAccept) -> None:
        if not self._holdings.holds(msg.job_id, msg.lease):
            self._log.info("stale_accept", job_id=msg.job_id, lease=msg.lease)
            return  # a reply for a stale lease is ignored (the spec)
        try:
            await self._ctx.store.jobs.start(msg.job_id, msg.lease)
        except StaleLease:
            await self.reject(msg.job_id, msg.lease, "accept")
            return
        except InvalidTransition:
            pass  # cancelled meanwhile: the slave has been told and will report it
        self._holdings.mark_running(msg.job_id, msg.lease)
        self._log.info("job_accepted", job_id=msg.job_id, lease=msg.lease)

    async def on_refuse(self, msg: JobRefuse) -> None:
        if not self._holdings.holds(msg.job_id, msg.lease):
            return
        self._status.backoff = True
        reason = msg.reason[:200]
        self._m_refusals.inc(1.0, self._peer.name)
        await self._holdings.hand_back(msg.job_id, msg.lease, f"refused: {reason}")
        self._log.info("job_refused", job_id=msg.job_id, reason=reason)
        self._ctx.scheduler.kick()

    async def reconcile(self, hb: Heartbeat) -> None:
        """The first heartbeat: adopt the claims the slave still runs, drop the others."""
        found = await self._holdings.reconcile({r.job_id: r.lease for r in hb.running})
        for job_id, lease in found.stale:
            await self.reject(job_id, lease, "heartbeat")
        for job_id, lease in found.cancelled:
            await self._peer.send(JobCancel(job_id=job_id, lease=lease, reason="cancelled"))
        self._status.ready = True
        self._ctx.scheduler.kick()

    async def reject(self, job_id: int, lease: int, kind: str) -> None:
        """The slave spoke for a lease it does not hold: forget it, tell it to drop the job."""
        self._m_stale.inc(1.0, kind)
        self._log.info("stale_lease_rejected", job_id=job_id, lease=lease, kind=kind)
        self._holdings.forget(job_id, lease)
        await self._peer.send(JobDrop(job_id=job_id, lease=lease, reason="stale lease"))

    # ----------------------------------------------------------- helpers ----

    async def _store_batch(self, msg: Events) -> EventsStored:
        started = time.monotonic()
        stored = await self._ctx.store.events.save(msg.job_id, msg.lease, msg.events)
        self._m_store.observe(time.monotonic() - started)
        return stored

    @staticmethod
    async def _commit(
        batch: asyncio.Task[EventsStored] | Coroutine[Any, Any, EventsStored],
    ) -> EventsStored | None:
        """The stored batch, or None for a stale lease."""
        try:
            return await batch
        except StaleLease:
            return None
