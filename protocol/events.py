"""The log event schema both daemons share, and the bridge from structlog to it.

An event is ``seq, ts, level, event, phase, fields``: ``seq`` numbers a job's
events from 1 without gaps (the slave assigns it; the master stores each
``(job, seq)`` once), ``ts`` is seconds since the epoch, ``event`` a stable
snake_case name (``vm_restored``), ``phase`` the job phase or ``None``, and
``fields`` anything else, msgpack-native.
"""

from __future__ import annotations

import time
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any, Literal

from protocol.schema import record
from protocol.vocabulary import Phase, values

Level = Literal["debug", "info", "warning", "error", "critical"]
LEVELS: tuple[str, ...] = ("debug", "info", "warning", "error", "critical")
#: The job phases an event may name (``protocol.vocabulary.Phase``, in order).
PHASES: tuple[str, ...] = values(Phase)

#: Keys of a structlog event dict that become Event attributes, not ``fields``.
_RESERVED = frozenset({"event", "level", "phase", "timestamp", "seq", "ts", "log_level"})


@record
@dataclass(slots=True)
class Event:
    """One structured log event of a job."""

    seq: int
    ts: float
    level: Level
    event: str
    phase: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)


def to_native(value: Any, depth: int = 0) -> Any:
    """``value`` made msgpack-native: containers kept (to a depth), anything else by ``str``."""
    if value is None or isinstance(value, bool | int | float | str | bytes):
        return value
    if depth >= 8:
        return str(value)
    if isinstance(value, dict):
        return {str(k): to_native(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_native(v, depth + 1) for v in value]
    return str(value)


class EventSink:
    """A structlog processor that turns every log call bound to a job into an Event.

    Put it in a job logger's processor chain: each call gets the next ``seq``,
    is handed to ``emit`` (which spools and sends it), and then continues down
    the chain unchanged, so the slave's own log shows it too.
    """

    def __init__(self, emit: Callable[[Event], None], first_seq: int = 1) -> None:
        self._emit = emit
        self._next_seq = first_seq

    @property
    def last_seq(self) -> int:
        """The sequence number of the last event emitted (0 before any)."""
        return self._next_seq - 1

    def __call__(
        self, logger: object, method_name: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        level = str(event_dict.get("level") or method_name)
        if level == "exception":
            level = "error"
        if level not in LEVELS:
            level = "info"
        phase = event_dict.get("phase")
        ev = Event(
            seq=self._next_seq,
            ts=time.time(),
            level=level,  # type: ignore[arg-type]  # checked against LEVELS above
            event=str(event_dict.get("event", "")),
            phase=None if phase is None else str(phase),
            fields={k: to_native(v) for k, v in event_dict.items() if k not in _RESERVED},
        )
        self._next_seq += 1
        self._emit(ev)
        return event_dict
