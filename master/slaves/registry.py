"""The connected slaves: who they are, what they run, how many slots are free.

The registry holds one ``SlaveLink`` per connected slave name (the session,
``master.slaves.session``, implements it); the scheduler reads it to decide,
the HTTP API to show (``list()``). It also remembers since when a slave with live jobs
has been gone, so the watchdog can re-queue those jobs after a grace period
unless the slave comes back and claims them.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from master.jobs import Job


@dataclass(frozen=True, slots=True)
class SlaveInfo:
    """A snapshot of one connected slave."""

    name: str
    address: str
    slots: int
    busy: int
    accel: str
    images: list[str]
    connected_at: float
    last_heartbeat: float | None
    draining: bool
    jobs: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "address": self.address,
            "slots": self.slots,
            "busy": self.busy,
            "free": max(0, self.slots - self.busy),
            "accel": self.accel,
            "images": self.images,
            "connected_at": self.connected_at,
            "last_heartbeat": self.last_heartbeat,
            "draining": self.draining,
            "jobs": self.jobs,
        }


class SlaveLink(Protocol):
    """What the scheduler needs from a connected slave. Every method returns at once."""

    @property
    def name(self) -> str: ...

    @property
    def images(self) -> frozenset[str]: ...

    @property
    def free_slots(self) -> int: ...

    @property
    def ready(self) -> bool:
        """Its first heartbeat has been reconciled (it holds what it says it runs)."""
        ...

    @property
    def accepting(self) -> bool:
        """Ready (reconciled), not draining, not backing off after a refusal."""
        ...

    def holds(self, job_id: int, lease: int) -> bool:
        """True if this slave has this claim of the job (offered or running)."""
        ...

    def offer(self, job: Job) -> bool:
        """Queue an offer of a freshly claimed job; False if the slave is gone."""
        ...

    def cancel(self, job_id: int, lease: int, reason: str) -> None:
        """Tell the slave to stop the job and report it cancelled."""
        ...

    def drain(self, reason: str) -> None:
        """Tell the slave to take no new jobs."""
        ...

    def info(self) -> SlaveInfo: ...


class SlaveRegistry:
    """Connected slaves by name (names are unique among connected slaves)."""

    def __init__(self) -> None:
        self._links: dict[str, SlaveLink] = {}
        #: name -> monotonic time it went away (only while it may still have live jobs).
        self._gone: dict[str, float] = {}

    def __len__(self) -> int:
        return len(self._links)

    def __iter__(self) -> Iterator[SlaveLink]:
        return iter(tuple(self._links.values()))

    def admit(self, name: str) -> str | None:
        """None if ``name`` may connect, else the reason to refuse it."""
        if name in self._links:
            return f"a slave named {name!r} is already connected"
        return None

    def add(self, link: SlaveLink) -> None:
        if link.name in self._links:
            raise ValueError(f"slave {link.name!r} already registered")
        self._links[link.name] = link
        self._gone.pop(link.name, None)

    def remove(self, link: SlaveLink) -> None:
        """Forget a link (only if it is still the registered one for its name)."""
        if self._links.get(link.name) is link:
            del self._links[link.name]
            self._gone[link.name] = time.monotonic()

    def get(self, name: str) -> SlaveLink | None:
        return self._links.get(name)

    def gone_since(self, name: str) -> float:
        """Monotonic time the slave was first seen missing (now, on first call after a restart)."""
        return self._gone.setdefault(name, time.monotonic())

    def forget_gone(self, name: str) -> None:
        self._gone.pop(name, None)

    def list(self) -> list[SlaveInfo]:
        """Snapshots of every connected slave, by name."""
        return [self._links[n].info() for n in sorted(self._links)]
