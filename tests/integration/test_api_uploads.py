"""Uploaded sdists and wheels: stored content-addressed, checked, capped; refusals leave nothing."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from master.context import MasterContext
from master.http.app import create_app
from tests.fakes.dists import build_sdist, build_wheel
from tests.integration.test_api_harness import CALLBACK_SECRET, auth, open_ctx, store_snapshot

ClientFactory = Any
CAP = 64 * 1024


@pytest.fixture
async def ctx(tmp_path: Path) -> AsyncIterator[MasterContext]:
    """A master with a 64 KiB upload cap."""
    context = await open_ctx(
        tmp_path / "master",
        http={"callback_secret": CALLBACK_SECRET, "upload_max_bytes": CAP},
    )
    try:
        yield context
    finally:
        await context.close()


@pytest.fixture
async def client(aiohttp_client: ClientFactory, ctx: MasterContext) -> TestClient[Any, Any]:
    """An HTTP client on the real app."""
    client: TestClient[Any, Any] = await aiohttp_client(create_app(ctx))
    return client


def form(name: str, data: bytes, **fields: str) -> aiohttp.FormData:
    """A multipart body with a ``file`` part and option fields."""
    body = aiohttp.FormData()
    for key, value in fields.items():
        body.add_field(key, value)
    body.add_field("file", data, filename=name, content_type="application/octet-stream")
    return body


def uploads(ctx: MasterContext) -> list[str]:
    """Every file under the uploads directory, relative."""
    root = ctx.config.data_dir / "uploads"
    if not root.exists():
        return []
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


async def test_upload_wheel(
    client: TestClient[Any, Any], ctx: MasterContext, tmp_path: Path
) -> None:
    """A wheel upload queues a job for its name and version, stored under uploads/<sha256>/."""
    wheel = build_wheel(tmp_path, "Demo.Pkg", "2.0rc1", {"demo_pkg/__init__.py": "X = 1\n"})
    data = wheel.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    resp = await client.post(
        "/api/v1/jobs", data=form(wheel.name, data, priority="7"), headers=auth()
    )
    assert resp.status == 201, await resp.text()
    job = (await resp.json())["job"]
    assert (job["project"], job["version"], job["source"], job["priority"]) == (
        "demo-pkg",
        "2.0rc1",
        "upload",
        7,
    )
    assert job["files"] == [
        {
            "filename": wheel.name,
            "sha256": sha,
            "size": len(data),
            "packagetype": "bdist_wheel",
            "url": None,
        }
    ]
    assert uploads(ctx) == [f"{sha}/{wheel.name}"]
    stored = await ctx.store.jobs.get(job["id"])
    assert stored is not None
    assert await asyncio.to_thread(Path(stored.files[0]["path"]).read_bytes) == data


async def test_upload_dedupe_by_content(client: TestClient[Any, Any], tmp_path: Path) -> None:
    """The same bytes again are the same job; new bytes under the same name are a new job."""
    sdist = build_sdist(tmp_path, "demo", "1.0", {"demo/__init__.py": "X = 1\n"})
    first = await client.post(
        "/api/v1/jobs", data=form(sdist.name, sdist.read_bytes()), headers=auth()
    )
    assert first.status == 201
    again = await client.post(
        "/api/v1/jobs", data=form(sdist.name, sdist.read_bytes()), headers=auth()
    )
    assert again.status == 200
    first_id = (await first.json())["job"]["id"]
    assert (await again.json())["job"]["id"] == first_id
    rebuilt = build_sdist(tmp_path / "b", "demo", "1.0", {"demo/__init__.py": "X = 2\n"})
    third = await client.post(
        "/api/v1/jobs", data=form(rebuilt.name, rebuilt.read_bytes()), headers=auth()
    )
    assert third.status == 201
    assert (await third.json())["job"]["id"] != first_id


WHEEL_BYTES = b"PK\x03\x04" + b"\0" * 100
GZIP_BYTES = b"\x1f\x8b\x08" + b"\0" * 100


@pytest.mark.parametrize(
    ("name", "data", "fields", "status", "error"),
    [
        ("evil.exe", WHEEL_BYTES, {}, 400, "invalid_filename"),
        ("../demo-1.0-py3-none-any.whl", WHEEL_BYTES, {}, 400, "invalid_filename"),
        ("demo.whl", WHEEL_BYTES, {}, 400, "invalid_filename"),
        ("demo-1.0.tar.bz2", GZIP_BYTES, {}, 400, "invalid_filename"),
        ("demo-1.0-py3-none-any.whl", GZIP_BYTES, {}, 400, "invalid_archive"),
        ("demo-1.0.tar.gz", WHEEL_BYTES, {}, 400, "invalid_archive"),
        ("demo-1.0.tar.gz", b"\x1f", {}, 400, "invalid_archive"),
        (
            "demo-1.0-py3-none-any.whl",
            b"PK\x03\x04" + b"\0" * (CAP + 10),
            {},
            413,
            "body_too_large",
        ),
        ("demo-1.0-py3-none-any.whl", WHEEL_BYTES, {"priority": "high"}, 400, "invalid_field"),
        ("demo-1.0-py3-none-any.whl", WHEEL_BYTES, {"rerun": "maybe"}, 400, "invalid_field"),
        ("demo-1.0-py3-none-any.whl", WHEEL_BYTES, {"colour": "red"}, 400, "unknown_field"),
        (
            "demo-1.0-py3-none-any.whl",
            WHEEL_BYTES,
            {"callback_url": "file:///etc/passwd"},
            400,
            "invalid_field",
        ),
    ],
)
async def test_bad_uploads_leave_nothing(
    client: TestClient[Any, Any],
    ctx: MasterContext,
    name: str,
    data: bytes,
    fields: dict[str, str],
    status: int,
    error: str,
) -> None:
    """Bad names, wrong magic bytes, oversize files and bad fields: 4xx, no job, no partial file."""
    before = await store_snapshot(ctx)
    # Fields first, so a bad field is seen before the file is written at all.
    resp = await client.post("/api/v1/jobs", data=form(name, data, **fields), headers=auth())
    assert resp.status == status, await resp.text()
    assert (await resp.json())["error"] == error
    assert await store_snapshot(ctx) == before
    assert [p for p in uploads(ctx) if "/" not in p] == []  # no .incoming-* leftovers


async def test_upload_needs_a_file_and_a_token(
    client: TestClient[Any, Any], ctx: MasterContext
) -> None:
    """A multipart body without a file part is a 400; without a token a 401 before any read."""
    body = aiohttp.FormData()
    body.add_field("priority", "1")
    body.add_field("x", b"1", filename="x.bin")  # a file part with the wrong name
    resp = await client.post("/api/v1/jobs", data=body, headers=auth())
    assert resp.status == 400
    no_token = await client.post(
        "/api/v1/jobs", data=form("demo-1.0-py3-none-any.whl", WHEEL_BYTES)
    )
    assert no_token.status == 401
    assert uploads(ctx) == [] and await store_snapshot(ctx) == []
