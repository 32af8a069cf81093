"""A bounded QMP event listener, and silencing qemu.qmp's default one.

qemu.qmp's ``EventListener`` keeps every event in an unbounded queue and an
unbounded history. A guest can make QEMU emit events (e.g. opening and closing
a virtio-serial port), so over a long job that is memory the guest controls.
"""

from __future__ import annotations

import asyncio
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


def silence_default_listener(qmp: QMPClient) -> None:
    """Make ``qmp.events`` (which cannot be removed) accept no event at all."""
    qmp.events.names = {"__pyti_no_event__"}
