"""HTTP for the feed watcher: conditional GET of feeds, JSON API reads, capped bodies.

Every request has a timeout (connect and body together) and sends a User-Agent
naming pyti and its version, so PyPI's operators can tell who polls. A body is
read in chunks and abandoned (connection closed) as soon as it passes its cap, so
a 50 MB answer costs at most the cap plus one chunk of memory. aiohttp errors are
translated to `FetchError` at this boundary.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

import aiohttp

from master.feed.errors import FetchError
from master.pypi import JsonDocument

_CHUNK = 64 * 1024
#: JSON bodies above this are decoded in a worker thread, not on the event loop
_THREAD_JSON_BYTES = 256 * 1024
#: the only response headers the watcher looks at
_KEPT_HEADERS = ("ETag", "Last-Modified", "Retry-After")


def _version() -> str:
    try:
        return importlib.metadata.version("pyti")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"


USER_AGENT = (
    f"pyti/{_version()} (PyPI testing infrastructure; feed watcher) aiohttp/{aiohttp.__version__}"
)


@dataclass(frozen=True, slots=True)
class Validators:
    """What the server said identifies its current version of a feed."""

    etag: str | None = None
    last_modified: str | None = None

    def headers(self) -> dict[str, str]:
        """Conditional request headers for the next GET."""
        headers = {}
        if self.etag:
            headers["If-None-Match"] = self.etag
        if self.last_modified:
            headers["If-Modified-Since"] = self.last_modified
        return headers


@dataclass(frozen=True, slots=True)
class FeedDocument:
    """A feed GET's outcome; ``body`` is None when the server answered 304."""

    body: bytes | None
    validators: Validators


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def _header(value: str | None) -> str | None:
    # A validator is echoed back verbatim; refuse ones that could smuggle headers.
    if value is None or len(value) > 512 or any(c in value for c in "\r\n\0"):
        return None
    return value


def make_session(timeout: float) -> aiohttp.ClientSession:
    """A client session with the pyti User-Agent and ``timeout`` on every request."""
    return aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=timeout),
        headers={"User-Agent": USER_AGENT},
        raise_for_status=False,
    )


class HttpClient:
    """Feed and JSON API requests over one session (owned by the caller)."""

    def __init__(self, session: aiohttp.ClientSession, *, timeout: float) -> None:
        self._session = session
        self._timeout = timeout

    async def get_feed(self, url: str, validators: Validators, *, max_bytes: int) -> FeedDocument:
        """GET a feed, conditionally; raises `FetchError` on any failure.

        Cancel-safe: nothing is kept; the connection of a cancelled read is closed.
        """
        status, body, headers, _ = await self._get(url, validators.headers(), max_bytes)
        if status == 304:
            return FeedDocument(None, validators)
        if status != 200:
            raise FetchError(
                url,
                "http_status",
                f"HTTP {status}",
                retry_after=_retry_after(headers.get("Retry-After")),
            )
        fresh = Validators(_header(headers.get("ETag")), _header(headers.get("Last-Modified")))
        return FeedDocument(body, fresh)

    async def get_json(self, url: str, *, max_bytes: int) -> JsonDocument | None:
        """GET and decode a JSON document (with the URL it came from, after redirects);
        None when the server answers 404.

        Raises `FetchError` (``bad_json`` when the body is not JSON).
        """
        status, body, headers, final_url = await self._get(
            url, {"Accept": "application/json"}, max_bytes
        )
        if status == 404:
            return None
        if status != 200:
            raise FetchError(
                url,
                "http_status",
                f"HTTP {status}",
                retry_after=_retry_after(headers.get("Retry-After")),
            )
        assert body is not None
        try:
            if len(body) > _THREAD_JSON_BYTES:
                data = await asyncio.to_thread(json.loads, body)
            else:
                data = json.loads(body)
        except (ValueError, RecursionError) as exc:
            raise FetchError(url, "bad_json", f"body is not JSON: {exc}") from None
        return JsonDocument(final_url, data)

    async def _get(
        self, url: str, headers: dict[str, str], max_bytes: int
    ) -> tuple[int, bytes | None, dict[str, str], str]:
        """(status, body of a 200, kept headers, the URL answered after redirects)."""
        try:
            # asyncio.timeout on top of aiohttp's own: it also bounds DNS and pool waits.
            async with (
                asyncio.timeout(self._timeout),
                self._session.get(
                    url, headers=headers, allow_redirects=True, max_redirects=3
                ) as resp,
            ):
                got = {h: resp.headers[h] for h in _KEPT_HEADERS if h in resp.headers}
                if resp.status != 200:
                    # Error bodies are never needed; do not read them.
                    resp.close()
                    return resp.status, None, got, str(resp.url)
                body = await _read_capped(resp, url, max_bytes)
                return resp.status, body, got, str(resp.url)
        except TimeoutError:
            raise FetchError(
                url, "timeout", f"no complete answer within {self._timeout}s"
            ) from None
        except aiohttp.TooManyRedirects:
            raise FetchError(url, "http_status", "too many redirects") from None
        except (aiohttp.ClientError, OSError) as exc:
            raise FetchError(url, "connection", f"{type(exc).__name__}: {exc}") from None


async def _read_capped(resp: aiohttp.ClientResponse, url: str, max_bytes: int) -> bytes:
    length = resp.content_length
    if length is not None and length > max_bytes:
        resp.close()
        raise FetchError(url, "too_large", f"Content-Length {length} exceeds {max_bytes} bytes")
    body = bytearray()
    async for chunk in resp.content.iter_chunked(_CHUNK):
        body += chunk
        if len(body) > max_bytes:
            # Closing (not releasing) drops the connection: the rest is never read.
            resp.close()
            raise FetchError(url, "too_large", f"body exceeds {max_bytes} bytes")
    return bytes(body)
