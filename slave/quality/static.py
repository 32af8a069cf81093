"""Host-side indicators from a release's files, read as data only.

Synchronous and CPU-bound (decompression, parsing): call it through
`asyncio.to_thread`. It never imports or runs anything from the package, and a
hostile file never makes it raise: it becomes a `fail` indicator with the reason.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path

import structlog

from slave.quality.code import annotation_coverage, py_typed, source_paths
from slave.quality.contents import DistContents, read_contents, read_sources
from slave.quality.distribution import distribution_indicators
from slave.quality.indicator import Group, Indicator, Value
from slave.quality.metadata import (
    METADATA_IDS,
    Metadata,
    dependency_count,
    metadata_indicators,
)
from slave.quality.naming import parse_filename

log = structlog.get_logger(__name__)

_MAX_NAMES_SHOWN = 20


def static_indicators(
    files: Sequence[Path], *, unavailable: Sequence[str] | None = None
) -> list[Indicator]:
    """Metadata, distribution, code and install indicators of the release's `files`.

    `unavailable` is `PreparedRelease.unavailable` (requirements with no binary wheel
    for the guest); when None the `install.dependencies_unavailable` indicator is
    left out, because nothing is known about it.
    """
    dists = [read_contents(path) for path in files]
    md = _pick_metadata(dists)
    if md is not None and (name := md.get("Name")):
        # Old sdist names are ambiguous (`my-pkg-1.0`); the metadata name settles it.
        dists = [dataclasses.replace(d, dist=parse_filename(d.file.name, name)) for d in dists]
    names = [d.dist for d in dists if d.dist.kind != "other"]
    chosen = source_paths(dists)
    sources = read_sources(*chosen) if chosen is not None else None
    read_errors = [sources.error] if sources is not None and sources.error else []
    indicators = [
        *_guarded(METADATA_IDS, "metadata", lambda: metadata_indicators(md, names)),
        *_guarded(_DIST_IDS, "distribution", lambda: distribution_indicators(dists, read_errors)),
        *_guarded(("code.py_typed",), "code", lambda: [py_typed(dists)]),
        *_guarded(("code.annotations",), "code", lambda: [annotation_coverage(sources)]),
        *_guarded(("install.dependencies",), "install", lambda: [dependency_count(md)]),
    ]
    if unavailable is not None:
        indicators.append(unavailable_indicator(unavailable))
    return indicators


_DIST_IDS = (
    "distribution.archives_readable",
    "distribution.files",
    "distribution.wheel_kind",
    "distribution.sdist_tests",
    "distribution.wheel_matches_sdist",
    "distribution.stray_files",
)


def _pick_metadata(dists: Sequence[DistContents]) -> Metadata | None:
    # A wheel's METADATA is what installers use and is never dynamic: prefer it.
    for kind in ("wheel", "sdist"):
        for dist in dists:
            if dist.dist.kind == kind and dist.metadata is not None:
                return dist.metadata
    return None


def _guarded(
    ids: Sequence[str], group: Group, compute: Callable[[], list[Indicator]]
) -> list[Indicator]:
    """Run one stage; a bug tripped by odd input fails its indicators, not the job."""
    try:
        return compute()
    except Exception as exc:
        log.exception("quality_indicator_error", group=group, error=repr(exc))
        reason = f"could not be computed: {type(exc).__name__}"
        return [Indicator(ident, group, None, "fail", reason) for ident in ids]


def unavailable_indicator(unavailable: Sequence[str]) -> Indicator:
    """Requirements for which no binary wheel exists for the guest."""
    names: list[Value] = [str(n)[:100] for n in unavailable[:_MAX_NAMES_SHOWN]]
    if not unavailable:
        return Indicator(
            "install.dependencies_unavailable",
            "install",
            [],
            "pass",
            "a wheel exists for every dependency",
        )
    shown = ", ".join(str(n) for n in names[:5])
    return Indicator(
        "install.dependencies_unavailable",
        "install",
        names,
        "fail",
        f"{len(unavailable)} dependencies have no wheel for the guest: {shown}",
    )
