"""Project names and versions: ASCII only, matched whole, and one project under any spelling."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from master.context import MasterContext
from master.http.validation import ApiError, project_name, query_project, version_string
from tests.integration.test_api_harness import app, auth, ctx, queue_job, store_snapshot

__all__ = ["app", "ctx"]  # fixtures

ClientFactory = Any  # pytest-aiohttp's aiohttp_client fixture

KELVIN = "\u212a"  # KELVIN SIGN: case-folds to "k" under a Unicode IGNORECASE match
LONG_S = "\u017f"  # LATIN SMALL LETTER LONG S: case-folds to "s"


@pytest.mark.parametrize(
    "name", [f"{KELVIN}eras", f"flas{LONG_S}", "demo\n", "d\u0131mo", "ｄｅｍｏ", "de mo"]
)
async def test_non_ascii_or_trailing_newline_names_are_refused(
    aiohttp_client: ClientFactory, app: Any, ctx: MasterContext, name: str
) -> None:
    """POST /jobs and GET /jobs?project= refuse look-alike and newline-terminated names."""
    client: TestClient[Any, Any] = await aiohttp_client(app)
    resp = await client.post("/api/v1/jobs", json={"project": name}, headers=auth())
    assert resp.status == 400
    assert (await resp.json())["error"] == "invalid_field"
    listed = await client.get("/api/v1/jobs", params={"project": name})
    assert listed.status == 400
    assert await store_snapshot(ctx) == []


def test_validators_accept_ascii_names_and_refuse_look_alikes() -> None:
    """The validators take PEP 508 ASCII names and versions, nothing that folds into them."""
    assert project_name("Keras") == "Keras" and project_name("a") == "a"
    assert query_project({"project": "zope.interface"}) == "zope.interface"
    assert version_string("1.0.post1+local") == "1.0.post1+local"
    for bad in (f"{KELVIN}eras", "keras\n"):
        with pytest.raises(ApiError, match="invalid_field"):
            project_name(bad)
    for bad_version in ("1.0\n", "1.\u0661"):  # ARABIC-INDIC DIGIT ONE
        with pytest.raises(ApiError, match="invalid_field"):
            version_string(bad_version)


async def test_project_filter_matches_any_spelling(
    aiohttp_client: ClientFactory, app: Any, ctx: MasterContext
) -> None:
    """GET /jobs?project= lists the jobs of a project whatever spelling each job was queued with."""
    client: TestClient[Any, Any] = await aiohttp_client(app)
    feed = await queue_job(ctx, "Demo_Pkg", "1.0")
    upload = await queue_job(ctx, "demo-pkg", "1.1")
    await queue_job(ctx, "demopkg", "1.0")
    resp = await client.get("/api/v1/jobs", params={"project": "demo.pkg"})
    assert resp.status == 200
    assert [j["id"] for j in (await resp.json())["jobs"]] == [upload.id, feed.id]
