"""Host-side steps of a job that talk to the guest: upload, the runner (and its metadata hand-off).

Each function here is one step of :class:`slave.job.executor.VMExecutor`; they log
through the job's logger and record into the job's :class:`~slave.job.record.RunRecord`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from guest_runner.jobdoc import DEPENDENCIES_READY, JobDocument
from protocol.events import PHASES
from protocol.results import PhaseResult
from protocol.schema import encode_record
from protocol.vocabulary import PhaseStatus
from slave.config import GUEST_PHASES
from slave.errors import SlaveError
from slave.job.context import JobContext
from slave.job.record import RunRecord
from slave.prepare import PreparedRelease
from slave.prepare.errors import DependencyUnavailable
from slave.prepare.metadata import pip_argument
from slave.sanitize import clean_line, clean_text
from slave.vm.guest import Guest

GUEST_JOB_DIR = "/var/lib/pyti/job"
#: The guest runner: the ``guest_runner`` package as one zipapp, built with the image.
RUNNER = "/opt/pyti/runner.pyz"
#: Seconds the runner may take outside any phase (start, guest setup, between phases).
BETWEEN_PHASES = 120.0
_SEVERITY_LEVEL = {"critical": "error", "high": "warning", "medium": "warning"}


class HostPhaseTimeout(SlaveError):
    """A host-side step ran past its timeout."""

    def __init__(self, phase: str, seconds: float) -> None:
        super().__init__(f"{phase} did not finish within {seconds:g} s")
        self.phase = phase
        self.seconds = seconds


@contextlib.asynccontextmanager
async def host_phase(ctx: JobContext, name: str, timeout: float) -> AsyncIterator[None]:
    """Log a host-side phase, record its status and duration, enforce its timeout.

    Raises :class:`HostPhaseTimeout` past ``timeout``; any error or cancellation
    passes through after the phase is recorded (status ``error``).
    """
    ctx.log.info("phase_started", phase=name, timeout_s=timeout)
    started = time.monotonic()
    status, reason = PhaseStatus.ERROR, ""
    try:
        try:
            async with asyncio.timeout(timeout):
                yield
        except TimeoutError:
            status = PhaseStatus.TIMED_OUT
            raise HostPhaseTimeout(name, timeout) from None
        status = PhaseStatus.PASSED
    except asyncio.CancelledError:
        reason = "cancelled"
        raise
    except BaseException as exc:
        reason = f"{type(exc).__name__}: {exc}"[:500]
        raise
    finally:
        duration = round(time.monotonic() - started, 3)
        entry = PhaseResult(status, duration_s=duration, reason=reason or None)
        ctx.phases[name] = entry
        ctx.log.info("phase_finished", phase=name, **encode_record(entry))


def phase_timeout(ctx: JobContext, phase: str) -> float:
    """The offer's timeout for ``phase`` when it gives a sane one, else the slave's."""
    value = ctx.offer.timeouts.get(phase)
    if value is not None and 0 < value <= 86400:
        return value
    return ctx.config.timeout(phase)


def job_document(ctx: JobContext, prepared: PreparedRelease) -> JobDocument:
    """The runner's ``job.json`` (schema in docs/contracts.md, "Guest runner")."""
    return JobDocument(
        job_id=ctx.offer.job_id,
        project=prepared.project,
        version=prepared.version,
        files=tuple(p.name for p in prepared.files),
        requirements=tuple(prepared.requirements),
        test_requirements=guest_test_requirements(prepared),
        build_requires=_pip_arguments(prepared.build_requires),
        build_imports=tuple(prepared.build_import_wheels),
        build_metadata=prepared.needs_guest_metadata and prepared.sdist is not None,
        # the host's side of the hand-off: fetch the wheels, upload them, then the answer
        metadata_wait=phase_timeout(ctx, "prepare") + phase_timeout(ctx, "upload") + 60.0,
        phases=GUEST_PHASES,
        timeouts={p: phase_timeout(ctx, p) for p in GUEST_PHASES},
        output_cap=ctx.config.output_cap,
        # Every restored VM starts from the same RAM: give each job its own entropy and time.
        entropy=secrets.token_hex(32),
        epoch=time.time(),
    )


def guest_test_requirements(prepared: PreparedRelease) -> tuple[str, ...]:
    """The test requirements whose wheels the host fetched, as pip arguments (no markers)."""
    wanted: list[str] = []
    for text in prepared.test_requirements:
        if text in prepared.test_unavailable:
            continue
        with contextlib.suppress(DependencyUnavailable):
            wanted.append(pip_argument(text))
    return tuple(wanted)


def _pip_arguments(requirements: Sequence[str]) -> tuple[str, ...]:
    wanted: list[str] = []
    for text in requirements:
        with contextlib.suppress(DependencyUnavailable):
            wanted.append(pip_argument(text))
    return tuple(wanted)


def _wheels(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.whl")) if directory.is_dir() else []


async def upload(ctx: JobContext, guest: Guest, prepared: PreparedRelease) -> None:
    """Copy the release, its wheelhouse and ``job.json`` into the guest's job directory."""
    doc = ctx.job_dir / "job.json"
    await asyncio.to_thread(doc.write_text, json.dumps(job_document(ctx, prepared).to_json()))
    wheels = await asyncio.to_thread(_wheels, prepared.wheelhouse)
    paths = [*prepared.files, *wheels, doc]
    total = sum(p.stat().st_size for p in paths)
    await guest.put(paths, GUEST_JOB_DIR, timeout=None)
    ctx.log.info("files_uploaded", phase="upload", files=len(paths), bytes=total)


def refuse_install(ctx: JobContext, record: RunRecord, reason: str) -> None:
    """The release's wheel refuses the guest's Python (``PreparedRelease.python_refused``,
    checked on the host): the guest phases end as the guest's pip refusing it ended them,
    install ``failed`` with pip's words and the phases needing it ``skipped``; ``quality``
    (our lint of the sources, in the guest) is skipped too, as no guest runs. The events
    go through the record and out as the runner's would.
    """
    for phase in GUEST_PHASES:
        if phase == "install":
            fields: dict[str, Any] = {"status": "failed", "reason": reason}
        elif phase == "quality":
            fields = {"status": "skipped", "reason": "no guest ran: install refused on the host"}
        else:
            fields = {"status": "skipped", "reason": "install did not pass"}
        fields.update(duration_s=0.0, traced=False, checked_on="host")
        for event, data in (("phase_started", {}), ("phase_finished", fields)):
            record.feed(event, phase, data)
            level = "warning" if data.get("status") == "failed" else "info"
            ctx.emit(event, level=level, phase=phase, fields=dict(data))


def _host_phase(phase: str | None) -> tuple[str | None, dict[str, Any]]:
    """The event's phase if the schema knows it; else None and the runner's name as a field."""
    if phase is None or phase in PHASES:
        return phase, {}
    return None, {"stage": phase}


#: Called with the ``metadata`` event's fields when the guest built the release's metadata.
OnMetadata = Callable[[Mapping[str, Any]], Awaitable[None]]


async def answer_metadata(ctx: JobContext, guest: Guest, answer: Mapping[str, Any]) -> None:
    """Tell the waiting runner the host is done: ``dependencies.json`` into the job directory."""
    path = ctx.job_dir / DEPENDENCIES_READY
    await asyncio.to_thread(path.write_text, json.dumps(dict(answer)))
    await guest.put([path], GUEST_JOB_DIR, timeout=60.0)


class LineStream(Protocol):
    """What :func:`run_runner` reads: ``slave.vm.guest.CommandStream`` (or a test's stand-in)."""

    stderr_tail: bytes
    exit_status: int | None
    exit_signal: str | None

    def __aiter__(self) -> AsyncIterator[str]: ...


class StreamingGuest(Protocol):
    """The part of :class:`slave.vm.guest.Guest` the runner step uses."""

    def stream(self, cmd: Sequence[str], *, timeout: float | None = ...) -> LineStream: ...


async def run_runner(
    ctx: JobContext,
    guest: StreamingGuest,
    record: RunRecord,
    on_metadata: OnMetadata | None = None,
) -> None:
    """Run the guest runner, turning each line into an event as it arrives.

    Enforces each guest phase's timeout from the host too (plus the configured
    margin): if the runner hangs, this returns with the phase recorded as
    ``timed_out`` by the host, and the caller's teardown kills the VM. The
    package's hang is the package's result (``timed_out``), never ``infra_error``.
    The runner's ``metadata`` event (stage ``metadata`` of install) is handed to
    ``on_metadata`` while the runner waits; the phase's clock stops meanwhile.
    Raises ``GuestError`` if the SSH session breaks.
    """
    loop = asyncio.get_running_loop()
    margin = ctx.config.timeout_margin
    # -I -S: the runner is stdlib only; skipping site saves a noticeable start-up under TCG.
    argv = ["python3", "-I", "-S", RUNNER, "--job", f"{GUEST_JOB_DIR}/job.json"]
    stream = guest.stream(argv, timeout=None)
    phase_started = time.monotonic()
    answered = False
    try:
        async with asyncio.timeout(BETWEEN_PHASES) as deadline:
            async for line in stream:
                cleaned = clean_line(line)
                if cleaned.event == "phase_started" and cleaned.phase in GUEST_PHASES:
                    phase_started = time.monotonic()
                    limit = phase_timeout(ctx, cleaned.phase) + margin
                    deadline.reschedule(loop.time() + limit)
                elif cleaned.event == "phase_finished":
                    deadline.reschedule(loop.time() + BETWEEN_PHASES)
                findings = record.feed(cleaned.event, cleaned.phase, cleaned.fields)
                phase, extra = _host_phase(cleaned.phase)
                if cleaned.truncated:
                    extra["sanitised"] = True
                ctx.emit(
                    cleaned.event,
                    level=cleaned.level,
                    phase=phase,
                    fields={**cleaned.fields, **extra},
                )
                for finding in findings:
                    fields = finding.to_dict()
                    fphase, fextra = _host_phase(str(fields.pop("phase")))
                    level = _SEVERITY_LEVEL.get(finding.severity, "info")
                    ctx.emit("finding", level=level, phase=fphase, fields={**fields, **fextra})
                if cleaned.event == "metadata" and on_metadata is not None and not answered:
                    answered = True  # once: the runner asks once
                    deadline.reschedule(None)  # on_metadata bounds its own time
                    waited = time.monotonic()
                    await on_metadata(cleaned.fields)
                    phase_started += time.monotonic() - waited
                    limit = phase_timeout(ctx, "install") + margin
                    deadline.reschedule(loop.time() + limit - (time.monotonic() - phase_started))
    except TimeoutError:
        phase = record.current or "runner"
        seconds = time.monotonic() - phase_started
        record.timed_out_by_host(phase, seconds)
        ctx.log.error("runner_timed_out", phase=phase if phase in PHASES else None,
                      stage=phase, seconds=round(seconds, 1))  # fmt: skip
        return
    if stream.stderr_tail:
        tail, _ = clean_text(stream.stderr_tail[-4000:].decode(errors="replace"), 4000)
        ctx.log.info("runner_stderr", text=tail)
    if not record.runner_finished:
        ctx.summary.error = ctx.summary.error or (
            f"the guest runner ended without finishing (exit {stream.exit_status}, "
            f"signal {stream.exit_signal})"
        )
