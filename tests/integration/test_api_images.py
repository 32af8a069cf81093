"""Image choice through the real API: a fake slave advertises two images with their Python."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from master.http.app import create_app
from tests.fakes.pypi import FakePyPI
from tests.integration.conftest import Harness, make_config
from tests.integration.test_api_harness import TOKEN, auth

ClientFactory = Any  # pytest-aiohttp's aiohttp_client fixture
PYTHONS = {"bookworm": "3.11.2", "trixie": "3.13.5"}


@pytest.fixture
async def pypi(tmp_path: Path) -> AsyncIterator[FakePyPI]:
    """Releases for any Python 3, for >= 3.12 only, for < 3.13 only, and for a Python no image
    has."""
    async with FakePyPI() as index:
        index.add_project(tmp_path / "a", "anypy", "1.0", requires_python=">=3.8")
        index.add_project(tmp_path / "n", "newpy", "1.0", requires_python=">=3.12")
        index.add_project(tmp_path / "o", "oldpy", "1.0", requires_python=">=3.8,<3.13")
        index.add_project(tmp_path / "f", "futurepy", "1.0", requires_python=">=3.14")
        yield index


@pytest.fixture
async def two_images(tmp_path: Path, pypi: FakePyPI) -> AsyncIterator[Harness]:
    """A running master whose index is the fake, with one slave holding bookworm and trixie."""
    tokens = tmp_path / "tokens"
    tokens.write_text(TOKEN + "\n")
    config = make_config(tmp_path, pypi_url=pypi.base_url, token_file=str(tokens))
    h = Harness(config)
    await h.start()
    try:
        await h.slave("s1", images=tuple(PYTHONS), pythons=PYTHONS, mode="accept", slots=3)
        yield h
    finally:
        await h.stop()


@pytest.fixture
async def client(aiohttp_client: ClientFactory, two_images: Harness) -> TestClient[Any, Any]:
    """An HTTP client on the app over the running master's context."""
    client: TestClient[Any, Any] = await aiohttp_client(create_app(two_images.ctx))
    return client


async def _submit(client: TestClient[Any, Any], **body: Any) -> tuple[int, dict[str, Any]]:
    resp = await client.post("/api/v1/jobs", json=body, headers=auth())
    return resp.status, await resp.json()


async def test_release_goes_to_the_image_its_python_allows(
    client: TestClient[Any, Any], two_images: Harness
) -> None:
    """>=3.8 and >=3.12 run in the default (trixie), <3.13 in bookworm; each offered there."""
    status, body = await _submit(client, project="anypy")
    assert status == 201 and body["job"]["image"] == "trixie"
    status, body = await _submit(client, project="newpy")
    assert status == 201 and body["job"]["image"] == "trixie"
    status, body = await _submit(client, project="oldpy")
    assert status == 201 and body["job"]["image"] == "bookworm"
    slave = two_images.slaves[0]
    await slave.wait_for(lambda: len(slave.jobs) == 3)
    assert sorted(j.offer.image for j in slave.jobs.values()) == ["bookworm", "trixie", "trixie"]


async def test_no_image_fits_is_incomplete_with_the_reason(
    client: TestClient[Any, Any], two_images: Harness
) -> None:
    """A release needing Python >=3.14 ends incomplete at once, with the reason; never offered."""
    status, body = await _submit(client, project="futurepy")
    assert status == 201
    job = body["job"]
    assert (job["state"], job["outcome"]) == ("finished", "incomplete")
    assert job["summary"]["reason"] == (
        "requires Python >=3.14; images here: bookworm 3.11.2, trixie 3.13.5"
    )
    status, again = await _submit(client, project="futurepy")
    assert (status, again["job"]["id"], again["created"]) == (200, job["id"], False)
    assert two_images.slaves[0].jobs == {}


async def test_explicit_image_is_validated(
    client: TestClient[Any, Any], two_images: Harness
) -> None:
    """A named image is used; an unknown one is a 422; one whose Python is refused is incomplete."""
    status, body = await _submit(client, project="anypy", image="trixie")
    assert status == 201 and body["job"]["image"] == "trixie"
    status, body = await _submit(client, project="anypy", image="sid")
    assert (status, body["error"]) == (422, "unknown_image")
    assert "known images: bookworm, trixie" in body["detail"]
    status, body = await _submit(client, project="newpy", image="bookworm")
    assert status == 201 and body["job"]["outcome"] == "incomplete"
    assert body["job"]["summary"]["reason"] == (
        "requires Python >=3.12; image bookworm has Python 3.11.2"
    )


async def test_images_are_remembered_across_a_restart(
    aiohttp_client: ClientFactory, two_images: Harness
) -> None:
    """After a restart, before any slave is back, the master still knows trixie's Python."""
    await two_images.restart()
    assert two_images.ctx.slaves.list() == []
    client: TestClient[Any, Any] = await aiohttp_client(create_app(two_images.ctx))
    status, body = await _submit(client, project="newpy")
    assert (status, body["job"]["image"], body["job"]["state"]) == (201, "trixie", "queued")
