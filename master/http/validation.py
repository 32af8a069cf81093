"""Request validation: every client-supplied value is checked here before it reaches the store.

Everything raises ``ApiError`` (a JSON 4xx) and never touches the store, so a bad
request changes nothing. Bodies are read with a hard cap *while reading* (a
``Content-Length`` that lies cannot make us buffer more), JSON is parsed without
``NaN``/``Infinity`` and with a depth guard, and unknown fields are refused rather
than ignored so a typo (``"priorty"``) does not silently do the wrong thing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NoReturn
from urllib.parse import urlsplit

from aiohttp import web
from multidict import MultiMapping

from master.jobs import SOURCES, JobState
from master.store.filters import JobFilter
from protocol.vocabulary import Outcome, Verdict, values

#: JSON bodies are small (a project name and a few options); 64 KiB is generous.
MAX_JSON_BODY = 64 * 1024
#: Job ids are SQLite integer primary keys.
MAX_JOB_ID = 2**63 - 1
MAX_EVENT_SEQ = 2**63 - 1
MAX_LIST_LIMIT = 200
DEFAULT_LIST_LIMIT = 50
MAX_EVENTS_LIMIT = 1000
PRIORITY_RANGE = (-1000, 1000)
MAX_URL_LENGTH = 2048

OUTCOMES: tuple[str, ...] = values(Outcome)
VERDICTS: tuple[str, ...] = values(Verdict)
STATES: tuple[str, ...] = tuple(s.value for s in JobState)

# All three are used with ``fullmatch`` (``$`` would accept a trailing newline) and
# re.ASCII: with IGNORECASE alone, "K" (U+212A KELVIN SIGN) matches "k" and "ſ"
# (U+017F) matches "s", so a name could pass that PyPI and our URLs never see.
# PEP 508 project names (case-insensitive), bounded.
_PROJECT_RE = re.compile(r"[A-Z0-9]|[A-Z0-9][A-Z0-9._-]{0,198}[A-Z0-9]", re.IGNORECASE | re.ASCII)
# Versions as they appear in PyPI URLs: PEP 440 plus legacy forms, no path characters.
_VERSION_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9.+!_-]{0,63}", re.ASCII)
_IMAGE_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}", re.ASCII)
# A slave's name as a filter (names are chosen by operators: host names, mostly).
_SLAVE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}", re.ASCII)
# Search text: what project names and versions are made of.
_SEARCH_RE = re.compile(r"[A-Za-z0-9._+!-]{1,100}", re.ASCII)
#: Timestamps a time range accepts: 1970 to 2200, in Unix seconds.
TIME_RANGE = (0.0, 7_258_118_400.0)
#: The query parameters of a job list (``JobFilter``'s fields, plus paging).
JOB_LIST_PARAMS = frozenset(
    {"project", "state", "outcome", "verdict", "source", "slave", "since", "until", "q"}
    | {"limit", "before"}
)


class ApiError(Exception):
    """A request the API refuses: becomes ``{"error": code, "detail": detail}`` with ``status``."""

    def __init__(
        self, status: int, code: str, detail: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(f"{status} {code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = dict(headers or {})


def bad_request(code: str, detail: str) -> NoReturn:
    """Raise a 400 ``ApiError``."""
    raise ApiError(400, code, detail)


def _reject_constant(name: str) -> NoReturn:
    bad_request("invalid_json", f"{name} is not valid JSON")


async def read_capped(request: web.Request, cap: int) -> bytes:
    """The request body, refusing (413) anything over ``cap`` bytes without buffering it."""
    if request.content_length is not None and request.content_length > cap:
        raise ApiError(413, "body_too_large", f"the body is over {cap} bytes")
    chunks: list[bytes] = []
    size = 0
    # A chunked body has no length up front: count while reading.
    while True:
        chunk = await request.content.read(min(65536, cap + 1 - size))
        if not chunk:
            break
        size += len(chunk)
        if size > cap:
            raise ApiError(413, "body_too_large", f"the body is over {cap} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json_object(data: bytes) -> dict[str, Any]:
    """``data`` as a JSON object; 400 on anything else (arrays, NaN, bad UTF-8, deep nesting)."""
    try:
        text = data.decode("utf-8")
        value = json.loads(text, parse_constant=_reject_constant)
    except UnicodeDecodeError:
        bad_request("invalid_json", "the body is not UTF-8")
    except RecursionError:
        bad_request("invalid_json", "the body is nested too deeply")
    except json.JSONDecodeError as exc:
        bad_request("invalid_json", f"the body is not JSON: {exc.msg} at line {exc.lineno}")
    if not isinstance(value, dict):
        bad_request("invalid_json", "the body must be a JSON object")
    return value


async def read_json_object(request: web.Request, cap: int = MAX_JSON_BODY) -> dict[str, Any]:
    """Read and parse a JSON object body (415 unless the content type is JSON)."""
    if request.content_type != "application/json":
        raise ApiError(
            415, "unsupported_media_type", "send application/json (or multipart/form-data)"
        )
    return parse_json_object(await read_capped(request, cap))


def check_fields(obj: Mapping[str, Any], allowed: frozenset[str], required: frozenset[str]) -> None:
    """400 on a field not in ``allowed`` or a missing ``required`` one."""
    unknown = sorted(set(obj) - allowed)
    if unknown:
        bad_request("unknown_field", f"unknown field(s): {', '.join(unknown)}")
    missing = sorted(required - set(obj))
    if missing:
        bad_request("missing_field", f"missing field(s): {', '.join(missing)}")


def _type_error(name: str, expected: str) -> NoReturn:
    bad_request("invalid_field", f"{name} must be {expected}")


def project_name(value: object, name: str = "project") -> str:
    """A PEP 508 project name."""
    if not isinstance(value, str) or not _PROJECT_RE.fullmatch(value):
        _type_error(name, "a project name (letters, digits, '.', '_', '-'; at most 200)")
    return value


def version_string(value: object, name: str = "version") -> str:
    """A release version as used in PyPI URLs (no '/', no spaces)."""
    if not isinstance(value, str) or not _VERSION_RE.fullmatch(value):
        _type_error(name, "a version string (letters, digits, '.+!_-'; at most 64)")
    return value


def image_name(value: object, name: str = "image") -> str:
    """A guest image name as the slaves advertise it."""
    if not isinstance(value, str) or not _IMAGE_RE.fullmatch(value):
        _type_error(name, "an image name (lower-case letters, digits, '._-')")
    return value


def priority_value(value: object, name: str = "priority") -> int:
    """An integer priority (bool is not an integer here)."""
    low, high = PRIORITY_RANGE
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        _type_error(name, f"an integer from {low} to {high}")
    return value


def bool_value(value: object, name: str) -> bool:
    """A JSON boolean."""
    if not isinstance(value, bool):
        _type_error(name, "true or false")
    return value


def callback_url(value: object, name: str = "callback_url") -> str | None:
    """An absolute http(s) URL without credentials, or None."""
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_URL_LENGTH:
        _type_error(name, f"an http(s) URL of at most {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(value)
        port = parts.port  # raises on a non-numeric port
    except ValueError:
        _type_error(name, "a valid http(s) URL")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        _type_error(name, "an absolute http:// or https:// URL")
    if parts.username is not None or parts.password is not None:
        _type_error(name, "a URL without user:password (the request is signed instead)")
    if port == 0 or any(ord(c) < 0x21 for c in value):
        _type_error(name, "a valid http(s) URL")
    return value


def job_id(text: str) -> int:
    """A job id from a URL path segment; 404 rather than 400, as for any unknown resource."""
    if not text.isascii() or not text.isdigit() or len(text) > 19:
        raise ApiError(404, "not_found", f"no job {text[:40]!r}: job ids are positive integers")
    value = int(text)
    if not 1 <= value <= MAX_JOB_ID:
        raise ApiError(404, "not_found", f"no job {value}")
    return value


def query_int(
    query: Mapping[str, str], name: str, default: int | None, low: int, high: int
) -> int | None:
    """An optional integer query parameter within ``[low, high]``."""
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isascii() or not raw.lstrip("-").isdigit() or len(raw) > 20:
        bad_request("invalid_query", f"{name} must be an integer")
    value = int(raw)
    if not low <= value <= high:
        bad_request("invalid_query", f"{name} must be from {low} to {high}")
    return value


def query_choice(query: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str | None:
    """An optional query parameter from a fixed set."""
    raw = query.get(name)
    if raw is None or raw == "":
        return None
    if raw not in choices:
        bad_request("invalid_query", f"{name} must be one of: {', '.join(choices)}")
    return raw


def query_project(query: Mapping[str, str], name: str = "project") -> str | None:
    """An optional project-name query parameter."""
    raw = query.get(name)
    if raw is None or raw == "":
        return None
    if not _PROJECT_RE.fullmatch(raw):
        bad_request("invalid_query", f"{name} must be a project name")
    return raw


def _query_text(
    query: Mapping[str, str], name: str, pattern: re.Pattern[str], what: str
) -> str | None:
    raw = query.get(name)
    if raw is None or raw == "":
        return None
    if not pattern.fullmatch(raw):
        bad_request("invalid_query", f"{name} must be {what}")
    return raw


def query_time(query: Mapping[str, str], name: str) -> float | None:
    """An optional time: Unix seconds, or ISO 8601 (``2026-12-01``, ``...T10:00:00Z``; UTC
    when no offset is given)."""
    raw = query.get(name)
    if raw is None or raw == "":
        return None
    value: float | None = None
    if len(raw) <= 40 and raw.isascii():
        try:
            value = float(raw)
        except ValueError:
            try:
                stamp = datetime.fromisoformat(raw)
            except ValueError:
                value = None
            else:
                if stamp.tzinfo is None:
                    stamp = stamp.replace(tzinfo=UTC)
                value = stamp.timestamp()
    low, high = TIME_RANGE
    if value is None or not low <= value <= high:
        bad_request("invalid_query", f"{name} must be Unix seconds or an ISO 8601 date and time")
    return value


def job_filter(query: Mapping[str, str]) -> JobFilter:
    """The filter of a job list from its query (``master.store.filters``); 400 on a bad value."""
    where = JobFilter(
        project=query_project(query),
        state=query_choice(query, "state", STATES),
        outcome=query_choice(query, "outcome", OUTCOMES),
        verdict=query_choice(query, "verdict", VERDICTS),
        source=query_choice(query, "source", SOURCES),
        slave=_query_text(query, "slave", _SLAVE_RE, "a slave name"),
        since=query_time(query, "since"),
        until=query_time(query, "until"),
        q=_query_text(query, "q", _SEARCH_RE, "letters, digits and '._+!-' (at most 100)"),
    )
    if where.since is not None and where.until is not None and where.since >= where.until:
        bad_request("invalid_query", "since must be before until")
    return where


def check_query(query: MultiMapping[str], allowed: frozenset[str]) -> None:
    """400 on an unknown or repeated query parameter."""
    unknown = sorted(set(query) - allowed)
    if unknown:
        bad_request("invalid_query", f"unknown query parameter(s): {', '.join(unknown)}")
    for key in set(query):
        if len(query.getall(key)) > 1:
            bad_request("invalid_query", f"{key} given more than once")


@dataclass(frozen=True, slots=True)
class JobOptions:
    """What a submission asks for besides the release itself."""

    priority: int | None = None
    callback_url: str | None = None
    image: str | None = None
    rerun: bool = False


@dataclass(frozen=True, slots=True)
class ReleaseSubmission:
    """A validated ``POST /jobs`` JSON body: test this PyPI release."""

    project: str
    version: str | None
    options: JobOptions


SUBMIT_FIELDS = frozenset({"project", "version", "priority", "callback_url", "image", "rerun"})
OPTION_FIELDS = frozenset({"priority", "callback_url", "image", "rerun"})


def job_options(obj: Mapping[str, Any]) -> JobOptions:
    """The option fields of a submission (JSON or multipart form, already typed)."""
    return JobOptions(
        priority=None if obj.get("priority") is None else priority_value(obj["priority"]),
        callback_url=callback_url(obj.get("callback_url")),
        image=None if obj.get("image") is None else image_name(obj["image"]),
        rerun=bool_value(obj.get("rerun", False), "rerun"),
    )


def release_submission(obj: Mapping[str, Any]) -> ReleaseSubmission:
    """Validate a ``POST /jobs`` JSON body."""
    check_fields(obj, SUBMIT_FIELDS, frozenset({"project"}))
    version = obj.get("version")
    return ReleaseSubmission(
        project=project_name(obj["project"]),
        version=None if version is None else version_string(version),
        options=job_options(obj),
    )
