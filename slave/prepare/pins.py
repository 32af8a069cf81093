"""Exact versions for the guest's Python, resolved by uv (``uv pip compile``).

``pip download --python-version X`` checks each candidate's Requires-Python against
the guest, but evaluates the markers of *transitive* dependencies against the
interpreter running pip. With the host on 3.11 and a 3.13 guest, a dependency such
as ``greenlet<3.0; python_version < "3.12"`` is taken, no cp313 wheel satisfies it,
and pip backtracks to an older release of the package that asked for it (httpbin
0.10.0 instead of 0.10.4, which no longer imports under the current werkzeug).

uv resolves for a target it is told (``--python-version``, ``--python-platform``)
without an interpreter of that version, binary wheels only: it reads metadata,
never builds or runs anything. Its output is a flat list of ``name==version`` pins,
which pip then downloads with ``--no-deps`` (pip keeps doing the download, the
machine's index configuration and the wheel-tag check). Any failure of uv returns
None and pip resolves alone, as before, so its error messages still name what
could not be had.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import structlog
from uv import find_uv_bin

from slave.prepare.models import GuestTarget, PipOptions
from slave.prepare.tools import run_tool

log = structlog.get_logger(__name__)

#: the newest manylinux glibc uv (≥ 0.8) names for ``--python-platform``; a newer
#: guest glibc is asked for as this one (it only narrows which wheels resolve).
UV_NEWEST_GLIBC = 40
_MANYLINUX = re.compile(r"^manylinux_(\d+)_(\d+)_(\w+)$")
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)$")


def uv_binary() -> str | None:
    """The uv executable installed with pyti (the ``uv`` wheel), None if it is missing."""
    try:
        return str(find_uv_bin())
    except FileNotFoundError:
        return None


def uv_platform(target: GuestTarget) -> str | None:
    """uv's ``--python-platform`` for the guest (``x86_64-manylinux_2_36``)."""
    match = _MANYLINUX.match(target.platform)
    if not match or match.group(1) != "2":
        return None
    glibc = min(int(match.group(2)), UV_NEWEST_GLIBC)
    return f"{match.group(3)}-manylinux_2_{glibc}"


def compile_command(uv: str, target: GuestTarget, pip: PipOptions, platform: str) -> list[str]:
    """The argv of ``uv pip compile`` reading requirements on stdin.

    No uv cache: the slave's disk is bounded by its own cache of wheels, and a
    resolution is itself cached (`wheelhouse`), so uv runs once per new requirement set.
    """
    argv = [
        uv,
        *("pip", "compile", "-", "--quiet", "--no-header", "--no-annotate"),
        *("--no-config", "--color", "never", "--no-progress"),
        # uv would fetch a Python of the target's version from GitHub first (retried
        # for ~10 s where only the package index is reachable); it needs none.
        "--no-python-downloads",
        *("--only-binary", ":all:"),
        *("--python-version", target.python_version, "--python-platform", platform),
        "--no-cache",
    ]
    if pip.index_url is not None:
        argv += ["--index-url", pip.index_url]
    return argv


def parse_pins(output: str) -> list[str] | None:
    """``name==version`` lines of uv's output; None if any line is something else."""
    pins: list[str] = []
    for raw in output.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not _PIN.match(line):
            return None
        pins.append(line)
    return pins or None


def needs_pins(target: GuestTarget, pip: PipOptions, host: tuple[int, int]) -> bool:
    """pip would judge transitive markers wrongly: it runs on another Python minor."""
    return pip.python is None and target.major_minor != host


async def guest_pins(
    requirements: Sequence[str], target: GuestTarget, pip: PipOptions
) -> list[str] | None:
    """Every wheel the guest needs for ``requirements``, pinned; None when uv cannot say.

    Runs within ``pip.timeout``, in pip's environment (`tool_environment`); killed on
    timeout or cancel (cancel propagates).
    """
    uv = uv_binary()
    platform = uv_platform(target)
    if uv is None or platform is None:
        return None
    argv = compile_command(uv, target, pip, platform)
    stdin = "\n".join(requirements).encode() + b"\n"
    try:
        status, out, err = await run_tool(argv, pip, stdin=stdin, merge_stderr=False)
    except TimeoutError:
        log.info("uv_pins_timeout", requirements=list(requirements), timeout=pip.timeout)
        return None
    if status != 0:
        log.info(
            "uv_pins_failed", requirements=list(requirements), status=status, error=err[-2000:]
        )
        return None
    pins = parse_pins(out)
    if pins is None:
        log.info("uv_pins_unreadable", output=out[:2000])
    return pins
