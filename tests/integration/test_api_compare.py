"""GET /jobs/{id} shows the behaviour diff and quality trend against the previous release.

Results are stored through the real store (``FakeProducer`` → ``Store.finish``) in a
real SQLite database; the API is a real app on loopback.
"""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from master.context import MasterContext
from protocol.messages import JobResult
from protocol.vocabulary import Outcome
from tests.integration.test_api_harness import FakeProducer, app, ctx, queue_job

__all__ = ["app", "ctx"]  # fixtures

ClientFactory = Any  # pytest-aiohttp's aiohttp_client fixture


def _quality(score: int, tests_level: str) -> dict[str, Any]:
    return {
        "format": 1,
        "score": score,
        "groups": {"tests": 1.0},
        "indicators": [
            {"id": "tests.present", "group": "tests", "value": True, "level": tests_level,
             "reason": "tests found" if tests_level == "pass" else "no tests"},
        ],
    }  # fmt: skip


SOCKET_AT_INSTALL = {
    "rule": "net.socket",
    "severity": "info",
    "phase": "install",
    "pid": 42,
    "process": "build-backend",
    "evidence": "socket(AF_INET, SOCK_STREAM, IPPROTO_IP) = 3",
    "target": "AF_INET",
}


async def _release(
    ctx: MasterContext, project: str, version: str, outcome: str = "passed", **summary: Any
) -> int:
    """Queue, run and finish one release through the real store; its job id."""
    job = await queue_job(ctx, project, version)
    producer = await FakeProducer.start(ctx, job)
    await producer.finish(outcome, **summary)
    return job.id


async def _job(client: TestClient[Any, Any], job_id: int) -> dict[str, Any]:
    resp = await client.get(f"/api/v1/jobs/{job_id}")
    assert resp.status == 200
    job: dict[str, Any] = (await resp.json())["job"]
    return job


async def test_new_behaviour_and_quality_trend_against_previous_release(
    aiohttp_client: ClientFactory, app: Any, ctx: MasterContext
) -> None:
    """1.4.1 clean then 1.4.2 opening sockets at install: the diff says so, the trend too."""
    client: TestClient[Any, Any] = await aiohttp_client(app)
    first = await _release(
        ctx, "demo", "1.4.1", verdict="clean", findings=[], quality=_quality(90, "pass")
    )
    second = await _release(
        ctx,
        "demo",
        "1.4.2",
        verdict="clean",
        findings=[SOCKET_AT_INSTALL],
        quality=_quality(70, "fail"),
    )
    job = await _job(client, second)
    diff = job["behaviour_diff"]
    assert diff["previous"] == {"job_id": first, "version": "1.4.1"}
    assert [e["text"] for e in diff["new"]] == [
        "1.4.2 started opening sockets at install time (AF_INET); 1.4.1 did not"
    ]
    assert diff["gone"] == []
    trend = job["quality_trend"]
    assert trend["previous"] == {"job_id": first, "version": "1.4.1", "score": 90}
    assert (trend["score"], trend["score_change"]) == (70, -20)
    assert [(c["indicator"], c["change"]) for c in trend["changes"]] == [
        ("tests.present", "regressed")
    ]
    older = await _job(client, first)
    assert older["behaviour_diff"] == {"previous": None, "new": [], "gone": []}
    assert older["quality_trend"]["previous"] is None


async def test_unfinished_job_has_no_comparison(
    aiohttp_client: ClientFactory, app: Any, ctx: MasterContext
) -> None:
    """A queued job shows behaviour_diff and quality_trend as null."""
    client: TestClient[Any, Any] = await aiohttp_client(app)
    job = await queue_job(ctx, "demo", "1.0")
    shown = await _job(client, job.id)
    assert shown["behaviour_diff"] is None and shown["quality_trend"] is None


async def test_backlog_release_becomes_the_previous_of_the_newer_one(
    aiohttp_client: ClientFactory, app: Any, ctx: MasterContext
) -> None:
    """2.0 finished first; when 1.9 finishes later, 2.0 is compared again against 1.9."""
    client: TestClient[Any, Any] = await aiohttp_client(app)
    base = await _release(ctx, "demo", "1.0", findings=[])
    newest = await _release(ctx, "demo", "2.0", findings=[SOCKET_AT_INSTALL])
    assert (await _job(client, newest))["behaviour_diff"]["previous"]["job_id"] == base
    backlog = await _release(ctx, "demo", "1.9", findings=[SOCKET_AT_INSTALL])
    again = (await _job(client, newest))["behaviour_diff"]
    assert again == {"previous": {"job_id": backlog, "version": "1.9"}, "new": [], "gone": []}
    assert (await _job(client, backlog))["behaviour_diff"]["previous"]["job_id"] == base


async def test_previous_lookup_ignores_reruns_infra_errors_and_other_projects(
    aiohttp_client: ClientFactory, app: Any, ctx: MasterContext
) -> None:
    """Same-version re-runs, infra_error results and other projects never count as previous."""
    client: TestClient[Any, Any] = await aiohttp_client(app)
    await _release(ctx, "other", "0.9", findings=[])
    broken = await queue_job(ctx, "demo", "0.5")
    while await _live(ctx, broken.id):  # infra_error is retried up to the limit
        producer = await FakeProducer.start(ctx, broken)
        await ctx.store.jobs.finish(
            broken.id, producer.lease, _infra_error(broken.id, producer.lease)
        )
    assert (await _job(client, broken.id))["outcome"] == "infra_error"
    await _release(ctx, "demo", "1.0", findings=[])
    rerun = await queue_job(ctx, "demo", "1.0", rerun=True)
    producer = await FakeProducer.start(ctx, rerun)
    await producer.finish("passed", findings=[SOCKET_AT_INSTALL])
    shown = await _job(client, rerun.id)
    assert shown["behaviour_diff"] == {"previous": None, "new": [], "gone": []}
    assert shown["quality_trend"]["previous"] is None


async def _live(ctx: MasterContext, job_id: int) -> bool:
    job = await ctx.store.jobs.get(job_id)
    assert job is not None
    return job.state.live


def _infra_error(job_id: int, lease: int) -> JobResult:
    return JobResult(
        job_id=job_id, lease=lease, outcome=Outcome.INFRA_ERROR, isolation="tcg", last_seq=0
    )


async def test_previous_release_matches_any_spelling_of_the_name(
    aiohttp_client: ClientFactory, app: Any, ctx: MasterContext
) -> None:
    """A feed job "Demo_Pkg" and an upload "demo-pkg" are one project for the comparison."""
    client: TestClient[Any, Any] = await aiohttp_client(app)
    first = await _release(ctx, "Demo_Pkg", "1.0", findings=[])
    second = await _release(ctx, "demo-pkg", "1.1", findings=[SOCKET_AT_INSTALL])
    diff = (await _job(client, second))["behaviour_diff"]
    assert diff["previous"] == {"job_id": first, "version": "1.0"}
    assert len(diff["new"]) == 1


async def test_openapi_documents_the_comparison(aiohttp_client: ClientFactory, app: Any) -> None:
    """The served OpenAPI document describes behaviour_diff and quality_trend of GET /jobs/{id}."""
    client: TestClient[Any, Any] = await aiohttp_client(app)
    doc = await (await client.get("/api/v1/openapi.json")).json()
    detail = doc["paths"]["/api/v1/jobs/{job_id}"]["get"]["responses"]["200"]
    job_ref = detail["content"]["application/json"]["schema"]["properties"]["job"]["$ref"]
    schema = doc["components"]["schemas"][job_ref.rsplit("/", 1)[1]]
    assert {"behaviour_diff", "quality_trend"} <= set(schema["properties"])
