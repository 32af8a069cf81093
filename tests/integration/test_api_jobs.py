"""The job endpoints against a real master app: real SQLite in tmp_path, a fake PyPI on loopback."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from master.context import MasterContext
from master.http.app import create_app
from master.jobs import PRIORITY_API, Job
from master.slaves.registry import SlaveInfo
from tests.fakes.pypi import FakePyPI
from tests.integration.test_api_harness import (
    TOKEN,
    FakeProducer,
    app_with,
    auth,
    open_ctx,
    queue_job,
    store_snapshot,
)

ClientFactory = Any  # pytest-aiohttp's aiohttp_client fixture


@pytest.fixture
async def pypi(tmp_path: Path) -> AsyncIterator[FakePyPI]:
    """A fake index with demo 1.0 and 1.1 (sdist + wheel each)."""
    async with FakePyPI() as index:
        index.add_project(tmp_path / "d10", "demo", "1.0")
        index.add_project(tmp_path / "d11", "demo", "1.1")
        yield index


@pytest.fixture
async def ctx_pypi(tmp_path: Path, pypi: FakePyPI) -> AsyncIterator[MasterContext]:
    """A master context whose package index is the fake."""
    ctx = await open_ctx(tmp_path / "master", pypi_url=pypi.base_url)
    try:
        yield ctx
    finally:
        await ctx.close()


@pytest.fixture
async def client(aiohttp_client: ClientFactory, ctx_pypi: MasterContext) -> TestClient[Any, Any]:
    """An HTTP client on the real app."""
    client: TestClient[Any, Any] = await aiohttp_client(create_app(ctx_pypi))
    return client


async def test_submit_newest_release(client: TestClient[Any, Any], pypi: FakePyPI) -> None:
    """POST /jobs without a version queues the newest release with the index's files and sha256."""
    resp = await client.post("/api/v1/jobs", json={"project": "demo"}, headers=auth())
    assert resp.status == 201
    body = await resp.json()
    job = body["job"]
    assert body["created"] is True
    assert (job["project"], job["version"], job["state"]) == ("demo", "1.1", "queued")
    assert job["priority"] == PRIORITY_API and job["source"] == "api"
    assert sorted(f["packagetype"] for f in job["files"]) == ["bdist_wheel", "sdist"]
    assert all(len(f["sha256"]) == 64 for f in job["files"])
    assert resp.headers["Location"] == f"/api/v1/jobs/{job['id']}"
    assert body["urls"]["stream"] == f"/api/v1/jobs/{job['id']}/events/stream"
    assert pypi.count("/pypi/demo/json") == 1


@pytest.mark.parametrize("redirect", [False, True])
async def test_submit_through_a_mirror_with_relative_file_urls(
    client: TestClient[Any, Any], pypi: FakePyPI, redirect: bool
) -> None:
    """An index serving relative file URLs (and moving its documents) still gives a job
    whose files have absolute URLs the slave can fetch."""
    pypi.relative_urls = True
    pypi.redirect_json = redirect
    pypi.versioned_urls = False
    for body in ({"project": "demo"}, {"project": "demo", "version": "1.0"}):
        resp = await client.post("/api/v1/jobs", json=body, headers=auth())
        assert resp.status == 201, await resp.text()
        files = (await resp.json())["job"]["files"]
        assert sorted(f["packagetype"] for f in files) == ["bdist_wheel", "sdist"]
        assert all(f["url"] == f"{pypi.base_url}/files/{f['filename']}" for f in files)


async def test_submit_version_and_dedupe(client: TestClient[Any, Any]) -> None:
    """The same release twice is one job (200, created false); rerun queues another."""
    first = await client.post(
        "/api/v1/jobs", json={"project": "demo", "version": "1.0", "priority": 5}, headers=auth()
    )
    assert first.status == 201
    job = (await first.json())["job"]
    assert (job["version"], job["priority"]) == ("1.0", 5)
    again = await client.post(
        "/api/v1/jobs", json={"project": "demo", "version": "1.0"}, headers=auth()
    )
    assert again.status == 200
    assert (await again.json())["job"]["id"] == job["id"]
    rerun = await client.post(
        "/api/v1/jobs", json={"project": "demo", "version": "1.0", "rerun": True}, headers=auth()
    )
    assert rerun.status == 201
    assert (await rerun.json())["job"]["id"] != job["id"]


async def test_submit_unknown_release(
    client: TestClient[Any, Any], ctx_pypi: MasterContext
) -> None:
    """A project or version the index does not know is a 404 and queues nothing."""
    for body in ({"project": "nope"}, {"project": "demo", "version": "9.9"}):
        resp = await client.post("/api/v1/jobs", json=body, headers=auth())
        assert resp.status == 404
        assert (await resp.json())["error"] == "release_not_found"
    assert await store_snapshot(ctx_pypi) == []


async def test_submit_index_timeout(
    aiohttp_client: ClientFactory, pypi: FakePyPI, ctx_pypi: MasterContext
) -> None:
    """A package index slower than the deadline is a 504 and queues nothing."""
    client = await aiohttp_client(app_with(ctx_pypi, pypi_timeout=0.2))
    pypi.faults.delay = 2.0
    resp = await client.post("/api/v1/jobs", json={"project": "demo"}, headers=auth())
    assert resp.status == 504
    assert (await resp.json())["error"] == "upstream_timeout"
    assert await store_snapshot(ctx_pypi) == []


BAD_BODIES: list[tuple[str, bytes, str, int, str]] = [
    ("not json", b"{nope", "application/json", 400, "invalid_json"),
    ("array", b'["demo"]', "application/json", 400, "invalid_json"),
    ("NaN", b'{"project": "demo", "priority": NaN}', "application/json", 400, "invalid_json"),
    ("bad utf-8", b'{"project": "\xff"}', "application/json", 400, "invalid_json"),
    ("deep", b"[" * 100_000 + b"]" * 10, "application/json", 413, "body_too_large"),
    ("nested", b'{"a":' * 2000 + b"1" + b"}" * 2000, "application/json", 400, "invalid_json"),
    (
        "unknown field",
        b'{"project": "demo", "priorty": 1}',
        "application/json",
        400,
        "unknown_field",
    ),
    ("missing project", b'{"version": "1.0"}', "application/json", 400, "missing_field"),
    ("project int", b'{"project": 5}', "application/json", 400, "invalid_field"),
    ("project path", b'{"project": "../etc"}', "application/json", 400, "invalid_field"),
    (
        "version slash",
        b'{"project": "demo", "version": "1/../2"}',
        "application/json",
        400,
        "invalid_field",
    ),
    (
        "priority str",
        b'{"project": "demo", "priority": "1"}',
        "application/json",
        400,
        "invalid_field",
    ),
    (
        "priority bool",
        b'{"project": "demo", "priority": true}',
        "application/json",
        400,
        "invalid_field",
    ),
    (
        "priority big",
        b'{"project": "demo", "priority": 100000}',
        "application/json",
        400,
        "invalid_field",
    ),
    ("rerun str", b'{"project": "demo", "rerun": "yes"}', "application/json", 400, "invalid_field"),
    (
        "callback ftp",
        b'{"project": "demo", "callback_url": "ftp://x/"}',
        "application/json",
        400,
        "invalid_field",
    ),
    (
        "callback creds",
        b'{"project": "demo", "callback_url": "http://u:p@127.0.0.1/"}',
        "application/json",
        400,
        "invalid_field",
    ),
    (
        "image",
        b'{"project": "demo", "image": "Bad Image"}',
        "application/json",
        400,
        "invalid_field",
    ),
    ("huge", b'{"project": "' + b"a" * 70_000 + b'"}', "application/json", 413, "body_too_large"),
    ("text/plain", b'{"project": "demo"}', "text/plain", 415, "unsupported_media_type"),
]


@pytest.mark.parametrize(
    ("data", "content_type", "status", "error"),
    [pytest.param(*case[1:], id=case[0]) for case in BAD_BODIES],
)
async def test_bad_submissions_change_nothing(
    client: TestClient[Any, Any],
    ctx_pypi: MasterContext,
    pypi: FakePyPI,
    data: bytes,
    content_type: str,
    status: int,
    error: str,
) -> None:
    """Each malformed POST /jobs gets its 4xx JSON error; no job, no index request."""
    await queue_job(ctx_pypi, "other", "1")
    before = await store_snapshot(ctx_pypi)
    resp = await client.post(
        "/api/v1/jobs", data=data, headers={**auth(), "Content-Type": content_type}
    )
    assert resp.status == status
    body = await resp.json()
    assert body["error"] == error and body["detail"]
    assert await store_snapshot(ctx_pypi) == before
    assert pypi.count("/pypi/") == 0


async def test_tokens_required_for_writes(
    client: TestClient[Any, Any], ctx_pypi: MasterContext
) -> None:
    """POST without a token or with a wrong one is 401; reads stay open by default."""
    no_token = await client.post("/api/v1/jobs", json={"project": "demo"})
    assert no_token.status == 401
    assert no_token.headers["WWW-Authenticate"].startswith("Bearer")
    wrong = await client.post("/api/v1/jobs", json={"project": "demo"}, headers=auth("x" * 21))
    assert wrong.status == 401
    basic = await client.post(
        "/api/v1/jobs", json={"project": "demo"}, headers={"Authorization": f"Basic {TOKEN}"}
    )
    assert basic.status == 401
    assert (await client.get("/api/v1/jobs")).status == 200
    assert await store_snapshot(ctx_pypi) == []


async def test_no_tokens_configured_refuses_writes(
    aiohttp_client: ClientFactory, tmp_path: Path
) -> None:
    """A master without a token file refuses every mutating request with 403."""
    ctx = await open_ctx(tmp_path, tokens=frozenset())
    try:
        client = await aiohttp_client(create_app(ctx))
        resp = await client.post("/api/v1/jobs", json={"project": "demo"}, headers=auth())
        assert resp.status == 403
        assert (await resp.json())["error"] == "forbidden"
    finally:
        await ctx.close()


async def test_protected_reads(aiohttp_client: ClientFactory, tmp_path: Path) -> None:
    """With require_read_token, API reads need the token; /healthz and the page do not."""
    ctx = await open_ctx(tmp_path, require_read_token=True)
    try:
        client = await aiohttp_client(create_app(ctx))
        assert (await client.get("/api/v1/jobs")).status == 401
        assert (await client.get("/metrics")).status == 401
        assert (await client.get("/api/v1/jobs", headers=auth())).status == 200
        assert (await client.get("/healthz")).status == 200
        assert (await client.get("/")).status == 200
    finally:
        await ctx.close()


async def test_callback_needs_a_secret(aiohttp_client: ClientFactory, tmp_path: Path) -> None:
    """Without a callback secret a callback_url is refused (422) before the index is asked."""
    ctx = await open_ctx(tmp_path, http={})
    try:
        client = await aiohttp_client(create_app(ctx))
        resp = await client.post(
            "/api/v1/jobs",
            json={"project": "demo", "callback_url": "http://127.0.0.1:9/hook"},
            headers=auth(),
        )
        # The index (port 9, nothing there) is never asked: the refusal comes first.
        assert resp.status == 422
        assert (await resp.json())["error"] == "callbacks_disabled"
        assert await store_snapshot(ctx) == []
    finally:
        await ctx.close()


async def test_list_filters_and_paging(
    client: TestClient[Any, Any], ctx_pypi: MasterContext
) -> None:
    """GET /jobs filters by project/state/outcome and pages back with before."""
    ids = [(await queue_job(ctx_pypi, f"p{i}", "1")).id for i in range(5)]
    page1 = await (await client.get("/api/v1/jobs?limit=2")).json()
    assert [j["id"] for j in page1["jobs"]] == ids[::-1][:2]
    page2 = await (await client.get(page1["next"])).json()
    assert [j["id"] for j in page2["jobs"]] == ids[::-1][2:4]
    only = await (await client.get("/api/v1/jobs?project=p3")).json()
    assert [j["id"] for j in only["jobs"]] == [ids[3]] and only["next"] is None
    await ctx_pypi.scheduler.cancel_job(ids[0], "test")
    cancelled = await (await client.get("/api/v1/jobs?state=cancelled")).json()
    assert [j["id"] for j in cancelled["jobs"]] == [ids[0]]
    by_outcome = await (await client.get("/api/v1/jobs?outcome=cancelled")).json()
    assert [j["id"] for j in by_outcome["jobs"]] == [ids[0]]


async def test_list_shows_and_filters_the_verdict(
    client: TestClient[Any, Any], ctx_pypi: MasterContext
) -> None:
    """Listed jobs carry their verdict and reason; ?verdict= filters; /metrics counts both."""
    ended = []
    for name, outcome, verdict in (
        ("a", "failed", "suspicious"),
        ("b", "passed", "clean"),
        ("c", "incomplete", "clean"),
    ):
        producer = await FakeProducer.start(ctx_pypi, await queue_job(ctx_pypi, name, "1"))
        reason = None if outcome == "passed" else f"why {name}"
        ended.append(await producer.finish(outcome, verdict=verdict, reason=reason))
    listed = await (await client.get("/api/v1/jobs")).json()
    shown = [(j["project"], j["outcome"], j["verdict"], j["summary"].get("reason"))
             for j in listed["jobs"]]  # fmt: skip
    assert shown == [
        ("c", "incomplete", "clean", "why c"),
        ("b", "passed", "clean", None),
        ("a", "failed", "suspicious", "why a"),
    ]
    suspicious = await (await client.get("/api/v1/jobs?verdict=suspicious&limit=1")).json()
    assert [j["id"] for j in suspicious["jobs"]] == [ended[0].id]
    assert "verdict=suspicious" in suspicious["next"]
    incomplete = await (await client.get("/api/v1/jobs?outcome=incomplete")).json()
    assert [j["project"] for j in incomplete["jobs"]] == ["c"]
    assert (await client.get("/api/v1/jobs?verdict=evil")).status == 400
    text = await (await client.get("/metrics", headers=auth())).text()
    assert 'pyti_jobs_by_verdict{outcome="failed",verdict="suspicious"} 1' in text
    assert 'pyti_jobs_by_outcome{outcome="incomplete"} 1' in text


async def test_vocabulary_gives_the_words_and_their_meanings(client: TestClient[Any, Any]) -> None:
    """GET /vocabulary lists outcomes (incomplete included) and verdicts with meanings."""
    body = await (await client.get("/api/v1/vocabulary")).json()
    assert list(body["verdicts"]) == ["clean", "suspicious", "malicious"]
    assert "could not test" in body["outcomes"]["incomplete"]
    assert body["phases"][0] == "prepare" and "error" in body["phase_statuses"]
    spec = await (await client.get("/api/v1/openapi.json")).json()
    job = spec["components"]["schemas"]["Job"]["properties"]
    assert "incomplete" in job["outcome"]["enum"] and "malicious" in job["verdict"]["enum"]


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=201",
        "limit=x",
        "before=-1",
        "state=done",
        "outcome=ok",
        "project=a/b",
        "colour=red",
        "limit=1&limit=2",
    ],
)
async def test_list_bad_query(client: TestClient[Any, Any], query: str) -> None:
    """Bad list parameters are a 400 with a JSON error."""
    resp = await client.get(f"/api/v1/jobs?{query}")
    assert resp.status == 400
    assert (await resp.json())["error"] == "invalid_query"


async def test_get_job(client: TestClient[Any, Any], ctx_pypi: MasterContext) -> None:
    """GET /jobs/{id} returns the job with phases, outcome, timings and attempts."""
    job = await queue_job(ctx_pypi)
    producer = await FakeProducer.start(ctx_pypi, job)
    await producer.finish("passed")
    body = await (await client.get(f"/api/v1/jobs/{job.id}")).json()
    assert body["job"]["outcome"] == "passed"
    assert body["job"]["phases"]["install"]["status"] == "passed"
    assert body["job"]["finished_at"] >= body["job"]["created_at"]
    assert [a["slave"] for a in body["attempts"]] == ["fake-slave"]
    assert "path" not in json.dumps(body["job"]["files"])


@pytest.mark.parametrize("ident", ["999", "0", "abc", "-1", "1.5", "99999999999999999999999"])
async def test_bad_job_ids(client: TestClient[Any, Any], ident: str) -> None:
    """Unknown or malformed job ids are a JSON 404 on every job route."""
    for method, suffix in (
        ("GET", ""),
        ("GET", "/events"),
        ("POST", "/cancel"),
        ("POST", "/retry"),
        ("GET", "/events/stream"),
    ):
        resp = await client.request(method, f"/api/v1/jobs/{ident}{suffix}", headers=auth())
        assert resp.status == 404, (method, suffix)
        assert (await resp.json())["error"] == "not_found"


async def test_cancel_and_retry(client: TestClient[Any, Any], ctx_pypi: MasterContext) -> None:
    """Cancel ends a live job (409 the second time); retry queues it again (409 while live)."""
    job = await queue_job(ctx_pypi)
    with ctx_pypi.bus.subscribe_ends() as ends:
        resp = await client.post(f"/api/v1/jobs/{job.id}/cancel", headers=auth())
        assert resp.status == 200
        assert (await resp.json())["job"]["state"] == "cancelled"
        assert (await ends.get()).id == job.id
    again = await client.post(f"/api/v1/jobs/{job.id}/cancel", headers=auth())
    assert again.status == 409
    assert (await again.json())["error"] == "conflict"
    retry = await client.post(f"/api/v1/jobs/{job.id}/retry", headers=auth())
    assert retry.status == 200
    assert (await retry.json())["job"]["state"] == "queued"
    live = await client.post(f"/api/v1/jobs/{job.id}/retry", headers=auth())
    assert live.status == 409
    no_token = await client.post(f"/api/v1/jobs/{job.id}/cancel")
    assert no_token.status == 401
    stored = await ctx_pypi.store.jobs.get(job.id)
    assert stored is not None and stored.state.value == "queued"


async def test_events_paging(client: TestClient[Any, Any], ctx_pypi: MasterContext) -> None:
    """GET /jobs/{id}/events pages through stored events with after and limit."""
    job = await queue_job(ctx_pypi)
    producer = await FakeProducer.start(ctx_pypi, job)
    await producer.emit(5)
    first = await (await client.get(f"/api/v1/jobs/{job.id}/events?limit=3")).json()
    assert [e["seq"] for e in first["events"]] == [1, 2, 3] and first["more"] is True
    rest = await (
        await client.get(f"/api/v1/jobs/{job.id}/events?after={first['next_after']}")
    ).json()
    assert [e["seq"] for e in rest["events"]] == [4, 5] and rest["more"] is False
    bad = await client.get(f"/api/v1/jobs/{job.id}/events?after=-3")
    assert bad.status == 400


async def test_slaves_health_metrics(client: TestClient[Any, Any], ctx_pypi: MasterContext) -> None:
    """/slaves lists none, /healthz answers, /metrics has jobs, queue, disk and HTTP figures."""
    await queue_job(ctx_pypi)
    assert await (await client.get("/api/v1/slaves")).json() == {"slaves": []}
    health = await (await client.get("/healthz")).json()
    assert health["status"] == "ok" and health["queued"] == 1
    text = await (await client.get("/metrics")).text()
    assert 'pyti_jobs{state="queued"} 1' in text
    assert "pyti_queue_depth 1" in text
    age = re.search(r"^pyti_queue_oldest_age_seconds (\S+)$", text, re.M)
    assert age and 0 < float(age.group(1)) < 60
    free = re.search(r"^pyti_data_dir_free_bytes (\d+)$", text, re.M)
    # Other processes write to this disk too: the same figure give or take 1 GiB.
    real = shutil.disk_usage(ctx_pypi.config.data_dir).free
    assert free and abs(int(free.group(1)) - real) < 1 << 30
    assert 'pyti_http_requests_total{method="GET",route="/healthz",status="200"} 1' in text
    assert "pyti_http_request_duration_seconds_bucket" in text


async def test_unknown_routes_are_json(client: TestClient[Any, Any]) -> None:
    """Unknown paths and wrong methods get JSON errors (404, 405 with Allow)."""
    missing = await client.get("/api/v1/nothing")
    assert missing.status == 404
    assert (await missing.json())["error"] == "not_found"
    wrong = await client.delete("/api/v1/jobs", headers=auth())
    assert wrong.status == 405
    assert (await wrong.json())["error"] == "method_not_allowed"
    assert "GET" in wrong.headers["Allow"]


async def test_security_headers(client: TestClient[Any, Any]) -> None:
    """Every response carries a strict CSP and nosniff; the page is served."""
    page = await client.get("/")
    assert page.status == 200
    csp = page.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    job_page = await client.get("/jobs/12")
    assert job_page.status == 200 and "text/html" in job_page.headers["Content-Type"]
    script = await client.get("/static/app.js")
    assert script.status == 200 and "textContent" in await script.text()
    assert (await client.get("/static/../keys.py")).status == 404


def test_app_is_embeddable(ctx_pypi: MasterContext) -> None:
    """create_app returns an Application (served by the daemon's AppRunner)."""
    assert isinstance(create_app(ctx_pypi), web.Application)


class FakeLink:
    """A connected slave as the registry sees it (what the slave session provides)."""

    def __init__(self, name: str) -> None:
        self._name = name

    @property
    def name(self) -> str:
        return self._name

    @property
    def images(self) -> frozenset[str]:
        return frozenset({"bookworm"})

    @property
    def free_slots(self) -> int:
        return 1

    @property
    def ready(self) -> bool:
        return True

    @property
    def accepting(self) -> bool:
        return True

    def holds(self, job_id: int, lease: int) -> bool:
        return False

    def offer(self, job: Job) -> bool:
        return False

    def cancel(self, job_id: int, lease: int, reason: str) -> None:
        return None

    def drain(self, reason: str) -> None:
        return None

    def info(self) -> SlaveInfo:
        return SlaveInfo(
            name=self._name,
            address="127.0.0.1:5555",
            slots=2,
            busy=1,
            accel="tcg",
            images=["bookworm"],
            connected_at=1.0,
            last_heartbeat=2.0,
            draining=False,
            jobs=[7],
        )


async def test_slaves_listed(client: TestClient[Any, Any], ctx_pypi: MasterContext) -> None:
    """GET /slaves shows each connected slave's address, slots, busy, images and heartbeat."""
    ctx_pypi.slaves.add(FakeLink("vm-host-1"))
    [slave] = (await (await client.get("/api/v1/slaves")).json())["slaves"]
    assert (slave["name"], slave["address"], slave["slots"], slave["busy"]) == (
        "vm-host-1",
        "127.0.0.1:5555",
        2,
        1,
    )
    assert slave["images"] == ["bookworm"] and slave["last_heartbeat"] == 2.0
    health = await (await client.get("/healthz")).json()
    assert health["slaves"] == 1
