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

What each message does is ``master.slaves.handlers``; the claims the slave
holds are its ``Holdings``. Every failure ends this one session; ``run()``
then returns. Offers the slave had not accepted go straight back to the queue
(``Holdings.surrender``); running jobs wait for the watchdog's reconnect grace
(the slave may come back and claim them).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from master.jobs import EventsStored, FinishDisposition, Job
from master.slaves.handlers import SlaveHandlers, SlaveStatus
from master.slaves.holdings import Holdings
from master.slaves.registry import SlaveInfo
from master.store.errors import JobNotFound, StaleLease, StoreError
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
from protocol.results import JobSummary
from protocol.vocabulary import Outcome
from pyti.tasks import cancel_and_wait

if TYPE_CHECKING:
    from master.context import MasterContext

PIPELINE_LIMIT = 64
OUTBOX_EXTRA = 256  # control messages on top of one offer per slot
CHUNK = 512 * 1024
#: File chunks queued on the connection but not yet written to the socket. The
#: connection's queue counts messages, not bytes: this keeps an upload to a slow
#: slave at a few MiB of memory instead of 256 chunks.
CHUNK_WINDOW = 8


class SlaveSession:
    """One connected slave: implements ``master.slaves.registry.SlaveLink`` and ``Peer``."""

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
        self.status = SlaveStatus()
        self.holdings = Holdings(auth.name, ctx.store, ctx.scheduler)
        self.handlers = SlaveHandlers(ctx, self, self.holdings, self.status)
        self._outbox: asyncio.Queue[Message | Job] = asyncio.Queue(
            max(1, auth.capabilities.slots) + OUTBOX_EXTRA
        )
        self._pipeline: asyncio.Queue[tuple[Message, asyncio.Task[EventsStored] | None] | None] = (
            asyncio.Queue(PIPELINE_LIMIT)
        )
        #: Event batches being committed ahead of the processor; it removes each one it
        #: has awaited, and ``run`` ends what is left.
        self._commits: set[asyncio.Task[EventsStored]] = set()
        self._closing = False
        self.log = structlog.get_logger("master.slave").bind(slave=self._name)

    def __repr__(self) -> str:
        return (
            f"<SlaveSession {self._name} jobs={self.holdings.job_ids()} ready={self.ready}"
            f" closing={self._closing}>"
        )

    # ------------------------------------------------------------ SlaveLink ----

    @property
    def name(self) -> str:
        return self._name

    @property
    def images(self) -> frozenset[str]:
        return self._images

    @property
    def free_slots(self) -> int:
        return max(0, self.caps.slots - len(self.holdings))

    @property
    def ready(self) -> bool:
        return self.status.ready

    @property
    def accepting(self) -> bool:
        return self.status.accepting and not self._closing

    def holds(self, job_id: int, lease: int) -> bool:
        return self.holdings.holds(job_id, lease)

    def offer(self, job: Job) -> bool:
        if self._closing:
            return False
        self.holdings.adopt(job.id, job.lease, running=False)
        return self._post(job)

    def cancel(self, job_id: int, lease: int, reason: str) -> None:
        self._post(JobCancel(job_id=job_id, lease=lease, reason=reason[:200]))

    def drain(self, reason: str) -> None:
        self.status.drain_requested = True
        self._post(Drain(reason=reason))

    def info(self) -> SlaveInfo:
        return SlaveInfo(
            name=self._name,
            address=self.address,
            slots=self.caps.slots,
            busy=len(self.holdings),
            accel=self.caps.accel,
            images=sorted(self._images),
            connected_at=self.connected_at,
            last_heartbeat=self.status.last_heartbeat,
            draining=self.status.draining or self.status.drain_requested,
            jobs=self.holdings.job_ids(),
        )

    # ----------------------------------------------------------------- Peer ----

    async def send(self, msg: Message) -> None:
        """Send now, ahead of the outbox; raises ``ConnectionClosed``."""
        await self.conn.send(msg)

    def post(self, msg: Message) -> bool:
        """Queue for the sender; False if the session is closing."""
        return self._post(msg)

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

    def _close_soon(self, reason: str) -> None:
        """Stop offering and start closing; the reader then sees the end (the connection
        owns the close, which ``run`` awaits)."""
        self._closing = True
        self.conn.close_nowait(reason)

    # ----------------------------------------------------------------- run ----

    async def run(self) -> None:
        """Serve the slave until the connection ends; then release what it held.

        Never raises for anything the slave does. Cancelling it closes the
        connection and still runs the cleanup, then re-raises.
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
            try:
                await self.ctx.store.slaves.seen(self._name, self.address, _caps_dict(self))
            except StoreError as exc:
                self.log.warning("slave_seen_failed", error=str(exc))
            tasks = [
                asyncio.create_task(self._process_loop(), name=f"slave-{self._name}-process"),
                asyncio.create_task(self._send_loop(), name=f"slave-{self._name}-send"),
            ]
            await self._read_loop()
            # Commit and answer what was already received (the answers may not arrive).
            await self._pipeline.put(None)
            await asyncio.wait(tasks[:1], timeout=10.0)
        finally:
            self._closing = True
            for error in await cancel_and_wait(*tasks):
                self.log.error("session_task_failed", error=repr(error))
            await cancel_and_wait(*self._commits)  # not acknowledged: the slave re-sends
            await self.conn.close("session ended")
            await self._cleanup()

    async def _cleanup(self) -> None:
        self.ctx.slaves.remove(self)
        error = self.conn.error
        self.log.info(
            "slave_disconnected",
            error=str(error) if error else None,
            jobs=self.holdings.job_ids(),
        )
        # Running jobs wait for the watchdog's grace: the slave may come back with them.
        await self.holdings.surrender("slave left before accepting", running=False)
        try:
            await self.ctx.store.slaves.gone(self._name)
        except StoreError as exc:
            self.log.warning("slave_gone_failed", error=str(exc))

    async def _read_loop(self) -> None:
        while True:
            try:
                msg = await self.conn.recv()
            except ConnectionClosed:
                return
            task: asyncio.Task[EventsStored] | None = None
            match msg:
                case Events():
                    commit = self.handlers.early_commit(msg)
                    if commit is not None:
                        task = asyncio.create_task(commit)
                        self._commits.add(task)
                case Heartbeat():
                    self.handlers.heartbeat(msg)
                    if self.status.ready:
                        continue
                case JobAccept() | JobRefuse() | JobResult():
                    pass
                case _:
                    self.log.warning("unexpected_message", type=msg.TYPE)
                    await self.conn.close(f"unexpected {msg.TYPE} from a slave")
                    return
            await self._pipeline.put((msg, task))

    # -------------------------------------------------------------- sender ----

    async def _send_loop(self) -> None:
        try:
            while True:
                item = await self._outbox.get()
                if isinstance(item, Job):
                    await self._send_offer(item)
                else:
                    await self.conn.send(item)
        except ConnectionClosed:
            return  # the reader sees the end as well
        except Exception:  # a bug: end this session loudly rather than stall it
            self.log.exception("session_sender_failed")
            self._close_soon("master internal error")

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
        await self.conn.send(
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
        self.holdings.forget(job.id, job.lease)
        await self.conn.send(JobDrop(job_id=job.id, lease=job.lease, reason=error[:200]))
        result = JobResult(
            job_id=job.id,
            lease=job.lease,
            outcome=Outcome.INFRA_ERROR,
            isolation="none",
            last_seq=0,
            summary=JobSummary(
                error=error, reason=f"pyti could not send the upload: {error}"[:300]
            ),
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
            while self.holdings.holds(job.id, job.lease):
                data = await asyncio.to_thread(fh.read, CHUNK)
                # A short read is the end; a file of exactly n chunks ends with an empty one.
                final = len(data) < CHUNK
                # The connection's queue counts messages, not bytes: keep few chunks in it.
                await self.conn.wait_unwritten(CHUNK_WINDOW)
                await self.conn.send(
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
        """Handle the pipeline in order. After a failure that ends the session it only
        ends the commits still queued, so the reader is never left waiting for room."""
        failed = False
        while (item := await self._pipeline.get()) is not None:
            msg, task = item
            if failed:
                if task is not None:
                    await cancel_and_wait(task)
                    self._commits.discard(task)
                continue
            try:
                await self.handlers.process(msg, task)
            except StoreError as exc:
                # Nothing was acknowledged; the slave re-sends after it reconnects.
                self.log.error("store_failed", error=str(exc), type=msg.TYPE)
                self._close_soon("master storage error")
                failed = True
            except ConnectionClosed:
                pass  # keep committing what arrived; answers are lost, re-sent later
            except Exception:  # a bug: end this session loudly rather than stall it
                self.log.exception("session_processor_failed", type=msg.TYPE)
                self._close_soon("master internal error")
                failed = True
            finally:
                if task is not None and task.done():
                    self._commits.discard(task)


def _caps_dict(session: SlaveSession) -> dict[str, Any]:
    return {
        "slots": session.caps.slots,
        "accel": session.caps.accel,
        "images": [
            {"name": i.name, "python": i.python, "digest": i.digest} for i in session.caps.images
        ],
        "software_version": session.software_version,
    }
