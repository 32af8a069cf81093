"""The runner step: the job document, guest lines become events, host-side timeouts."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import structlog
from structlog.testing import capture_logs

from guest_runner.jobdoc import JobDocument
from protocol.messages import JobOffer
from protocol.results import JobTimeouts, phases_to_json
from slave.config import SlaveConfig
from slave.job.context import JobContext
from slave.job.phases import job_document, run_runner
from slave.job.record import RunRecord, decide
from slave.prepare import PreparedRelease


class ScriptedStream:
    """Lines of a pretend runner; then it ends, or hangs forever like a stuck runner."""

    def __init__(self, lines: list[str], *, hang: bool) -> None:
        self.lines = lines
        self.hang = hang
        self.stderr_tail = b"warning: \x1b[31mred\x00\n"
        self.exit_status: int | None = None
        self.exit_signal: str | None = None

    async def __aiter__(self) -> AsyncIterator[str]:
        for line in self.lines:
            yield line
        if self.hang:
            await asyncio.Event().wait()
        self.exit_status = 0


class ScriptedGuest:
    def __init__(self, stream: ScriptedStream) -> None:
        self._stream = stream
        self.commands: list[Sequence[str]] = []

    def stream(self, cmd: Sequence[str], *, timeout: float | None = None) -> ScriptedStream:
        self.commands.append(cmd)
        return self._stream


def line(event: str, phase: str, **fields: Any) -> str:
    return json.dumps({"event": event, "phase": phase, **fields})


def context(
    tmp_path: Path,
    emitted: list[tuple[str, str | None, dict[str, Any]]],
    timeouts: JobTimeouts | None = None,
) -> JobContext:
    config = SlaveConfig(
        master_host="127.0.0.1", master_port=1, secret=b"x" * 16, image_dir=tmp_path,
        work_dir=tmp_path, name="t", timeout_margin=0.2,
    )  # fmt: skip
    timeouts = timeouts or JobTimeouts(tests=0.3)
    offer = JobOffer(1, 1, 1, "demo", "1.0", "img", (), timeouts=timeouts)

    def emit(event: str, *, level: str, phase: str | None, fields: dict[str, Any]) -> None:
        emitted.append((event, phase, fields))

    return JobContext(offer, config, "tcg", tmp_path, {}, structlog.get_logger(), emit)


async def test_hung_runner_is_timed_out_by_the_host(tmp_path: Path) -> None:
    """A runner silent past the phase timeout plus margin ends the step with timed_out."""
    emitted: list[tuple[str, str | None, dict[str, Any]]] = []
    ctx = context(tmp_path, emitted)
    record = RunRecord()
    lines = [
        line("runner_started", "runner", version=1),
        line("phase_started", "install"),
        line("phase_finished", "install", status="passed", duration_s=1.0),
        line("phase_started", "tests"),
        'Not JSON \x1b[2J at all',
        line("trace", "tests", pid=7,
             line='7 openat(AT_FDCWD, "/home/tester/.ssh/id_rsa", O_RDONLY) = 3'),
    ]  # fmt: skip
    guest = ScriptedGuest(ScriptedStream(lines, hang=True))
    loop = asyncio.get_running_loop()
    started = loop.time()
    with capture_logs() as logs:
        await run_runner(ctx, guest, record)
    assert 0.4 <= loop.time() - started < 5
    argv = list(guest.commands[0])
    assert argv[0] == "python3" and argv[-3:] == [
        "/opt/pyti/runner.pyz",
        "--job",
        "/var/lib/pyti/job/job.json",
    ]
    assert record.phases["tests"].status == "timed_out"
    assert record.phases["tests"].killed_by == "slave"
    assert any(entry["event"] == "runner_timed_out" for entry in logs)
    names = [e for e, _, _ in emitted]
    assert names[:4] == ["runner_started", "phase_started", "phase_finished", "phase_started"]
    # the runner's own stage is not a schema phase: it travels as a field
    assert emitted[0][1] is None and emitted[0][2]["stage"] == "runner"
    assert emitted[4] == ("output", None, {"stream": "runner", "line": "Not JSON [2J at all"})
    findings = [f for e, _, f in emitted if e == "finding"]
    assert findings and all("rule" in f and "evidence" in f for f in findings)


async def test_runner_that_ends_early_is_an_error(tmp_path: Path) -> None:
    """A runner that exits without runner_finished leaves an error; its stderr is sanitised."""
    emitted: list[tuple[str, str | None, dict[str, Any]]] = []
    ctx = context(tmp_path, emitted)
    record = RunRecord()
    guest = ScriptedGuest(ScriptedStream([line("phase_started", "install")], hang=False))
    with capture_logs() as logs:
        await run_runner(ctx, guest, record)
    assert "without finishing" in (ctx.summary.error or "")
    (stderr,) = [entry for entry in logs if entry["event"] == "runner_stderr"]
    assert stderr["text"] == "warning: [31mred\n"  # sanitised: no escape, no NUL


async def test_finished_runner_gives_no_error(tmp_path: Path) -> None:
    """A complete run leaves no error and every phase as the runner reported it."""
    emitted: list[tuple[str, str | None, dict[str, Any]]] = []
    ctx = context(tmp_path, emitted)
    record = RunRecord()
    lines = [
        line("phase_started", "install"),
        line("phase_finished", "install", status="failed", duration_s=1.0, exit_code=1),
        line("runner_finished", "runner", statuses={"install": "failed"}),
    ]
    await run_runner(ctx, ScriptedGuest(ScriptedStream(lines, hang=False)), record)
    assert ctx.summary.error is None
    assert phases_to_json(record.phases) == {
        "install": {"status": "failed", "duration_s": 1.0, "exit_code": 1}
    }


def test_slave_builds_the_same_document(tmp_path: Path) -> None:
    """The slave's job_document is a JobDocument the runner reads back unchanged."""
    config = SlaveConfig(
        master_host="127.0.0.1", master_port=1, secret=b"x" * 16, image_dir=tmp_path,
        work_dir=tmp_path, name="t",
    )  # fmt: skip
    offer = JobOffer(1, 1, 42, "demo", "1.0", "img", (), timeouts=JobTimeouts(tests=30))
    ctx = JobContext(
        offer, config, "tcg", tmp_path, {}, structlog.get_logger(), lambda *a, **k: None
    )
    prepared = PreparedRelease(
        project="demo",
        version="1.0",
        files=[tmp_path / "demo-1.0.tar.gz"],
        sha256={},
        wheelhouse=tmp_path,
        requirements=["attrs>=22"],
        build_requires=['setuptools>=61; python_version >= "3"'],
        metadata_source=None,
        needs_guest_metadata=True,
        build_import_wheels=["requests"],
        test_requirements=['hypothesis>=6; extra == "test"', 'trio; extra == "tests"', "gone"],
        test_unavailable=["gone"],
    )
    doc = job_document(ctx, prepared)
    assert doc.job_id == offer.job_id
    assert doc.files == ("demo-1.0.tar.gz",)
    assert doc.test_requirements == ("hypothesis>=6", "trio")  # markers off, unavailable out
    assert doc.timeout("tests") == 30.0
    assert (doc.build_metadata, doc.build_requires, doc.build_imports) == (
        True,
        ("setuptools>=61",),
        ("requests",),
    )
    assert JobDocument.from_json(json.loads(json.dumps(doc.to_json()))) == doc


async def test_metadata_hand_off_stops_the_phase_clock(tmp_path: Path) -> None:
    """The runner's metadata event goes to on_metadata once; the host's time is not the phase's."""
    emitted: list[tuple[str, str | None, dict[str, Any]]] = []
    ctx = context(tmp_path, emitted, JobTimeouts(tests=0.3, install=0.3))
    record = RunRecord()
    lines = [
        line("phase_started", "install"),
        line("trace", "install", pid=7, stage="metadata",
             line='7 openat(AT_FDCWD, "/home/tester/.ssh/id_rsa", O_RDONLY) = 3'),
        line("metadata", "install", stage="metadata", requires_dist=["dep-a"]),
        line("metadata", "install", stage="metadata", requires_dist=["forged"]),
        line("phase_finished", "install", status="passed", duration_s=1.0),
        line("runner_finished", "runner", statuses={"install": "passed"}),
    ]  # fmt: skip
    seen: list[Any] = []

    async def on_metadata(fields: Any) -> None:
        seen.append(fields["requires_dist"])
        await asyncio.sleep(1.0)  # longer than install's timeout + margin

    await run_runner(ctx, ScriptedGuest(ScriptedStream(lines, hang=False)), record, on_metadata)
    assert seen == [["dep-a"]]
    assert record.phases["install"].status == "passed"
    assert ctx.summary.error is None
    staged = [f for e, p, f in emitted if e == "trace"]
    assert staged[0]["stage"] == "metadata"
    assert any(e == "finding" and p == "install" for e, p, _ in emitted)


async def test_runner_hung_in_metadata_stage_is_the_package_s_timeout(tmp_path: Path) -> None:
    """A build hanging while it makes metadata: install timed_out by the host, no infra error."""
    emitted: list[tuple[str, str | None, dict[str, Any]]] = []
    ctx = context(tmp_path, emitted, JobTimeouts(tests=0.3, install=0.3))
    record = RunRecord()
    lines = [
        line("phase_started", "install"),
        line("output", "install", stage="metadata", stream="stdout", line="building"),
    ]
    await run_runner(ctx, ScriptedGuest(ScriptedStream(lines, hang=True)), record)
    assert record.phases["install"].status == "timed_out"
    assert ctx.summary.error is None
    assert decide(record.phases, record.verdict()).outcome == "timed_out"
