"""An authenticated connection: owned reader, writer and heartbeat tasks.

Modelled on ``qemu.qmp``'s protocol object: a run-state enum with an explicit
transition table, one reader and one writer task owned by the connection, a
bounded outbound queue, and one idempotent disconnect path that every failure
funnels into. ``recv`` raises ``ConnectionClosed`` (with the error that ended
the connection as its cause) once everything received before the close has
been consumed.

Queues and their overflow policy:

- outbound (``outbound_limit`` messages): ``send`` waits for room, so a peer
  that stops reading slows its own producers down; if the peer does not take a
  frame within ``write_timeout`` the connection is closed (``PeerTimeout``).
  It counts messages, not bytes: ``wait_unwritten`` lets a producer of big
  frames wait until few are left unwritten (an event set on every write).
- inbound (``inbound_limit`` messages): the reader waits for room, which stops
  reading the socket, so TCP pushes back on the peer. Nothing is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import time
from collections.abc import AsyncIterator, Callable

from protocol.errors import ConnectionClosed, PeerTimeout, ProtocolError
from protocol.framing import MAX_FRAME, pack, read_frame
from protocol.messages import Bye, Heartbeat, Message, decode, encode
from pyti.tasks import cancel_and_wait


class State(enum.Enum):
    """Run state of a ``Connection``."""

    RUNNING = "running"
    CLOSING = "closing"
    CLOSED = "closed"


_TRANSITIONS: dict[State, frozenset[State]] = {
    State.RUNNING: frozenset({State.CLOSING}),
    State.CLOSING: frozenset({State.CLOSED}),
    State.CLOSED: frozenset(),
}


class Connection:
    """Messages both ways over one authenticated stream.

    Call ``start()`` once (inside a running loop), then ``send``/``recv``;
    ``close()`` always, also after an error (it is idempotent).
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        name: str,
        max_frame: int = MAX_FRAME,
        heartbeat_interval: float = 5.0,
        heartbeat_timeout: float = 20.0,
        write_timeout: float | None = None,
        outbound_limit: int = 256,
        inbound_limit: int = 256,
        heartbeat: Callable[[], Heartbeat] | None = None,
    ) -> None:
        self.name = name
        self._reader = reader
        self._writer = writer
        self._max_frame = max_frame
        self._hb_interval = heartbeat_interval
        self._hb_timeout = heartbeat_timeout
        self._write_timeout = heartbeat_timeout if write_timeout is None else write_timeout
        self._heartbeat = heartbeat or (lambda: Heartbeat(ts=time.time()))
        self._outbound: asyncio.Queue[Message] = asyncio.Queue(outbound_limit)
        self._inbound: asyncio.Queue[Message] = asyncio.Queue(inbound_limit)
        self._state = State.RUNNING
        self._closed = asyncio.Event()
        #: Set after every write to the socket and on close; waiters clear it first.
        self._wrote = asyncio.Event()
        self._writing = 0  # frames taken off the queue and not yet drained
        self._error: ProtocolError | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._close_task: asyncio.Task[None] | None = None
        self._last_rx = time.monotonic()
        self.frames_in = 0
        self.frames_out = 0

    def __repr__(self) -> str:
        return f"<Connection {self.name} {self._state.value}>"

    @property
    def state(self) -> State:
        return self._state

    @property
    def error(self) -> ProtocolError | None:
        """The error that ended the connection (``None`` for a clean close or while open)."""
        return self._error

    @property
    def unwritten(self) -> int:
        """Messages queued (by ``send`` or the heartbeat) but not yet written to the socket."""
        return self._outbound.qsize() + self._writing

    @property
    def peer(self) -> str:
        addr = self._writer.get_extra_info("peername")
        if isinstance(addr, tuple) and len(addr) >= 2:
            return f"{addr[0]}:{addr[1]}"
        return str(addr)

    def _set_state(self, new: State) -> None:
        if new not in _TRANSITIONS[self._state]:
            raise RuntimeError(f"illegal connection transition {self._state.value} -> {new.value}")
        self._state = new

    def start(self) -> None:
        """Start the owned reader, writer and heartbeat tasks."""
        if self._tasks:
            raise RuntimeError("connection already started")
        self._tasks = [
            asyncio.create_task(self._read_loop(), name=f"{self.name}-reader"),
            asyncio.create_task(self._write_loop(), name=f"{self.name}-writer"),
            asyncio.create_task(self._heartbeat_loop(), name=f"{self.name}-heartbeat"),
        ]

    # ------------------------------------------------------------ public ----

    async def send(self, msg: Message) -> None:
        """Queue ``msg`` for sending; waits while the outbound queue is full.

        Raises ``ConnectionClosed`` if the connection is (or becomes) closed;
        a message queued before the close may or may not have reached the peer.
        """
        if self._state is not State.RUNNING:
            raise self._closed_error()
        if self._outbound.full():
            put = asyncio.ensure_future(self._outbound.put(msg))
            closed = asyncio.ensure_future(self._closed.wait())
            try:
                await asyncio.wait((put, closed), return_when=asyncio.FIRST_COMPLETED)
            finally:
                closed.cancel()
                if not put.done():
                    put.cancel()
            if not put.done() or put.cancelled():
                raise self._closed_error()
        else:
            self._outbound.put_nowait(msg)

    async def recv(self) -> Message:
        """The next message from the peer.

        Messages received before a close are still delivered; after them this
        raises ``ConnectionClosed`` whose ``__cause__`` is the error that ended
        the connection, if any. Cancelling ``recv`` loses no message.
        """
        if not self._inbound.empty():
            return self._inbound.get_nowait()
        if self._state is not State.RUNNING:
            raise self._closed_error()
        get = asyncio.ensure_future(self._inbound.get())
        closed = asyncio.ensure_future(self._closed.wait())
        try:
            await asyncio.wait((get, closed), return_when=asyncio.FIRST_COMPLETED)
        finally:
            closed.cancel()
            if not get.done():
                get.cancel()
        if get.done() and not get.cancelled():
            return get.result()
        raise self._closed_error()

    async def __aiter__(self) -> AsyncIterator[Message]:
        while True:
            try:
                yield await self.recv()
            except ConnectionClosed:
                return

    async def close(self, reason: str = "closing") -> None:
        """Close (idempotent): a best-effort ``bye``, then tasks stopped, socket closed."""
        self._disconnect(None, bye=reason)
        assert self._close_task is not None
        await asyncio.shield(self._close_task)

    def close_nowait(self, reason: str = "closing") -> None:
        """Start closing (idempotent) and return at once; ``close()`` waits for the end.

        For callers that cannot await (a full queue noticed in a callback): the
        connection owns the close, as it does for every other failure.
        """
        self._disconnect(None, bye=reason)

    async def wait_unwritten(self, limit: int) -> None:
        """Until at most ``limit`` messages wait to be written to the socket.

        Lets a producer bound the bytes it queues (the queue counts messages).
        Raises ``ConnectionClosed`` if the connection is or becomes closed.
        """
        while self.unwritten > limit:
            if self._state is not State.RUNNING:
                raise self._closed_error()
            # No await between the check and clear(): a write cannot slip in between.
            self._wrote.clear()
            await self._wrote.wait()

    async def wait_closed(self) -> None:
        """Return once the connection has been closed, for whatever reason."""
        await self._closed.wait()
        if self._close_task is not None:
            await asyncio.shield(self._close_task)

    # ---------------------------------------------------------- internals ----

    def _closed_error(self) -> ConnectionClosed:
        exc = ConnectionClosed(f"connection {self.name} is closed")
        exc.__cause__ = self._error
        return exc

    def _disconnect(self, error: ProtocolError | None, *, bye: str | None = None) -> None:
        """The one disconnect path. Synchronous decision, asynchronous cleanup."""
        if self._state is not State.RUNNING:
            return
        self._set_state(State.CLOSING)
        self._error = error
        self._closed.set()
        self._wrote.set()
        self._close_task = asyncio.get_running_loop().create_task(
            self._cleanup(bye), name=f"{self.name}-close"
        )

    async def _cleanup(self, bye: str | None) -> None:
        current = asyncio.current_task()
        errors = await cancel_and_wait(*(t for t in self._tasks if t is not current))
        # Tell the peer why, unless it is gone or not reading anyway.
        tell = bye is not None or not isinstance(self._error, PeerTimeout | ConnectionClosed)
        if tell and not self._writer.is_closing():
            reason = bye if bye is not None else f"protocol error: {self._error}"
            with contextlib.suppress(OSError, TimeoutError, RuntimeError):
                self._writer.write(pack(encode(Bye(reason=reason[:200]))))
                async with asyncio.timeout(1.0):
                    await self._writer.drain()
        self._writer.close()
        try:
            async with asyncio.timeout(1.0):
                # shield: a timeout must not cancel the transport's shared close future.
                await asyncio.shield(self._writer.wait_closed())
        except TimeoutError:
            self._writer.transport.abort()
        except (OSError, RuntimeError):
            pass
        self._set_state(State.CLOSED)
        if errors:
            raise errors[0]  # a loop failed on its own (a bug): surfaced once all is closed

    async def _read_loop(self) -> None:
        try:
            while True:
                obj = await read_frame(self._reader, self._max_frame)
                self._last_rx = time.monotonic()
                self.frames_in += 1
                msg = decode(obj)
                if isinstance(msg, Bye):
                    self._disconnect(ConnectionClosed(f"peer said bye: {msg.reason}"))
                    return
                await self._inbound.put(msg)
        except ProtocolError as exc:
            self._disconnect(exc)

    async def _write_loop(self) -> None:
        try:
            while True:
                msg = await self._outbound.get()
                buf = [pack(encode(msg))]
                # Coalesce whatever else is queued into one write and one drain.
                while not self._outbound.empty() and len(buf) < 64:
                    buf.append(pack(encode(self._outbound.get_nowait())))
                self._writing = len(buf)
                self._writer.write(b"".join(buf))
                async with asyncio.timeout(self._write_timeout):
                    await self._writer.drain()
                self.frames_out += len(buf)
                self._writing = 0
                self._wrote.set()
        except TimeoutError:
            self._disconnect(PeerTimeout(f"peer did not read for {self._write_timeout:g} s"))
        except (ConnectionError, OSError) as exc:
            self._disconnect(ConnectionClosed(f"connection lost: {exc}"))

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self._hb_interval)
            silent = time.monotonic() - self._last_rx
            if silent > self._hb_timeout:
                self._disconnect(PeerTimeout(f"no frame from the peer for {silent:.1f} s"))
                return
            if self._outbound.empty():
                # Only when idle: a full queue already shows we are alive.
                self._outbound.put_nowait(self._heartbeat())
