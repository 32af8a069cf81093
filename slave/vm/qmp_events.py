"""A bounded QMP event listener, and silencing qemu.qmp's default one.

qemu.qmp's ``EventListener`` keeps every event in an unbounded queue and an
unbounded history. A guest can make QEMU emit events (e.g. opening and closing
a virtio-serial port), so over a long job that is memory the guest controls.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from qemu.qmp import EventListener, QMPClient

#: Events kept by a :class:`BoundedListener` before new ones are dropped. Waiters
#: re-check state with a query after each event, so a dropped event costs nothing.
EVENT_QUEUE_SIZE = 64


class BoundedListener(EventListener):
    """An EventListener with a bounded queue and no history; overflow drops new events."""

    def __init__(self, names: set[str]) -> None:
        super().__init__(names)
        self._queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=EVENT_QUEUE_SIZE)

    async def put(self, event: Any) -> None:
        """Queue ``event`` if it is one we listen for and there is room."""
        if self.accept(event) and not self._queue.full():
            self._queue.put_nowait(event)

    def drain(self) -> list[Any]:
        """The events queued so far, without waiting (the queue is left empty)."""
        events = []
        while not self._queue.empty():
            events.append(self._queue.get_nowait())
        return events


class DiskErrorWatch(BoundedListener):
    """Keeps QEMU's ``BLOCK_IO_ERROR`` events and wakes :meth:`failed`'s waiters on the first.

    With its default ``werror=enospc``, QEMU pauses the guest when a write to its disk
    (the job's overlay on the slave's work dir) fails for lack of space: the guest then
    hangs until the phase deadline, and the job would end ``timed_out``, blamed on the
    package. Seeing the event, the job ends at once as the slave's failure.
    """

    def __init__(self) -> None:
        super().__init__({"BLOCK_IO_ERROR"})
        self.seen = asyncio.Event()
        self.first: dict[str, Any] | None = None

    async def put(self, event: Any) -> None:
        """Keep the first event and wake the waiters."""
        if self.accept(event) and self.first is None:
            # qemu.qmp's Message is a Mapping, not a dict; its "data" a plain dict
            data = event.get("data") if isinstance(event, Mapping) else None
            self.first = dict(data) if isinstance(data, Mapping) else {}
            self.seen.set()

    async def failed(self) -> str:
        """Waits for a disk error; a line saying what QEMU reported."""
        await self.seen.wait()
        data = self.first or {}
        op = data.get("operation", "an operation")
        why = data.get("reason") or ("no space left" if data.get("nospace") else "an I/O error")
        action = data.get("action")
        paused = ", QEMU paused the guest" if action == "stop" else ""
        return f"the guest's disk failed on {op}: {why} (the slave's work dir{paused})"


def silence_default_listener(qmp: QMPClient) -> None:
    """Make ``qmp.events`` (which cannot be removed) accept no event at all."""
    qmp.events.names = {"__pyti_no_event__"}
