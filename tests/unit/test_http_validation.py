"""Request validation: JSON objects, fields, ids and query parameters."""

from __future__ import annotations

import pytest
from multidict import MultiDict

from master.http.validation import (
    ApiError,
    callback_url,
    job_id,
    parse_json_object,
    query_int,
    release_submission,
)


def _code(exc: pytest.ExceptionInfo[ApiError]) -> tuple[int, str]:
    return exc.value.status, exc.value.code


@pytest.mark.parametrize(
    "data", [b"", b"[]", b"1", b'"x"', b"{", b'{"a": Infinity}', b"\xff", b"[" * 5000 + b"]" * 5000]
)
def test_json_objects_only(data: bytes) -> None:
    """Only a JSON object is a body; everything else is invalid_json."""
    with pytest.raises(ApiError) as info:
        parse_json_object(data)
    assert _code(info) == (400, "invalid_json")


def test_release_submission() -> None:
    """A valid body is typed; defaults are None/False."""
    sub = release_submission({"project": "Demo.Pkg", "version": "1.0.post1", "priority": -3})
    assert (sub.project, sub.version, sub.options.priority) == ("Demo.Pkg", "1.0.post1", -3)
    assert sub.options.rerun is False and sub.options.callback_url is None
    assert release_submission({"project": "x", "version": None}).version is None


@pytest.mark.parametrize(
    "url",
    [
        "ftp://h/",
        "http://",
        "//h/x",
        "http://u@h/",
        "http://h:0/",
        "http://h:99999/",
        "http://h/ x",
        "javascript:alert(1)",
        5,
        "http://h/" + "a" * 3000,
    ],
)
def test_bad_callback_urls(url: object) -> None:
    """Callback URLs are absolute http(s) without credentials, bounded, without spaces."""
    with pytest.raises(ApiError):
        callback_url(url)


def test_good_callback_urls() -> None:
    """Ordinary http(s) URLs pass unchanged."""
    for url in ("http://127.0.0.1:8080/hook", "https://ci.example/x?y=1"):
        assert callback_url(url) == url
    assert callback_url(None) is None


@pytest.mark.parametrize("text", ["0", "-1", "abc", "1.0", "١", "9" * 20, "9223372036854775808"])
def test_bad_job_ids(text: str) -> None:
    """Malformed or out-of-range ids are a 404 (no such resource), never a 500."""
    with pytest.raises(ApiError) as info:
        job_id(text)
    assert info.value.status == 404


def test_query_int() -> None:
    """Integer query parameters: default when absent, range-checked, ASCII digits only."""
    query = MultiDict({"a": "5", "b": "x", "c": "500"})
    assert query_int(query, "a", 1, 1, 10) == 5
    assert query_int(query, "missing", 7, 1, 10) == 7
    for name in ("b", "c"):
        with pytest.raises(ApiError):
            query_int(query, name, 1, 1, 10)
