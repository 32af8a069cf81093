"""The host's package tools (pip, uv) run for the guest: their environment, and a run
with a deadline.

Both read only metadata and download wheels: no package code runs on the host. The
environment is the slave's own plus ``PipOptions.env``; with ``inherit_pip_env`` off
(hermetic tests) the inherited ``PIP_*`` and ``UV_*`` variables are dropped, so a
machine's ``PIP_FIND_LINKS`` or ``UV_INDEX_URL`` cannot leak in.
"""

from __future__ import annotations

import asyncio
import os

from slave.prepare.models import PipOptions

_TOOL_VARIABLES = ("PIP_", "UV_")


def tool_environment(pip: PipOptions) -> dict[str, str]:
    """The environment pip and uv run in (see the module docstring)."""
    inherited = {
        k: v
        for k, v in os.environ.items()
        if pip.inherit_pip_env or not k.startswith(_TOOL_VARIABLES)
    }
    return {**inherited, **pip.env}


async def run_tool(
    argv: list[str], pip: PipOptions, *, stdin: bytes | None = None, merge_stderr: bool = True
) -> tuple[int, str, str]:
    """Run ``argv`` within ``pip.timeout``: (exit status, stdout, stderr), stderr merged
    into stdout when ``merge_stderr`` (then ""). Killed on timeout (``TimeoutError``
    propagates) or cancel."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL if stdin is None else asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT if merge_stderr else asyncio.subprocess.PIPE,
        env=tool_environment(pip),
    )
    try:
        async with asyncio.timeout(pip.timeout):
            out, err = await proc.communicate(stdin)
    except BaseException:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise
    assert proc.returncode is not None
    return (
        proc.returncode,
        out.decode("utf-8", errors="replace"),
        (err or b"").decode("utf-8", errors="replace"),
    )
