"""`prepare_release`: everything a job's guest needs, fetched on the host without
running any of the package's code (hard rule 1 of DESIGN.md)."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import structlog
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)

from slave.prepare.backend_requires import backend_requires
from slave.prepare.build_imports import BuildImport, undeclared_imports
from slave.prepare.cache import BlobCache
from slave.prepare.errors import DependencyUnavailable, MetadataError, ReleaseNotFound
from slave.prepare.fetch import download_file, fetch_listing, select_files, take_upload
from slave.prepare.metadata import (
    SdistContents,
    StaticMetadata,
    for_guest,
    pip_argument,
    read_sdist_metadata,
    read_wheel_metadata,
    requirements_for,
    static_metadata,
)
from slave.prepare.models import (
    GuestTarget,
    HttpTimeouts,
    PipOptions,
    PreparedRelease,
    ReleaseRequest,
)
from slave.prepare.python_check import python_refusal
from slave.prepare.testdeps import (
    TestDependencies,
    find_test_dependencies,
    is_test_module,
    wanted_file,
)
from slave.prepare.wheelhouse import download_wheels

log = structlog.get_logger(__name__)
#: joint resolutions of runtime + test requirements before trying them one by one
_JOINT_ATTEMPTS = 3
# pip's words when it names the requirement it cannot satisfy (see wheelhouse.py)
_NOT_FOUND = "No matching distribution found for"
#: seconds for fetching the wheels of setup.py's undeclared imports (a bonus, best effort)
_BUILD_IMPORTS_BUDGET = 120.0


@contextlib.asynccontextmanager
async def _session(session: aiohttp.ClientSession | None) -> AsyncIterator[aiohttp.ClientSession]:
    if session is not None:
        yield session
        return
    async with aiohttp.ClientSession() as owned:
        yield owned


def _mkdirs(*dirs: Path) -> None:
    for directory in dirs:
        directory.mkdir(parents=True, exist_ok=True)


def _read_static(
    wheel: Path | None, sdist: Path | None
) -> tuple[StaticMetadata, SdistContents | None]:
    contents = (
        read_sdist_metadata(sdist, also=wanted_file, tests=is_test_module)
        if sdist is not None
        else None
    )
    meta = static_metadata(read_wheel_metadata(wheel) if wheel is not None else None, contents)
    return meta, contents


def _name_from_filename(path: Path) -> tuple[str, str] | None:
    try:
        if path.name.endswith(".whl"):
            name, version, _, _ = parse_wheel_filename(path.name)
        else:
            name, version = parse_sdist_filename(path.name)
    except (InvalidWheelFilename, InvalidSdistFilename):
        return None
    return str(name), str(version)


async def _fetch_files(
    request: ReleaseRequest,
    *,
    pypi_url: str,
    files_dir: Path,
    cache: BlobCache,
    target: GuestTarget,
    timeouts: HttpTimeouts,
    session: aiohttp.ClientSession | None,
) -> dict[Path, str]:
    """Release files on disk -> their verified sha256."""
    if request.uploaded is not None:
        assert request.uploaded_sha256 is not None
        path = await take_upload(request.uploaded, request.uploaded_sha256, files_dir, cache)
        if path.name.endswith(".whl"):
            try:
                _, _, _, tags = parse_wheel_filename(path.name)
            except InvalidWheelFilename as exc:
                raise MetadataError(path.name, str(exc)) from None
            if not tags & set(target.tags()):
                raise ReleaseNotFound(request.project, None, f"wheel not for {target.platform}")
        return {path: request.uploaded_sha256.lower()}
    async with _session(session) as http:
        listing = await fetch_listing(http, pypi_url, request, timeouts)
        chosen = select_files(listing, target)
        files: dict[Path, str] = {}
        for remote in chosen:
            path = await download_file(http, remote, files_dir, cache, timeouts)
            files[path] = remote.sha256
    log.info("release_fetched", project=listing.name, version=listing.version, files=len(files))
    return files


async def prepare_release(
    request: ReleaseRequest,
    *,
    pypi_url: str,
    cache_dir: Path,
    work_dir: Path,
    python_version: str,
    platform: str,
    guest_python: str | None = None,
    pip: PipOptions | None = None,
    timeouts: HttpTimeouts | None = None,
    session: aiohttp.ClientSession | None = None,
    test_deps_budget: float = 300.0,
) -> PreparedRelease:
    """Fetch the release's files and the wheels its guest needs into ``work_dir``.

    ``python_version``/``platform`` describe the guest image ("3.11",
    "manylinux_2_36_x86_64"); ``guest_python`` is its full Python version ("3.11.2",
    default ``python_version``), which the wheel the guest installs must accept
    (`python_refusal`): if it does not, nothing more is fetched and the result's
    ``python_refused`` says why (the job's install fails with it). ``pip`` overrides
    how pip runs (tests point it at a loopback index); ``session`` lets a daemon share
    its HTTP connection pool.
    Test dependencies (`find_test_dependencies`) are fetched best effort within
    ``test_deps_budget`` seconds; what could not be had is in ``test_unavailable``.
    Writes ``work_dir/files`` and ``work_dir/wheelhouse``; shares ``cache_dir``.

    Raises a `PrepareError` (its ``outcome`` is the job's): `ReleaseNotFound`,
    `FetchFailed`, `ChecksumMismatch`, `DependencyUnavailable`, `MetadataError`. On
    failure or cancel, ``work_dir`` may hold partial content and is the caller's to
    delete; the cache never holds an unverified file.
    """
    target = GuestTarget(python_version, platform)
    timeouts = timeouts or HttpTimeouts()
    cache = BlobCache(cache_dir)
    files_dir, wheelhouse = work_dir / "files", work_dir / "wheelhouse"
    await asyncio.to_thread(_mkdirs, files_dir, wheelhouse, cache_dir)

    files = await _fetch_files(
        request,
        pypi_url=pypi_url,
        files_dir=files_dir,
        cache=cache,
        target=target,
        timeouts=timeouts,
        session=session,
    )
    paths = list(files)
    wheel = next((p for p in paths if p.name.endswith(".whl")), None)
    sdist = next((p for p in paths if not p.name.endswith(".whl")), None)
    meta, contents = await asyncio.to_thread(_read_static, wheel, sdist)
    fallback = _name_from_filename(paths[0]) or (request.project, request.version or "")
    project, version = meta.name or fallback[0], meta.version or fallback[1]
    env = target.marker_environment()
    requirements: list[str] = []
    if meta.requires_dist is not None:
        requirements = requirements_for(meta.requires_dist, env, project, [""])
    # pip refuses a release whose Requires-Python excludes the guest, after building an
    # sdist's metadata; the guest's prepared build and uv's install of what it built do
    # not check, so the host does, for a wheel and for an sdist's static metadata alike
    if wheel is not None or not _python_dynamic(contents):
        refused = python_refusal(
            f"{project} {version}", meta.requires_python, guest_python or python_version
        )
        if refused is not None:
            log.info("release_refuses_guest_python", project=project, version=version,
                     reason=refused)  # fmt: skip
            return PreparedRelease(
                project=project,
                version=version,
                files=paths,
                sha256={p.name: digest for p, digest in files.items()},
                wheelhouse=wheelhouse,
                requirements=requirements,
                build_requires=[],
                metadata_source=meta.source,
                needs_guest_metadata=False,
                requires_python=meta.requires_python,
                python_refused=refused,
            )

    async def fetch(requirements: list[str]) -> list[Path]:
        return await download_wheels(
            requirements,
            wheelhouse=wheelhouse,
            cache_dir=cache_dir,
            python_version=python_version,
            platform=platform,
            pip=pip,
        )

    tests = await asyncio.to_thread(
        find_test_dependencies,
        project=project,
        requires_dist=meta.requires_dist,
        sdist=contents,
        environment=env,
        runtime=requirements,
    )
    unavailable = await _fetch_with_tests(
        fetch, [pip_argument(req) for req in requirements], tests, test_deps_budget
    )
    if unavailable:
        log.warning("test_requirements_unavailable", project=project, unavailable=unavailable)
    # The guest builds the sdist only when no wheel fits it; only then it needs these.
    build_requires = for_guest(meta.build_requires, env) if wheel is None else []
    if build_requires:
        await fetch(build_requires)
        asked = backend_requires(build_requires)
        got = await _fetch_best_effort(fetch, asked, _BUILD_IMPORTS_BUDGET)
        if asked:
            log.info("backend_requires_fetched", project=project, wanted=asked, fetched=got)
    build_imports: list[BuildImport] = []
    import_wheels: list[str] = []
    if wheel is None and contents is not None and "setup.py" in contents.files:
        build_imports = undeclared_imports(
            contents.files["setup.py"],
            build_requires=meta.build_requires,
            setup_cfg=contents.files.get("setup.cfg"),
            own_modules=contents.modules,
        )
        import_wheels = await _fetch_best_effort(
            fetch, [b.distribution for b in build_imports], _BUILD_IMPORTS_BUDGET
        )

    prepared = PreparedRelease(
        project=project,
        version=version,
        files=paths,
        sha256={p.name: digest for p, digest in files.items()},
        wheelhouse=wheelhouse,
        requirements=requirements,
        build_requires=build_requires,
        metadata_source=meta.source,
        needs_guest_metadata=meta.requires_dist is None,
        requires_python=meta.requires_python,
        test_requirements=tests.requirements,
        test_sources=tests.sources,
        test_unavailable=unavailable,
        test_substituted=tests.substituted,
        build_imports=build_imports,
        build_import_wheels=import_wheels,
    )
    log.info(
        "release_prepared",
        project=project,
        version=version,
        metadata_source=meta.source,
        needs_guest_metadata=prepared.needs_guest_metadata,
        requirements=len(requirements),
        test_sources=tests.sources,
        test_requirements=len(tests.requirements),
        test_unavailable=len(unavailable),
        build_imports=[b.module for b in build_imports],
        build_import_wheels=import_wheels,
    )
    return prepared


def _python_dynamic(contents: SdistContents | None) -> bool:
    """The sdist's PKG-INFO leaves Requires-Python to its build (``Dynamic``)."""
    info = contents.pkg_info if contents is not None else None
    return info is not None and "requires-python" in info.dynamic


async def _fetch_best_effort(
    fetch: Callable[[list[str]], Awaitable[list[Path]]], wanted: list[str], budget: float
) -> list[str]:
    """The requirements of ``wanted`` whose wheels could be had: all at once, else one by one."""
    if not wanted:
        return []
    got: list[str] = []
    try:
        async with asyncio.timeout(budget):
            try:
                await fetch(wanted)
                return list(wanted)
            except DependencyUnavailable:
                pass
            for requirement in wanted:
                try:
                    await fetch([requirement])
                except DependencyUnavailable:
                    continue
                got.append(requirement)
    except TimeoutError:
        log.warning("fetch_budget_exceeded", budget=budget, wanted=wanted, fetched=got)
    return got


async def _fetch_with_tests(
    fetch: Callable[[list[str]], Awaitable[list[Path]]],
    runtime: list[str],
    tests: TestDependencies,
    budget: float,
) -> list[str]:
    """Wheels of the runtime requirements (or `DependencyUnavailable`) and, best effort,
    of the test requirements; returns the test requirements that could not be had.

    Test dependencies are a bonus for the tests phase: they never fail the job. One
    joint resolution first (compatible versions, one pip run). If it fails: the
    runtime ones alone (their failure is the job's), then the tests again without
    those pip names as not found (a few times), then one by one, each with the
    runtime ones. Past ``budget`` seconds of test fetching the rest are unavailable.
    """
    pending = list(tests.requirements)
    if not pending:
        await fetch(runtime)
        return []
    deadline = asyncio.get_running_loop().time() + budget
    unavailable: list[str] = []

    async def attempt(requirements: list[str]) -> list[str] | None:
        """None when fetched; else the pending requirements pip named as not found."""
        try:
            async with asyncio.timeout_at(deadline):
                await fetch([*runtime, *requirements])
        except DependencyUnavailable as exc:
            if _NOT_FOUND not in exc.reason:
                return []  # a conflict or a timeout: pip names no culprit
            missing = {canonicalize_name(_project_name(r)) for r in exc.requirements}
            return [r for r in requirements if canonicalize_name(_project_name(r)) in missing]
        return None

    try:
        named = await attempt(pending)
        if named is None:
            return []
        await fetch(runtime)
        for _ in range(_JOINT_ATTEMPTS):
            if not named or not pending:
                break
            unavailable += named
            pending = [r for r in pending if r not in named]
            named = await attempt(pending) if pending else None
            if named is None:
                return unavailable
        while pending:
            if await attempt([pending[0]]) is not None:
                unavailable.append(pending[0])
            pending.pop(0)
    except TimeoutError:
        log.warning("test_requirements_budget_exceeded", budget=budget, left=len(pending))
        unavailable += pending
    return unavailable


def _project_name(requirement: str) -> str:
    return re.split(r"[^A-Za-z0-9._-]", requirement.strip(), maxsplit=1)[0]
