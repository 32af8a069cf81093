"""One authenticated slave connection: offers out, events and results in.

A session owns three tasks over its ``protocol.connection.Connection``:

- the **reader** takes messages off the connection. Event batches of jobs the
  session holds are handed to the store's group-commit writer at once (so many
  slaves share one commit), then queued, with everything else, on the
  **pipeline** (bounded, ``PIPELINE_LIMIT``; the reader waits for room, which
  stops reading the socket: TCP pushes back on the slave);
- the **processor** works through the pipeline in arrival order: an
  ``events_ack`` only after the batch is committed, a ``result_ack`` only after
  the result is, so an acknowledged event or result survives ``kill -9``;
- the **sender** forwards offers (with ``job_file`` chunks of uploaded files),
  cancels and drops from the session's outbox (bounded; a slave that stops
  reading fills it and is disconnected), so the scheduler never waits on a peer.

Every failure ends this one session; ``run()`` then returns. Offers the slave
had not accepted go straight back to the queue; running jobs wait for the
watchdog's reconnect grace (the slave may come back and claim them).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from master.jobs import EventsStored, FinishDisposition, Job
from master.registry import SlaveInfo
from master.slave_handlers import Held, process
from master.store.errors import InvalidTransition, JobNotFound, StaleLease, StoreError
from protocol.connection import Connection
from protocol.errors import ConnectionClosed
from protocol.messages import (
    Auth,
    Drain,
    Events,
    FileSpec,
    Heartbeat,
    JobAccept,
    JobCancel,
    JobDrop,
    JobFile,
    JobOffer,
    JobRefuse,
    JobResult,
    Message,
)

if TYPE_CHECKING:
    from master.context import MasterContext

PIPELINE_LIMIT = 64
OUTBOX_EXTRA = 256  # control messages on top of one offer per slot
CHUNK = 512 * 1024
#: File chunks queued on the connection but not yet written to the socket. The
#: connection's queue counts messages, not bytes: this keeps an upload to a slow
#: slave at a few MiB of memory instead of 256 chunks.
CHUNK_WINDOW = 8
_RECENT = 1024  # remembered finished claims, so a late heartbeat listing one is not "unknown"


class SlaveSession:
    """Implements ``master.registry.SlaveLink`` for one connected slave."""

    def __init__(self, ctx: MasterContext, auth: Auth, conn: Connection, session_id: str) -> None:
        self.ctx = ctx
        self.conn = conn
        self.session_id = session_id
        self._name = auth.name
        self.address = conn.peer
        self.caps = auth.capabilities
        self.software_version = auth.software_version
        self._images = frozenset(i.name for i in auth.capabilities.images)
        self.connected_at = time.time()
        self.last_heartbeat: float | None = None
        self.reported_free: int | None = None
        self.slave_draining = False
        self.drain_requested = False
        self.ready = False  # first heartbeat reconciled
        self.backoff = False  # refused an offer: no more until its next heartbeat
        self.jobs: dict[int, Held] = {}
        self._recent: OrderedDict[tuple[int, int], None] = OrderedDict()
        self._outbox: asyncio.Queue[Message | Job] = asyncio.Queue(
            max(1, auth.capabilities.slots) + OUTBOX_EXTRA
        )
        self._pipeline: asyncio.Queue[tuple[Message, asyncio.Task[EventsStored] | None] | None] = (
            asyncio.Queue(PIPELINE_LIMIT)
        )
        self._closing = False
        self._sent = 0  # messages handed to the connection (compared with conn.frames_out)
        self.idle = asyncio.Event()  # set while the slave holds no job
        self.idle.set()
        self.log = structlog.get_logger("master.slave").bind(slave=self._name)
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

    def __repr__(self) -> str:
        return f"<SlaveSession {self._name} jobs={sorted(self.jobs)} ready={self.ready}>"

    # ------------------------------------------------------------ SlaveLink ----

    @property
    def name(self) -> str:
        return self._name

    @property
    def images(self) -> frozenset[str]:
        return self._images

    @property
    def free_slots(self) -> int:
        return max(0, self.caps.slots - len(self.jobs))

    @property
    def accepting(self) -> bool:
        return (
            self.ready
            and not self._closing
            and not self.backoff
            and not self.slave_draining
            and not self.drain_requested
        )

    def holds(self, job_id: int, lease: int) -> bool:
        held = self.jobs.get(job_id)
        return held is not None and held.lease == lease

    def offer(self, job: Job) -> bool:
        if self._closing:
            return False
        self.jobs[job.id] = Held(job.lease, running=False)
        self.idle.clear()
        return self._post(job)

    def cancel(self, job_id: int, lease: int, reason: str) -> None:
        self._post(JobCancel(job_id=job_id, lease=lease, reason=reason[:200]))

    def drain(self, reason: str) -> None:
        self.drain_requested = True
        self._post(Drain(reason=reason))

    def info(self) -> SlaveInfo:
        return SlaveInfo(
            name=self._name,
            address=self.address,
            slots=self.caps.slots,
            busy=len(self.jobs),
            accel=self.caps.accel,
            images=sorted(self._images),
            connected_at=self.connected_at,
            last_heartbeat=self.last_heartbeat,
            draining=self.slave_draining or self.drain_requested,
            jobs=sorted(self.jobs),
        )

    # ------------------------------------------------------------- helpers ----

    def _post(self, item: Message | Job) -> bool:
        """Queue for the sender; a full outbox means the slave stopped reading: drop it."""
        if self._closing:
            return False
        try:
            self._outbox.put_nowait(item)
        except asyncio.QueueFull:
            self.log.warning("slave_not_reading", outbox=self._outbox.qsize())
            self._close_soon("slave does not read its messages")
            return False
        return True

    def _forget(self, job_id: int, lease: int) -> None:
        held = self.jobs.get(job_id)
        if held is not None and held.lease == lease:
            del self.jobs[job_id]
        self._recent[(job_id, lease)] = None
        while len(self._recent) > _RECENT:
            self._recent.popitem(last=False)
        if not self.jobs:
            self.idle.set()

    def _close_soon(self, reason: str) -> None:
        self._closing = True
        task = asyncio.get_running_loop().create_task(self.conn.close(reason))
        task.add_done_callback(lambda t: t.exception() if not t.cancelled() else None)

    # ----------------------------------------------------------------- run ----

    async def run(self) -> None:
        """Serve the slave until the connection ends; then release what it held.

        Never raises for anything the slave does; cancelling it closes the
        connection and still runs the cleanup.
        """
        self.conn.start()
        self.ctx.slaves.add(self)
        self.ctx.images.learn_all(self.caps.images)
        self.log.info(
            "slave_connected",
            address=self.address,
            slots=self.caps.slots,
            images=sorted(self._images),
            accel=self.caps.accel,
        )
        tasks: list[asyncio.Task[None]] = []
        try:
            with contextlib.suppress(StoreError):
                await self.ctx.store.slaves.seen(self._name, self.address, _caps_dict(self))
            tasks = [
                asyncio.create_task(self._process_loop(), name=f"slave-{self._name}-process"),
                asyncio.create_task(self._send_loop(), name=f"slave-{self._name}-send"),
            ]
            await self._read_loop()
            # Commit and answer what was already received (the answers may not arrive).
            await self._pipeline.put(None)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(10.0):
                    await asyncio.shield(tasks[0])
        finally:
            self._closing = True
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            await self.conn.close("session ended")
            await self._cleanup()

    async def _cleanup(self) -> None:
        self.ctx.slaves.remove(self)
        error = self.conn.error
        self.log.info(
            "slave_disconnected", error=str(error) if error else None, jobs=sorted(self.jobs)
        )
        for job_id, held in list(self.jobs.items()):
            if held.running:
                continue  # the watchdog waits for the slave to come back
            with contextlib.suppress(StaleLease, InvalidTransition, JobNotFound, StoreError):
                await self.ctx.store.jobs.release(job_id, held.lease, "slave left before accepting")
            self._forget(job_id, held.lease)
        with contextlib.suppress(StoreError):
            await self.ctx.store.slaves.gone(self._name)
        self.ctx.scheduler.kick()

    async def _read_loop(self) -> None:
        while True:
            try:
                msg = await self.conn.recv()
            except ConnectionClosed:
                return
            task: asyncio.Task[EventsStored] | None = None
            match msg:
                case Events():
                    self._m_batches.inc()
                    if self.holds(msg.job_id, msg.lease):
                        task = asyncio.create_task(self.store_batch(msg))
                case Heartbeat():
                    self._on_heartbeat(msg)
                    if self.ready:
                        continue
                case JobAccept() | JobRefuse() | JobResult():
                    pass
                case _:
                    self.log.warning("unexpected_message", type=msg.TYPE)
                    await self.conn.close(f"unexpected {msg.TYPE} from a slave")
                    return
            await self._pipeline.put((msg, task))

    async def store_batch(self, msg: Events) -> EventsStored:
        started = time.monotonic()
        stored = await self.ctx.store.events.save(msg.job_id, msg.lease, msg.events)
        self._m_store.observe(time.monotonic() - started)
        return stored

    def _on_heartbeat(self, hb: Heartbeat) -> None:
        self.last_heartbeat = time.time()
        self.reported_free = hb.free_slots
        was_draining = self.slave_draining
        self.slave_draining = hb.draining
        if self.backoff or (was_draining and not hb.draining):
            self.backoff = False
            self.ctx.scheduler.kick()
        if not self.ready:
            return
        for r in hb.running:
            if not self.holds(r.job_id, r.lease) and (r.job_id, r.lease) not in self._recent:
                self._post(JobDrop(job_id=r.job_id, lease=r.lease, reason="unknown lease"))

    async def _send(self, msg: Message) -> None:
        await self.conn.send(msg)
        self._sent += 1

    async def _send_loop(self) -> None:
        while True:
            item = await self._outbox.get()
            if isinstance(item, Job):
                await self._send_offer(item)
            else:
                await self._send(item)

    async def _wait_window(self) -> None:
        """Until at most ``CHUNK_WINDOW`` messages wait for the socket.

        Polls (every 10 ms): the connection offers no event for "written". A slave
        that stops reading is disconnected by the connection's write timeout,
        which ends this wait with ``ConnectionClosed``.
        """
        while self._sent - self.conn.frames_out > CHUNK_WINDOW:
            if self.conn.state.value != "running":
                raise ConnectionClosed("connection closed during an upload")
            await asyncio.sleep(0.01)

    async def _send_offer(self, job: Job) -> None:
        specs = tuple(
            FileSpec(
                filename=str(f["filename"]),
                sha256=str(f.get("sha256", "")),
                size=int(f.get("size", 0)),
                packagetype=str(f.get("packagetype", "sdist")),
                url="" if f.get("path") else str(f.get("url", "")),
            )
            for f in job.files
        )
        await self._send(
            JobOffer(
                job_id=job.id,
                lease=job.lease,
                attempt=job.attempt,
                project=job.project,
                version=job.version,
                image=job.image,
                files=specs,
                timeouts=job.timeouts,
                options=job.options,
                first_seq=job.event_seq + 1,
            )
        )
        self.log.info("job_offered", job_id=job.id, lease=job.lease, attempt=job.attempt)
        for f in job.files:
            if f.get("path"):
                try:
                    await self._send_file(job, str(f["filename"]), Path(str(f["path"])))
                except OSError as exc:
                    await self._upload_failed(job, f"uploaded file unavailable: {exc}")
                    return

    async def _upload_failed(self, job: Job, error: str) -> None:
        """The master cannot read an uploaded file: the slave drops the job, and the job
        counts as an infrastructure error (retried up to the limit, then final)."""
        self.log.error("upload_failed", job_id=job.id, error=error)
        self._forget(job.id, job.lease)
        await self._send(JobDrop(job_id=job.id, lease=job.lease, reason=error[:200]))
        result = JobResult(
            job_id=job.id,
            lease=job.lease,
            outcome="infra_error",
            isolation="none",
            last_seq=0,
            summary={"error": error},
        )
        with contextlib.suppress(StaleLease, JobNotFound, StoreError):
            if (
                await self.ctx.store.jobs.finish(job.id, job.lease, result)
                is FinishDisposition.STORED
            ):
                ended = await self.ctx.store.jobs.get(job.id)
                if ended is not None:
                    self.ctx.bus.publish_end(ended)
        self.ctx.scheduler.kick()

    async def _send_file(self, job: Job, filename: str, path: Path) -> None:
        offset = 0
        with await asyncio.to_thread(path.open, "rb") as fh:
            while self.holds(job.id, job.lease):
                data = await asyncio.to_thread(fh.read, CHUNK)
                # A short read is the end; a file of exactly n chunks ends with an empty one.
                final = len(data) < CHUNK
                await self._wait_window()
                await self._send(
                    JobFile(
                        job_id=job.id,
                        lease=job.lease,
                        filename=filename,
                        offset=offset,
                        data=data,
                        final=final,
                    )
                )
                offset += len(data)
                if final:
                    return

    # ----------------------------------------------------------- processor ----

    async def _process_loop(self) -> None:
        while True:
            item = await self._pipeline.get()
            if item is None:
                return
            msg, task = item
            try:
                await process(self, msg, task)
            except StoreError as exc:
                # Nothing was acknowledged; the slave re-sends after it reconnects.
                self.log.error("store_failed", error=str(exc), type=msg.TYPE)
                self._close_soon("master storage error")
                return
            except ConnectionClosed:
                continue  # keep committing what arrived; answers are lost, re-sent later
            except Exception:  # a bug: end this session loudly rather than stall it
                self.log.exception("session_processor_failed", type=msg.TYPE)
                self._close_soon("master internal error")
                return


def _caps_dict(session: SlaveSession) -> dict[str, Any]:
    return {
        "slots": session.caps.slots,
        "accel": session.caps.accel,
        "images": [
            {"name": i.name, "python": i.python, "digest": i.digest} for i in session.caps.images
        ],
        "software_version": session.software_version,
    }
