"""Build progress: numbered steps, a status line for long tools, and subprocess running."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TextIO

from slave.image_builder.errors import BuildError

#: How many lines of a failing tool's output a BuildError carries.
OUTPUT_TAIL_LINES = 40


class Progress:
    """Prints ``[i/n] step`` lines and, on a terminal, a one-line live status."""

    def __init__(self, total: int, stream: TextIO | None = None, *, quiet: bool = False) -> None:
        self.total = total
        self.index = 0
        self.stream = stream if stream is not None else sys.stderr
        self.quiet = quiet
        self._tty = self.stream.isatty()
        self._started = time.monotonic()
        self._step_started = self._started

    def step(self, title: str) -> None:
        """Start the next step."""
        self._clear()
        self.index += 1
        self._step_started = time.monotonic()
        if not self.quiet:
            print(f"[{self.index}/{self.total}] {title}", file=self.stream, flush=True)

    def status(self, text: str) -> None:
        """Show what a long step is doing now (only on a terminal: logs stay short)."""
        if self.quiet or not self._tty:
            return
        elapsed = time.monotonic() - self._step_started
        line = f"      {elapsed:5.0f}s {text}"[:100]
        print(f"\r\x1b[K{line}", end="", file=self.stream, flush=True)

    def bar(self, done: int, total: int, label: str = "") -> None:
        """A simple bar for steps with a known amount of work."""
        width = 30
        filled = width * done // max(total, 1)
        self.status(f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {label}")

    def done(self, summary: str) -> None:
        """The whole build (or one phase of it) finished."""
        self._clear()
        if not self.quiet:
            elapsed = time.monotonic() - self._started
            print(f"done in {elapsed:.0f}s: {summary}", file=self.stream, flush=True)

    def _clear(self) -> None:
        if self._tty and not self.quiet:
            print("\r\x1b[K", end="", file=self.stream, flush=True)


async def run_tool(
    name: str,
    step: str,
    argv: Sequence[str | Path],
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    on_line: Callable[[str], None] | None = None,
) -> str:
    """Run one build tool to completion and return its output (stdout and stderr merged).

    Raises :class:`BuildError` (with the output's tail) when it exits non-zero or
    cannot be started. On cancellation the tool is killed and reaped.
    """
    full_env = {**os.environ, "LC_ALL": "C", **(env or {})}
    try:
        proc = await asyncio.create_subprocess_exec(
            *(str(a) for a in argv),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=full_env,
            cwd=cwd,
        )
    except OSError as exc:
        raise BuildError(name, step, f"cannot run {argv[0]}: {exc}") from exc
    assert proc.stdout is not None
    tail: deque[str] = deque(maxlen=OUTPUT_TAIL_LINES)
    chunks: list[str] = []
    try:
        async for raw in proc.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            tail.append(line)
            chunks.append(line)
            if on_line is not None:
                on_line(line)
        rc = await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
            await asyncio.shield(proc.wait())
    if rc != 0:
        raise BuildError(name, step, f"{argv[0]} exited with {rc}", "\n".join(tail))
    return "\n".join(chunks)
