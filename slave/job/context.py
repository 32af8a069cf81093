"""What the daemon hands a job executor, and what it expects back.

The daemon owns the connection, the spool and the job's life cycle; an
:class:`Executor` only runs the job. The real one (:class:`slave.job.executor.VMExecutor`)
drives a VM; tests plug in one that emits scripted events. Contract:

- ``await executor.run(ctx)`` returns the job's outcome (one of
  ``protocol.messages.OUTCOMES``). It records per-phase results in
  ``ctx.phases`` and everything else of the result in ``ctx.summary`` *as it
  goes*, so a job that is cancelled or fails half-way still reports what it did.
- It logs through ``ctx.log`` (a structlog logger bound to the job): every
  call becomes a protocol event with the next ``seq``. ``ctx.emit`` does the
  same for already-sanitised guest events.
- Cancellation (``job_cancel``, ``job_drop``, shutdown) arrives as
  ``CancelledError``: the executor tears down (VM stopped) and re-raises.
- Any other exception makes the job an ``infra_error`` carrying its message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from protocol.messages import JobOffer
from protocol.results import JobSummary, PhaseResult
from slave.config import SlaveConfig


class EventLogger(Protocol):
    """The structlog methods a job logger offers (``structlog.typing.FilteringBoundLogger``)."""

    def debug(self, event: str, *args: Any, **kw: Any) -> Any: ...
    def info(self, event: str, *args: Any, **kw: Any) -> Any: ...
    def warning(self, event: str, *args: Any, **kw: Any) -> Any: ...
    def error(self, event: str, *args: Any, **kw: Any) -> Any: ...
    def log(self, level: int, event: str, *args: Any, **kw: Any) -> Any: ...


class EmitEvent(Protocol):
    """Log one event with an explicit level, phase and field map."""

    def __call__(
        self, event: str, *, level: str, phase: str | None, fields: dict[str, Any]
    ) -> None: ...


@dataclass(slots=True)
class JobContext:
    """One job as an executor sees it."""

    offer: JobOffer
    config: SlaveConfig
    #: the accelerator the job runs under ("kvm" | "tcg"): the result's isolation
    isolation: str
    #: a directory of the job's own, deleted after the job
    job_dir: Path
    #: uploaded release files (``job_file``), complete and sha256-checked: name -> path
    uploads: dict[str, Path]
    log: EventLogger
    emit: EmitEvent
    #: per phase: ``status``, ``duration_s`` and counts (the result's ``phases``)
    phases: dict[str, PhaseResult] = field(default_factory=dict)
    #: tests counts, findings, verdict, quality, crash... (the result's ``summary``)
    summary: JobSummary = field(default_factory=JobSummary)


class Executor(Protocol):
    """Runs one job (see the module docstring for the contract)."""

    async def run(self, ctx: JobContext) -> str: ...
