"""A fake PyPI on loopback: JSON API, PEP 503 simple index and the files themselves.

Serves what a test added, and fails on cue::

    async with FakePyPI() as pypi:
        pypi.add(wheel_path)                          # any sdist/wheel file
        proj = pypi.add_project(tmp_path, "demo", "1.0", requires_dist=["idna"])
        pypi.add(other, yanked="broken build")        # yanked, with a reason
        pypi.base_url                                 # "http://127.0.0.1:PORT"
        # {base_url}/pypi/demo/json, {base_url}/pypi/demo/1.0/json,
        # {base_url}/simple/demo/ (pip --index-url {base_url}/simple), {base_url}/files/<name>
        pypi.faults.missing.add("demo")               # every route for "demo" answers 404
        pypi.faults.wrong_sha256.add(proj.wheel.name) # advertise a digest that does not match
        pypi.faults.delay = 2.0                       # every answer waits 2 s first
        pypi.count("/files/")                         # requests served so far under a prefix
        # {base_url}/rss/updates.xml and /rss/packages.xml list what was added, newest first
        pypi.faults.path_status["/rss/updates.xml"] = 503

For a pip run against it: ``--index-url pypi.index_url`` plus `HERMETIC_PIP_ARGS`, in
the environment `hermetic_pip_env()` (no inherited ``PIP_*`` variables, no config).

The JSON follows PyPI's shape (``info`` with name, version, requires_python,
requires_dist, yanked; ``urls``; ``releases`` on the project endpoint) with
``digests.sha256``, ``packagetype`` (``sdist``/``bdist_wheel``), ``size``, ``yanked``
per file. The simple index carries ``#sha256=`` fragments, ``data-requires-python``
and ``data-yanked``. Names are looked up PEP 503-normalised. ``info`` of the
project endpoint describes the newest version that is not entirely yanked.
"""

from __future__ import annotations

import asyncio
import hashlib
import html
import os
import socket
import tarfile
import time
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.parser import Parser
from email.utils import formatdate
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from aiohttp import web
from packaging.version import InvalidVersion, Version

from tests.fakes.dists import Project, make_project, normalize_name

#: Added to a clean environment, keeps a pip run hermetic: no config files, no prompts.
HERMETIC_PIP_ENV = {
    "PIP_CONFIG_FILE": os.devnull,
    "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    "PIP_NO_INPUT": "1",
}
#: pip options for tests: no http cache between runs, fail fast instead of retrying.
HERMETIC_PIP_ARGS = ("--no-cache-dir", "--retries", "0", "--timeout", "10")


def hermetic_pip_env() -> dict[str, str]:
    """The current environment without any ``PIP_*`` variable, plus `HERMETIC_PIP_ENV`.

    The machine may set ``PIP_FIND_LINKS``/``PIP_EXTRA_INDEX_URL``; a test's pip must
    see only the fake index.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    return {**env, **HERMETIC_PIP_ENV}


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
class Faults:
    """Failures to inject; tests mutate these while the server runs."""

    #: normalised project names for which every route answers 404
    missing: set[str] = field(default_factory=set)
    #: file names whose advertised sha256 (JSON and simple index) is wrong
    wrong_sha256: set[str] = field(default_factory=set)
    #: seconds every answer waits before it is sent
    delay: float = 0.0
    #: file names whose download answers this HTTP status instead of the bytes
    file_status: dict[str, int] = field(default_factory=dict)
    #: seconds between 1 KiB chunks of a file download (a slow mirror mid-transfer)
    trickle: float = 0.0
    #: exact request paths answered with this HTTP status (e.g. "/rss/updates.xml": 503)
    path_status: dict[str, int] = field(default_factory=dict)


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


class FakePyPI:
    """A PyPI stand-in served by aiohttp on 127.0.0.1 (random free port).

    Use as an async context manager; exit stops the server and waits for it.
    """

    def __init__(self) -> None:
        self.faults = Faults()
        self.requests: list[str] = []
        self._projects: dict[str, dict[str, list[DistFile]]] = {}
        self._files: dict[str, DistFile] = {}
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._arrived: asyncio.Condition | None = None
        self._new_releases: list[tuple[float, str, str]] = []
        self._new_projects: list[tuple[float, str]] = []

    def __repr__(self) -> str:
        state = "serving" if self._runner is not None else "stopped"
        return f"<FakePyPI {state} {len(self._files)} files>"

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

    def add(
        self, path: Path, *, yanked: bool | str = False, published: float | None = None
    ) -> DistFile:
        """Serve ``path``; name, version and requirements come from its own metadata.

        ``yanked`` may be a reason string (which implies yanked). The first file of a
        new release appears in ``/rss/updates.xml`` (and of a new project in
        ``/rss/packages.xml``) dated ``published`` (default: now, epoch seconds).
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
        if normalize_name(name) not in self._projects:
            self._new_projects.append((when, name))
        releases = self._projects.setdefault(normalize_name(name), {})
        if version not in releases:
            self._new_releases.append((when, name, version))
        releases.setdefault(version, []).append(dist)
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

    def count(self, prefix: str = "/") -> int:
        """How many requests whose path starts with ``prefix`` arrived."""
        return sum(1 for path in self.requests if path.startswith(prefix))

    async def wait_for_request(self, prefix: str = "/", n: int = 1) -> None:
        """Return once ``n`` requests under ``prefix`` have arrived (before they are answered)."""
        assert self._arrived is not None, "FakePyPI is not started"
        async with self._arrived:
            await self._arrived.wait_for(lambda: self.count(prefix) >= n)

    async def __aenter__(self) -> Self:
        self._arrived = asyncio.Condition()
        app = web.Application(middlewares=[self._record_and_delay])
        app.router.add_get("/pypi/{name}/json", self._project_json)
        app.router.add_get("/pypi/{name}/{version}/json", self._release_json)
        app.router.add_get("/simple/", self._simple_root)
        app.router.add_get("/simple/{name}/", self._simple_project)
        app.router.add_get("/files/{filename}", self._file)
        app.router.add_get("/rss/updates.xml", self._rss_updates)
        app.router.add_get("/rss/packages.xml", self._rss_packages)
        # Bind the socket ourselves so the port is known without private attributes.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        # A short shutdown: handlers held by faults.delay must not stall test teardown.
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
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    @web.middleware
    async def _record_and_delay(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests.append(request.path)
        if self._arrived is not None:
            async with self._arrived:
                self._arrived.notify_all()
        if self.faults.delay:
            await asyncio.sleep(self.faults.delay)
        status = self.faults.path_status.get(request.path)
        if status is not None:
            return web.Response(status=status, text="injected failure")
        response: web.StreamResponse = await handler(request)
        return response

    def _releases(self, request: web.Request) -> dict[str, list[DistFile]]:
        name = normalize_name(request.match_info["name"])
        if name in self.faults.missing or name not in self._projects:
            raise web.HTTPNotFound(text=f"no project {name}")
        return self._projects[name]

    def _advertised_sha256(self, dist: DistFile) -> str:
        if dist.path.name in self.faults.wrong_sha256:
            return hashlib.sha256(b"not the file " + dist.sha256.encode()).hexdigest()
        return dist.sha256

    def _file_json(self, dist: DistFile) -> dict[str, Any]:
        return {
            "filename": dist.path.name,
            "url": f"{self.base_url}/files/{dist.path.name}",
            "digests": {"sha256": self._advertised_sha256(dist)},
            "packagetype": dist.packagetype,
            "python_version": "source" if dist.packagetype == "sdist" else "py3",
            "requires_python": dist.requires_python,
            "size": dist.size,
            "yanked": dist.yanked,
            "yanked_reason": dist.yanked_reason,
        }

    def _info_json(self, files: Sequence[DistFile]) -> dict[str, Any]:
        first = files[0]
        return {
            "name": first.name,
            "version": first.version,
            "requires_python": first.requires_python,
            # PyPI gives null, not [], when there are no requirements
            "requires_dist": first.requires_dist or None,
            "yanked": all(f.yanked for f in files),
            "yanked_reason": first.yanked_reason,
        }

    async def _project_json(self, request: web.Request) -> web.Response:
        releases = self._releases(request)
        live = [v for v, files in releases.items() if not all(f.yanked for f in files)]
        latest = max(live or list(releases), key=_version_key)
        return web.json_response(
            {
                "info": self._info_json(releases[latest]),
                "urls": [self._file_json(f) for f in releases[latest]],
                "releases": {
                    v: [self._file_json(f) for f in files] for v, files in releases.items()
                },
            }
        )

    async def _release_json(self, request: web.Request) -> web.Response:
        releases = self._releases(request)
        files = releases.get(request.match_info["version"])
        if not files:
            raise web.HTTPNotFound(text="no such version")
        return web.json_response(
            {"info": self._info_json(files), "urls": [self._file_json(f) for f in files]}
        )

    async def _simple_root(self, request: web.Request) -> web.Response:
        links = "".join(f'<a href="{n}/">{n}</a>\n' for n in sorted(self._projects))
        return web.Response(
            text=f"<!DOCTYPE html><html><body>\n{links}</body></html>\n", content_type="text/html"
        )

    async def _simple_project(self, request: web.Request) -> web.Response:
        releases = self._releases(request)
        anchors = []
        for files in releases.values():
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

    async def _file(self, request: web.Request) -> web.StreamResponse:
        filename = request.match_info["filename"]
        dist = self._files.get(filename)
        if dist is None or normalize_name(dist.name) in self.faults.missing:
            raise web.HTTPNotFound(text="no such file")
        status = self.faults.file_status.get(filename)
        if status is not None:
            return web.Response(status=status, text="injected failure")
        if not self.faults.trickle:
            return web.FileResponse(dist.path)
        data = dist.path.read_bytes()
        response = web.StreamResponse(headers={"Content-Length": str(len(data))})
        await response.prepare(request)
        for start in range(0, len(data), 1024):
            await response.write(data[start : start + 1024])
            await asyncio.sleep(self.faults.trickle)
        await response.write_eof()
        return response

    def _rss(self, title: str, items: list[tuple[float, str, str]]) -> web.Response:
        """RSS 2.0 like PyPI's: newest first, at most 100 items."""
        entries = []
        for when, item_title, link in sorted(items, key=lambda i: i[0], reverse=True)[:100]:
            entries.append(
                "<item>"
                f"<title>{html.escape(item_title)}</title>"
                f"<link>{html.escape(link)}</link>"
                "<description></description>"
                f"<pubDate>{formatdate(when, usegmt=True)}</pubDate>"
                "</item>\n"
            )
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0"><channel>\n'
            f"<title>{title}</title><link>{self.base_url}/</link>"
            f"<description>{title}</description><language>en</language>\n"
            + "".join(entries)
            + "</channel></rss>\n"
        )
        return web.Response(text=body, content_type="text/xml")

    async def _rss_updates(self, request: web.Request) -> web.Response:
        items = [
            (when, f"{name} {version}", f"{self.base_url}/project/{name}/{version}/")
            for when, name, version in self._new_releases
        ]
        return self._rss("PyPI recent updates", items)

    async def _rss_packages(self, request: web.Request) -> web.Response:
        items = [
            (when, f"{name} added to PyPI", f"{self.base_url}/project/{name}/")
            for when, name in self._new_projects
        ]
        return self._rss("Newest packages", items)
