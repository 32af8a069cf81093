"""Download dependency wheels for the guest with ``pip download --only-binary=:all:``.

Only binary wheels: pip never builds anything, so no code of any package runs on
the host. pip resolves for the guest's interpreter and platform (``--python-version``,
``--abi``, ``--platform``); top-level markers are evaluated here for the guest,
but pip evaluates the markers of *transitive* dependencies against the interpreter
running it. When the guest's Python minor differs from pip's, uv resolves first
(`slave.prepare.pins`) and pip downloads exactly those pins with ``--no-deps``; if
uv cannot resolve, or pip refuses one of its pins, pip resolves alone.

A resolution (requirement set + guest + index) is cached with the sha256 of every
wheel it picked: within ``PipOptions.resolution_ttl`` the same set is served from
the blob cache without running pip or touching the index.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import shutil
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path

import structlog
from packaging.requirements import InvalidRequirement, Requirement

from slave.prepare import pins
from slave.prepare.cache import BlobCache, CachedFile
from slave.prepare.errors import DependencyUnavailable, MetadataError
from slave.prepare.metadata import (
    for_guest,
    pip_argument,
    requirements_for,
)
from slave.prepare.models import GuestTarget, PipOptions
from slave.prepare.tools import run_tool

log = structlog.get_logger(__name__)

# pip's own words for a requirement it cannot satisfy; kept for the error reason.
_NOT_FOUND = re.compile(r"No matching distribution found for (\S+)")
_REASON_BYTES = 4000


def requirements_from_guest(
    requires_dist: object, environment: dict[str, str], project: str
) -> list[str]:
    """What the guest's ``metadata`` event (untrusted) says the release needs, for the guest.

    Strings that are not valid PEP 508 requirements are dropped (pip in the guest
    will refuse them the same way, as the package's failure); markers are applied
    for the guest and a self-reference's extras followed (`requirements_for`).
    """
    if not isinstance(requires_dist, list):
        return []
    valid: list[str] = []
    for text in requires_dist[:500]:
        if not isinstance(text, str):
            continue
        try:
            Requirement(text)
        except InvalidRequirement:
            log.info("guest_requirement_invalid", requirement=text[:200])
            continue
        valid.append(text)
    try:
        return requirements_for(valid, environment, project, [""])
    except MetadataError:
        return []


def pip_command(
    requirements: Sequence[str],
    dest: Path,
    target: GuestTarget,
    pip: PipOptions,
    *,
    no_deps: bool = False,
) -> list[str]:
    """The argv of ``pip download`` for ``requirements`` (already marker-free)."""
    argv = [
        pip.python or sys.executable,
        *("-m", "pip", "download", "--only-binary=:all:"),
        *(["--no-deps"] if no_deps else []),
        *("--python-version", target.python_version),
        *("--implementation", "cp", "--abi", target.abi),
    ]
    for platform in [*target.platforms(), "any"]:
        argv += ["--platform", platform]
    argv += ["--dest", str(dest), "--progress-bar", "off", "--no-input"]
    argv += ["--disable-pip-version-check"]
    if pip.index_url is not None:
        argv += ["--index-url", pip.index_url]
    argv += [*pip.args, "--", *requirements]
    return argv


def _resolution_key(requirements: Sequence[str], target: GuestTarget, pip: PipOptions) -> str:
    material = json.dumps(
        {
            "requirements": sorted(requirements),
            "python": target.python_version,
            "platform": target.platform,
            "index": pip.index_url,
            "args": list(pip.args),
            "pinned_by_uv": pins.needs_pins(target, pip, sys.version_info[:2]),
        },
        sort_keys=True,
    )
    return hashlib.sha256(material.encode()).hexdigest()


async def _run_pip(argv: list[str], pip: PipOptions) -> tuple[int, str]:
    """Run pip; (exit status, combined output). Kills pip on timeout or cancel."""
    status, output, _ = await run_tool(argv, pip)
    return status, output


def _failure_reason(output: str) -> str:
    errors = [line for line in output.splitlines() if line.startswith("ERROR:")]
    reason = "\n".join(errors) if errors else output.strip()
    return reason[-_REASON_BYTES:]


async def download_wheels(
    requirements: Sequence[str],
    *,
    wheelhouse: Path,
    cache_dir: Path,
    python_version: str,
    platform: str,
    pip: PipOptions | None = None,
) -> list[Path]:
    """Wheels of ``requirements`` and their dependencies for the guest, in ``wheelhouse``.

    Requirements whose markers do not hold in the guest are dropped first. Returns the
    wheel paths (empty when nothing applies). Raises `DependencyUnavailable` with pip's
    message when some requirement has no wheel for the guest, or pip times out. On
    failure or cancel pip is killed and its scratch directory removed; wheels already
    placed in ``wheelhouse`` stay (the job directory is thrown away as a whole).
    """
    pip = pip or PipOptions()
    target = GuestTarget(python_version, platform)
    applicable = for_guest(list(requirements), target.marker_environment())
    args = [pip_argument(r) for r in applicable]
    if not args:
        return []
    cache = BlobCache(cache_dir)
    key = _resolution_key(args, target, pip)
    cached = await asyncio.to_thread(cache.load_resolution, key, pip.resolution_ttl)
    if cached is not None:
        log.debug("wheelhouse_cache_hit", requirements=args, wheels=len(cached))
        for entry in cached:
            await cache.place(entry.sha256, wheelhouse / entry.filename)
        return [wheelhouse / entry.filename for entry in cached]

    scratch = wheelhouse.parent / f".pip-{uuid.uuid4().hex}"
    try:
        await asyncio.to_thread(scratch.mkdir, parents=True)
        try:
            status, output = await _download(args, scratch, target, pip)
        except TimeoutError:
            raise DependencyUnavailable(args, f"pip timed out after {pip.timeout:g}s") from None
        if status != 0:
            failed = _NOT_FOUND.findall(output)
            raise DependencyUnavailable(failed or args, _failure_reason(output))
        return await asyncio.to_thread(_adopt, scratch, wheelhouse, cache, key)
    finally:
        await asyncio.to_thread(shutil.rmtree, scratch, True)


async def _download(
    args: list[str], scratch: Path, target: GuestTarget, pip: PipOptions
) -> tuple[int, str]:
    """pip's download of ``args`` into ``scratch``: uv's pins when pip would misjudge
    markers (another Python minor), else, or when that fails, pip resolving alone."""
    if pins.needs_pins(target, pip, sys.version_info[:2]):
        pinned = await pins.guest_pins(args, target, pip)
        if pinned is not None:
            status, output = await _run_pip(
                pip_command(pinned, scratch, target, pip, no_deps=True), pip
            )
            if status == 0:
                log.debug("wheelhouse_pinned_by_uv", requirements=args, pins=pinned)
                return status, output
            log.info("uv_pins_refused_by_pip", pins=pinned, error=_failure_reason(output))
            await asyncio.to_thread(_empty, scratch)
    return await _run_pip(pip_command(args, scratch, target, pip), pip)


def _empty(folder: Path) -> None:
    """Remove what a failed pip run left in ``folder`` (its files only)."""
    for leftover in folder.iterdir():
        leftover.unlink()


def _adopt(scratch: Path, wheelhouse: Path, cache: BlobCache, key: str) -> list[Path]:
    """Store pip's downloads in the cache, place them in the wheelhouse, record them."""
    entries: list[CachedFile] = []
    paths: list[Path] = []
    wheelhouse.mkdir(parents=True, exist_ok=True)
    for path in sorted(scratch.iterdir()):
        if not path.name.endswith(".whl"):
            # --only-binary makes this impossible; refuse rather than ship it.
            raise DependencyUnavailable([path.name], "pip produced a non-wheel file")
        digest = cache.store_blocking(path)
        dest = wheelhouse / path.name
        path.replace(dest)
        entries.append(CachedFile(path.name, digest))
        paths.append(dest)
    cache.save_resolution(key, entries)
    return paths
