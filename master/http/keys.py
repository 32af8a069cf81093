"""Typed application state of the HTTP app (``web.AppKey``), and the HTTP settings.

The HTTP API's own settings live in the ``[http]`` table of the master's TOML
config (``MasterConfig.http``), passed through untouched by ``master/config.py``
and checked here::

    [http]
    upload_max_bytes = 104857600          # size cap of one uploaded sdist/wheel
    idle_timeout = 15                     # s a connection may sit without a whole request
    callback_secret_file = "/etc/pyti/callback.key"   # or: callback_secret = "..."
    callback_allow = ["10.20.0.0/16", "hooks.internal.example"]   # non-public targets allowed

Without a callback secret, submissions with a ``callback_url`` are refused: an
unsigned callback could not be told apart from a forged one. Callbacks go to public
addresses only, plus what ``callback_allow`` lists (``master.http.callback_guard``).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.abc import AbstractResolver

from master.config import ConfigError, MasterConfig
from master.context import MasterContext
from master.http.auth import TokenCheck
from master.http.callback_guard import CallbackPolicy
from master.http.callbacks import BACKOFF_BASE_S
from master.http.fanout import JobFeeds
from master.http.sse import SUBSCRIBER_QUEUE, WRITE_TIMEOUT_S, EncodedEvents
from pyti.settings import Int, Number, Setting, SettingsError, Text, Texts, check

DEFAULT_UPLOAD_MAX_BYTES = 100 * 1024 * 1024
#: A submission's whole release lookup (connect, answer, body) must finish within this.
DEFAULT_PYPI_TIMEOUT_S = 15.0
#: A connection with no request in progress (never sent one, sends its headers too
#: slowly, or idles between requests) is closed after this many seconds: idle and
#: slow-loris peers cannot pile up. Live tails are requests in progress: unaffected.
DEFAULT_IDLE_TIMEOUT_S = 15.0
#: The keys of the ``[http]`` table, for ``pyti.settings``.
HTTP_SETTINGS: dict[str, Setting] = {
    "upload_max_bytes": Int(minimum=1024),
    "idle_timeout": Number(above=0, maximum=3600),
    "callback_secret": Text(),
    "callback_secret_file": Text(),
    "callback_allow": Texts(),
}
HTTP_KEYS = frozenset(HTTP_SETTINGS)


@dataclass(frozen=True)
class HttpSettings:
    """What the HTTP app needs from the configuration, resolved and checked."""

    pypi_url: str
    uploads_dir: Path
    static_dir: Path
    default_image: str
    tokens: frozenset[str] = field(repr=False)
    require_read_token: bool = False
    upload_cap: int = DEFAULT_UPLOAD_MAX_BYTES
    callback_secret: bytes | None = field(default=None, repr=False)
    pypi_timeout: float = DEFAULT_PYPI_TIMEOUT_S
    #: rows one live-tail client may fall behind before it re-reads the store
    tail_queue: int = SUBSCRIBER_QUEUE
    #: seconds a live-tail client may take no data before it is dropped
    tail_write_timeout: float = WRITE_TIMEOUT_S
    #: seconds before a failed completion callback's first retry
    callback_backoff: float = BACKOFF_BASE_S
    #: where callbacks may go besides public addresses (``callback_allow``)
    callback_policy: CallbackPolicy = field(default_factory=CallbackPolicy)
    #: the name lookup under the callback guard (None: the system's; tests map names)
    callback_resolver: AbstractResolver | None = field(default=None, repr=False, compare=False)
    #: seconds a connection may stay open with no request in progress
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT_S

    @classmethod
    def from_config(cls, config: MasterConfig) -> HttpSettings:
        """Read ``config`` and its ``[http]`` table; ``ConfigError`` names a bad key."""
        try:
            table = check(config.http, HTTP_SETTINGS, source="[http]")
        except SettingsError as exc:
            raise ConfigError(str(exc)) from None
        cap = table.get("upload_max_bytes", DEFAULT_UPLOAD_MAX_BYTES)
        try:
            policy = CallbackPolicy.parse(table.get("callback_allow", ()))
        except ValueError as exc:
            raise ConfigError(f"[http] {exc}") from None
        return cls(
            pypi_url=config.pypi_url.rstrip("/"),
            uploads_dir=config.data_dir / "uploads",
            static_dir=Path(__file__).resolve().parent / "static",
            default_image=config.default_image,
            tokens=config.tokens,
            require_read_token=config.require_read_token,
            upload_cap=cap,
            callback_secret=_callback_secret(table),
            callback_policy=policy,
            idle_timeout=table.get("idle_timeout", DEFAULT_IDLE_TIMEOUT_S),
        )


def _callback_secret(table: dict[str, Any]) -> bytes | None:
    if "callback_secret" in table and "callback_secret_file" in table:
        raise ConfigError("[http]: give callback_secret or callback_secret_file, not both")
    value: str | None = table.get("callback_secret")
    if value is not None:
        if len(value.strip()) < 16:
            raise ConfigError("[http] callback_secret must be a string of 16 characters or more")
        return value.strip().encode("utf-8")
    path = table.get("callback_secret_file")
    if path is None:
        return None
    try:
        secret = Path(path).expanduser().read_bytes().strip()
    except OSError as exc:
        raise ConfigError(f"[http] callback_secret_file: cannot read {path}: {exc}") from exc
    if len(secret) < 16:
        raise ConfigError(f"[http] callback_secret_file: {path} holds under 16 bytes")
    return secret


CTX = web.AppKey("pyti_ctx", MasterContext)
SETTINGS = web.AppKey("pyti_http_settings", HttpSettings)
#: Outgoing HTTP (the package index, callbacks); created and closed by the app's cleanup_ctx.
HTTP_SESSION = web.AppKey("pyti_http_session", aiohttp.ClientSession)
#: The API tokens accepted now; a reload replaces them in place.
TOKENS = web.AppKey("pyti_tokens", TokenCheck)
#: Encoded-event cache shared by every live tail.
ENCODED = web.AppKey("pyti_encoded_events", EncodedEvents)
#: One bus subscription per tailed job, fanned out to its clients.
FEEDS = web.AppKey("pyti_job_feeds", JobFeeds)
#: The handler tasks of open live tails, cancelled at shutdown so it does not wait for them.
STREAMS: web.AppKey[set[asyncio.Task[Any]]] = web.AppKey("pyti_streams")
