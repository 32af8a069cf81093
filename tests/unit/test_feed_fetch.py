"""HTTP for feeds: User-Agent, conditional GET, timeouts, errors and capped bodies."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from master.feed.errors import FetchError
from master.feed.fetch import USER_AGENT, HttpClient, Validators, make_session
from tests.fakes.feeds import release_item, rss
from tests.fakes.pypi import FakePyPI

T = 1_763_740_800.0
BODY = rss([release_item("demo", "1.0", at=T)])


@pytest.fixture
async def srv() -> AsyncIterator[FakePyPI]:
    async with FakePyPI() as feeds:
        yield feeds


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with make_session(timeout=5.0) as s:
        yield s


async def test_feed_get_sends_pyti_user_agent_and_returns_validators(
    srv: FakePyPI, session: aiohttp.ClientSession
) -> None:
    """A plain GET names pyti and its version and keeps ETag/Last-Modified for next time."""
    srv.set_feed("updates", BODY, etag='"v1"', last_modified="Fri, 21 Nov 2025 16:00:00 GMT")
    doc = await HttpClient(session, timeout=5.0).get_feed(
        srv.feed_url("updates"), Validators(), max_bytes=1 << 20
    )
    assert doc.body == BODY
    assert doc.validators == Validators('"v1"', "Fri, 21 Nov 2025 16:00:00 GMT")
    (req,) = srv.requests_for("/rss/updates.xml")
    assert req.headers["User-Agent"] == USER_AGENT
    assert USER_AGENT.startswith("pyti/")
    assert "If-None-Match" not in req.headers


async def test_conditional_get_sends_validators_and_understands_304(
    srv: FakePyPI, session: aiohttp.ClientSession
) -> None:
    """With validators, If-None-Match/If-Modified-Since are sent and a 304 has no body."""
    srv.set_feed("updates", BODY, etag='"v1"', last_modified="Fri, 21 Nov 2025 16:00:00 GMT")
    sent = Validators('"v1"', "Fri, 21 Nov 2025 16:00:00 GMT")
    doc = await HttpClient(session, timeout=5.0).get_feed(
        srv.feed_url("updates"), sent, max_bytes=1 << 20
    )
    assert doc.body is None
    assert doc.validators == sent
    (req,) = srv.requests_for("/rss/updates.xml")
    assert req.headers["If-None-Match"] == '"v1"'
    assert req.headers["If-Modified-Since"] == "Fri, 21 Nov 2025 16:00:00 GMT"
    assert req.status == 304


async def test_server_error_is_a_fetch_error_with_retry_after(
    srv: FakePyPI, session: aiohttp.ClientSession
) -> None:
    """A 5xx raises FetchError(kind=http_status); the next GET succeeds."""
    srv.set_feed("updates", BODY)
    srv.faults.fail("/rss/updates.xml", 503, retry_after="7")
    client = HttpClient(session, timeout=5.0)
    with pytest.raises(FetchError) as info:
        await client.get_feed(srv.feed_url("updates"), Validators(), max_bytes=1 << 20)
    assert info.value.kind == "http_status"
    assert "503" in info.value.detail
    assert info.value.retry_after == 7.0
    doc = await client.get_feed(srv.feed_url("updates"), Validators(), max_bytes=1 << 20)
    assert doc.body == BODY


async def test_slow_server_times_out(srv: FakePyPI) -> None:
    """A server that does not answer within the timeout gives FetchError(kind=timeout)."""
    srv.set_feed("updates", BODY)
    srv.faults.slow["/rss/updates.xml"] = 10.0
    async with make_session(timeout=0.3) as session:
        with pytest.raises(FetchError) as info:
            await HttpClient(session, timeout=0.3).get_feed(
                srv.feed_url("updates"), Validators(), max_bytes=1 << 20
            )
    assert info.value.kind == "timeout"


async def test_refused_connection_is_a_connection_error(session: aiohttp.ClientSession) -> None:
    """Nobody listening: FetchError(kind=connection), not an aiohttp exception."""
    async with FakePyPI() as gone:
        url = gone.feed_url("updates")
    with pytest.raises(FetchError) as info:
        await HttpClient(session, timeout=5.0).get_feed(url, Validators(), max_bytes=1 << 20)
    assert info.value.kind == "connection"


@pytest.mark.parametrize("content_length", [True, False])
async def test_huge_body_is_abandoned_at_the_cap(
    srv: FakePyPI, session: aiohttp.ClientSession, content_length: bool
) -> None:
    """A 50 MB answer is refused (too_large) after at most the cap; the rest is never sent."""
    srv.faults.huge("/rss/updates.xml", 50 << 20, content_length=content_length)
    with pytest.raises(FetchError) as info:
        await HttpClient(session, timeout=5.0).get_feed(
            srv.feed_url("updates"), Validators(), max_bytes=1 << 20
        )
    assert info.value.kind == "too_large"
    # Socket buffers let the server get a few MB ahead of us, never the whole 50 MB.
    assert srv.sent_bytes("/rss/updates.xml") < 20 << 20


async def test_json_404_is_none_and_garbage_is_bad_json(
    srv: FakePyPI, session: aiohttp.ClientSession
) -> None:
    """The JSON API's 404 means "not there"; a non-JSON body is FetchError(bad_json)."""
    client = HttpClient(session, timeout=5.0)
    assert await client.get_json(f"{srv.base_url}/pypi/nope/1.0/json", max_bytes=1 << 20) is None
    srv.set_feed("notjson", b"{not json")
    with pytest.raises(FetchError) as info:
        await client.get_json(srv.feed_url("notjson"), max_bytes=1 << 20)
    assert info.value.kind == "bad_json"
