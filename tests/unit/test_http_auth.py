"""Tokens: constant-time checks, the Bearer header, and which requests need one."""

from __future__ import annotations

from aiohttp.test_utils import make_mocked_request

from master.http.auth import TokenCheck, bearer_token, needs_token


def test_token_check() -> None:
    """Only configured tokens are valid; prefixes, supersets and empty strings are not."""
    check = TokenCheck(["alpha-token", "beta-token", ""])
    assert check.configured
    assert check.valid("alpha-token") and check.valid("beta-token")
    for wrong in ("alpha", "alpha-token ", "alpha-tokenX", "", "ALPHA-TOKEN"):
        assert not check.valid(wrong)
    assert not TokenCheck([]).configured
    assert not TokenCheck([]).valid("anything")
    assert "alpha" not in repr(check)


def test_bearer_header() -> None:
    """The token comes from ``Authorization: Bearer``, case-insensitive scheme; others are None."""

    def token(header: str | None) -> str | None:
        headers = {} if header is None else {"Authorization": header}
        return bearer_token(make_mocked_request("GET", "/", headers=headers))

    assert token("Bearer abc") == "abc"
    assert token("bearer  abc ") == "abc"
    assert token("Basic abc") is None
    assert token("Bearer ") is None
    assert token(None) is None


def test_which_requests_need_a_token() -> None:
    """Writes always; reads only when protected, and never the health check or the page shell."""

    def needs(method: str, path: str, protect: bool) -> bool:
        return needs_token(make_mocked_request(method, path), protect)

    assert needs("POST", "/api/v1/jobs", False)
    assert needs("DELETE", "/anything", False)
    assert not needs("GET", "/api/v1/jobs", False)
    assert needs("GET", "/api/v1/jobs", True)
    assert needs("GET", "/metrics", True)
    assert needs("GET", "/jobs/1/x", True)
    for open_path in ("/healthz", "/", "/jobs/12", "/static/app.js"):
        assert not needs("GET", open_path, True)
