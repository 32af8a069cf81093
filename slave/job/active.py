"""One job the daemon holds: its spool, its event logger, its uploads and its task.

A job is held from ``job_accept`` until ``result_ack`` (or ``job_drop``)::

    RECEIVING ──▶ RUNNING ──▶ REPORTED ──(result_ack)──▶ gone
        └─────────┴──(job_drop)──▶ DROPPED

RECEIVING waits for uploaded files, RUNNING runs the executor, REPORTED has a
result in the spool waiting for the master's acknowledgement.
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog
from structlog.typing import EventDict, FilteringBoundLogger, WrappedLogger

from protocol.events import Event, EventSink
from protocol.messages import JobFile, JobOffer
from slave.errors import SlaveError
from slave.spool import JobSpool

_slave_log = structlog.get_logger("slave.job")
#: Events that are many and individually worth little: dropped first when the spool is full,
#: and not echoed to the slave's own log.
_BULK = frozenset({"output", "trace"})
#: Keys the echo sets itself (a guest event may carry its own ``job_id``).
_NOT_ECHOED = frozenset({"event", "level", "job_id"})
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}
_LEVELS |= {"error": logging.ERROR, "critical": logging.CRITICAL}


class UploadError(SlaveError):
    """An uploaded file did not arrive whole, in order, with its announced sha256."""


class ActiveState(enum.Enum):
    """Where a held job is on this slave (see the module docstring).

    Not the master's ``JobState``: the master tracks a job across attempts and
    slaves; this tracks one attempt between ``job_accept`` and ``result_ack``.
    """

    RECEIVING = "receiving"
    RUNNING = "running"
    REPORTED = "reported"
    DROPPED = "dropped"


_TRANSITIONS: dict[ActiveState, frozenset[ActiveState]] = {
    ActiveState.RECEIVING: frozenset(
        {ActiveState.RUNNING, ActiveState.REPORTED, ActiveState.DROPPED}
    ),
    ActiveState.RUNNING: frozenset({ActiveState.REPORTED, ActiveState.DROPPED}),
    ActiveState.REPORTED: frozenset({ActiveState.DROPPED}),
    ActiveState.DROPPED: frozenset(),
}


class _Upload:
    """One uploaded file being assembled from ``job_file`` chunks."""

    def __init__(self, path: Path, size: int, sha256: str) -> None:
        self.path = path
        self.size = size
        self.sha256 = sha256.lower()
        self.received = 0
        self.hash = hashlib.sha256()
        self.done = False


class ActiveJob:
    """A job from acceptance to acknowledgement (see the module docstring)."""

    def __init__(
        self, offer: JobOffer, spool: JobSpool, job_dir: Path, wake: Callable[[], None]
    ) -> None:
        self.offer = offer
        self.spool = spool
        self.job_dir = job_dir
        self.state = ActiveState.RECEIVING
        #: the job's task (owned by the daemon) and, inside it, the executor's task
        self.task: asyncio.Task[None] | None = None
        self.inner: asyncio.Task[str] | None = None
        #: why the job is being stopped by us ("cancelled" or a shutdown), if it is
        self.stop_outcome: str | None = None
        self.stop_reason = ""
        self.events_dropped = 0
        self._wake = wake
        self._sink = EventSink(self._spool_event, first_seq=spool.last_seq + 1)
        wrapper: Any = structlog.make_filtering_bound_logger(logging.DEBUG)
        self.log: FilteringBoundLogger = wrapper(
            structlog.ReturnLogger(), [self._gate, self._sink, self._echo], {}
        )
        self._uploads: dict[str, _Upload] = {}
        for spec in offer.files:
            if not spec.url:
                path = job_dir / "upload" / spec.filename
                self._uploads[spec.filename] = _Upload(path, spec.size, spec.sha256)
        self.uploads_done = asyncio.Event()
        if not self._uploads:
            self.uploads_done.set()
        self.upload_error: UploadError | None = None

    def __repr__(self) -> str:
        return f"<ActiveJob {self.offer.job_id} lease={self.offer.lease} {self.state.value}>"

    @property
    def key(self) -> tuple[int, int]:
        return (self.offer.job_id, self.offer.lease)

    def set_state(self, new: ActiveState) -> None:
        if new not in _TRANSITIONS[self.state]:
            raise RuntimeError(f"job {self.offer.job_id}: {self.state.value} -> {new.value}")
        self.state = new

    def stop(self, outcome: str, reason: str) -> None:
        """Stop the executor; the job then reports ``outcome`` (cancel, shutdown abort)."""
        if self.stop_outcome is None:
            self.stop_outcome, self.stop_reason = outcome, reason
        if self.inner is not None:
            self.inner.cancel()

    # --------------------------------------------------------------- events --

    def _gate(self, logger: WrappedLogger, method: str, event_dict: EventDict) -> EventDict:
        """Drop (and count) events the spool has no room for, before they get a seq."""
        level = str(event_dict.get("level") or method)
        bulk = event_dict.get("event") in _BULK or level == "debug"
        if self.state is ActiveState.REPORTED or not self.spool.has_room(important=not bulk):
            self.events_dropped += 1
            raise structlog.DropEvent
        return event_dict

    def _spool_event(self, ev: Event) -> None:
        self.spool.append(ev)
        self._wake()

    def _echo(self, logger: WrappedLogger, method: str, event_dict: EventDict) -> EventDict:
        """Show the job's notable events in the slave's own log too, then stop the chain."""
        level = str(event_dict.get("level") or method)
        if event_dict.get("event") not in _BULK and level != "debug":
            fields = {k: v for k, v in event_dict.items() if k not in _NOT_ECHOED}
            _slave_log.log(
                _LEVELS.get(level, logging.INFO),
                str(event_dict.get("event")),
                job_id=self.offer.job_id,
                **fields,
            )
        raise structlog.DropEvent

    def emit(self, event: str, *, level: str, phase: str | None, fields: dict[str, Any]) -> None:
        """Log one event with explicit parts (used for sanitised guest events)."""
        self.log.log(_LEVELS.get(level, logging.INFO), event, phase=phase, **fields)

    @property
    def last_seq(self) -> int:
        return self.spool.last_seq

    # -------------------------------------------------------------- uploads --

    def add_chunk(self, chunk: JobFile) -> None:
        """Append a ``job_file`` chunk; sets ``uploads_done`` when every file is complete.

        A bad chunk (unknown file, wrong offset, too long, bad sha256) records an
        ``UploadError`` and sets ``uploads_done`` too: the job then ends as an
        infra error. Small synchronous writes: chunks are at most 512 KiB.
        """
        if self.upload_error is not None or self.uploads_done.is_set():
            return
        up = self._uploads.get(chunk.filename)
        try:
            if up is None or up.done:
                raise UploadError(f"unexpected file chunk for {chunk.filename!r}")
            if chunk.offset != up.received:
                raise UploadError(
                    f"{chunk.filename}: chunk at offset {chunk.offset}, expected {up.received}"
                )
            if up.received + len(chunk.data) > up.size:
                raise UploadError(f"{chunk.filename}: more than the announced {up.size} bytes")
            up.path.parent.mkdir(parents=True, exist_ok=True)
            with up.path.open("ab" if up.received else "wb") as f:
                f.write(chunk.data)
            up.received += len(chunk.data)
            up.hash.update(chunk.data)
            if chunk.final:
                if up.received != up.size or up.hash.hexdigest() != up.sha256:
                    raise UploadError(
                        f"{chunk.filename}: received {up.received} bytes with sha256 "
                        f"{up.hash.hexdigest()}, expected {up.size} bytes with {up.sha256}"
                    )
                up.done = True
        except UploadError as exc:
            self.upload_error = exc
            self.uploads_done.set()
            return
        except OSError as exc:
            self.upload_error = UploadError(f"{chunk.filename}: cannot store: {exc}")
            self.uploads_done.set()
            return
        if all(u.done for u in self._uploads.values()):
            self.uploads_done.set()

    def uploaded_files(self) -> dict[str, Path]:
        """The complete uploaded files (name -> path)."""
        return {name: up.path for name, up in self._uploads.items() if up.done}
