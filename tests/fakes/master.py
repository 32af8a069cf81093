"""A fake master speaking the real protocol on loopback, and a scripted job executor.

The fake master does what the real one promises a slave (``protocol/README.md``):
it authenticates with the real handshake, stores each ``(job, seq)`` once
(duplicates are counted, not stored), acknowledges the highest contiguous seq,
answers events of a stale lease with ``job_drop`` and acknowledges results. Tests
can switch acknowledgements off, drop the connection (:meth:`FakeMaster.kick`)
or restart the server on the same port (:meth:`FakeMaster.restart`)::

    async with FakeMaster(secret) as master:
        ...start a slave against master.address...
        session = await master.wait_session()
        await master.offer(job_id=1)
        result = await master.wait_result(1)
        await master.send(JobDrop(2, 1, "stale"))
        await master.round_trip()   # the drop was handled; what the slave sent meanwhile is here
        assert 2 not in master.results

A check that something did *not* happen ends with :meth:`FakeMaster.round_trip`
instead of a sleep: the slave handles messages one at a time, in order, and sends
on one ordered connection.

:class:`ScriptedExecutor` is a real :class:`slave.job.context.Executor` whose job is
a test-provided coroutine instead of a VM, so the daemon's orchestration can be
tested without QEMU.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

from protocol.connection import Connection
from protocol.errors import ConnectionClosed, ProtocolError
from protocol.events import Event
from protocol.framing import MAX_FRAME
from protocol.handshake import server_handshake
from protocol.messages import (
    Auth,
    Events,
    EventsAck,
    FileSpec,
    Heartbeat,
    JobDrop,
    JobOffer,
    JobResult,
    Message,
    ResultAck,
)
from protocol.results import JobTimeouts, PhaseResult
from protocol.vocabulary import PhaseStatus
from slave.job.context import JobContext

#: Job ids of :meth:`FakeMaster.round_trip` probes (tests use small ids).
PROBE_JOB_IDS = 1_000_000


@dataclass(eq=False)
class SlaveSession:
    """One authenticated slave connection as the fake master sees it."""

    auth: Auth
    conn: Connection
    #: every message received, in order (heartbeats included)
    received: list[Message] = field(default_factory=list)

    def of_type(self, cls: type[Message]) -> list[Any]:
        return [m for m in self.received if isinstance(m, cls)]


class FakeMaster:
    """See the module docstring."""

    def __init__(
        self,
        secret: bytes,
        *,
        max_frame: int = MAX_FRAME,
        heartbeat_interval: float = 0.5,
        heartbeat_timeout: float = 10.0,
        ack_events: bool = True,
        ack_results: bool = True,
    ) -> None:
        self.secret = secret
        self.max_frame = max_frame
        self.heartbeat_interval = heartbeat_interval
        self.heartbeat_timeout = heartbeat_timeout
        self.ack_events = ack_events
        self.ack_results = ack_results
        self.port = 0
        self.sessions: list[SlaveSession] = []
        #: job -> seq -> event, each stored once
        self.events: dict[int, dict[int, Event]] = {}
        self.duplicates: Counter[int] = Counter()
        self.results: dict[int, list[JobResult]] = {}
        self.leases: dict[int, int] = {}
        self.first_seq: dict[int, int] = {}
        #: sizes of the frames of every ``events`` message received (after encoding)
        self.event_batches: list[tuple[int, int]] = []
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._changed = asyncio.Condition()
        self._session_ids = itertools.count(1)
        self._probe_ids = itertools.count(PROBE_JOB_IDS)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        """Listen on 127.0.0.1 (the same port again after :meth:`stop`)."""
        self._server = await asyncio.start_server(self._on_client, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening and drop every connection (a master crash, as the slave sees it)."""
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()  # no bye: the master "crashed"
        if self._tasks:
            # Not cancelled: asyncio's stream callback treats a cancelled handler as an error.
            await asyncio.wait(list(self._tasks), timeout=5)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def restart(self) -> None:
        """:meth:`stop`, then :meth:`start` on the same port; stored state is kept."""
        await self.stop()
        await self.start()

    async def kick(self) -> None:
        """Abort the newest slave connection (a network failure)."""
        self.sessions[-1].conn._writer.transport.abort()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # --------------------------------------------------------------- serving --

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        try:
            await self._serve(reader, writer)
        except (ProtocolError, OSError):
            pass
        finally:
            self._tasks.discard(task)
            self._writers.discard(writer)
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        auth = await server_handshake(
            reader,
            writer,
            secret=self.secret,
            master_name="fake-master",
            heartbeat_interval=self.heartbeat_interval,
            heartbeat_timeout=self.heartbeat_timeout,
            max_frame=self.max_frame,
            session=f"s{next(self._session_ids)}",
        )
        conn = Connection(
            reader,
            writer,
            name=f"slave-{auth.name}",
            max_frame=self.max_frame,
            heartbeat_interval=self.heartbeat_interval,
            heartbeat_timeout=self.heartbeat_timeout,
        )
        conn.start()
        session = SlaveSession(auth, conn)
        async with self._changed:
            self.sessions.append(session)
            self._changed.notify_all()
        try:
            async for msg in conn:
                session.received.append(msg)
                await self._on_message(session, msg)
                async with self._changed:
                    self._changed.notify_all()
        finally:
            await conn.close()

    async def _on_message(self, session: SlaveSession, msg: Message) -> None:
        match msg:
            case Events():
                self.event_batches.append((len(msg.events), _frame_size(msg)))
                if self.leases.get(msg.job_id) != msg.lease:
                    await session.conn.send(JobDrop(msg.job_id, msg.lease, "stale lease"))
                    return
                stored = self.events.setdefault(msg.job_id, {})
                for ev in msg.events:
                    if ev.seq in stored:
                        self.duplicates[msg.job_id] += 1
                    else:
                        stored[ev.seq] = ev
                if self.ack_events:
                    await self.ack_events_of(msg.job_id, session)
            case JobResult():
                self.results.setdefault(msg.job_id, []).append(msg)
                if self.ack_results:
                    await session.conn.send(ResultAck(msg.job_id, msg.lease))
            case _:
                pass

    def contiguous(self, job_id: int) -> int:
        """Highest seq stored with every seq before it (from the offer's ``first_seq``)."""
        stored = self.events.get(job_id, {})
        seq = self.first_seq.get(job_id, 1) - 1
        while seq + 1 in stored:
            seq += 1
        return seq

    async def ack_events_of(self, job_id: int, session: SlaveSession | None = None) -> None:
        """Acknowledge what is stored of ``job_id`` (what the real master does per batch)."""
        session = session or self.sessions[-1]
        await session.conn.send(EventsAck(job_id, self.leases[job_id], self.contiguous(job_id)))

    # --------------------------------------------------------------- driving --

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        """Wait until ``predicate()`` holds (checked after every message received)."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(predicate)

    async def wait_session(self, count: int = 1, timeout: float = 10.0) -> SlaveSession:
        """The ``count``-th slave session, once it has sent its first heartbeat."""
        await self.wait_for(
            lambda: (
                len(self.sessions) >= count and bool(self.sessions[count - 1].of_type(Heartbeat))
            ),
            timeout,
        )
        return self.sessions[count - 1]

    async def send(self, msg: Message) -> None:
        await self.sessions[-1].conn.send(msg)

    async def offer(
        self,
        job_id: int,
        *,
        lease: int = 1,
        image: str = "test-image",
        first_seq: int = 1,
        files: tuple[FileSpec, ...] = (),
        timeouts: dict[str, Any] | None = None,
        project: str = "demo",
        version: str = "1.0",
    ) -> None:
        """Offer a job to the newest session."""
        self.leases[job_id] = lease
        self.first_seq[job_id] = first_seq
        await self.send(
            JobOffer(
                job_id=job_id,
                lease=lease,
                attempt=1,
                project=project,
                version=version,
                image=image,
                files=files,
                timeouts=JobTimeouts.from_json(timeouts or {}),
                first_seq=first_seq,
            )
        )

    async def round_trip(self, timeout: float = 10.0) -> None:
        """Return once the newest session's slave has handled every message sent before.

        Offers a job on an image no slave has (ids from `PROBE_JOB_IDS`) and waits for
        the refusal. The slave handles messages in order and sends on one ordered
        connection, so by then it has handled everything sent before the probe, and
        everything it sent before the refusal has been received.
        """
        job_id = next(self._probe_ids)
        await self.offer(job_id, image="no-such-image", project="probe")
        reply = await self.wait_reply(job_id, timeout)
        assert reply.TYPE == "job_refuse", f"the probe offer was not refused: {reply}"

    async def wait_reply(self, job_id: int, timeout: float = 10.0) -> Message:
        """The ``job_accept`` or ``job_refuse`` for ``job_id``."""
        found: list[Message] = []

        def replied() -> bool:
            found[:] = [
                m
                for s in self.sessions
                for m in s.received
                if m.TYPE in ("job_accept", "job_refuse") and getattr(m, "job_id", None) == job_id
            ]
            return bool(found)

        await self.wait_for(replied, timeout)
        return found[0]

    async def wait_result(self, job_id: int, count: int = 1, timeout: float = 20.0) -> JobResult:
        """The ``count``-th ``job_result`` received for ``job_id``."""
        await self.wait_for(lambda: len(self.results.get(job_id, [])) >= count, timeout)
        return self.results[job_id][count - 1]

    def seqs(self, job_id: int) -> list[int]:
        return sorted(self.events.get(job_id, {}))

    def names(self, job_id: int) -> list[str]:
        stored = self.events.get(job_id, {})
        return [stored[s].event for s in sorted(stored)]


def _frame_size(msg: Message) -> int:
    from protocol.framing import pack
    from protocol.messages import encode

    return len(pack(encode(msg)))


# ------------------------------------------------------------ the executor ----

Script = Callable[[JobContext], Awaitable[str]]


class ScriptedExecutor:
    """An executor whose job is ``script(ctx)``; records what happened to each job."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.started: dict[int, asyncio.Event] = {}
        self.contexts: dict[int, JobContext] = {}
        self.cancelled: set[int] = set()
        self.torn_down: set[int] = set()
        self.any_started = asyncio.Event()

    async def run(self, ctx: JobContext) -> str:
        job_id = ctx.offer.job_id
        self.contexts[job_id] = ctx
        self.started.setdefault(job_id, asyncio.Event()).set()
        self.any_started.set()
        try:
            return await self.script(ctx)
        except asyncio.CancelledError:
            self.cancelled.add(job_id)
            raise
        finally:
            self.torn_down.add(job_id)


def emitting(count: int, *, outcome: str = "passed", size: int = 10) -> Script:
    """A script that logs ``count`` ``output`` events of ``size`` characters, then ends."""

    async def script(ctx: JobContext) -> str:
        for i in range(count):
            ctx.log.info("output", phase="tests", stream="stdout", line=f"{i:06d}" + "x" * size)
            if i % 50 == 0:
                await asyncio.sleep(0)
        ctx.phases["tests"] = PhaseResult(
            PhaseStatus.PASSED if outcome == "passed" else PhaseStatus.FAILED
        )
        return outcome

    return script


def holding(release: asyncio.Event, before: int = 3) -> Script:
    """A script that logs ``before`` events, then waits for ``release`` (or cancellation)."""

    async def script(ctx: JobContext) -> str:
        for i in range(before):
            ctx.log.info("output", phase="install", stream="stdout", line=f"line {i}")
        ctx.phases["install"] = PhaseResult(PhaseStatus.PASSED)
        await release.wait()
        return "passed"

    return script


async def stop_task(task: asyncio.Task[Any]) -> None:
    """Cancel ``task`` and wait for it, swallowing only its own cancellation."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
        await task
