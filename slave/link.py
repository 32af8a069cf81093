"""The slave's connection to the master: connect, authenticate, reconnect forever.

:meth:`Link.run` loops: open TCP, ``client_handshake``, wrap the stream in a
``protocol.connection.Connection``, announce what the slave still holds (a
heartbeat right after ``welcome``), then run two loops until the connection
ends:

- the reader hands every message to the daemon's ``handle`` coroutine;
- the pump sends each job's spooled events in batches (``events``, in seq
  order, sized under the frame cap by count and bytes) and, once a job's events
  are all sent, its ``job_result``.

After a disconnect it waits (exponential backoff with jitter) and starts over.
Per connection the pump starts at each job's acknowledged seq, so a new
connection re-sends exactly the unacknowledged events and every result not
acknowledged yet. Each batch is fsync'd in the spool before it is sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import random
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

import structlog

from protocol.connection import Connection, State
from protocol.errors import ConnectionClosed, HandshakeFailed, ProtocolError
from protocol.handshake import client_handshake
from protocol.messages import Capabilities, Events, Heartbeat, Message
from slave.spool import JobSpool

log = structlog.get_logger(__name__)

#: Bytes kept free in an ``events`` frame for the message envelope and array headers.
_FRAME_MARGIN = 8192
#: A session that lasted this long resets the backoff.
_STABLE_SESSION = 10.0


class LinkState(enum.Enum):
    """Where the link is."""

    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"
    CONNECTED = "connected"


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delays between connection attempts: doubling from ``first`` to ``cap``, jittered.

    The jitter ("equal jitter": half fixed, half random) spreads a fleet of slaves
    that lost the same master so they do not all come back in the same instant.
    """

    first: float = 0.5
    cap: float = 30.0

    def delay(self, failures: int, rng: random.Random) -> float:
        base = min(self.cap, self.first * 2.0 ** min(failures, 30))
        return base / 2 + rng.uniform(0, base / 2)


class Link:
    """The master connection of one slave daemon (see the module docstring)."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        secret: bytes,
        name: str,
        software_version: str,
        capabilities: Callable[[], Capabilities],
        heartbeat: Callable[[], Heartbeat],
        handle: Callable[[Message], Awaitable[None]],
        spools: Callable[[], Iterable[JobSpool]],
        backoff: Backoff = Backoff(),
        events_per_batch: int = 500,
        ssl_context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        connect_timeout: float = 10.0,
    ) -> None:
        self.host = host
        self.port = port
        self._secret = secret
        self.name = name
        self._software_version = software_version
        self._capabilities = capabilities
        self._heartbeat = heartbeat
        self._handle = handle
        self._spools = spools
        self._backoff = backoff
        self._per_batch = events_per_batch
        self._ssl = ssl_context
        self._server_hostname = server_hostname if ssl_context is not None else None
        self._connect_timeout = connect_timeout
        self._wake = asyncio.Event()
        self._conn: Connection | None = None
        self._rng = random.Random()  # noqa: S311 - jitter, not secrecy
        self.state = LinkState.DISCONNECTED
        #: set while a session is up
        self.connected = asyncio.Event()
        #: sessions established so far (tests wait for a reconnect with it)
        self.sessions = 0
        #: the reason the last connection attempt or session ended
        self.last_error: str | None = None
        #: connection attempts and sessions that ended with an error so far
        self.failed = 0
        self._failed_changed = asyncio.Condition()

    def __repr__(self) -> str:
        return f"<Link {self.name} -> {self.host}:{self.port} {self.state.value}>"

    def wake(self) -> None:
        """Something new to send (events or a result): the pump looks again."""
        self._wake.set()

    async def wait_failed(self, count: int) -> None:
        """Return once ``count`` connection attempts or sessions have failed in all."""
        async with self._failed_changed:
            await self._failed_changed.wait_for(lambda: self.failed >= count)

    async def send(self, msg: Message) -> None:
        """Send a message on the current connection.

        Raises ``ConnectionClosed`` when there is none or it closes meanwhile.
        """
        conn = self._conn
        if conn is None or conn.state is not State.RUNNING:
            raise ConnectionClosed("not connected to the master")
        await conn.send(msg)

    async def run(self) -> None:
        """Stay connected until cancelled; never raises otherwise.

        On cancellation the current connection is closed with a ``bye``.
        """
        failures = 0
        while True:
            started = time.monotonic()
            error: BaseException | None = None
            try:
                await self._session()
            except (OSError, TimeoutError, ProtocolError) as exc:
                error = exc
            finally:
                self.state = LinkState.DISCONNECTED
                self.connected.clear()
            if time.monotonic() - started >= _STABLE_SESSION:
                failures = 0
            delay = self._backoff.delay(failures, self._rng)
            failures += 1
            if error is not None:
                await self._count_failure(error, delay)
            await asyncio.sleep(delay)

    async def _count_failure(self, exc: BaseException, retry_in: float) -> None:
        self.last_error = str(exc) or type(exc).__name__
        log.log(
            40 if isinstance(exc, HandshakeFailed) else 30,
            "master_connection_failed",
            master=f"{self.host}:{self.port}",
            error=self.last_error,
            retry_in=round(retry_in, 3),
        )
        async with self._failed_changed:
            self.failed += 1
            self._failed_changed.notify_all()

    def set_secret(self, secret: bytes) -> None:
        """Use ``secret`` from the next handshake on (a reload); the open session stays."""
        self._secret = secret

    async def _session(self) -> None:
        self.state = LinkState.CONNECTING
        async with asyncio.timeout(self._connect_timeout):
            reader, writer = await asyncio.open_connection(
                self.host, self.port, ssl=self._ssl, server_hostname=self._server_hostname
            )
        try:
            welcome = await client_handshake(
                reader,
                writer,
                secret=self._secret,
                name=self.name,
                software_version=self._software_version,
                capabilities=self._capabilities(),
            )
        except BaseException:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            raise
        conn = Connection(
            reader,
            writer,
            name=f"master@{self.host}:{self.port}",
            max_frame=welcome.max_frame,
            heartbeat_interval=welcome.heartbeat_interval,
            heartbeat_timeout=welcome.heartbeat_timeout,
            heartbeat=self._heartbeat,
        )
        conn.start()
        self._conn = conn
        self.state = LinkState.CONNECTED
        self.sessions += 1
        log.info("master_connected", master=f"{self.host}:{self.port}", session=welcome.session)
        try:
            # Before anything else: what we still hold, so the master can reconcile.
            await conn.send(self._heartbeat())
            self.connected.set()
            async with asyncio.TaskGroup() as tg:
                pump = tg.create_task(self._pump(conn, welcome.max_frame - _FRAME_MARGIN))
                await self._read(conn)
                pump.cancel()
        finally:
            self._conn = None
            await conn.close("slave closing the connection")
        cause = conn.error
        if cause is not None:
            raise cause
        raise ProtocolError("the master closed the connection")

    async def _read(self, conn: Connection) -> None:
        async for msg in conn:
            try:
                await self._handle(msg)
            except Exception:
                # A bug or a local failure handling one message must not take the
                # connection (and every other job's reporting) down with it.
                log.exception("message_handling_failed", message=msg.TYPE)

    async def _pump(self, conn: Connection, max_bytes: int) -> None:
        """Send unacknowledged events, then results, job by job, until cancelled.

        Returns when the connection closes (the reader sees that too).
        """
        with contextlib.suppress(ConnectionClosed):
            await self._pump_until_closed(conn, max_bytes)

    async def _pump_until_closed(self, conn: Connection, max_bytes: int) -> None:
        sent: dict[tuple[int, int], int] = {}
        results_sent: set[tuple[int, int]] = set()
        while conn.state is State.RUNNING:
            self._wake.clear()
            progressed = False
            for spool in list(self._spools()):
                key = (spool.job_id, spool.lease)
                after = max(sent.get(key, 0), spool.acked_seq)
                batch = spool.pending(after, max_count=self._per_batch, max_bytes=max_bytes)
                if batch:
                    await spool.sync()
                    await conn.send(Events(spool.job_id, spool.lease, tuple(batch)))
                    sent[key] = batch[-1].seq
                    progressed = True
                    continue
                result = spool.result
                if result is not None and key not in results_sent and after >= result.last_seq:
                    await conn.send(result)
                    results_sent.add(key)
                    progressed = True
            if not progressed:
                await self._wake.wait()
