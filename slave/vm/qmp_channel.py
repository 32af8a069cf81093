"""One QMP connection over our end of a socketpair, owned from handshake to close.

qemu.qmp cannot have a connect cancelled and then be disconnected by another
caller: the aborted connect's own clean-up runs ``disconnect()`` too, finds
the client already back in ``IDLE`` and fails ``assert self.runstate ==
Runstate.DISCONNECTING`` in a task nobody awaits ("Task exception was never
retrieved"). So the handshake runs in a task of its own that is never
cancelled. To end it, :meth:`QMPChannel.abort` shuts the socket down (the
handshake then fails by itself with EOF), and :meth:`QMPChannel.close` waits
for it before disconnecting what did connect.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket

import structlog
from qemu.qmp import QMPClient, QMPError, Runstate

from slave.vm.qmp_events import silence_default_listener

log = structlog.get_logger(__name__)

#: Seconds :meth:`QMPChannel.close` gives qemu.qmp once the socket is shut down.
CLOSE_TIMEOUT = 10.0

# qemu.qmp logs at ERROR every failure it also raises, and the VM raises those
# as VMError with QEMU's own message. Left alone, each start aborted on purpose
# (a job refused while its VM boots) would log "Failed to establish session".
# Its CRITICAL ("a bug in the QMP library") still shows.
if logging.getLogger("qemu.qmp").level == logging.NOTSET:
    logging.getLogger("qemu.qmp").setLevel(logging.CRITICAL)


class QMPChannel:
    """A :class:`QMPClient` over ``sock``: :meth:`handshake`, use :attr:`client`, then close."""

    def __init__(self, name: str, sock: socket.socket) -> None:
        self.client = QMPClient(name)
        silence_default_listener(self.client)
        self._sock = sock
        self._connecting: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"<QMPChannel {self.client.name} {self.client.runstate.name}>"

    @property
    def connected(self) -> bool:
        """Whether the handshake succeeded and the connection is still up."""
        return self.client.runstate is Runstate.RUNNING

    def handshake(self) -> asyncio.Future[None]:
        """Start the handshake; await the result to know how it went.

        Cancelling the awaitable does not cancel the handshake (see the module
        docstring); :meth:`abort` and :meth:`close` end it. Its failure is
        qemu.qmp's ``ConnectError`` (a ``QMPError``), ``OSError`` or ``EOFError``.
        """
        assert self._connecting is None, "one handshake per channel"
        self._connecting = asyncio.create_task(
            self.client.connect(self._sock), name=f"QMP handshake {self.client.name}"
        )
        return asyncio.shield(self._connecting)

    def abort(self) -> None:
        """Shut the socket down: QMP reads EOF from now on. Synchronous, idempotent.

        Not ``close()``: once connected the socket belongs to qemu.qmp's transport,
        which closes it itself on EOF.
        """
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)

    async def close(self) -> None:
        """:meth:`abort`, end the handshake and the connection, close the socket.

        Never raises: what QMP reports now is the EOF of our own shutdown, and a
        failed handshake's error was the start's (or the start was cancelled).
        """
        self.abort()
        connecting = self._connecting
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT):
                if connecting is not None:
                    await asyncio.wait([connecting])
                    _retrieve(connecting)
                if self.client.runstate is not Runstate.IDLE:
                    with contextlib.suppress(QMPError, OSError, EOFError):
                        await self.client.disconnect()
        except TimeoutError:
            # Leave the socket to qemu.qmp's transport: closing it beneath a live
            # transport would free its fd number for reuse while still registered.
            log.warning("qmp_close_timeout", name=self.client.name,
                        runstate=self.client.runstate.name)  # fmt: skip
            if connecting is not None:
                connecting.add_done_callback(_retrieve)
            return
        self._sock.close()  # a no-op if qemu.qmp's transport closed it


def _retrieve(task: asyncio.Task[None]) -> None:
    """Mark a task's exception as seen (see :meth:`QMPChannel.close` for why it is moot)."""
    if not task.cancelled():
        task.exception()
