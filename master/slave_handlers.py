"""What a slave session does with each message from its slave, in arrival order.

Called by the session's processor task only (``SlaveSession._process_loop``),
one message at a time: an acknowledgement is sent only after what it
acknowledges is committed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from master.jobs import EventsStored, FinishDisposition, JobState
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
    from master.slave_session import SlaveSession


@dataclass
class Held:
    """A claim this slave holds: offered (not yet accepted) or running."""

    lease: int
    running: bool


async def process(s: SlaveSession, msg: Message, task: asyncio.Task[EventsStored] | None) -> None:
    """Handle one message from the slave (events, result, accept, refuse, first heartbeat)."""
    match msg:
        case Events():
            await on_events(s, msg, task)
        case JobResult():
            await on_result(s, msg)
        case JobAccept():
            await on_accept(s, msg)
        case JobRefuse():
            await on_refuse(s, msg)
        case Heartbeat() if not s.ready:
            await reconcile(s, msg)


async def on_events(s: SlaveSession, msg: Events, task: Awaitable[EventsStored] | None) -> None:
    if task is None:
        # Not a claim we know of: only the store can say whether it is current.
        job = await s.ctx.store.jobs.get(msg.job_id)
        if job is None or job.slave != s.name:
            await reject(s, msg.job_id, msg.lease, "events")
            return
        task = s.store_batch(msg)
    try:
        stored = await task
    except StaleLease:
        await reject(s, msg.job_id, msg.lease, "events")
        return
    if stored.new:
        s._m_events.inc(len(stored.new))
        s.ctx.bus.publish(msg.job_id, stored.new)
    await s._send(EventsAck(job_id=msg.job_id, lease=msg.lease, seq=stored.acked))


async def reject(s: SlaveSession, job_id: int, lease: int, kind: str) -> None:
    s._m_stale.inc(1.0, kind)
    s.log.info("stale_lease_rejected", job_id=job_id, lease=lease, kind=kind)
    s._forget(job_id, lease)
    await s._send(JobDrop(job_id=job_id, lease=lease, reason="stale lease"))


async def on_result(s: SlaveSession, msg: JobResult) -> None:
    log = s.log.bind(job_id=msg.job_id, lease=msg.lease)
    try:
        disposition = await s.ctx.store.jobs.finish(msg.job_id, msg.lease, msg)
    except JobNotFound:
        disposition = FinishDisposition.STALE
    s._m_results.inc(1.0, disposition.value)
    s._forget(msg.job_id, msg.lease)
    if disposition is FinishDisposition.STORED:
        job = await s.ctx.store.jobs.get(msg.job_id)
        if job is not None:
            if job.event_seq < msg.last_seq:
                log.warning("result_before_events", stored=job.event_seq, last=msg.last_seq)
            s.ctx.bus.publish_end(job)
        log.info("job_finished", outcome=msg.outcome, isolation=msg.isolation)
    else:
        log.info("job_result", disposition=disposition.value, outcome=msg.outcome)
    await s._send(ResultAck(job_id=msg.job_id, lease=msg.lease))
    s.ctx.scheduler.kick()


async def on_accept(s: SlaveSession, msg: JobAccept) -> None:
    held = s.jobs.get(msg.job_id)
    if held is None or held.lease != msg.lease:
        s.log.info("stale_accept", job_id=msg.job_id, lease=msg.lease)
        return  # a reply for a stale lease is ignored (the spec)
    try:
        await s.ctx.store.jobs.start(msg.job_id, msg.lease)
    except StaleLease:
        await reject(s, msg.job_id, msg.lease, "accept")
        return
    except InvalidTransition:
        pass  # cancelled meanwhile: the slave has been told and will report it
    held.running = True
    s.log.info("job_accepted", job_id=msg.job_id, lease=msg.lease)


async def on_refuse(s: SlaveSession, msg: JobRefuse) -> None:
    if not s.holds(msg.job_id, msg.lease):
        return
    s._forget(msg.job_id, msg.lease)
    s.backoff = True
    with contextlib.suppress(StaleLease, InvalidTransition):
        await s.ctx.store.jobs.release(msg.job_id, msg.lease, f"refused: {msg.reason[:200]}")
    s.log.info("job_refused", job_id=msg.job_id, reason=msg.reason[:200])
    s.ctx.scheduler.kick()


async def reconcile(s: SlaveSession, hb: Heartbeat) -> None:
    """The first heartbeat: adopt the claims the slave still runs, drop the others."""
    listed = {r.job_id: r.lease for r in hb.running}
    for job_id, lease in listed.items():
        job = await s.ctx.store.jobs.get(job_id)
        if job is None or job.slave != s.name or job.lease != lease:
            await reject(s, job_id, lease, "heartbeat")
            continue
        if job.state is JobState.CANCELLED:
            s.jobs[job_id] = Held(lease, running=True)
            s.idle.clear()
            await s._send(JobCancel(job_id=job_id, lease=lease, reason="cancelled"))
        elif job.state in (JobState.ASSIGNED, JobState.RUNNING):
            s.jobs[job_id] = Held(lease, running=True)
            s.idle.clear()
            with contextlib.suppress(StaleLease, InvalidTransition):
                await s.ctx.store.jobs.start(job_id, lease)
            s.log.info("job_adopted", job_id=job_id, lease=lease)
        # finished with this lease: its result is on the way (re-sent); nothing to do
    for job in await s.ctx.store.jobs.live(s.name):
        if job.id not in listed:
            await s.ctx.scheduler.requeue_lost(job, "slave came back without it")
    s.ready = True
    s.ctx.scheduler.kick()
