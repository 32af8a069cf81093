"""The HTTP API's handlers, under ``/api/v1/``, plus ``/healthz``, ``/metrics`` and the page.

Handlers validate everything first (``validation``), then touch the store, so a
refused request changes nothing. Errors are raised as ``ApiError`` and turned
into ``{"error", "detail"}`` JSON by the app's error middleware.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any
from urllib.parse import urlencode

import structlog
from aiohttp import web

from master.http import sse
from master.http.keys import CTX, ENCODED, FEEDS, HTTP_SESSION, SETTINGS, STREAMS
from master.http.openapi import document
from master.http.overview import NAME
from master.http.releases import resolve_release
from master.http.uploads import receive_upload, typed_form_fields
from master.http.validation import (
    DEFAULT_LIST_LIMIT,
    JOB_LIST_PARAMS,
    MAX_EVENT_SEQ,
    MAX_EVENTS_LIMIT,
    MAX_JOB_ID,
    MAX_LIST_LIMIT,
    OPTION_FIELDS,
    ApiError,
    JobOptions,
    check_fields,
    check_query,
    job_filter,
    job_id,
    job_options,
    query_int,
    read_json_object,
    release_submission,
)
from master.images import UnknownImage
from master.jobs import PRIORITY_API, Job, JobRequest, JobState, Source
from master.store.errors import InvalidTransition, JobNotFound, StoreError
from protocol.vocabulary import vocabulary

API = "/api/v1"
STATIC_DIR_NAME = "static"

log = structlog.get_logger("pyti.master.http")
routes = web.RouteTableDef()


def job_urls(job_id_: int) -> dict[str, str]:
    """Where to find a job (relative URLs: the client knows the master's address)."""
    return {
        "self": f"{API}/jobs/{job_id_}",
        "events": f"{API}/jobs/{job_id_}/events",
        "stream": f"{API}/jobs/{job_id_}/events/stream",
        "cancel": f"{API}/jobs/{job_id_}/cancel",
        "retry": f"{API}/jobs/{job_id_}/retry",
        "page": f"/jobs/{job_id_}",
    }


def job_json(job: Job) -> dict[str, Any]:
    """A job as the API shows it: ``Job.to_dict()`` plus its URLs."""
    data = job.to_dict()
    data["urls"] = job_urls(job.id)
    return data


async def _load_job(request: web.Request) -> Job:
    ident = job_id(request.match_info["job_id"])
    job = await request.app[CTX].store.jobs.get(ident)
    if job is None:
        raise ApiError(404, "not_found", f"no job {ident}")
    return job


# ---------------------------------------------------------------- jobs ----


async def _submit(
    request: web.Request,
    project: str,
    version: str,
    files: list[dict[str, Any]],
    source: Source,
    options: JobOptions,
    requires_python: str | None = None,
    claimed: tuple[str, ...] = (),
) -> web.Response:
    ctx = request.app[CTX]
    _check_callbacks(request, options)
    try:
        choice = ctx.images.choose(requires_python, options.image, claimed)
    except UnknownImage as exc:
        raise ApiError(422, "unknown_image", str(exc)) from None
    req = JobRequest(
        project=project,
        version=version,
        files=files,
        image=choice.image,
        untestable=choice.untestable,
        priority=PRIORITY_API if options.priority is None else options.priority,
        source=source,
        callback_url=options.callback_url,
        rerun=options.rerun,
    )
    result = await ctx.store.jobs.submit(req)
    job, created = result.job, result.created
    if not created and source == "upload" and _sha256s(job.files) != _sha256s(files):
        # Same name and version, different bytes (a CI rebuild): that is a new test.
        job, created = (await ctx.store.jobs.submit(replace(req, rerun=True))).job, True
    if created and job.state is JobState.QUEUED:
        ctx.scheduler.kick()
    elif created:
        ctx.bus.publish_end(job)  # untestable: stored finished (``master.images``)
    body = {"job": job_json(job), "created": created, "urls": job_urls(job.id)}
    return web.json_response(
        body, status=201 if created else 200, headers={"Location": job_urls(job.id)["self"]}
    )


def _check_callbacks(request: web.Request, options: JobOptions) -> None:
    if options.callback_url is not None and request.app[SETTINGS].callback_secret is None:
        raise ApiError(
            422,
            "callbacks_disabled",
            "this master has no callback secret ([http] callback_secret_file), so it "
            "cannot sign callbacks",
        )


def _sha256s(files: list[dict[str, Any]]) -> set[str]:
    return {str(f.get("sha256")) for f in files}


@routes.post(f"{API}/jobs")
async def submit_job(request: web.Request) -> web.Response:
    """Queue a PyPI release (JSON) or an uploaded sdist/wheel (multipart)."""
    check_query(request.query, frozenset())
    settings = request.app[SETTINGS]
    if request.content_type == "multipart/form-data":
        upload = await receive_upload(request, settings.uploads_dir, settings.upload_cap)
        typed = typed_form_fields(upload.fields)
        check_fields(typed, OPTION_FIELDS, frozenset())
        options = job_options(typed)
        dist = upload.file.dist
        return await _submit(
            request, dist.project, dist.version, [upload.file.file_entry()], "upload", options
        )
    submission = release_submission(await read_json_object(request))
    _check_callbacks(request, submission.options)
    release = await resolve_release(
        request.app[HTTP_SESSION],
        settings.pypi_url,
        submission.project,
        submission.version,
        timeout=settings.pypi_timeout,
    )
    files = [f.to_dict() for f in release.files]
    return await _submit(
        request,
        release.name,
        release.version,
        files,
        "api",
        submission.options,
        release.requires_python,
        release.python_minors,
    )


@routes.get(f"{API}/jobs")
async def list_jobs(request: web.Request) -> web.Response:
    """Jobs, newest first, filtered (``JobFilter``); ``next`` pages back with ``before``."""
    query = request.query
    check_query(query, JOB_LIST_PARAMS)
    where = job_filter(query)
    limit = query_int(query, "limit", DEFAULT_LIST_LIMIT, 1, MAX_LIST_LIMIT)
    assert limit is not None
    before = query_int(query, "before", None, 1, MAX_JOB_ID)
    jobs = await request.app[CTX].store.jobs.find(where, limit=limit, before_id=before)
    next_url = None
    if len(jobs) == limit:
        params = where.to_query() | {"limit": str(limit), "before": str(jobs[-1].id)}
        next_url = f"{API}/jobs?{urlencode(params)}"
    return web.json_response({"jobs": [job_json(j) for j in jobs], "next": next_url})


@routes.get(f"{API}/jobs/{{job_id}}")
async def get_job(request: web.Request) -> web.Response:
    """One job with its attempts, and (once finished) its comparison with the previous release.

    ``job.behaviour_diff`` and ``job.quality_trend`` are None until the result is stored.
    """
    check_query(request.query, frozenset())
    ident = job_id(request.match_info["job_id"])
    store = request.app[CTX].store
    detail = await store.jobs.detail(ident)
    if detail is None:
        raise ApiError(404, "not_found", f"no job {ident}")
    job, comparison = detail
    attempts = await store.jobs.attempts(job.id)
    data = job_json(job) | comparison
    return web.json_response({"job": data, "attempts": [a.to_dict() for a in attempts]})


@routes.post(f"{API}/jobs/{{job_id}}/cancel")
async def cancel_job(request: web.Request) -> web.Response:
    """Cancel a live job (409 when it is already final); its slave is told to stop."""
    check_query(request.query, frozenset())
    ident = job_id(request.match_info["job_id"])
    ctx = request.app[CTX]
    try:
        job = await ctx.scheduler.cancel_job(ident, "cancelled through the API")
    except JobNotFound:
        raise ApiError(404, "not_found", f"no job {ident}") from None
    except InvalidTransition as exc:
        raise ApiError(409, "conflict", f"job {ident} is {exc.current.value}") from None
    return web.json_response({"job": job_json(job)})


@routes.post(f"{API}/jobs/{{job_id}}/retry")
async def retry_job(request: web.Request) -> web.Response:
    """Queue a finished or cancelled job again (409 while it is live)."""
    check_query(request.query, frozenset())
    ident = job_id(request.match_info["job_id"])
    ctx = request.app[CTX]
    try:
        job = await ctx.store.jobs.retry(ident)
    except JobNotFound:
        raise ApiError(404, "not_found", f"no job {ident}") from None
    except InvalidTransition as exc:
        raise ApiError(409, "conflict", f"job {ident} is {exc.current.value}") from None
    ctx.scheduler.kick()
    return web.json_response({"job": job_json(job)})


@routes.get(f"{API}/jobs/{{job_id}}/events")
async def job_events(request: web.Request) -> web.Response:
    """A page of a job's stored events after ``after``; ``next_after`` continues."""
    check_query(request.query, frozenset({"after", "limit"}))
    after = query_int(request.query, "after", 0, 0, MAX_EVENT_SEQ)
    limit = query_int(request.query, "limit", MAX_EVENTS_LIMIT, 1, MAX_EVENTS_LIMIT)
    assert after is not None and limit is not None
    job = await _load_job(request)
    rows = await request.app[CTX].store.events.read(job.id, after=after, limit=limit)
    return web.json_response(
        {
            "events": [r.to_dict() for r in rows],
            "next_after": rows[-1].seq if rows else after,
            "more": len(rows) == limit,
            "state": job.state.value,
        }
    )


@routes.get(f"{API}/jobs/{{job_id}}/events/stream", allow_head=False)
async def job_stream(request: web.Request) -> web.StreamResponse:
    """Live tail (SSE or NDJSON): history after the resume point, new events, then ``end``."""
    check_query(request.query, frozenset({"after", "format"}))
    fmt = sse.negotiate(request)
    start = sse.start_seq(request)
    job = await _load_job(request)
    ctx = request.app[CTX]
    response = web.StreamResponse(headers=sse.stream_headers(fmt))
    streams = request.app[STREAMS]
    clients = ctx.metrics.gauge("tail_clients", "Open live-tail connections.")
    lagged = ctx.metrics.counter(
        "tail_lagged_total", "Times a live-tail client fell behind and re-read the store."
    )
    dropped = ctx.metrics.counter(
        "tail_dropped_total", "Live-tail clients dropped for not reading (write timeout)."
    )
    settings = request.app[SETTINGS]
    streams.add(request.task)
    clients.inc(1)
    try:
        await response.prepare(request)
        writer = sse.TailWriter(
            response, fmt, request.app[ENCODED], write_timeout=settings.tail_write_timeout
        )
        writer.last_seq = start
        await writer.start()
        await sse.follow(
            ctx.store,
            request.app[FEEDS],
            job.id,
            writer,
            queue=settings.tail_queue,
            on_lag=lagged.inc,
        )
        await response.write_eof()
    except ConnectionResetError:
        pass  # the client went away: nothing to clean up beyond the subscription
    except sse.Stalled as exc:
        # It stopped reading: drop it (the half-written stream cannot be resumed on
        # this connection); EventSource reconnects with Last-Event-ID when it can.
        dropped.inc()
        log.info("tail_client_dropped", job_id=job.id, seq=writer.last_seq, reason=str(exc))
        if request.transport is not None:
            request.transport.abort()
    except StoreError as exc:
        # Headers are sent: no error response is possible. End the stream; the client
        # reconnects with Last-Event-ID and resumes where it stopped.
        log.warning("tail_store_error", job_id=job.id, error=str(exc))
    finally:
        clients.inc(-1)
        streams.discard(request.task)
    return response


# -------------------------------------------------------- slaves, misc ----


@routes.get(f"{API}/slaves")
async def list_slaves(request: web.Request) -> web.Response:
    """The connected slaves."""
    check_query(request.query, frozenset())
    slaves = request.app[CTX].slaves.list()
    return web.json_response({"slaves": [s.to_dict() for s in slaves]})


@routes.get(f"{API}/openapi.json")
async def openapi(request: web.Request) -> web.Response:
    """The OpenAPI 3 document of this API."""
    return web.json_response(document())


@routes.get(f"{API}/vocabulary")
async def vocabulary_(request: web.Request) -> web.Response:
    """pyti's words with their meanings (outcomes, verdicts, phases...): what the page shows."""
    return web.json_response(vocabulary())


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    """Liveness: the store answers."""
    ctx = request.app[CTX]
    started = time.monotonic()
    try:
        counts = await ctx.store.jobs.counts()
    except Exception as exc:  # any store failure is "unhealthy", with its reason
        return web.json_response(
            {"status": "unhealthy", "error": "store_unavailable", "detail": type(exc).__name__},
            status=503,
        )
    return web.json_response(
        {
            "status": "ok",
            "queued": counts["state"].get("queued", 0),
            "slaves": len(ctx.slaves.list()),
            "store_ms": round((time.monotonic() - started) * 1000, 2),
        }
    )


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    """Prometheus text exposition."""
    text = await request.app[CTX].metrics.render()
    return web.Response(
        text=text,
        content_type="text/plain",
        charset="utf-8",
        headers={"X-Content-Type-Options": "nosniff"},
    )


# ------------------------------------------------------------- the page ----


async def page(request: web.Request) -> web.FileResponse:
    """The single-page web UI (one shell for every page; the script picks the view)."""
    return web.FileResponse(request.app[SETTINGS].static_dir / "index.html")


def add_page_routes(app: web.Application) -> None:
    """``/``, ``/jobs`` (the list), ``/jobs/{id}`` (digits only), ``/projects/{name}``,
    ``/static/``."""
    app.router.add_get("/", page)
    app.router.add_get("/jobs", page)
    app.router.add_get(r"/jobs/{job_id:\d{1,19}}", page)
    app.router.add_get(f"/projects/{NAME}", page)
    app.router.add_static(
        "/static/",
        app[SETTINGS].static_dir,
        show_index=False,
        follow_symlinks=False,
        append_version=False,
    )
