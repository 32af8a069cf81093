"""The OpenAPI 3.1 document of the HTTP API, served at ``/api/v1/openapi.json``.

Hand-written (the API is small) and kept honest by a test that walks
``app.router`` and checks every route is documented here and every documented
operation is routed.
"""

from __future__ import annotations

import copy
from typing import Any

from master.http.validation import (
    DEFAULT_LIST_LIMIT,
    MAX_EVENTS_LIMIT,
    MAX_LIST_LIMIT,
    OUTCOMES,
    PRIORITY_RANGE,
    STATES,
    VERDICTS,
)
from master.jobs import SOURCES
from protocol.vocabulary import OUTCOME_TEXT, BehaviourClass, values

JSON = "application/json"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def _errors(*statuses: int) -> dict[str, Any]:
    text = {
        400: "invalid request (bad JSON, wrong type, unknown field, bad query)",
        401: "missing or invalid token",
        403: "no API tokens configured on this master",
        404: "no such job / release",
        409: "the job is not in a state that allows this",
        413: "body or upload too large",
        415: "unsupported content type",
        422: "the release has nothing to test, an unknown image, or callbacks are disabled",
        502: "the package index failed",
        504: "the package index timed out",
    }
    return {str(s): _json(_ref("Error"), text[s]) for s in statuses}


_JOB_ID = {
    "name": "job_id",
    "in": "path",
    "required": True,
    "schema": {"type": "integer", "minimum": 1},
}
_NAME = {
    "name": "name",
    "in": "path",
    "required": True,
    "description": "a project name in any spelling (PEP 503)",
    "schema": {"type": "string"},
}
_BEARER: list[dict[str, list[str]]] = [{"bearer": []}]

_SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error", "detail"],
        "properties": {"error": {"type": "string"}, "detail": {"type": "string"}},
    },
    "File": {
        "type": "object",
        "properties": {
            "filename": {"type": "string"},
            "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
            "size": {"type": "integer"},
            "packagetype": {"type": "string", "enum": ["sdist", "bdist_wheel"]},
            "url": {"type": ["string", "null"]},
        },
    },
    "Job": {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "project": {"type": "string"},
            "version": {"type": "string"},
            "image": {"type": "string"},
            "state": {"type": "string", "enum": list(STATES)},
            "outcome": {
                "type": ["string", "null"],
                "enum": [*OUTCOMES, None],
                "description": "how the job ended (null while it runs): "
                + "; ".join(f"{o}: {text}" for o, text in OUTCOME_TEXT.items()),
            },
            "verdict": {
                "type": ["string", "null"],
                "enum": [*VERDICTS, None],
                "description": "the behaviour verdict of its findings (null when there is no "
                "result, e.g. cancelled or an infrastructure error before the run); shown "
                "beside the outcome (`failed · suspicious`); malicious makes the outcome harmful",
            },
            "priority": {"type": "integer"},
            "attempt": {"type": "integer"},
            "lease": {"type": "integer"},
            "slave": {"type": ["string", "null"]},
            "source": {"type": "string", "enum": ["api", "feed", "upload"]},
            "callback_url": {"type": ["string", "null"]},
            "files": {"type": "array", "items": _ref("File")},
            "phases": {"type": "object", "description": "phase name → status and details"},
            "summary": {
                "type": "object",
                "description": "the result: verdict, findings, profile, tests counts, quality, "
                "and `reason`, a one-line why for every outcome but passed (for passed, what "
                "was not run, if anything)",
            },
            "findings": {"type": "array", "items": {"type": "object"}},
            "isolation": {"type": ["string", "null"]},
            "error": {"type": ["string", "null"]},
            "created_at": {"type": "number"},
            "assigned_at": {"type": ["number", "null"]},
            "started_at": {"type": ["number", "null"]},
            "finished_at": {"type": ["number", "null"]},
            "quarantined": {"type": "boolean"},
            "urls": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    },
    "JobDetail": {
        "description": "a job as GET /jobs/{id} shows it: with its comparison with the previous "
        "tested release of the same project (PEP 503 name) and image — the highest lower PEP 440 "
        "version (latest run of it), never the same version nor an infra_error; null until the "
        "job has finished",
        "allOf": [_ref("Job")],
        "properties": {
            "behaviour_diff": {"oneOf": [_ref("BehaviourDiff"), {"type": "null"}]},
            "quality_trend": {"oneOf": [_ref("QualityTrend"), {"type": "null"}]},
        },
    },
    "PreviousRelease": {
        "type": ["object", "null"],
        "description": "the release compared with; null for the first tested release",
        "properties": {
            "job_id": {"type": "integer"},
            "version": {"type": "string"},
            "score": {"type": ["integer", "null"], "description": "quality_trend only"},
        },
    },
    "BehaviourChange": {
        "type": "object",
        "properties": {
            "change": {"enum": ["started", "stopped", "new targets", "gone targets"]},
            "phase": {"type": "string"},
            "kind": {
                "type": "string",
                "enum": list(values(BehaviourClass)),
                "description": "behaviour class",
            },
            "targets": {"type": "array", "items": {"type": "string"}},
            "text": {
                "type": "string",
                "description": "e.g. '1.4.2 started opening sockets at install time (AF_INET); "
                "1.4.1 did not'",
            },
        },
    },
    "BehaviourDiff": {
        "type": "object",
        "properties": {
            "previous": _ref("PreviousRelease"),
            "new": {"type": "array", "items": _ref("BehaviourChange")},
            "gone": {"type": "array", "items": _ref("BehaviourChange")},
        },
    },
    "QualityTrend": {
        "type": "object",
        "description": "score: pass 1, warn 0.5, fail 0 per indicator; mean per group; "
        "round(100 * sum(w[g] * group) / sum(w[g] of groups present)), weights metadata 25, "
        "distribution 20, tests 25, code 15, install 15",
        "properties": {
            "previous": _ref("PreviousRelease"),
            "score": {"type": ["integer", "null"]},
            "score_change": {"type": ["integer", "null"]},
            "changes": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "indicator": {"type": "string"},
                        "change": {"enum": ["regressed", "improved", "new", "gone"]},
                        "before": {"type": ["string", "null"]},
                        "after": {"type": ["string", "null"]},
                        "text": {"type": "string"},
                    },
                },
            },
        },
    },
    "Attempt": {"type": "object", "description": "one claim of the job (lease) and its end"},
    "Event": {
        "type": "object",
        "properties": {
            "job_id": {"type": "integer"},
            "seq": {"type": "integer"},
            "ts": {"type": "number"},
            "level": {"type": "string"},
            "event": {"type": "string"},
            "phase": {"type": ["string", "null"]},
            "fields": {"type": "object"},
        },
    },
    "Release": {
        "type": "object",
        "description": "one finished job of the project",
        "properties": {
            "job_id": {"type": "integer"},
            "project": {"type": "string", "description": "the spelling this job used"},
            "version": {"type": "string"},
            "image": {"type": "string"},
            "source": {"type": "string"},
            "outcome": {"type": "string"},
            "verdict": {"type": ["string", "null"]},
            "reason": {"type": ["string", "null"]},
            "created_at": {"type": "number"},
            "finished_at": {"type": ["number", "null"]},
            "duration_s": {"type": ["number", "null"], "description": "started to finished"},
            "phases": {"type": "object", "description": "phase → {status, duration_s}"},
            "tests": {
                "type": ["object", "null"],
                "description": "collected, passed, failed, errors, skipped (those reported)",
            },
            "score": {"type": ["integer", "null"], "description": "quality score 0-100"},
            "findings": {"type": "integer"},
            "rules": {"type": "object", "description": "rule → {count, severity}"},
            "previous": {"type": ["object", "null"], "description": "{job_id, version}"},
            "behaviour_changes": {"type": ["integer", "null"]},
            "score_change": {"type": ["integer", "null"]},
        },
    },
    "ProjectHistory": {
        "type": "object",
        "properties": {
            "project": {"type": "string", "description": "the PEP 503 name"},
            "name": {"type": "string", "description": "as the newest release spells it"},
            "releases": {"type": "array", "items": _ref("Release")},
            "worst": {
                "type": ["integer", "null"],
                "description": "job id of the worst release: harmful, crashed, failed, "
                "timed_out, infra_error, incomplete, passed; then the lowest score",
            },
            "truncated": {"type": "boolean", "description": "only the newest 500 jobs read"},
            "urls": {"type": "object"},
        },
    },
    "Fleet": {
        "type": "object",
        "properties": {
            "now": {"type": "number"},
            "queue": {
                "type": "object",
                "description": "depth, oldest_created_at, oldest_age_s (null when empty)",
            },
            "hours": {
                "type": "array",
                "description": "oldest first, aligned to the hour; the last is the current "
                "hour: start, finished, outcomes, attempts, infra_failures, infra_error_rate "
                "(null without attempts), queue_depth",
                "items": {"type": "object"},
            },
            "totals": {
                "type": "object",
                "description": "over the window: finished, outcomes, jobs_per_hour, attempts, "
                "infra_failures, infra_error_rate",
            },
            "slaves": {
                "type": "array",
                "description": "name, slots, busy, load (busy/slots), accel, draining, "
                "last_heartbeat",
                "items": {"type": "object"},
            },
            "capacity": {"type": "object", "description": "slots, busy, load of all slaves"},
        },
    },
    "Slave": {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "address": {"type": "string"},
            "slots": {"type": "integer"},
            "busy": {"type": "integer"},
            "free": {"type": "integer"},
            "accel": {"type": "string"},
            "images": {"type": "array", "items": {"type": "string"}},
            "connected_at": {"type": "number"},
            "last_heartbeat": {"type": ["number", "null"]},
            "draining": {"type": "boolean"},
            "jobs": {"type": "array", "items": {"type": "integer"}},
        },
    },
    "JobOptions": {
        "type": "object",
        "properties": {
            "priority": {
                "type": "integer",
                "minimum": PRIORITY_RANGE[0],
                "maximum": PRIORITY_RANGE[1],
            },
            "callback_url": {
                "type": ["string", "null"],
                "description": "POSTed the job summary when it finishes, signed with "
                "X-Pyti-Signature: sha256=<HMAC-SHA256 hex of the body>. Redirects are not "
                "followed; a host that resolves (at delivery) to a loopback, private, "
                "link-local, multicast or reserved address is refused unless the master's "
                "[http] callback_allow lists it",
            },
            "image": {
                "type": "string",
                "description": "guest image; default: the one whose Python the release's "
                "Requires-Python allows (the master's default_image first). A release no "
                "image can run is stored finished with outcome 'incomplete' and "
                "summary.reason",
            },
            "rerun": {"type": "boolean", "description": "queue again even if already tested"},
        },
    },
    "SubmitRelease": {
        "type": "object",
        "additionalProperties": False,
        "required": ["project"],
        "allOf": [_ref("JobOptions")],
        "properties": {
            "project": {"type": "string"},
            "version": {"type": "string", "description": "default: the newest release"},
        },
    },
    "SubmitUpload": {
        "type": "object",
        "required": ["file"],
        "allOf": [_ref("JobOptions")],
        "properties": {
            "file": {
                "type": "string",
                "format": "binary",
                "description": "an sdist (.tar.gz, .zip) or wheel (.whl), size-capped",
            }
        },
    },
    "Submitted": {
        "type": "object",
        "properties": {
            "job": _ref("Job"),
            "created": {"type": "boolean"},
            "urls": {"type": "object"},
        },
    },
}

_SSE_DESCRIPTION = (
    "Server-sent events: `event: log` (id = seq, data = Event) for the history after "
    "`Last-Event-ID` / `after`, then live events, then `event: end` (data = Job). "
    "When the master shuts down first, the stream ends with `event: closing` (no id; "
    'data `{"reason": ...}`): reconnect with `Last-Event-ID` once it is back. '
    "With `Accept: application/x-ndjson` or `format=ndjson`: one JSON object a line, "
    '`{"type": "event", ...Event}` then `{"type": "end", "job": Job}` (or '
    '`{"type": "closing", "reason": ...}`); blank lines are keep-alives.'
)

_PATHS: dict[str, Any] = {
    "/api/v1/jobs": {
        "post": {
            "summary": "Queue a test of a PyPI release (JSON) or of an uploaded sdist/wheel",
            "security": _BEARER,
            "requestBody": {
                "required": True,
                "content": {
                    JSON: {"schema": _ref("SubmitRelease")},
                    "multipart/form-data": {"schema": _ref("SubmitUpload")},
                },
            },
            "responses": {
                "201": _json(_ref("Submitted"), "queued"),
                "200": _json(_ref("Submitted"), "already tested or queued (deduplicated)"),
                **_errors(400, 401, 403, 404, 413, 415, 422, 502, 504),
            },
        },
        "get": {
            "summary": "List jobs, newest first, filtered; keyset paging (`before`, `next`)",
            "description": "Filters combine (AND). Paging is keyset: `next` (null on the last "
            "page) is this query with `before` = the last job's id, so a page never repeats "
            "or skips a job when new ones arrive. `pyti jobs` has one flag per parameter and "
            "the page /jobs the same query string.",
            "parameters": [
                {
                    "name": "project",
                    "in": "query",
                    "description": "any spelling of the name (PEP 503: Foo_Bar = foo-bar)",
                    "schema": {"type": "string"},
                },
                {"name": "state", "in": "query", "schema": {"enum": list(STATES)}},
                {"name": "outcome", "in": "query", "schema": {"enum": list(OUTCOMES)}},
                {"name": "verdict", "in": "query", "schema": {"enum": list(VERDICTS)}},
                {
                    "name": "source",
                    "in": "query",
                    "description": "how the job came: the PyPI feed, the API, an upload",
                    "schema": {"enum": list(SOURCES)},
                },
                {
                    "name": "slave",
                    "in": "query",
                    "description": "the slave that ran (or runs) the job's latest attempt",
                    "schema": {"type": "string"},
                },
                *(
                    {
                        "name": name,
                        "in": "query",
                        "description": f"submitted {when}: Unix seconds or ISO 8601 "
                        "(`2026-12-01`, `2026-12-01T10:00:00Z`; UTC without an offset)",
                        "schema": {"type": "string"},
                    }
                    for name, when in (("since", "at or after"), ("until", "before"))
                ),
                {
                    "name": "q",
                    "in": "query",
                    "description": "search: text in the project's PEP 503 name (any "
                    "spelling) or in the version; letters, digits, `._+!-`",
                    "schema": {"type": "string", "maxLength": 100},
                },
                {
                    "name": "limit",
                    "in": "query",
                    "schema": {
                        "type": "integer",
                        "minimum": 1,
                        "maximum": MAX_LIST_LIMIT,
                        "default": DEFAULT_LIST_LIMIT,
                    },
                },
                {"name": "before", "in": "query", "schema": {"type": "integer", "minimum": 1}},
            ],
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "properties": {
                            "jobs": {"type": "array", "items": _ref("Job")},
                            "next": {"type": ["string", "null"]},
                        },
                    },
                    "a page of jobs; `next` is the URL of the following page",
                ),
                **_errors(400, 401),
            },
        },
    },
    "/api/v1/jobs/{job_id}": {
        "get": {
            "summary": "One job: state, attempts, phases, outcome, findings, timings, and the "
            "behaviour diff and quality trend against the previous release",
            "parameters": [_JOB_ID],
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "properties": {
                            "job": _ref("JobDetail"),
                            "attempts": {"type": "array", "items": _ref("Attempt")},
                        },
                    },
                    "the job",
                ),
                **_errors(401, 404),
            },
        }
    },
    "/api/v1/jobs/{job_id}/cancel": {
        "post": {
            "summary": "Cancel a live job",
            "security": _BEARER,
            "parameters": [_JOB_ID],
            "responses": {
                "200": _json({"type": "object", "properties": {"job": _ref("Job")}}, "cancelled"),
                **_errors(401, 403, 404, 409),
            },
        }
    },
    "/api/v1/jobs/{job_id}/retry": {
        "post": {
            "summary": "Queue a finished or cancelled job again",
            "security": _BEARER,
            "parameters": [_JOB_ID],
            "responses": {
                "200": _json({"type": "object", "properties": {"job": _ref("Job")}}, "queued"),
                **_errors(401, 403, 404, 409),
            },
        }
    },
    "/api/v1/jobs/{job_id}/events": {
        "get": {
            "summary": "A page of the job's stored events",
            "parameters": [
                _JOB_ID,
                {"name": "after", "in": "query", "schema": {"type": "integer", "minimum": 0}},
                {
                    "name": "limit",
                    "in": "query",
                    "schema": {"type": "integer", "minimum": 1, "maximum": MAX_EVENTS_LIMIT},
                },
            ],
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "properties": {
                            "events": {"type": "array", "items": _ref("Event")},
                            "next_after": {"type": "integer"},
                            "more": {"type": "boolean"},
                            "state": {"type": "string"},
                        },
                    },
                    "events with seq > after, in order",
                ),
                **_errors(400, 401, 404),
            },
        }
    },
    "/api/v1/jobs/{job_id}/events/stream": {
        "get": {
            "summary": "Live tail: history, then new events as they are stored, then the end",
            "parameters": [
                _JOB_ID,
                {"name": "after", "in": "query", "schema": {"type": "integer", "minimum": 0}},
                {"name": "format", "in": "query", "schema": {"enum": ["sse", "ndjson"]}},
                {"name": "Last-Event-ID", "in": "header", "schema": {"type": "integer"}},
            ],
            "responses": {
                "200": {
                    "description": _SSE_DESCRIPTION,
                    "content": {
                        "text/event-stream": {"schema": {"type": "string"}},
                        "application/x-ndjson": {"schema": {"type": "string"}},
                    },
                },
                **_errors(400, 401, 404),
            },
        }
    },
    "/api/v1/projects/{name}": {
        "get": {
            "summary": "A project's tested releases, newest first (PEP 440), with outcome, "
            "verdict, test counts, quality score, durations, findings by rule and the "
            "comparison with the previous release; `worst` is the job id of the worst one",
            "parameters": [_NAME],
            "responses": {
                "200": _json(_ref("ProjectHistory"), "the history"),
                **_errors(400, 401, 404),
            },
        }
    },
    "/api/v1/fleet": {
        "get": {
            "summary": "The fleet over the last hours: per hour finished jobs and their "
            "outcomes, attempts and infrastructure failures (outcome infra_error or slave "
            "lost), queue depth at the hour's end (estimated from creation and latest claim "
            "times); the queue now; connected slaves and their load",
            "parameters": [
                {
                    "name": "hours",
                    "in": "query",
                    "schema": {"type": "integer", "minimum": 1, "maximum": 168, "default": 24},
                }
            ],
            "responses": {"200": _json(_ref("Fleet"), "the figures"), **_errors(400, 401)},
        }
    },
    "/badge/{name}.svg": {
        "get": {
            "summary": "An SVG badge (shields.io style) with the result of the project's "
            "newest tested release, or `not tested`; cached 5 minutes",
            "parameters": [_NAME],
            "responses": {
                "200": {"description": "SVG", "content": {"image/svg+xml": {}}},
                **_errors(400, 401),
            },
        }
    },
    "/jobs": {
        "get": {
            "summary": "Web page: the jobs list with the filters of GET /api/v1/jobs (the "
            "same query string)",
            "security": [],
            "responses": {"200": {"description": "HTML", "content": {"text/html": {}}}},
        }
    },
    "/projects/{name}": {
        "get": {
            "summary": "Web page of a project: its releases, plots across them, the worst",
            "security": [],
            "parameters": [_NAME],
            "responses": {"200": {"description": "HTML", "content": {"text/html": {}}}},
        }
    },
    "/api/v1/slaves": {
        "get": {
            "summary": "Connected slaves",
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "properties": {"slaves": {"type": "array", "items": _ref("Slave")}},
                    },
                    "the slaves",
                ),
                **_errors(401),
            },
        }
    },
    "/api/v1/vocabulary": {
        "get": {
            "summary": "pyti's words with their meanings: outcomes, verdicts, phases, phase "
            "statuses, behaviour classes (the web page reads it)",
            "responses": {"200": _json({"type": "object"}, "the vocabulary")},
        }
    },
    "/api/v1/openapi.json": {
        "get": {
            "summary": "This document",
            "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1")},
        }
    },
    "/healthz": {
        "get": {
            "summary": "Liveness: the store answers",
            "security": [],
            "responses": {
                "200": _json({"type": "object"}, "healthy"),
                "503": _json({"type": "object"}, "the store does not answer"),
            },
        }
    },
    "/metrics": {
        "get": {
            "summary": "Prometheus metrics",
            "responses": {
                "200": {
                    "description": "text exposition format 0.0.4",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                }
            },
        }
    },
    "/": {
        "get": {
            "summary": "Web page: queue, recent jobs, slaves",
            "security": [],
            "responses": {"200": {"description": "HTML", "content": {"text/html": {}}}},
        }
    },
    "/jobs/{job_id}": {
        "get": {
            "summary": "Web page of one job with its live log",
            "security": [],
            "parameters": [_JOB_ID],
            "responses": {"200": {"description": "HTML", "content": {"text/html": {}}}},
        }
    },
    "/static/{filename}": {
        "get": {
            "summary": "The web page's script and style sheet",
            "security": [],
            "parameters": [
                {"name": "filename", "in": "path", "required": True, "schema": {"type": "string"}}
            ],
            "responses": {"200": {"description": "a file"}, "404": {"description": "no file"}},
        }
    },
}

_DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "pyti master",
        "version": "1",
        "description": "Queue tests of PyPI releases or uploaded distributions, follow them "
        "live, read results. Mutating operations need `Authorization: Bearer <token>`; "
        "reads too when the master is configured so. Errors are "
        '`{"error": code, "detail": text}`.',
    },
    "components": {
        "schemas": _SCHEMAS,
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
    },
    "paths": _PATHS,
}


def document() -> dict[str, Any]:
    """A copy of the document (callers may mutate it)."""
    return copy.deepcopy(_DOCUMENT)
