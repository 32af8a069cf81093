"""API tokens: ``Authorization: Bearer <token>`` on every mutating request (and reads, by config).

Tokens come from ``--token-file`` (one a line), re-read on SIGHUP
(``TokenCheck.replace``). A presented token is compared with every configured
one in constant time: both sides are hashed to a fixed length first, so neither
the length nor the common prefix of a token leaks through timing, and the loop
does not stop at the first match.
With no tokens configured, mutating requests are refused outright: an
unconfigured master must not be writable by anyone who can reach the port.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable, Iterable

from aiohttp import web
from aiohttp.typedefs import Middleware

from master.http.validation import ApiError

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: Methods that never change anything.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: Paths anyone may read even when reads are protected: liveness probes and the page shell
#: (the page itself holds no data; it reads the API, which is protected).
OPEN_PATHS = frozenset({"/healthz"})
OPEN_PREFIXES = ("/static/",)
#: Tokens longer than this are not ours; refuse before hashing megabytes of header.
MAX_TOKEN_LENGTH = 512


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()


class TokenCheck:
    """The configured tokens, kept as digests."""

    def __init__(self, tokens: Iterable[str]) -> None:
        self._digests = [_digest(t) for t in tokens if t]

    def replace(self, tokens: Iterable[str]) -> None:
        """From now on accept exactly ``tokens`` (a reload); requests in flight are unaffected."""
        self._digests = [_digest(t) for t in tokens if t]

    def __repr__(self) -> str:
        return f"<TokenCheck {len(self._digests)} tokens>"

    @property
    def configured(self) -> bool:
        """True when at least one token is configured."""
        return bool(self._digests)

    def valid(self, presented: str) -> bool:
        """True when ``presented`` is one of the tokens; constant time in the presented value."""
        digest = _digest(presented)
        found = False
        for known in self._digests:
            found |= hmac.compare_digest(digest, known)
        return found


def bearer_token(request: web.Request) -> str | None:
    """The token of an ``Authorization: Bearer`` header, or None."""
    header = request.headers.get("Authorization")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    token = token.strip()
    return token or None


def require_token(request: web.Request, check: TokenCheck) -> None:
    """Raise a 401/403 ``ApiError`` unless the request carries a valid token."""
    challenge = {"WWW-Authenticate": 'Bearer realm="pyti"'}
    if not check.configured:
        raise ApiError(403, "forbidden", "this master has no API tokens configured (--token-file)")
    token = bearer_token(request)
    if token is None:
        raise ApiError(401, "unauthorized", "send Authorization: Bearer <token>", challenge)
    if len(token) > MAX_TOKEN_LENGTH or not check.valid(token):
        raise ApiError(401, "unauthorized", "the token is not valid", challenge)


def needs_token(request: web.Request, protect_reads: bool) -> bool:
    """Whether this request must carry a token under the configured policy."""
    if request.method not in SAFE_METHODS:
        return True
    if not protect_reads:
        return False
    path = request.path
    return not (path in OPEN_PATHS or path.startswith(OPEN_PREFIXES) or _is_page(path))


def _is_page(path: str) -> bool:
    # The HTML shell of the web page: "/", "/jobs", "/jobs/<id>" and "/projects/<name>".
    # The shell holds no data; what it shows comes from the API, under the same policy.
    if path in ("/", "/jobs"):
        return True
    return path.startswith(("/jobs/", "/projects/")) and path.count("/") == 2


def auth_middleware(check: TokenCheck, protect_reads: bool) -> Middleware:
    """A middleware enforcing ``needs_token`` before any handler runs (so nothing changes)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if needs_token(request, protect_reads):
            require_token(request, check)
        return await handler(request)

    return middleware
