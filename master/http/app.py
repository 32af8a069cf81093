"""The HTTP app factory ``create_app(ctx)``: for tests (``aiohttp_client``) and the daemon.

The daemon serves it with ``AppRunner`` next to its other tasks.

The app owns two things beyond its handlers, both through ``cleanup_ctx`` so they
start and stop with it: one outgoing ``aiohttp.ClientSession`` (package index) and
the completion-callback sender task with its own session, whose connections the
callback policy checks (``master.http.callback_guard``). At shutdown, open live tails
are ended first (``on_shutdown``): each gets a ``closing`` marker and a clean end of
its stream, and those that do not finish within ``TAIL_CLOSE_S`` (a client not
reading) are cancelled, so the runner does not wait out its shutdown timeout.

Middlewares, outermost first: request metrics → JSON errors → tokens. Security
headers (a strict Content-Security-Policy among them) are added to every
response, streamed ones included, in ``on_response_prepare``.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import structlog
from aiohttp import web
from aiohttp.typedefs import Middleware

from master.context import MasterContext
from master.http.auth import TokenCheck, auth_middleware
from master.http.callback_guard import callback_session
from master.http.callbacks import CallbackSender
from master.http.fanout import JobFeeds
from master.http.keys import (
    CTX,
    ENCODED,
    FEEDS,
    HTTP_SESSION,
    SETTINGS,
    STREAMS,
    TOKENS,
    HttpSettings,
)
from master.http.overview import routes as overview_routes
from master.http.routes import add_page_routes, routes
from master.http.sse import EncodedEvents
from master.http.validation import MAX_JSON_BODY, ApiError
from master.metrics import Metrics
from master.store.errors import InvalidTransition, JobNotFound, StaleLease, StoreError
from pyti.tasks import cancel_and_wait

log = structlog.get_logger("pyti.master.http")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "img-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}
#: Outgoing requests: the package index and callbacks each also have their own deadline.
OUTGOING_TIMEOUT = aiohttp.ClientTimeout(total=30, connect=10)
#: Seconds open live tails get at shutdown to send their ``closing`` marker and end.
TAIL_CLOSE_S = 1.0

_ERROR_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    415: "unsupported_media_type",
}


def error_response(
    status: int, code: str, detail: str, headers: dict[str, str] | None = None
) -> web.Response:
    """The API's one error shape: ``{"error": code, "detail": detail}``."""
    return web.json_response({"error": code, "detail": detail}, status=status, headers=headers)


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure becomes a JSON error; unexpected ones a 500 that leaks nothing."""
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc.status, exc.code, exc.detail, exc.headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        code = _ERROR_CODES.get(exc.status, "error")
        return error_response(exc.status, code, exc.reason, headers)
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except StoreError as exc:
        if isinstance(exc, JobNotFound | InvalidTransition | StaleLease):
            log.exception("http_handler_failed", method=request.method, path=request.path)
            return error_response(500, "internal_error", "the master failed; see its log")
        # The database cannot be written (disk full, I/O error): nothing was stored.
        # Say so, so that clients retry later instead of reporting a bug.
        log.error(
            "http_store_unavailable", method=request.method, path=request.path, error=str(exc)
        )
        return error_response(
            503,
            "store_unavailable",
            f"the master cannot store this now ({exc}); nothing was stored, retry later",
            {"Retry-After": "30"},
        )
    except Exception:
        log.exception("http_handler_failed", method=request.method, path=request.path)
        return error_response(500, "internal_error", "the master failed; see its log")


def metrics_middleware(metrics: Metrics) -> Middleware:
    """Count requests and time them, labelled by route template (bounded cardinality)."""
    latency = metrics.histogram(
        "http_request_duration_seconds",
        "HTTP request latency (live tails excluded).",
        ["method", "route"],
    )
    requests = metrics.counter(
        "http_requests_total", "HTTP requests by route and status.", ["method", "route", "status"]
    )

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "unmatched"
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            requests.inc(1, request.method, route, str(status))
            if not route.endswith("/stream"):
                latency.observe(time.perf_counter() - started, request.method, route)

    return middleware


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)


async def _http_session(app: web.Application) -> AsyncIterator[None]:
    async with aiohttp.ClientSession(timeout=OUTGOING_TIMEOUT) as session:
        app[HTTP_SESSION] = session
        yield


async def _callback_sender(app: web.Application) -> AsyncIterator[None]:
    ctx = app[CTX]
    settings = app[SETTINGS]
    secret = settings.callback_secret
    if secret is None:
        yield  # callbacks are refused at submission; nothing can be pending from this app
        return
    # Its own session: every connection it makes is checked by the callback policy.
    session = callback_session(
        settings.callback_policy, OUTGOING_TIMEOUT, settings.callback_resolver
    )
    sender = CallbackSender(
        ctx.store,
        ctx.bus,
        secret,
        ctx.metrics,
        session,
        backoff_base=settings.callback_backoff,
        policy=settings.callback_policy,
    )
    task = asyncio.create_task(sender.run(), name="http-callbacks")
    try:
        yield
    finally:
        for error in await cancel_and_wait(task):
            log.error("callback_sender_failed", error=repr(error))
        await session.close()


async def _close_streams(app: web.Application) -> None:
    app[FEEDS].closing()
    open_tails: set[asyncio.Task[Any]] = app[STREAMS]
    streams = list(open_tails)
    if streams:
        _, late = await asyncio.wait(streams, timeout=TAIL_CLOSE_S)
        for task in late:
            task.cancel()


async def _job_feeds(app: web.Application) -> AsyncIterator[None]:
    app[FEEDS] = JobFeeds(app[CTX].bus)
    try:
        yield
    finally:
        await app[FEEDS].close()


def _register_collectors(ctx: MasterContext) -> None:
    by_outcome = ctx.metrics.gauge("jobs_by_outcome", "Jobs by outcome.", ["outcome"])
    by_result = ctx.metrics.gauge(
        "jobs_by_verdict",
        "Finished jobs by outcome and behaviour verdict (verdict empty when there is none).",
        ["outcome", "verdict"],
    )
    queue_depth = ctx.metrics.gauge("queue_depth", "Jobs waiting in the queue.")
    oldest = ctx.metrics.gauge(
        "queue_oldest_age_seconds", "Age of the oldest queued job (0 when none is queued)."
    )
    free = ctx.metrics.gauge(
        "data_dir_free_bytes", "Bytes free to the master on the file system of its data dir."
    )

    async def collect() -> None:
        counts = await ctx.store.jobs.counts()
        by_outcome.clear()
        for outcome, n in counts["outcome"].items():
            by_outcome.set(n, outcome)
        by_result.clear()
        for key, n in counts["result"].items():
            outcome, _, verdict = key.partition("/")
            by_result.set(n, outcome, verdict)
        queue_depth.set(counts["state"].get("queued", 0))
        created = await ctx.store.jobs.oldest_queued_at()
        oldest.set(0.0 if created is None else max(0.0, time.time() - created))
        try:
            usage = await asyncio.to_thread(shutil.disk_usage, ctx.config.data_dir)
        except OSError:
            free.set(0)  # an unreadable data dir is as bad as a full one: alert
        else:
            free.set(usage.free)

    ctx.metrics.add_collector(collect)


def create_app(ctx: MasterContext, *, settings: HttpSettings | None = None) -> web.Application:
    """The HTTP API, live tail and web page of one master, over ``ctx``.

    Raises ``ConfigError`` for a bad ``[http]`` table. The app does not own
    ``ctx``: closing the app never closes the store.
    """
    settings = settings or HttpSettings.from_config(ctx.config)
    tokens = TokenCheck(settings.tokens)
    app = web.Application(
        middlewares=[
            metrics_middleware(ctx.metrics),
            errors_middleware,
            auth_middleware(tokens, settings.require_read_token),
        ],
        client_max_size=MAX_JSON_BODY,
    )
    app[CTX] = ctx
    app[SETTINGS] = settings
    app[TOKENS] = tokens
    app[ENCODED] = EncodedEvents()
    streams: set[asyncio.Task[Any]] = set()
    app[STREAMS] = streams
    app.add_routes(routes)
    app.add_routes(overview_routes)
    add_page_routes(app)
    app.on_response_prepare.append(_security_headers)
    app.on_shutdown.append(_close_streams)
    app.cleanup_ctx.append(_http_session)
    app.cleanup_ctx.append(_job_feeds)
    app.cleanup_ctx.append(_callback_sender)
    _register_collectors(ctx)
    ctx.metrics.gauge("tail_clients", "Open live-tail connections.").set(0)
    return app
