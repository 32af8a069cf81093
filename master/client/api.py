"""A small aiohttp client of the master's HTTP API, shared by the ``pyti`` client commands.

Every command takes ``--master URL`` (env ``PYTI_MASTER_URL``, default
``http://127.0.0.1:7680``), ``--token TOKEN`` (env ``PYTI_TOKEN``) and ``--json``.

Exit codes of the client commands (``pyti tail`` and ``pyti submit --follow``
map the job's outcome; the others use 0 and 2)::

    0  passed (or: the command did what was asked)
    1  failed, crashed or timed_out
    2  usage error, API error, master unreachable
    3  harmful
    4  infra_error or cancelled
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import aiohttp

from protocol.vocabulary import Outcome

DEFAULT_MASTER_URL = "http://127.0.0.1:7680"
API = "/api/v1"

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_ERROR = 2
EXIT_HARMFUL = 3
EXIT_INFRA = 4
EXIT_INCOMPLETE = 5
#: The exit code of each outcome (a test checks every ``Outcome`` has one).
OUTCOME_EXIT: dict[str, int] = {
    Outcome.PASSED: EXIT_OK,
    Outcome.FAILED: EXIT_FAILED,
    Outcome.CRASHED: EXIT_FAILED,
    Outcome.TIMED_OUT: EXIT_FAILED,
    Outcome.HARMFUL: EXIT_HARMFUL,
    Outcome.INFRA_ERROR: EXIT_INFRA,
    Outcome.CANCELLED: EXIT_INFRA,
    Outcome.INCOMPLETE: EXIT_INCOMPLETE,
}
EXIT_CODES_HELP = (
    "exit codes: 0 passed, 1 failed/crashed/timed_out, 2 usage or API error, "
    "3 harmful, 4 infra_error/cancelled, 5 incomplete (could not test)"
)
#: Requests other than the live tail must answer within this.
REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=60, connect=10)
#: The tail gets a keep-alive every 15 s; this long without a byte means the link is dead.
STREAM_TIMEOUT = aiohttp.ClientTimeout(total=None, connect=10, sock_read=45)


class ClientError(Exception):
    """The master refused or could not be reached; ``str()`` is the message for the user."""

    def __init__(self, message: str, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def add_common_args(parser: argparse.ArgumentParser) -> None:
    """``--master``, ``--token``, ``--json``."""
    parser.add_argument(
        "--master",
        default=os.environ.get("PYTI_MASTER_URL", DEFAULT_MASTER_URL),
        metavar="URL",
        help="the master's HTTP address (env PYTI_MASTER_URL; default %(default)s)",
    )
    parser.add_argument(
        "--token",
        default=os.environ.get("PYTI_TOKEN"),
        metavar="TOKEN",
        help="API token (env PYTI_TOKEN); needed to submit, cancel, retry",
    )
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")


def outcome_exit(outcome: str | None) -> int:
    """The exit code for a job outcome (``EXIT_ERROR`` for none or an unknown one)."""
    return OUTCOME_EXIT.get(outcome or "", EXIT_ERROR)


@dataclass(slots=True)
class SseMessage:
    """One server-sent event."""

    event: str = "message"
    data: str = ""
    id: str | None = None


@dataclass(slots=True)
class SseParser:
    """Incremental ``text/event-stream`` parser (WHATWG rules, minus ``retry``)."""

    _buffer: bytes = b""
    _event: str = ""
    _data: list[str] = field(default_factory=list)
    _id: str | None = None

    def feed(self, chunk: bytes) -> list[SseMessage]:
        """The events completed by ``chunk``."""
        self._buffer += chunk
        out: list[SseMessage] = []
        while True:
            nl = self._buffer.find(b"\n")
            if nl < 0:
                return out
            line = self._buffer[:nl].rstrip(b"\r").decode("utf-8", "replace")
            self._buffer = self._buffer[nl + 1 :]
            if line == "":
                if self._data or self._event:
                    out.append(
                        SseMessage(self._event or "message", "\n".join(self._data), self._id)
                    )
                self._event, self._data = "", []
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "data":
                self._data.append(value)
            elif name == "event":
                self._event = value
            elif name == "id":
                self._id = value


class Api:
    """The master's API over one ``aiohttp.ClientSession``; an async context manager."""

    def __init__(self, base_url: str, token: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        return f"<Api {self.base_url}>"

    async def __aenter__(self) -> Self:
        self._session = aiohttp.ClientSession(timeout=REQUEST_TIMEOUT)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("use Api as an async context manager")
        return self._session

    def url(self, path: str) -> str:
        """An absolute URL for an API path (``/jobs``) or a server path (``/api/v1/...``)."""
        return self.base_url + (path if path.startswith(API) or path == "/healthz" else API + path)

    def headers(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        headers = {"Accept": "application/json", **(extra or {})}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    async def _json(self, response: aiohttp.ClientResponse) -> Any:
        try:
            body = await response.json(content_type=None)
        except (ValueError, aiohttp.ContentTypeError):
            body = None
        if response.status >= 400:
            if isinstance(body, dict) and "error" in body:
                raise ClientError(
                    f"{response.status} {body['error']}: {body.get('detail', '')}",
                    response.status,
                    str(body["error"]),
                )
            raise ClientError(f"the master answered {response.status}", response.status)
        if body is None:
            raise ClientError(f"the master answered {response.status} without JSON")
        return body

    async def request(
        self, method: str, path: str, *, params: Mapping[str, str] | None = None, **kwargs: Any
    ) -> tuple[int, Any]:
        """``(status, JSON body)``; raises ``ClientError`` on a 4xx/5xx or a network failure."""
        try:
            async with self.session.request(
                method, self.url(path), params=params, headers=self.headers(), **kwargs
            ) as response:
                return response.status, await self._json(response)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise ClientError(f"cannot reach the master at {self.base_url}: {exc}") from exc

    async def get(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        """GET a JSON resource."""
        return (await self.request("GET", path, params=params))[1]

    async def post_json(self, path: str, body: Mapping[str, Any] | None = None) -> tuple[int, Any]:
        """POST a JSON body."""
        return await self.request("POST", path, json=dict(body or {}))

    async def post_file(self, path: str, file: Path, fields: Mapping[str, str]) -> tuple[int, Any]:
        """POST a file as ``multipart/form-data`` (part ``file``) with form ``fields``."""
        form = aiohttp.FormData()
        for name, value in fields.items():
            form.add_field(name, value)
        with file.open("rb") as fh:
            form.add_field("file", fh, filename=file.name, content_type="application/octet-stream")
            return await self.request("POST", path, data=form)

    async def stream(self, job_id: int, after: int) -> AsyncIterator[SseMessage]:
        """The job's live tail from ``after`` (sent as ``Last-Event-ID``), as SSE messages.

        Ends when the server closes the stream. Raises ``ClientError`` for a 4xx
        (do not retry) and ``aiohttp``/``OSError``/``TimeoutError`` for the network
        (retry); cancellation closes the connection.
        """
        headers = self.headers({"Accept": "text/event-stream", "Last-Event-ID": str(after)})
        async with self.session.get(
            self.url(f"/jobs/{job_id}/events/stream"), headers=headers, timeout=STREAM_TIMEOUT
        ) as response:
            if response.status != 200:
                await self._json(response)
                raise ClientError(f"the master answered {response.status}", response.status)
            parser = SseParser()
            async for chunk in response.content.iter_any():
                for message in parser.feed(chunk):
                    yield message


def run_command(main: Callable[[], Coroutine[Any, Any, int]]) -> int:
    """Run a command's coroutine; a ``ClientError`` is printed and exits 2, Ctrl-C exits 130."""
    try:
        return asyncio.run(main())
    except ClientError as exc:
        print(f"pyti: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130


def print_json(value: Any) -> None:
    """One JSON document on stdout."""
    print(json.dumps(value, indent=2, sort_keys=True))


_CONTROL = {c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0)) if c not in (0x09,)}


def safe(text: object) -> str:
    """``text`` with control characters escaped: guest output must not drive the terminal."""
    return str(text).translate(_CONTROL)


def fmt_time(ts: object) -> str:
    """``YYYY-mm-dd HH:MM:SS`` (UTC) of an epoch timestamp, or ``-``."""
    if not isinstance(ts, int | float):
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts))


def table(rows: list[list[str]], header: list[str]) -> str:
    """A plain aligned text table (cells already safe)."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]
    return "\n".join(lines)
