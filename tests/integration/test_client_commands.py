"""The ``pyti`` client commands against a real master app on loopback."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from master.client.api import Api
from master.client.tail import Tail, format_event
from master.context import MasterContext
from master.http.app import create_app
from protocol.messages import JobResult
from protocol.vocabulary import Outcome
from pyti.cli import main
from tests.fakes.dists import build_wheel
from tests.fakes.pypi import FakePyPI
from tests.integration.test_api_harness import TOKEN, FakeProducer, open_ctx, queue_job

ServerFactory = Any


@pytest.fixture
async def pypi(tmp_path: Path) -> AsyncIterator[FakePyPI]:
    """A fake index with demo 1.0."""
    async with FakePyPI() as index:
        index.add_project(tmp_path / "dists", "demo", "1.0")
        yield index


@pytest.fixture
async def ctx(tmp_path: Path, pypi: FakePyPI) -> AsyncIterator[MasterContext]:
    """A master context using the fake index."""
    context = await open_ctx(tmp_path / "master", pypi_url=pypi.base_url)
    try:
        yield context
    finally:
        await context.close()


@pytest.fixture
async def master_url(aiohttp_server: ServerFactory, ctx: MasterContext) -> str:
    """The URL of a real master app on 127.0.0.1."""
    server: TestServer = await aiohttp_server(create_app(ctx))
    return str(server.make_url("")).rstrip("/")


async def pyti(*argv: str) -> int:
    """Run the ``pyti`` console entry point in a thread (it runs its own event loop)."""
    return await asyncio.to_thread(main, list(argv))


async def test_submit_release_and_list(master_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    """pyti submit PROJECT==VERSION queues it; pyti jobs and pyti job show it."""
    assert await pyti("submit", "demo==1.0", "--master", master_url, "--token", TOKEN) == 0
    out = capsys.readouterr().out
    assert "queued: demo 1.0 [queued]" in out and f"{master_url}/jobs/1" in out
    assert await pyti("submit", "demo", "--master", master_url, "--token", TOKEN, "--json") == 0
    body = json.loads(capsys.readouterr().out)
    assert body["created"] is False and body["job"]["id"] == 1
    assert await pyti("jobs", "--master", master_url) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["ID", "PROJECT", "VERSION", "STATE", "RESULT", "SLAVE", "CREATED"]
    assert table[1].split()[:4] == ["1", "demo", "1.0", "queued"]
    assert await pyti("job", "1", "--master", master_url, "--json") == 0
    assert json.loads(capsys.readouterr().out)["job"]["project"] == "demo"


async def test_submit_file(
    master_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """pyti submit FILE uploads a local wheel."""
    wheel = build_wheel(tmp_path, "localpkg", "0.3", {"localpkg/__init__.py": "X = 1\n"})
    code = await pyti(
        "submit", str(wheel), "--priority", "3", "--master", master_url, "--token", TOKEN, "--json"
    )
    assert code == 0
    job = json.loads(capsys.readouterr().out)["job"]
    assert (job["project"], job["version"], job["source"], job["priority"]) == (
        "localpkg",
        "0.3",
        "upload",
        3,
    )


async def test_env_and_errors(
    master_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """PYTI_MASTER_URL/PYTI_TOKEN are used; refusals and bad targets exit 2 with a message."""
    monkeypatch.setenv("PYTI_MASTER_URL", master_url)
    assert await pyti("submit", "demo") == 2
    assert "401 unauthorized" in capsys.readouterr().err
    monkeypatch.setenv("PYTI_TOKEN", TOKEN)
    assert await pyti("submit", "demo", "--json") == 0
    capsys.readouterr()
    assert await pyti("job", "999") == 2
    assert "404 not_found" in capsys.readouterr().err
    assert await pyti("submit", "demo==") == 2
    assert await pyti("slaves", "--json") == 0
    assert json.loads(capsys.readouterr().out) == {"slaves": []}
    assert await pyti("jobs", "--master", "http://127.0.0.1:9") == 2
    assert "cannot reach the master" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("outcome", "code"),
    [
        ("passed", 0),
        ("failed", 1),
        ("crashed", 1),
        ("timed_out", 1),
        ("harmful", 3),
        ("infra_error", 4),
        ("incomplete", 5),
    ],
)
async def test_tail_exit_codes(
    master_url: str,
    ctx: MasterContext,
    outcome: str,
    code: int,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """pyti tail exits with the code of the job's outcome."""
    job = await queue_job(ctx)
    producer = await FakeProducer.start(ctx, job)
    await producer.emit(2)
    if outcome == "infra_error":
        # infra_error is retried up to the retry limit (2): the third one is final.
        await ctx.store.jobs.finish(
            job.id, producer.lease, _result(job.id, producer.lease, outcome)
        )
        for _ in range(2):
            again = await FakeProducer.start(ctx, job)
            await ctx.store.jobs.finish(job.id, again.lease, _result(job.id, again.lease, outcome))
    else:
        await producer.finish(outcome)
    assert await pyti("tail", str(job.id), "--master", master_url) == code
    captured = capsys.readouterr()
    assert "line 1" in captured.out and "line 2" in captured.out
    assert f"job {job.id} finished: {outcome}" in captured.err


def _result(job_id: int, lease: int, outcome: str) -> JobResult:
    return JobResult(
        job_id=job_id,
        lease=lease,
        outcome=Outcome(outcome),
        isolation="tcg",
        last_seq=0,
    )


async def test_jobs_show_the_verdict_beside_the_outcome(
    master_url: str, ctx: MasterContext, capsys: pytest.CaptureFixture[str]
) -> None:
    """pyti jobs shows "failed · suspicious", a clean verdict not at all; --verdict filters."""
    for name, outcome, verdict in (("a", "failed", "suspicious"), ("b", "passed", "clean")):
        producer = await FakeProducer.start(ctx, await queue_job(ctx, name, "1.0"))
        await producer.finish(outcome, verdict=verdict, reason="install failed: pip exited")
    assert await pyti("jobs", "--master", master_url) == 0
    rows = {line.split()[1]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert " finished  failed · suspicious " in rows["a"]
    assert " finished  passed " in rows["b"] and "·" not in rows["b"]
    assert await pyti("jobs", "--master", master_url, "--verdict", "suspicious") == 0
    assert len(capsys.readouterr().out.splitlines()) == 2
    assert await pyti("tail", "1", "--master", master_url) == 1
    assert "finished: failed · suspicious — install failed: pip exited" in capsys.readouterr().err


async def test_tail_cancelled_live(
    master_url: str, ctx: MasterContext, capsys: pytest.CaptureFixture[str]
) -> None:
    """A tail following a live job prints new events and exits 4 when the job is cancelled."""
    job = await queue_job(ctx)
    producer = await FakeProducer.start(ctx, job)
    tail = asyncio.create_task(pyti("tail", str(job.id), "--master", master_url, "--json"))
    await producer.emit(3, line="\x1b[2Jtrick")
    for _ in range(500):  # until the tail is connected and live
        if ctx.bus.subscribers(job.id):
            break
        await asyncio.sleep(0.01)
    assert ctx.bus.subscribers(job.id) == 1
    await ctx.scheduler.cancel_job(job.id, "test")
    assert await asyncio.wait_for(tail, 10) == 4
    # (the master's own log lines share stdout in this process: keep the JSON ones)
    out = capsys.readouterr().out.splitlines()
    lines = [json.loads(x) for x in out if x.startswith("{")]
    assert [x.get("seq") for x in lines] == [1, 2, 3, None]
    assert lines[-1]["type"] == "end" and lines[-1]["job"]["outcome"] == "cancelled"


def test_human_format_escapes_controls() -> None:
    """Guest text printed to a terminal has its control characters escaped."""
    text = format_event(
        {
            "seq": 1,
            "ts": 0,
            "level": "error",
            "event": "output",
            "phase": "tests",
            "fields": {"line": "\x1b[2J\x07gone"},
        },
        colour=True,
    )
    assert "\\x1b[2J\\x07gone" in text
    assert text.startswith("\x1b[31m") and text.endswith("\x1b[0m")  # our colour, not theirs


async def test_tail_reconnects_with_last_event_id() -> None:
    """A dropped stream is resumed with Last-Event-ID; nothing is printed twice."""
    seen_ids: list[str | None] = []

    async def stream(request: web.Request) -> web.StreamResponse:
        seen_ids.append(request.headers.get("Last-Event-ID"))
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        event = {"seq": 0, "ts": 0, "level": "info", "event": "e", "phase": None, "fields": {}}
        if len(seen_ids) == 1:
            for seq in (1, 2):
                data = json.dumps({**event, "seq": seq})
                await response.write(f"id: {seq}\nevent: log\ndata: {data}\n\n".encode())
            return response  # dropped without an end
        for seq in (2, 3):  # overlaps: the client must skip 2
            data = json.dumps({**event, "seq": seq})
            await response.write(f"id: {seq}\nevent: log\ndata: {data}\n\n".encode())
        await response.write(b'event: end\ndata: {"outcome": "passed"}\n\n')
        return response

    app = web.Application()
    app.router.add_get("/api/v1/jobs/5/events/stream", stream)
    async with TestServer(app, host="127.0.0.1") as server:
        got: list[int] = []

        async def no_sleep(_: float) -> None:
            return None

        async with Api(str(server.make_url("")).rstrip("/")) as api:
            tail = Tail(api, 5, 0, lambda e: got.append(e["seq"]), sleep=no_sleep)
            job = await tail.follow()
    assert job == {"outcome": "passed"}
    assert got == [1, 2, 3]
    assert seen_ids == ["0", "2"]
    assert tail.reconnects == 1


async def test_submit_follow_is_a_ci_step(
    master_url: str, ctx: MasterContext, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """pyti submit FILE --follow waits for the job and exits with its outcome (3: harmful)."""
    wheel = build_wheel(tmp_path, "cistep", "1.0", {"cistep/__init__.py": "X = 1\n"})
    run = asyncio.create_task(
        pyti("submit", str(wheel), "--follow", "--master", master_url, "--token", TOKEN)
    )
    for _ in range(500):  # until the submission is queued
        jobs = await ctx.store.jobs.find(project="cistep")
        if jobs:
            break
        await asyncio.sleep(0.01)
    [job] = jobs
    producer = await FakeProducer.start(ctx, job)
    await producer.emit(1)
    await producer.finish("harmful")
    assert await asyncio.wait_for(run, 10) == 3
    captured = capsys.readouterr()
    assert f"job {job.id} queued: cistep 1.0" in captured.out
    assert f"job {job.id} finished: harmful" in captured.err


async def test_job_shows_phases_findings_quality(
    master_url: str, ctx: MasterContext, capsys: pytest.CaptureFixture[str]
) -> None:
    """pyti job prints phases, findings (escaped) and the quality score of a finished job."""
    job = await queue_job(ctx)
    producer = await FakeProducer.start(ctx, job)
    finding = {
        "rule": "net.connect",
        "severity": "high",
        "phase": "install",
        "evidence": "connect(\x1b[2J)",
    }
    await producer.finish(
        "harmful", findings=[finding], quality={"score": 87, "groups": {"metadata": 0.9}}
    )
    assert await pyti("job", str(job.id), "--master", master_url) == 0
    out = capsys.readouterr().out
    assert "outcome harmful" in out and "quality   87/100   metadata 0.9" in out
    assert "install  passed" in out
    assert "net.connect" in out and "connect(\\x1b[2J)" in out and "\x1b" not in out
