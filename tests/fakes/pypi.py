"""The one fake PyPI on loopback: JSON API, PEP 503 simple index, files and RSS feeds.

Serves what a test added, shaped like the index it stands for, and fails on cue::

    async with FakePyPI() as pypi:
        pypi.add(wheel_path)                          # any sdist/wheel file, served
        proj = pypi.add_project(tmp_path, "demo", "1.0", requires_dist=["idna"])
        pypi.add(other, yanked="broken build")        # yanked, with a reason
        pypi.add_release("big", "2.0", uploaded=T)    # JSON only: entries, no files served
        pypi.set_json("demo", "1.0", {...})           # answer exactly this document
        pypi.set_feed("updates", rss([...]), etag='"v1"')  # this feed instead of the generated one
        pypi.base_url                                 # "http://127.0.0.1:PORT" (the --pypi-url)
        pypi.index_url                                # {base_url}/simple (pip's --index-url)
        pypi.feed_url("updates")                      # {base_url}/rss/updates.xml

        # how the index is shaped (switches, not faults)
        pypi.relative_urls = True      # JSON file URLs relative to the document, as mirrors do
        pypi.versioned_urls = False    # /pypi/NAME/VERSION/json is always 404
        pypi.redirect_json = True      # JSON documents move (301) to /json/NAME[/VERSION]

        # the one fault vocabulary; paths are request paths, matched by prefix where it says so
        pypi.faults.missing.add("demo")               # every route for "demo" answers 404
        pypi.faults.hide("demo", "1.0", times=2)      # the JSON API lags: 404 twice
        pypi.faults.wrong_sha256.add(proj.wheel.name) # advertise a digest that does not match
        pypi.faults.delay = 2.0                       # every answer waits 2 s first
        pypi.faults.slow["/rss/updates.xml"] = 5.0    # answers under this prefix wait first
        pypi.faults.trickle["/files/"] = 0.05         # bodies under this prefix: 1 KiB per 0.05 s
        pypi.faults.status["/pypi/demo/1.0/json"] = 503   # always this status (prefix)
        pypi.faults.fail("/rss/updates.xml", 500, times=3, retry_after="7")  # the next three
        pypi.faults.huge("/rss/updates.xml", 50 << 20, content_length=False)  # a 50 MB stream

        pypi.count("/files/")                         # requests so far under a prefix
        pypi.requests_for("/rss/updates.xml")         # [Recorded(path, headers, status, at)]
        await pypi.wait_for_request("/pypi/", n=2)    # once two have arrived
        pypi.sent_bytes("/rss/updates.xml")           # what a huge answer managed to write

For a pip run against it: ``--index-url pypi.index_url`` plus `HERMETIC_PIP_ARGS`, in
the environment `hermetic_pip_env()` (no inherited ``PIP_*`` variables, no config).

The JSON follows PyPI's shape (``info`` with name, version, requires_python,
requires_dist, yanked; ``urls``; ``releases`` on the project endpoint) with
``digests.sha256``, ``packagetype`` (``sdist``/``bdist_wheel``), ``size``, ``yanked``,
``upload_time_iso_8601`` per file. The simple index carries relative ``#sha256=``
links, ``data-requires-python`` and ``data-yanked``. Names are looked up PEP
503-normalised. ``info`` of the project endpoint describes the newest version that is
not entirely yanked. ``/rss/updates.xml`` and ``/rss/packages.xml`` list what was
`add`-ed, newest first, unless `set_feed` set them; a set feed honours
``If-None-Match`` / ``If-Modified-Since`` (answering 304). The feeds are served by
`tests.fakes.pypi_feeds.ServedFeeds`; the faults above apply to them as to any path.
"""

from __future__ import annotations

import asyncio
import hashlib
import html
import os
import posixpath
import socket
import tarfile
import time
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.parser import Parser
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

from aiohttp import web
from packaging.version import InvalidVersion, Version

from tests.fakes.dists import Project, escape_name, make_project, normalize_name
from tests.fakes.pypi_feeds import ServedFeeds

#: Added to a clean environment, keeps a pip run hermetic: no config files, no prompts.
HERMETIC_PIP_ENV = {
    "PIP_CONFIG_FILE": os.devnull,
    "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    "PIP_NO_INPUT": "1",
}
#: pip options for tests: no http cache between runs, fail fast instead of retrying.
HERMETIC_PIP_ARGS = ("--no-cache-dir", "--retries", "0", "--timeout", "10")
_CHUNK = 1024
V = TypeVar("V")


def hermetic_pip_env() -> dict[str, str]:
    """The current environment without any ``PIP_*`` variable, plus `HERMETIC_PIP_ENV`.

    The machine may set ``PIP_FIND_LINKS``/``PIP_EXTRA_INDEX_URL``; a test's pip must
    see only the fake index.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    return {**env, **HERMETIC_PIP_ENV}


def default_files(base_url: str, name: str, version: str, size: int = 2048) -> list[dict[str, Any]]:
    """An sdist and a wheel as the JSON API lists them (sha256 derived from the name).

    For `FakePyPI.add_release`: entries only, the fake does not serve these files.
    """
    stem = f"{escape_name(name)}-{version}"
    return [
        {
            "filename": filename,
            "url": f"{base_url}/files/{filename}",
            "digests": {"sha256": hashlib.sha256(filename.encode()).hexdigest()},
            "packagetype": kind,
            "size": size,
        }
        for filename, kind in (
            (f"{stem}.tar.gz", "sdist"),
            (f"{stem}-py3-none-any.whl", "bdist_wheel"),
        )
    ]


@dataclass(slots=True)
class DistFile:
    """One file the fake serves, with the metadata read from inside it."""

    path: Path
    name: str
    version: str
    packagetype: str
    sha256: str
    size: int
    requires_python: str | None
    requires_dist: list[str]
    yanked: bool = False
    yanked_reason: str | None = None


@dataclass(slots=True)
class _Listed:
    """A release `add_release` describes: JSON entries given verbatim, nothing served."""

    name: str
    version: str
    entries: list[dict[str, Any]]
    yanked: bool
    requires_python: str | None


@dataclass(slots=True)
class Recorded:
    """One request the fake received, and the status it was answered with."""

    path: str
    headers: dict[str, str]
    status: int = 0
    at: float = field(default_factory=time.monotonic)


@dataclass(slots=True)
class _Huge:
    size: int
    content_length: bool


@dataclass(slots=True)
class Faults:
    """Failures to inject; tests mutate these while the server runs."""

    #: normalised project names for which every route answers 404
    missing: set[str] = field(default_factory=set)
    #: file names whose advertised sha256 (JSON and simple index) is wrong
    wrong_sha256: set[str] = field(default_factory=set)
    #: seconds every answer waits before it is sent
    delay: float = 0.0
    #: path prefix -> seconds an answer waits before it is sent (0 to stop)
    slow: dict[str, float] = field(default_factory=dict)
    #: path prefix -> seconds between 1 KiB chunks of the body (a slow mirror mid-transfer)
    trickle: dict[str, float] = field(default_factory=dict)
    #: path prefix -> HTTP status answered instead, every time
    status: dict[str, int] = field(default_factory=dict)
    #: exact path -> statuses (and Retry-After) of its next answers; see `fail`
    failures: dict[str, list[tuple[int, str | None]]] = field(default_factory=dict)
    #: (project, version or None) -> JSON lookups still to answer 404; see `hide`
    hidden: dict[tuple[str, str | None], int] = field(default_factory=dict)
    #: exact path -> a huge answer streamed instead; see `huge`
    huge_answers: dict[str, _Huge] = field(default_factory=dict)

    def fail(
        self, path: str, status: int, *, times: int = 1, retry_after: str | None = None
    ) -> None:
        """The next ``times`` requests of exactly ``path`` answer ``status`` (then normal)."""
        self.failures.setdefault(path, []).extend([(status, retry_after)] * times)

    def hide(self, name: str, version: str | None = None, *, times: int = 1) -> None:
        """The next ``times`` JSON lookups of the release (or project) answer 404.

        A hidden release lags as a whole: a lookup falling back to the project document
        right after does not find it in ``releases`` either.
        """
        self.hidden[(normalize_name(name), version)] = times

    def huge(self, path: str, size: int, *, content_length: bool) -> None:
        """Answer ``path`` with a ``size``-byte XML stream, announcing the size or not."""
        self.huge_answers[path] = _Huge(size, content_length)

    def take_failure(self, path: str) -> tuple[int, str | None] | None:
        """The next queued (status, Retry-After) for ``path``, consumed; None if none."""
        queued = self.failures.get(path)
        return queued.pop(0) if queued else None

    def take_hidden(self, key: tuple[str, str | None]) -> bool:
        """Whether this JSON lookup is to answer 404 (one hiding consumed)."""
        left = self.hidden.get(key, 0)
        if left > 0:
            self.hidden[key] = left - 1
            return True
        return False


def _by_prefix(table: Mapping[str, V], path: str) -> V | None:
    """The value of the longest key of ``table`` that ``path`` starts with."""
    keys = [k for k in table if path.startswith(k)]
    return table[max(keys, key=len)] if keys else None


def _read_metadata(path: Path) -> tuple[str, str, str | None, list[str]]:
    """(name, version, requires_python, requires_dist) from the file's own metadata."""
    text: str | None = None
    if path.name.endswith(".whl"):
        with zipfile.ZipFile(path) as zf:
            for member in zf.namelist():
                if member.count("/") == 1 and member.endswith(".dist-info/METADATA"):
                    text = zf.read(member).decode()
                    break
    else:
        with tarfile.open(path) as tar:
            for info in tar.getmembers():
                if info.name.count("/") == 1 and info.name.endswith("/PKG-INFO"):
                    fobj = tar.extractfile(info)
                    if fobj is not None:
                        text = fobj.read().decode()
                    break
    if text is None:
        raise ValueError(f"{path.name}: no METADATA/PKG-INFO to describe it")
    msg = Parser().parsestr(text)
    return (
        str(msg["Name"]),
        str(msg["Version"]),
        msg["Requires-Python"],
        [str(r) for r in msg.get_all("Requires-Dist") or []],
    )


def _version_key(version: str) -> tuple[int, Version | str]:
    try:
        return (1, Version(version))
    except InvalidVersion:
        return (0, version)


def _stamp(when: float | None) -> str | None:
    if when is None:
        return None
    return datetime.fromtimestamp(when, UTC).isoformat().replace("+00:00", "Z")


class FakePyPI:
    """A PyPI stand-in served by aiohttp on 127.0.0.1 (random free port).

    Use as an async context manager; exit stops the server and waits for it (answers
    held by ``delay`` or ``slow`` are released at once).
    """

    def __init__(self) -> None:
        self.faults = Faults()
        #: JSON file URLs relative to the document (``../../files/...``), as mirrors serve them
        self.relative_urls = False
        #: False: /pypi/NAME/VERSION/json is always 404 (as PyPI answers from some networks)
        self.versioned_urls = True
        #: JSON documents answer 301 to /json/NAME and /json/NAME/VERSION (another depth)
        self.redirect_json = False
        self.requests: list[Recorded] = []
        self._releases: dict[str, dict[str, list[DistFile] | _Listed]] = {}
        self._uploaded: dict[tuple[str, str], float] = {}
        self._files: dict[str, DistFile] = {}
        self._raw: dict[tuple[str, str | None], Any] = {}
        self._feeds = ServedFeeds()
        self._lagging: set[tuple[str, str]] = set()
        self._sent: dict[str, int] = {}
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._arrived: asyncio.Condition | None = None
        self._closing: asyncio.Event | None = None

    def __repr__(self) -> str:
        state = "serving" if self._runner is not None else "stopped"
        return f"<FakePyPI {state} {len(self._files)} files>"

    # ---------------------------------------------------------------- content --

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``, without a trailing slash."""
        if self._port is None:
            raise RuntimeError("FakePyPI is not started")
        return f"http://127.0.0.1:{self._port}"

    @property
    def index_url(self) -> str:
        """The simple index root, as pip's ``--index-url`` wants it."""
        return f"{self.base_url}/simple"

    def feed_url(self, feed: str) -> str:
        """The URL of the feed named ``feed`` (``/rss/<feed>.xml``)."""
        return f"{self.base_url}/rss/{feed}.xml"

    def add(
        self, path: Path, *, yanked: bool | str = False, published: float | None = None
    ) -> DistFile:
        """Serve ``path``; name, version and requirements come from its own metadata.

        ``yanked`` may be a reason string (which implies yanked). The first file of a
        new release appears in ``/rss/updates.xml`` (and of a new project in
        ``/rss/packages.xml``) dated ``published`` (default: now, epoch seconds), which
        is also its upload time.
        """
        name, version, requires_python, requires_dist = _read_metadata(path)
        data = path.read_bytes()
        dist = DistFile(
            path=path,
            name=name,
            version=version,
            packagetype="bdist_wheel" if path.name.endswith(".whl") else "sdist",
            sha256=hashlib.sha256(data).hexdigest(),
            size=len(data),
            requires_python=requires_python,
            requires_dist=requires_dist,
            yanked=bool(yanked),
            yanked_reason=yanked if isinstance(yanked, str) else None,
        )
        when = time.time() if published is None else published
        key = normalize_name(name)
        if key not in self._releases:
            self._feeds.project_added(when, name)
        releases = self._releases.setdefault(key, {})
        files = releases.get(version)
        if not isinstance(files, list):
            self._feeds.release_added(when, name, version)
            self._uploaded[(key, version)] = when
            files = releases[version] = []
        files.append(dist)
        self._files[path.name] = dist
        return dist

    def add_project(
        self,
        dest_dir: Path,
        name: str,
        version: str,
        *,
        yanked: bool | str = False,
        published: float | None = None,
        **kwargs: Any,
    ) -> Project:
        """`make_project` (same keyword arguments) and serve what it wrote."""
        project = make_project(dest_dir, name, version, **kwargs)
        for path in project.files:
            self.add(path, yanked=yanked, published=published)
        return project

    def add_release(
        self,
        name: str,
        version: str,
        *,
        uploaded: float | None = None,
        files: list[dict[str, Any]] | None = None,
        yanked: bool = False,
        file_size: int = 2048,
        requires_python: str | None = ">=3.8",
    ) -> None:
        """Let the JSON API describe ``name`` ``version`` with these entries, verbatim.

        Default entries: `default_files`. The files are not served and the release is
        not in the generated feeds (tests of the feed set their feeds).
        """
        key = normalize_name(name)
        entries = (
            files if files is not None else default_files(self.base_url, name, version, file_size)
        )
        self._releases.setdefault(key, {})[version] = _Listed(
            name, version, entries, yanked, requires_python
        )
        if uploaded is not None:
            self._uploaded[(key, version)] = uploaded

    def set_json(self, name: str, version: str | None, doc: Any) -> None:
        """Answer the release (or project) JSON with ``doc`` verbatim, whatever it is."""
        self._raw[(normalize_name(name), version)] = doc

    def set_feed(
        self, feed: str, body: bytes, *, etag: str | None = None, last_modified: str | None = None
    ) -> None:
        """Serve ``body`` as ``/rss/<feed>.xml`` from now on, with these validators."""
        self._feeds.set(feed, body, etag=etag, last_modified=last_modified)
        self.faults.huge_answers.pop(f"/rss/{feed}.xml", None)

    # ------------------------------------------------------------ observation --

    def count(self, prefix: str = "/") -> int:
        """How many requests whose path starts with ``prefix`` arrived."""
        return sum(1 for r in self.requests if r.path.startswith(prefix))

    def requests_for(self, path: str) -> list[Recorded]:
        """Requests of exactly ``path`` so far, oldest first."""
        return [r for r in self.requests if r.path == path]

    def json_count(self, name: str, version: str | None = None) -> int:
        """How many JSON API requests asked for this release (or project), any spelling."""
        want = (normalize_name(name), version)
        return sum(1 for r in self.requests if self._json_key(r.path) == want)

    async def wait_for_request(self, prefix: str = "/", n: int = 1) -> None:
        """Return once ``n`` requests under ``prefix`` have arrived (before they are answered)."""
        assert self._arrived is not None, "FakePyPI is not started"
        async with self._arrived:
            await self._arrived.wait_for(lambda: self.count(prefix) >= n)

    def sent_bytes(self, path: str) -> int:
        """Body bytes the last huge answer of ``path`` wrote before the client left."""
        return self._sent[path]

    @staticmethod
    def _json_key(path: str) -> tuple[str, str | None] | None:
        parts = path.strip("/").split("/")
        if len(parts) == 3 and parts[0] == "pypi" and parts[2] == "json":
            return (normalize_name(parts[1]), None)
        if len(parts) == 4 and parts[0] == "pypi" and parts[3] == "json":
            return (normalize_name(parts[1]), parts[2])
        return None

    # ----------------------------------------------------------------- server --

    async def __aenter__(self) -> Self:
        self._arrived = asyncio.Condition()
        self._closing = asyncio.Event()
        app = web.Application(middlewares=[self._faults_middleware])
        app.router.add_get("/pypi/{name}/json", self._project_json)
        app.router.add_get("/pypi/{name}/{version}/json", self._release_json)
        app.router.add_get("/json/{name}", self._project_json)
        app.router.add_get("/json/{name}/{version}", self._release_json)
        app.router.add_get("/simple/", self._simple_root)
        app.router.add_get("/simple/{name}/", self._simple_project)
        app.router.add_get("/files/{filename}", self._file)
        app.router.add_get("/rss/{feed}.xml", self._feed)
        # Bind the socket ourselves so the port is known without private attributes.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        # A short shutdown: a handler still writing must not stall test teardown.
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.2)
        try:
            await runner.setup()
            await web.SockSite(runner, sock).start()
        except BaseException:
            await runner.cleanup()
            sock.close()
            raise
        self._port = sock.getsockname()[1]
        self._runner = runner
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._closing is not None:
            self._closing.set()  # held answers stop waiting
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def _wait(self, seconds: float) -> None:
        """Sleep ``seconds``, or less if the server is closing."""
        assert self._closing is not None
        try:
            async with asyncio.timeout(seconds):
                await self._closing.wait()
        except TimeoutError:
            pass

    @web.middleware
    async def _faults_middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        record = Recorded(request.path, dict(request.headers))
        self.requests.append(record)
        if self._arrived is not None:
            async with self._arrived:
                self._arrived.notify_all()
        response = await self._answer(request, handler)
        record.status = response.status
        return response

    async def _answer(self, request: web.Request, handler: Any) -> web.StreamResponse:
        path = request.path
        wait = self.faults.delay + (_by_prefix(self.faults.slow, path) or 0.0)
        if wait:
            await self._wait(wait)
        failure = self.faults.take_failure(path)
        if failure is not None:
            failed, retry_after = failure
            headers = {"Retry-After": retry_after} if retry_after else {}
            return web.Response(status=failed, text="injected failure", headers=headers)
        status = _by_prefix(self.faults.status, path)
        if status is not None:
            return web.Response(status=status, text="injected failure")
        huge = self.faults.huge_answers.get(path)
        if huge is not None:
            return await self._stream_huge(request, huge)
        response: web.StreamResponse = await handler(request)
        trickle = _by_prefix(self.faults.trickle, path)
        if trickle and isinstance(response, web.Response) and isinstance(response.body, bytes):
            return await self._trickle(request, response, trickle)
        return response

    async def _trickle(
        self, request: web.Request, whole: web.Response, seconds: float
    ) -> web.StreamResponse:
        data = whole.body
        assert isinstance(data, bytes)
        response = web.StreamResponse(
            status=whole.status,
            headers={"Content-Length": str(len(data)), "Content-Type": whole.content_type},
        )
        await response.prepare(request)
        for start in range(0, len(data), _CHUNK):
            await response.write(data[start : start + _CHUNK])
            await asyncio.sleep(seconds)
        await response.write_eof()
        return response

    async def _stream_huge(self, request: web.Request, huge: _Huge) -> web.StreamResponse:
        headers = {"Content-Type": "application/rss+xml"}
        if huge.content_length:
            headers["Content-Length"] = str(huge.size)
        response = web.StreamResponse(headers=headers)
        await response.prepare(request)
        chunk = b"<!-- " + b"x" * (64 * 1024 - 9) + b" -->"
        path = request.path
        self._sent[path] = 0
        try:
            await response.write(b'<?xml version="1.0"?><rss><channel>')
            while self._sent[path] < huge.size:
                await response.write(chunk)
                self._sent[path] += len(chunk)
        except (ConnectionError, OSError):
            pass  # the client hung up: exactly what the test wants to see
        return response

    # -------------------------------------------------------------- JSON API --

    def _project(self, name: str) -> dict[str, list[DistFile] | _Listed]:
        key = normalize_name(name)
        if key in self.faults.missing or key not in self._releases:
            raise web.HTTPNotFound(text=f"no project {key}")
        return self._releases[key]

    def _advertised_sha256(self, dist: DistFile) -> str:
        if dist.path.name in self.faults.wrong_sha256:
            return hashlib.sha256(b"not the file " + dist.sha256.encode()).hexdigest()
        return dist.sha256

    def _href(self, request: web.Request, url: object) -> object:
        """``url`` as this document serves it: relative to it in `relative_urls` mode."""
        prefix = self.base_url + "/"
        if not self.relative_urls or not isinstance(url, str) or not url.startswith(prefix):
            return url
        target = url.removeprefix(self.base_url)
        return posixpath.relpath(target, posixpath.dirname(request.path))

    def _entries(
        self, request: web.Request, key: str, release: list[DistFile] | _Listed
    ) -> list[dict[str, Any]]:
        if isinstance(release, _Listed):
            uploaded = _stamp(self._uploaded.get((key, release.version)))
            return [
                {
                    **entry,
                    "url": self._href(request, entry.get("url")),
                    "upload_time_iso_8601": uploaded,
                    "yanked": release.yanked,
                }
                for entry in release.entries
            ]
        return [
            {
                "filename": dist.path.name,
                "url": self._href(request, f"{self.base_url}/files/{dist.path.name}"),
                "digests": {"sha256": self._advertised_sha256(dist)},
                "packagetype": dist.packagetype,
                "python_version": "source" if dist.packagetype == "sdist" else "py3",
                "requires_python": dist.requires_python,
                "size": dist.size,
                "upload_time_iso_8601": _stamp(self._uploaded.get((key, dist.version))),
                "yanked": dist.yanked,
                "yanked_reason": dist.yanked_reason,
            }
            for dist in release
        ]

    @staticmethod
    def _info(release: Sequence[DistFile] | _Listed) -> dict[str, Any]:
        if isinstance(release, _Listed):
            return {
                "name": release.name,
                "version": release.version,
                "requires_python": release.requires_python,
                "requires_dist": None,
                "yanked": release.yanked,
            }
        first = release[0]
        return {
            "name": first.name,
            "version": first.version,
            "requires_python": first.requires_python,
            # PyPI gives null, not [], when there are no requirements
            "requires_dist": first.requires_dist or None,
            "yanked": all(f.yanked for f in release),
            "yanked_reason": first.yanked_reason,
        }

    @staticmethod
    def _all_yanked(release: list[DistFile] | _Listed) -> bool:
        if isinstance(release, _Listed):
            return release.yanked
        return all(f.yanked for f in release)

    def _moved(self, request: web.Request, version: str | None) -> None:
        if self.redirect_json and request.path.startswith("/pypi/"):
            name = request.match_info["name"]
            raise web.HTTPMovedPermanently(f"/json/{name}" + (f"/{version}" if version else ""))

    async def _project_json(self, request: web.Request) -> web.Response:
        self._moved(request, None)
        key = normalize_name(request.match_info["name"])
        if key not in self.faults.missing and self.faults.take_hidden((key, None)):
            raise web.HTTPNotFound(text="not found")
        if (key, None) in self._raw:
            return web.json_response(self._raw[(key, None)])
        releases = self._project(key)
        lagging = {v for (n, v) in self._lagging if n == key}
        self._lagging -= {(key, v) for v in lagging}
        live = [v for v, r in releases.items() if not self._all_yanked(r)]
        latest = max(live or list(releases), key=_version_key)
        return web.json_response(
            {
                "info": self._info(releases[latest]),
                "urls": self._entries(request, key, releases[latest]),
                "releases": {
                    v: self._entries(request, key, r)
                    for v, r in releases.items()
                    if v not in lagging
                },
            }
        )

    async def _release_json(self, request: web.Request) -> web.Response:
        version = request.match_info["version"]
        self._moved(request, version)
        key = normalize_name(request.match_info["name"])
        if not self.versioned_urls:
            raise web.HTTPNotFound(text="not found")
        if key not in self.faults.missing and self.faults.take_hidden((key, version)):
            self._lagging.add((key, version))
            raise web.HTTPNotFound(text="not found")
        if (key, version) in self._raw:
            return web.json_response(self._raw[(key, version)])
        release = self._project(key).get(version)
        if not release:
            raise web.HTTPNotFound(text="no such version")
        return web.json_response(
            {"info": self._info(release), "urls": self._entries(request, key, release)}
        )

    # ---------------------------------------------------- simple index, files --

    async def _simple_root(self, request: web.Request) -> web.Response:
        links = "".join(f'<a href="{n}/">{n}</a>\n' for n in sorted(self._releases))
        return web.Response(
            text=f"<!DOCTYPE html><html><body>\n{links}</body></html>\n", content_type="text/html"
        )

    async def _simple_project(self, request: web.Request) -> web.Response:
        releases = self._project(request.match_info["name"])
        anchors = []
        for files in releases.values():
            if isinstance(files, _Listed):
                continue
            for dist in files:
                attrs = (
                    f'href="../../files/{dist.path.name}#sha256={self._advertised_sha256(dist)}"'
                )
                if dist.requires_python:
                    attrs += f' data-requires-python="{html.escape(dist.requires_python)}"'
                if dist.yanked:
                    attrs += f' data-yanked="{html.escape(dist.yanked_reason or "")}"'
                anchors.append(f"<a {attrs}>{html.escape(dist.path.name)}</a><br/>\n")
        body = "<!DOCTYPE html><html><body>\n" + "".join(anchors) + "</body></html>\n"
        return web.Response(text=body, content_type="text/html")

    async def _file(self, request: web.Request) -> web.Response:
        dist = self._files.get(request.match_info["filename"])
        if dist is None or normalize_name(dist.name) in self.faults.missing:
            raise web.HTTPNotFound(text="no such file")
        return web.Response(body=dist.path.read_bytes(), content_type="application/octet-stream")

    # ------------------------------------------------------------------ feeds --

    async def _feed(self, request: web.Request) -> web.Response:
        return self._feeds.answer(request, self.base_url)
