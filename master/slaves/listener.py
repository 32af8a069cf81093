"""The slave port: TCP (optionally TLS), handshake, one ``SlaveSession`` per slave.

Each connection is served by its own task: a slow or hostile peer costs only
its own task. The handshake runs under its own timeout and the 4 KiB frame cap;
any failure ends that connection only (and is counted). Names are reserved
during the handshake, so two connections racing with one name get one welcome.

Shutdown (``stop``): stop accepting, ask every slave to drain, wait up to the
grace for their jobs to finish, hand back what they still hold
(``Holdings.surrender``), say bye, and end the connection tasks (the listener
owns them).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import ssl
import time
from typing import TYPE_CHECKING

import structlog

from master.slaves.session import SlaveSession
from master.throttle import LogThrottle
from protocol.connection import Connection
from protocol.errors import HandshakeFailed, ProtocolError
from protocol.handshake import server_handshake
from protocol.messages import Auth, Heartbeat
from pyti.tasks import cancel_and_wait

if TYPE_CHECKING:
    from master.context import MasterContext

log = structlog.get_logger("master.slaves.listener")

#: Connections still in the handshake at once; more are closed at once, so a flood
#: of idle peers costs a bounded number of tasks and file descriptors.
MAX_PENDING_HANDSHAKES = 128
#: Of those, from one address: one hostile host cannot take every slot and keep
#: the real slaves (on other addresses) from reconnecting.
MAX_PENDING_PER_PEER = 16


class SlaveListener:
    """Listens for slaves and owns one task per connection.

    ``await start()``, then ``await stop()`` always.
    """

    def __init__(
        self,
        ctx: MasterContext,
        *,
        host: str | None = None,
        port: int | None = None,
        ssl_context: ssl.SSLContext | None = None,
        max_pending_handshakes: int = MAX_PENDING_HANDSHAKES,
        max_pending_per_peer: int = MAX_PENDING_PER_PEER,
    ) -> None:
        self.ctx = ctx
        self._host = ctx.config.slave_host if host is None else host
        self._port = ctx.config.slave_port if port is None else port
        self._ssl = ssl_context
        self._max_pending = max_pending_handshakes
        self._server: asyncio.Server | None = None
        self._conns: set[asyncio.Task[None]] = set()
        self._sessions: set[SlaveSession] = set()
        self._reserved: set[str] = set()
        self._pending = 0
        self._max_per_peer = max_pending_per_peer
        self._pending_by_host: dict[str, int] = {}
        self._refusal_log = LogThrottle(limit=20, window=10.0)
        m = ctx.metrics
        self._m_handshake = m.counter(
            "slave_handshake_failures_total", "Slave connections refused.", ["reason"]
        )
        self._m_conns = m.counter("slave_connections_total", "Slave connections accepted (TCP).")

    @property
    def port(self) -> int:
        """The bound port (useful with port 0)."""
        assert self._server is not None and self._server.sockets
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def sessions(self) -> frozenset[SlaveSession]:
        return frozenset(self._sessions)

    async def start(self) -> None:
        """Bind and listen. Raises ``OSError`` (e.g. the port is in use)."""
        # TLS is started per connection in ``_serve`` (not by the server), so that a
        # failed TLS handshake is counted, logged with its peer, and held to the same
        # pending-handshake caps and timeout as the protocol handshake.
        self._server = await asyncio.start_server(self._on_connect, self._host, self._port)
        log.info("slave_server_listening", host=self._host, port=self.port, tls=bool(self._ssl))

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._conns.add(task)
        self._m_conns.inc()
        try:
            await self._serve(reader, writer)
        except Exception:  # a bug must end this connection only, loudly
            log.exception("slave_connection_crashed")
        finally:
            self._conns.discard(task)
            writer.close()

    def _admit(self, auth: Auth, reserved: list[str]) -> str | None:
        reason = self.ctx.slaves.admit(auth.name)
        if reason is None and auth.name in self._reserved:
            reason = f"a slave named {auth.name!r} is already connecting"
        if reason is None and not 0 < len(auth.name) <= 128:
            reason = "slave name must be 1 to 128 characters"
        if reason is None:
            self._reserved.add(auth.name)
            reserved.append(auth.name)
        return reason

    def _warn_refused(self, event: str, peer: object, reason: str) -> None:
        # Every refusal is counted in pyti_slave_handshake_failures_total; the log gets a
        # sample, so a flood of hostile peers cannot flood it (or starve the loop).
        allowed, suppressed = self._refusal_log.allow()
        if suppressed:
            log.warning("slave_handshake_failures_suppressed", count=suppressed)
        if allowed:
            log.warning(event, peer=str(peer), reason=reason)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        cfg = self.ctx.config
        session_id = secrets.token_hex(8)
        peer = writer.get_extra_info("peername")
        reserved: list[str] = []
        host = str(peer[0]) if isinstance(peer, tuple) and peer else "?"
        if self._pending >= self._max_pending:
            self._m_handshake.inc(1.0, "too_many_pending")
            self._warn_refused("slave_handshake_refused", peer, "too many pending")
            return
        if self._pending_by_host.get(host, 0) >= self._max_per_peer:
            self._m_handshake.inc(1.0, "too_many_pending_from_peer")
            self._warn_refused("slave_handshake_refused", peer, "too many pending from peer")
            return
        self._pending += 1
        self._pending_by_host[host] = self._pending_by_host.get(host, 0) + 1
        try:
            if self._ssl is not None and not await self._start_tls(writer, peer):
                return
            auth = await server_handshake(
                reader,
                writer,
                secret=cfg.slave_secrets,
                master_name=cfg.master_name,
                heartbeat_interval=cfg.heartbeat_interval,
                heartbeat_timeout=cfg.heartbeat_timeout,
                max_frame=cfg.max_frame,
                session=session_id,
                admit=lambda a: self._admit(a, reserved),
                timeout=cfg.handshake_timeout,
            )
        except (ProtocolError, OSError) as exc:
            reason = exc.reason if isinstance(exc, HandshakeFailed) else type(exc).__name__
            self._m_handshake.inc(1.0, _reason_label(reason))
            self._warn_refused("slave_handshake_failed", peer, str(reason)[:200])
            return
        finally:
            # No await until the session registers the name: it is never free in between.
            self._reserved.difference_update(reserved)
            self._pending -= 1
            left = self._pending_by_host.pop(host) - 1
            if left:
                self._pending_by_host[host] = left
        conn = Connection(
            reader,
            writer,
            name=f"slave-{auth.name}",
            max_frame=cfg.max_frame,
            heartbeat_interval=cfg.heartbeat_interval,
            heartbeat_timeout=cfg.heartbeat_timeout,
            heartbeat=lambda: Heartbeat(ts=time.time()),
        )
        session = SlaveSession(self.ctx, auth, conn, session_id)
        self._sessions.add(session)
        try:
            await session.run()
        finally:
            self._sessions.discard(session)

    async def _start_tls(self, writer: asyncio.StreamWriter, peer: object) -> bool:
        """TLS on this connection; False (counted, logged) if the peer fails it."""
        assert self._ssl is not None
        try:
            await writer.start_tls(
                self._ssl, ssl_handshake_timeout=self.ctx.config.handshake_timeout
            )
        except (ssl.SSLError, OSError, TimeoutError) as exc:
            self._m_handshake.inc(1.0, "tls")
            reason = getattr(exc, "reason", None) or type(exc).__name__
            self._warn_refused("slave_tls_failed", peer, str(reason)[:200])
            return False
        return True

    async def stop(self, grace: float) -> None:
        """Stop accepting; drain slaves for up to ``grace`` s; re-queue leftovers; close.

        Cancel-safe in the sense that a second ``stop`` finishes the job.
        """
        if self._server is not None:
            self._server.close()
        sessions = list(self._sessions)
        for s in sessions:
            s.drain("master shutting down")
        if sessions:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(grace):
                    await asyncio.gather(*(s.holdings.idle.wait() for s in sessions))
        for s in sessions:
            await s.holdings.surrender("master shut down", running=True)
        for s in sessions:
            await s.conn.close("master shutting down")
        await cancel_and_wait(*self._conns)
        if self._server is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2.0):
                    await self._server.wait_closed()
        log.info("slave_server_stopped")


def _reason_label(reason: str) -> str:
    """A bounded metric label for a handshake failure."""
    for label in ("authentication failed", "version mismatch", "already"):
        if label in reason:
            return label.replace(" ", "_")
    return reason if reason in ("PeerTimeout", "FrameTooLarge", "MalformedFrame") else "other"
