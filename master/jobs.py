"""Jobs: the records the store hands out and the states a job can be in.

``JobState`` is the master's one job-state enum. Which moves between states are
allowed, and the SQL that makes each, is the store's job state machine:
``master/store/transitions.py``. The records are plain dataclasses with a
``to_dict()`` that is JSON-ready (what the HTTP API returns).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Literal

from protocol.results import JobOptions, JobTimeouts

Source = Literal["api", "feed", "upload"]
SOURCES: tuple[str, ...] = ("api", "feed", "upload")

#: Priorities by origin: a CI hook waiting for an answer goes before the feed's backlog.
PRIORITY_FEED = 0
PRIORITY_API = 10


class JobState(enum.Enum):
    """Where a job is in its life."""

    QUEUED = "queued"
    ASSIGNED = "assigned"
    RUNNING = "running"
    FINISHED = "finished"
    CANCELLED = "cancelled"

    @property
    def live(self) -> bool:
        """True while the job may still produce a result."""
        return self in LIVE_STATES


LIVE_STATES = frozenset({JobState.QUEUED, JobState.ASSIGNED, JobState.RUNNING})
FINAL_STATES = frozenset({JobState.FINISHED, JobState.CANCELLED})


class FinishDisposition(enum.StrEnum):
    """What ``store.jobs.finish`` did with a result (equal to its string: ``"stored"``...)."""

    STORED = "stored"  # the job is final now
    DUPLICATE = "duplicate"  # the same result was already stored; nothing changed
    STALE = "stale"  # for an older attempt: recorded in the attempt history only
    REQUEUED = "requeued"  # an infra_error with retries left: queued again, attempt + 1
    FOREIGN = "foreign"  # the sender never held that lease: refused, nothing written


@dataclass(frozen=True, slots=True)
class JobRequest:
    """A request to test one release (or uploaded files) in one image."""

    project: str
    version: str
    files: list[dict[str, Any]]
    image: str
    priority: int = 0
    source: Source = "api"
    callback_url: str | None = None
    rerun: bool = False
    timeouts: JobTimeouts = field(default_factory=JobTimeouts)
    options: JobOptions = field(default_factory=JobOptions)
    #: Why no image can test it (``master.images``): the job is stored finished, outcome
    #: ``incomplete``, with this as ``summary["reason"]``, and never dispatched.
    untestable: str | None = None


@dataclass(slots=True)
class Job:
    """One job as the store knows it."""

    id: int
    project: str
    version: str
    image: str
    state: JobState
    outcome: str | None
    priority: int
    attempt: int
    lease: int
    slave: str | None
    source: str
    callback_url: str | None
    files: list[dict[str, Any]]
    phases: dict[str, Any]
    summary: dict[str, Any]
    findings: list[Any]
    isolation: str | None
    error: str | None
    created_at: float
    assigned_at: float | None
    started_at: float | None
    finished_at: float | None
    quarantined: bool
    timeouts: JobTimeouts = field(default_factory=JobTimeouts)
    options: JobOptions = field(default_factory=JobOptions)
    slave_losses: int = 0  # consecutive attempts that lost their slave
    infra_retries: int = 0  # infra_error results retried so far
    event_seq: int = 0  # every event with seq <= this is stored; an offer's first_seq - 1
    verdict: str | None = None  # the behaviour verdict of the stored result, if it has one

    def __repr__(self) -> str:
        return (
            f"<Job {self.id} {self.project}=={self.version} {self.state.value}"
            f" attempt={self.attempt} lease={self.lease}>"
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; master-local file paths are left out."""
        return {
            "id": self.id,
            "project": self.project,
            "version": self.version,
            "image": self.image,
            "state": self.state.value,
            "outcome": self.outcome,
            "verdict": self.verdict,
            "priority": self.priority,
            "attempt": self.attempt,
            "lease": self.lease,
            "slave": self.slave,
            "source": self.source,
            "callback_url": self.callback_url,
            "files": [{k: v for k, v in f.items() if k != "path"} for f in self.files],
            "phases": self.phases,
            "summary": self.summary,
            "findings": self.findings,
            "isolation": self.isolation,
            "error": self.error,
            "created_at": self.created_at,
            "assigned_at": self.assigned_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "quarantined": self.quarantined,
        }


@dataclass(frozen=True, slots=True)
class SubmitResult:
    """The job a submission maps to, and whether it was created by this submission."""

    job: Job
    created: bool


@dataclass(frozen=True, slots=True)
class FilesSubmitResult:
    """What ``store.jobs.submit_files`` did with a file set (see there).

    ``how``: ``covered`` (the feed job already had these files), ``updated`` (its
    files were replaced while it was still queued), ``queued`` (a new job).
    """

    job: Job
    how: Literal["covered", "updated", "queued"]


@dataclass(frozen=True, slots=True)
class Attempt:
    """One claim of a job (one lease): who ran it and how it ended.

    ``status``: ``assigned``, ``running``, ``finished``, ``refused``, ``lost``
    (the slave went away), ``retried`` (an infra error, queued again),
    ``quarantined``, ``cancelled``, ``dropped`` (re-queued at shutdown or for
    reconciliation), ``stale_result`` (a result that came after the job moved on).
    """

    job_id: int
    attempt: int
    lease: int
    slave: str
    status: str
    assigned_at: float
    started_at: float | None
    ended_at: float | None
    outcome: str | None
    reason: str | None
    isolation: str | None
    phases: dict[str, Any]
    summary: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "attempt": self.attempt,
            "lease": self.lease,
            "slave": self.slave,
            "status": self.status,
            "assigned_at": self.assigned_at,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "outcome": self.outcome,
            "reason": self.reason,
            "isolation": self.isolation,
            "phases": self.phases,
            "summary": self.summary,
        }


@dataclass(frozen=True, slots=True)
class EventRow:
    """A stored event of a job (the wire ``Event`` plus its job)."""

    job_id: int
    seq: int
    ts: float
    level: str
    event: str
    phase: str | None
    fields: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "seq": self.seq,
            "ts": self.ts,
            "level": self.level,
            "event": self.event,
            "phase": self.phase,
            "fields": self.fields,
        }


@dataclass(frozen=True, slots=True)
class EventsStored:
    """What ``store.events.save`` did: the ack watermark and the rows new to the store."""

    acked: int  # every event with seq ≤ acked is stored
    new: list[EventRow]


@dataclass(frozen=True, slots=True)
class Callback:
    """A pending completion webhook: POST ``payload`` to ``url``."""

    id: int
    job_id: int
    url: str
    payload: dict[str, Any]
    attempts: int
    next_at: float
    created_at: float


@dataclass(frozen=True, slots=True)
class FeedState:
    """Where the feed watcher is in one feed (what it sends back as conditional GET)."""

    cursor: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    updated_at: float = 0.0


@dataclass(frozen=True, slots=True)
class TrackedRelease:
    """A feed release whose files are looked at again (``releases`` row, normalised name)."""

    project: str
    version: str
    files: frozenset[str]  # sha256 of every file a job was given (or judged not worth one)
    first_seen: float
    rechecks: int  # re-checks done so far
