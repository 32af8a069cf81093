"""A fake slave speaking the real protocol over a real socket, scriptable from tests.

It does the real handshake (``client_handshake``), runs a real ``Connection``,
and sends its first heartbeat (listing ``running``) right after ``welcome``,
as a slave must. Everything the master sends is recorded in ``inbox`` (by
type); uploaded ``job_file`` chunks are assembled in ``files``. Tests then
drive it: ``accept``/``refuse`` offers, ``send_events``, ``send_result``,
``heartbeat``, ``close`` (with ``bye``) or ``kill`` (the TCP connection just
drops, as when the slave's host dies).

``mode``: ``"manual"`` (the test answers offers), ``"accept"`` (accept every
offer at once), ``"refuse"``, or ``"run"`` (accept, emit ``events_per_job``
events in batches of ``batch``, wait for their acks, report ``outcome``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from protocol.connection import Connection
from protocol.errors import ConnectionClosed
from protocol.events import Event
from protocol.handshake import client_handshake
from protocol.messages import (
    Capabilities,
    Events,
    EventsAck,
    Heartbeat,
    ImageInfo,
    JobAccept,
    JobDrop,
    JobFile,
    JobOffer,
    JobRefuse,
    JobResult,
    Message,
    ResultAck,
    RunningJob,
    Welcome,
)
from protocol.results import JobSummary, phases_from_json

M = TypeVar("M", bound=Message)


@dataclass
class FakeJob:
    """What the fake knows of a job it holds."""

    offer: JobOffer
    next_seq: int
    acked: int = 0
    result_acked: bool = False


@dataclass
class FakeSlave:
    """See the module docstring. ``await connect()`` then drive it; ``await close()`` always."""

    host: str
    port: int
    secret: bytes
    name: str = "fake"
    slots: int = 1
    images: tuple[str, ...] = ("bookworm",)
    #: The Python each image advertises (image name → version); "3.11" when absent.
    pythons: dict[str, str] = field(default_factory=dict)
    accel: str = "tcg"
    mode: str = "manual"
    outcome: str = "passed"
    events_per_job: int = 0
    batch: int = 100
    running: list[RunningJob] = field(default_factory=list)
    ssl: Any = None
    inbox: dict[str, list[Message]] = field(default_factory=lambda: defaultdict(list))
    files: dict[tuple[int, str], bytearray] = field(default_factory=dict)
    jobs: dict[int, FakeJob] = field(default_factory=dict)
    on_event_acked: Callable[[int, int, float], None] | None = None
    #: Seconds added to this slave's wall clock (heartbeat and event timestamps).
    clock_skew: float = 0.0

    def __post_init__(self) -> None:
        self.conn: Connection | None = None
        self.welcome: Welcome | None = None
        self._changed = asyncio.Condition()
        self._tasks: set[asyncio.Task[None]] = set()
        self._reader: asyncio.Task[None] | None = None
        self.sent_at: dict[tuple[int, int], float] = {}

    def capabilities(self) -> Capabilities:
        return Capabilities(
            slots=self.slots,
            accel=self.accel,  # type: ignore[arg-type]
            images=tuple(
                ImageInfo(name=i, python=self.pythons.get(i, "3.11"), digest="0" * 12)
                for i in self.images
            ),
        )

    async def connect(self, timeout: float = 10.0) -> Welcome:
        """Handshake, start the connection, send the first heartbeat. Raises ``ProtocolError``."""
        reader, writer = await asyncio.open_connection(self.host, self.port, ssl=self.ssl)
        try:
            self.welcome = await client_handshake(
                reader,
                writer,
                secret=self.secret,
                name=self.name,
                software_version="fake",
                capabilities=self.capabilities(),
                timeout=timeout,
            )
        except BaseException:
            writer.close()
            raise
        self.conn = Connection(
            reader,
            writer,
            name=f"fake-{self.name}",
            max_frame=self.welcome.max_frame,
            heartbeat_interval=self.welcome.heartbeat_interval,
            heartbeat_timeout=self.welcome.heartbeat_timeout,
            heartbeat=self._heartbeat,
        )
        self.conn.start()
        await self.conn.send(self._heartbeat())
        self._reader = asyncio.create_task(self._read_loop(), name=f"fake-{self.name}-reader")
        return self.welcome

    def _heartbeat(self) -> Heartbeat:
        running = list(self.running) + [
            RunningJob(job_id=j.offer.job_id, lease=j.offer.lease, last_seq=j.next_seq - 1)
            for j in self.jobs.values()
        ]
        return Heartbeat(
            ts=time.time() + self.clock_skew,
            free_slots=max(0, self.slots - len(self.jobs)),
            running=tuple(running),
        )

    async def _read_loop(self) -> None:
        assert self.conn is not None
        while True:
            try:
                msg = await self.conn.recv()
            except ConnectionClosed:
                async with self._changed:
                    self._changed.notify_all()
                return
            now = time.monotonic()
            match msg:
                case JobFile():
                    buf = self.files.setdefault((msg.job_id, msg.filename), bytearray())
                    assert msg.offset == len(buf), "chunks arrive in order"
                    buf.extend(msg.data)
                case EventsAck():
                    job = self.jobs.get(msg.job_id)
                    if job is not None and job.offer.lease == msg.lease:
                        job.acked = max(job.acked, msg.seq)
                    if self.on_event_acked is not None:
                        self.on_event_acked(msg.job_id, msg.seq, now)
                case ResultAck():
                    self.jobs.pop(msg.job_id, None)
                case JobDrop():
                    self.jobs.pop(msg.job_id, None)
                case JobOffer():
                    self._on_offer(msg)
                case _:
                    pass
            self.inbox[msg.TYPE].append(msg)
            async with self._changed:
                self._changed.notify_all()

    def _on_offer(self, offer: JobOffer) -> None:
        if self.mode == "manual":
            return
        if self.mode == "refuse":
            self._spawn(self.refuse(offer, "fake refuses"))
            return
        self.jobs[offer.job_id] = FakeJob(offer, next_seq=offer.first_seq)
        self._spawn(self._accept_and_run(offer))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _accept_and_run(self, offer: JobOffer) -> None:
        with contextlib.suppress(ConnectionClosed):
            await self.accept(offer)
            if self.mode != "run":
                return
            job = self.jobs[offer.job_id]
            left = self.events_per_job
            while left > 0:
                n = min(self.batch, left)
                await self.send_events(offer.job_id, offer.lease, n)
                left -= n
            last = job.next_seq - 1
            await self.wait_for(lambda: job.acked >= last or offer.job_id not in self.jobs)
            await self.send_result(offer.job_id, offer.lease, self.outcome, last_seq=last)

    # ------------------------------------------------------------ actions ----

    async def accept(self, offer: JobOffer) -> None:
        self.jobs.setdefault(offer.job_id, FakeJob(offer, next_seq=offer.first_seq))
        assert self.conn is not None
        await self.conn.send(JobAccept(job_id=offer.job_id, lease=offer.lease))

    def adopt(self, offer: JobOffer, next_seq: int | None = None) -> FakeJob:
        """Hold a job as if it had survived a reconnect (its next seq given or from the offer)."""
        job = FakeJob(offer, next_seq=offer.first_seq if next_seq is None else next_seq)
        self.jobs[offer.job_id] = job
        self.running = [r for r in self.running if r.job_id != offer.job_id]
        return job

    async def refuse(self, offer: JobOffer, reason: str = "no") -> None:
        self.jobs.pop(offer.job_id, None)
        assert self.conn is not None
        await self.conn.send(JobRefuse(job_id=offer.job_id, lease=offer.lease, reason=reason))

    def make_events(self, job_id: int, n: int, **fields: Any) -> list[Event]:
        """The next ``n`` events of a held job (seqs continue from the offer's first_seq)."""
        job = self.jobs[job_id]
        evs = [
            Event(
                seq=job.next_seq + i,
                ts=time.time() + self.clock_skew,
                level="info",
                event="output",
                phase="tests",
                fields={"line": f"line {job.next_seq + i}", **fields},
            )
            for i in range(n)
        ]
        job.next_seq += n
        return evs

    async def send_events(
        self, job_id: int, lease: int, events: int | Iterable[Event], **fields: Any
    ) -> list[Event]:
        """Send a batch (``n`` new events, or the given ones); returns what was sent."""
        batch = (
            self.make_events(job_id, events, **fields) if isinstance(events, int) else list(events)
        )
        assert self.conn is not None
        now = time.monotonic()
        for e in batch:
            self.sent_at[(job_id, e.seq)] = now
        await self.conn.send(Events(job_id=job_id, lease=lease, events=tuple(batch)))
        return batch

    async def send_result(
        self,
        job_id: int,
        lease: int,
        outcome: str = "passed",
        *,
        last_seq: int = 0,
        phases: dict[str, Any] | None = None,
        summary: dict[str, Any] | None = None,
    ) -> None:
        assert self.conn is not None
        await self.conn.send(
            JobResult(
                job_id=job_id,
                lease=lease,
                outcome=outcome,  # type: ignore[arg-type]
                isolation=self.accel,
                last_seq=last_seq,
                phases=phases_from_json(phases or {}),
                summary=JobSummary.from_json(summary or {}),
            )
        )

    async def heartbeat(self, **kw: Any) -> None:
        assert self.conn is not None
        hb = self._heartbeat()
        await self.conn.send(
            Heartbeat(ts=hb.ts, **{"free_slots": hb.free_slots, "running": hb.running, **kw})
        )

    async def send_raw(self, data: bytes) -> None:
        """Bytes straight onto the socket, bypassing framing (malformed-frame tests)."""
        assert self.conn is not None
        self.conn._writer.write(data)
        await self.conn._writer.drain()

    # ------------------------------------------------------------ waiting ----

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        """Until ``predicate()`` holds (checked after every received message)."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(predicate)

    async def next(self, cls: type[M], timeout: float = 10.0, *, index: int | None = None) -> M:
        """The ``index``-th (default: the first) received message of a type, waiting for it."""
        tag = cls.TYPE
        i = 0 if index is None else index
        await self.wait_for(lambda: len(self.inbox[tag]) > i, timeout)
        msg = self.inbox[tag][i]
        assert isinstance(msg, cls)
        return msg

    async def take(self, cls: type[M], timeout: float = 10.0) -> M:
        """Wait for a message of this type and remove it from the inbox."""
        msg = await self.next(cls, timeout)
        self.inbox[cls.TYPE].pop(0)
        return msg

    @property
    def closed(self) -> bool:
        return self.conn is None or self.conn.state.value != "running"

    # ------------------------------------------------------------ ending ----

    async def close(self, reason: str = "fake slave done") -> None:
        """A deliberate close (``bye``); idempotent."""
        for task in list(self._tasks):
            task.cancel()
        if self.conn is not None:
            await self.conn.close(reason)
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader

    async def kill(self) -> None:
        """The slave dies: the TCP connection drops without a word."""
        for task in list(self._tasks):
            task.cancel()
        if self.conn is not None:
            self.conn._writer.transport.abort()
            await self.conn.wait_closed()
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
