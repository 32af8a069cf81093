"""A VM's serial console: copied to ``console.log`` up to a cap, its tail kept in memory.

The guest controls how much it writes, so the log is capped (the rest is read
and dropped, never left to fill the socket buffer and stall the guest) and
only the last bytes are kept for error messages.
"""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

#: Bytes of serial console written to ``console.log``; the rest is read and dropped.
CONSOLE_CAP = 1 << 20
#: Bytes of console output kept in memory for error messages.
CONSOLE_TAIL = 16 << 10


class Console:
    """Reads one console socket in a task it owns; :meth:`close` cancels and awaits it."""

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self._tail = bytearray()
        #: Console bytes beyond the cap that were read and not logged.
        self.dropped = 0
        self._task: asyncio.Task[None] | None = None

    def start(self, sock: socket.socket) -> None:
        """Start copying from ``sock`` (closed by the reader when it ends)."""
        self._task = asyncio.create_task(self._read(sock), name=f"console {self.log_path}")

    def tail(self) -> str:
        """The last bytes the guest wrote to its serial console."""
        return self._tail.decode(errors="replace")

    async def close(self) -> None:
        """Stop reading. The reader has ended (its socket closed) when this returns.

        If cancelled while waiting, the reader (already cancelled) ends on its own.
        """
        if self._task is None:
            return
        self._task.cancel()
        await asyncio.wait([self._task])

    async def _read(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        sock.setblocking(False)
        written = 0
        try:
            with self.log_path.open("ab") as f:
                while data := await loop.sock_recv(sock, 65536):
                    self._tail += data
                    del self._tail[:-CONSOLE_TAIL]
                    keep = data[: max(0, CONSOLE_CAP - written)]
                    if keep:
                        f.write(keep)
                        f.flush()
                        written += len(keep)
                    self.dropped += len(data) - len(keep)
        except OSError:
            pass  # QEMU went away or the log's directory was removed: nothing to keep
        finally:
            sock.close()
