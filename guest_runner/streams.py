"""Reading a hostile command's output: lines cut at a limit, floods drained in bulk."""

from __future__ import annotations

import collections
from collections.abc import Iterator
from typing import IO

from guest_runner.budget import Budget

LINE_LIMIT = 4096  # bytes per output line; the rest is dropped and counted
TRACE_LINE_LIMIT = 16 * 1024  # an execve with 32 arguments of 256 bytes still fits
TAIL_BYTES = 64 * 1024  # stderr kept per command for tracebacks, even past the cap
DRAIN_CHUNK = 1 << 16


def iter_lines(stream: IO[bytes], limit: int) -> Iterator[tuple[bytes, int]]:
    """Yield (line without newline, bytes cut off it); a line never exceeds ``limit``."""
    while True:
        chunk = stream.readline(limit)
        if not chunk:
            return
        if chunk.endswith(b"\n") or len(chunk) < limit:
            yield chunk.rstrip(b"\n"), 0
            continue
        cut = 0
        while rest := stream.readline(limit):
            if rest.endswith(b"\n"):
                cut += len(rest) - 1
                break
            cut += len(rest)
        yield chunk, cut


def drain(stream: IO[bytes], tail: collections.deque[str], budget: Budget) -> None:
    """Past the output cap: count the rest of ``stream`` as dropped, keep only its tail.

    Line by line, a 1 GiB flood takes minutes of guest CPU under TCG; big reads
    take seconds. The tail still holds what a crash printed last (the traceback).
    """
    read = getattr(stream, "read1", stream.read)  # read1: what is there, no waiting for more
    last = b""
    dropped = 0
    while chunk := read(DRAIN_CHUNK):
        dropped += len(chunk)
        last = (last + chunk)[-TAIL_BYTES:]
    budget.drop_output(dropped)
    if last:
        tail.clear()
        tail.append(last.decode("utf-8", "replace"))
