"""Job-list filters, project history, fleet figures and badges over a real master (real SQLite).

``populate`` builds the one data set the page, CLI and agreement tests share:
three releases of one project (spelled three ways), a crash on another slave, an
upload, a queued job and an infrastructure failure that was retried.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from master.context import MasterContext
from master.http.app import create_app
from master.jobs import Job
from master.store.filters import JobFilter
from protocol.messages import JobResult
from protocol.results import JobSummary
from protocol.vocabulary import Outcome
from tests.integration.test_api_harness import IMAGE, FakeProducer, app, ctx, queue_job
from tests.integration.test_api_jobs import FakeLink

__all__ = ["app", "ctx"]  # fixtures

ClientFactory = Any
HOSTILE = "<img src=x onerror=window.pwned=1><b id=injected>x</b>"


def quality(score: int) -> dict[str, Any]:
    """A quality report with only a score (what the history reads)."""
    return {"format": 1, "score": score, "groups": {}, "indicators": []}


def finding(rule: str, phase: str = "install") -> dict[str, Any]:
    """One dynamic finding."""
    return {"rule": rule, "severity": "high", "phase": phase, "pid": 7, "process": "python",
            "evidence": f'connect(3, "{HOSTILE}")', "target": "AF_INET"}  # fmt: skip


@dataclass
class Data:
    """What ``populate`` made, by name."""

    jobs: dict[str, Job] = field(default_factory=dict)
    marks: dict[str, float] = field(default_factory=dict)


async def run_job(
    ctx: MasterContext, project: str, version: str, slave: str, outcome: str, **summary: Any
) -> Job:
    """Queue, claim on ``slave``, run and finish one job (the store's own moves)."""
    source = summary.pop("source", "api")
    job = await queue_job(ctx, project, version, source=source)
    claimed = await ctx.store.jobs.claim_next(slave, [IMAGE])
    assert claimed is not None and claimed.id == job.id
    producer = FakeProducer(ctx, await ctx.store.jobs.start(claimed.id, claimed.lease))
    await producer.emit(1)
    return await producer.finish(outcome, **summary)


async def populate(ctx: MasterContext) -> Data:
    """The shared data set; ``marks["mid"]`` lies between the first two releases and the rest."""
    data = Data()
    tests = {"collected": 10, "passed": 10, "failed": 0, "skipped": 0}
    data.jobs["1.0"] = await run_job(
        ctx, "Demo_Pkg", "1.0", "slave-a", "passed", tests=tests, quality=quality(80),
        source="feed",
    )  # fmt: skip
    data.jobs["1.1"] = await run_job(
        ctx, "demo.pkg", "1.1", "slave-a", "failed", quality=quality(55),
        tests={"collected": 10, "passed": 7, "failed": 2, "errors": 1, "skipped": 0},
        findings=[finding("net.connect"), finding("net.connect", "import")],
        reason=f"2 tests failed {HOSTILE}", verdict="suspicious", source="feed",
    )  # fmt: skip
    await asyncio.sleep(0.02)
    data.marks["mid"] = time.time()
    await asyncio.sleep(0.02)
    data.jobs["2.0"] = await run_job(
        ctx, "demo-pkg", "2.0", "slave-a", "passed", quality=quality(90),
        tests={"collected": 12, "passed": 12, "failed": 0, "skipped": 1}, source="api",
    )  # fmt: skip
    data.jobs["crash"] = await run_job(
        ctx, "other", "0.1", "slave-b", "crashed", reason="import crashed (SIGSEGV)",
        source="upload",
    )  # fmt: skip
    # An infrastructure failure, retried: the job is queued again (the attempt counts).
    flaky = await queue_job(ctx, "flaky", "3.0", source="feed")
    claimed = await ctx.store.jobs.claim_next("slave-b", [IMAGE])
    assert claimed is not None and claimed.id == flaky.id
    await ctx.store.jobs.start(claimed.id, claimed.lease)
    retried = JobResult(job_id=flaky.id, lease=claimed.lease, outcome=Outcome.INFRA_ERROR,
                        isolation="tcg", last_seq=0, phases={}, summary=JobSummary())  # fmt: skip
    assert await ctx.store.jobs.finish(flaky.id, claimed.lease, retried) == "requeued"
    data.jobs["flaky"] = flaky
    data.jobs["waiting"] = await queue_job(ctx, "waiting", "1.0", source="api")
    ctx.slaves.add(FakeLink("slave-a"))
    return data


async def ids(client: TestClient[Any, Any], query: str) -> list[int]:
    """The job ids of ``GET /api/v1/jobs?query`` (following every ``next``)."""
    found: list[int] = []
    url: str | None = f"/api/v1/jobs?{query}"
    while url is not None:
        resp = await client.get(url)
        assert resp.status == 200, await resp.text()
        body = await resp.json()
        found += [j["id"] for j in body["jobs"]]
        url = body["next"]
    return found


async def test_list_filters(aiohttp_client: ClientFactory, app: Any, ctx: MasterContext) -> None:
    """Each filter keeps the jobs it names; filters combine; paging keeps the filters."""
    data = await populate(ctx)
    client = await aiohttp_client(app)
    j = {k: v.id for k, v in data.jobs.items()}
    demo = [j["2.0"], j["1.1"], j["1.0"]]
    assert await ids(client, "project=DEMO_pkg") == demo
    assert await ids(client, "project=demo-pkg&limit=1") == demo  # paged one by one
    assert await ids(client, "source=upload") == [j["crash"]]
    assert await ids(client, "source=feed") == [j["flaky"], j["1.1"], j["1.0"]]
    assert await ids(client, "slave=slave-b") == [j["crash"]]  # flaky went back: no slave
    assert await ids(client, "outcome=passed&slave=slave-a") == [j["2.0"], j["1.0"]]
    assert await ids(client, "state=queued") == [j["waiting"], j["flaky"]]
    assert await ids(client, "verdict=suspicious") == [j["1.1"]]
    mid = data.marks["mid"]
    assert await ids(client, f"until={mid}") == [j["1.1"], j["1.0"]]
    assert await ids(client, f"since={mid}&project=demo_pkg") == [j["2.0"]]
    assert await ids(client, "since=2000-01-01&until=2000-01-02T00:00:00Z") == []
    assert await ids(client, "q=MO.P") == demo  # search: any spelling, part of the name
    assert await ids(client, "q=0.1") == [j["crash"]]  # ... or of the version
    body = await (await client.get("/api/v1/jobs?source=feed&limit=1&q=pkg")).json()
    assert "source=feed" in body["next"] and "q=pkg" in body["next"]


async def test_search_is_not_a_wildcard(ctx: MasterContext) -> None:
    """LIKE's special characters in search text are literal, never wildcards."""
    await populate(ctx)
    # Unescaped, "1_0" would match the version "1.0" ("_" is LIKE's any-character).
    assert await ctx.store.jobs.find(JobFilter(q="1_0")) == []
    assert len(await ctx.store.jobs.find(JobFilter(q="1.0"))) == 2  # demo-pkg 1.0, waiting 1.0


@pytest.mark.parametrize(
    "query",
    [
        "source=cron",
        "slave=a/b",
        "since=yesterday",
        "until=1e400",
        "q=%25",
        "q=a%20b",
        "since=20&until=10",
        "since=1&since=2",
    ],
)
async def test_bad_filters(aiohttp_client: ClientFactory, app: Any, query: str) -> None:
    """A bad filter value is a 400 JSON error."""
    client = await aiohttp_client(app)
    resp = await client.get(f"/api/v1/jobs?{query}")
    assert resp.status == 400
    assert (await resp.json())["error"] == "invalid_query"


async def test_project_history(aiohttp_client: ClientFactory, app: Any, ctx: MasterContext) -> None:
    """The history lists every tested release newest first with its numbers and the worst one."""
    data = await populate(ctx)
    client = await aiohttp_client(app)
    resp = await client.get("/api/v1/projects/DEMO.PKG")
    assert resp.status == 200
    history = await resp.json()
    assert history["project"] == "demo-pkg" and history["truncated"] is False
    releases = history["releases"]
    assert [r["version"] for r in releases] == ["2.0", "1.1", "1.0"]
    newest, failed, first = releases
    assert (failed["outcome"], failed["verdict"], failed["score"]) == ("failed", "suspicious", 55)
    assert failed["tests"] == {"collected": 10, "passed": 7, "failed": 2, "errors": 1, "skipped": 0}
    assert failed["findings"] == 2 and failed["rules"]["net.connect"]["count"] == 2
    assert failed["reason"] == f"2 tests failed {HOSTILE}"
    assert failed["previous"] == {"job_id": data.jobs["1.0"].id, "version": "1.0"}
    assert failed["behaviour_changes"] == 2 and failed["score_change"] == -25
    assert newest["previous"]["version"] == "1.1" and newest["score_change"] == 35
    assert first["previous"] is None
    assert newest["phases"]["install"]["status"] == "passed"
    assert isinstance(newest["duration_s"], float) and newest["duration_s"] >= 0
    assert history["worst"] == data.jobs["1.1"].id
    assert (await client.get("/api/v1/projects/nothing-here")).status == 404
    assert (await client.get("/api/v1/projects/bad-")).status in (400, 404)


async def test_legacy_versions_sort_last(ctx: MasterContext) -> None:
    """Legacy (non-PEP 440) versions sort below the others, by their text, without failing."""
    for version in ("snapshot-a", "1.0", "snapshot-b", "0.9"):
        await run_job(ctx, "demo", version, "slave-a", "passed")
    history = await ctx.store.history.releases("demo")
    versions = [r["version"] for r in history["releases"]]
    assert versions == ["1.0", "0.9", "snapshot-b", "snapshot-a"]


async def test_fleet_figures(aiohttp_client: ClientFactory, app: Any, ctx: MasterContext) -> None:
    """The fleet view counts the last hours' outcomes, infra failures, queue and slave load."""
    await populate(ctx)
    client = await aiohttp_client(app)
    fleet = await (await client.get("/api/v1/fleet")).json()
    assert len(fleet["hours"]) == 24
    hours = fleet["hours"]  # all made just now: in the last bucket, or the last two near xx:00
    assert sum(h["finished"] for h in hours) == 4
    assert (sum(h["attempts"] for h in hours), sum(h["infra_failures"] for h in hours)) == (5, 1)
    assert hours[-1]["queue_depth"] == 2 and all(h["queue_depth"] <= 2 for h in hours)
    assert hours[0]["queue_depth"] == 0 and hours[0]["infra_error_rate"] is None
    assert fleet["totals"]["outcomes"] == {"crashed": 1, "failed": 1, "passed": 2}
    assert fleet["queue"]["depth"] == 2 and fleet["queue"]["oldest_age_s"] >= 0
    totals = fleet["totals"]
    assert (totals["finished"], totals["infra_error_rate"]) == (4, 0.2)
    assert totals["jobs_per_hour"] == round(4 / 24, 2)
    slave = {"name": "slave-a", "slots": 2, "busy": 1, "load": 0.5, "accel": "tcg"}
    assert fleet["slaves"] == [slave | {"draining": False, "last_heartbeat": 2.0}]
    assert fleet["capacity"] == {"slots": 2, "busy": 1, "load": 0.5}
    assert len((await (await client.get("/api/v1/fleet?hours=3")).json())["hours"]) == 3
    assert (await client.get("/api/v1/fleet?hours=0")).status == 400


async def test_badges(aiohttp_client: ClientFactory, app: Any, ctx: MasterContext) -> None:
    """A badge shows the newest release's result, is SVG with no script, and names no markup."""
    await populate(ctx)
    client = await aiohttp_client(app)
    resp = await client.get("/badge/Demo_Pkg.svg")
    assert resp.status == 200 and resp.content_type == "image/svg+xml"
    assert "max-age" in resp.headers["Cache-Control"]
    svg = await resp.text()
    assert ">passed</text>" in svg and "demo-pkg 2.0: passed" in svg and "#4c1" in svg
    crashed = await (await client.get("/badge/other.svg")).text()
    assert ">crashed</text>" in crashed
    unknown = await (await client.get("/badge/never-tested.svg")).text()
    assert ">not tested</text>" in unknown
    assert "<script" not in svg + crashed + unknown
    assert (await client.get("/badge/a%3Cb.svg")).status == 404


def test_badge_escapes_text() -> None:
    """Every text in a badge is XML-escaped."""
    from master.http.badge import badge_svg

    svg = badge_svg("<a>", "x&y", "#4c1", HOSTILE)
    assert "<a>" not in svg and "&lt;a&gt;" in svg and "x&amp;y" in svg
    assert "<img" not in svg and "<b " not in svg


async def test_pages_open_data_protected(aiohttp_client: ClientFactory, tmp_path: Any) -> None:
    """With protected reads, the page shells open without a token; the data behind them not."""
    from tests.integration.test_api_harness import auth, open_ctx

    context = await open_ctx(tmp_path / "m", require_read_token=True)
    try:
        await populate(context)
        client = await aiohttp_client(create_app(context))
        for page in ("/jobs", "/projects/demo-pkg"):
            assert (await client.get(page)).status == 200
        for data in ("/api/v1/projects/demo-pkg", "/api/v1/fleet", "/badge/demo-pkg.svg"):
            assert (await client.get(data)).status == 401
            assert (await client.get(data, headers=auth())).status == 200
    finally:
        await context.close()


def _plan(db: Any, sql: str, params: tuple[Any, ...]) -> str:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(f"EXPLAIN QUERY PLAN {sql}", params).fetchall()
    return " ".join(str(r[-1]) for r in rows)


async def test_filters_and_figures_use_indexes(ctx: MasterContext) -> None:
    """The job-list filters and the fleet's window queries are index searches, not scans."""
    from master.store import fleet

    await populate(ctx)
    db = ctx.store.path
    for where in (JobFilter(slave="a"), JobFilter(outcome="failed"), JobFilter(project="x")):
        clauses, params = where.where()
        sql = f"SELECT * FROM jobs WHERE {' AND '.join(clauses)} ORDER BY id DESC LIMIT 50"  # noqa: S608
        assert "SEARCH jobs USING" in _plan(db, sql, tuple(params)), where
    for sql in (fleet._FINISHED, fleet._ATTEMPTS, fleet._CREATED, fleet._CLAIMED):
        plan = _plan(db, sql, (0.0, 0.0))
        assert "USING INDEX" in plan or "USING COVERING INDEX" in plan, sql


def test_cli_durations() -> None:
    """``pyti jobs --since 24h`` sends Unix seconds a day back; other text goes as given."""
    from master.client.jobs import when

    assert when("24h", 100_000.0) == str(100_000 - 86_400)
    assert when("90m", 10_000.0) == str(10_000 - 5_400)
    assert when("2026-12-01", 0.0) == "2026-12-01" and when(None, 0.0) is None
