"""Guest command streams against a fake SSH connection: lines, cuts, timeouts, closing."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, cast

import asyncssh
import pytest

from slave.vm.guest import CommandStream, GuestTimeout


class _Reader:
    """A stream of scripted chunks; ``None`` in the script waits forever."""

    def __init__(self, chunks: Sequence[bytes | None]) -> None:
        self._chunks = list(chunks)

    async def read(self, n: int) -> bytes:
        if not self._chunks:
            return b""
        chunk = self._chunks.pop(0)
        if chunk is None:
            await asyncio.Event().wait()
        return chunk or b""


class _Stdin:
    def write_eof(self) -> None:
        pass


class _Result:
    exit_status = 0
    exit_signal = None


class _Process:
    def __init__(self, stdout: Sequence[bytes | None]) -> None:
        self.stdin = _Stdin()
        self.stdout = _Reader(stdout)
        self.stderr = _Reader([b"warn\n"])
        self.closed = False

    async def wait(self) -> _Result:
        return _Result()

    def close(self) -> None:
        self.closed = True


class _Conn:
    """The one asyncssh connection method a CommandStream calls."""

    def __init__(self, stdout: Sequence[bytes | None]) -> None:
        self.process = _Process(stdout)

    async def create_process(self, command: str, **kw: Any) -> _Process:
        return self.process


def _stream(conn: _Conn, timeout: float | None = None, max_line: int = 100) -> CommandStream:
    return CommandStream(cast(asyncssh.SSHClientConnection, conn), "cmd", timeout, max_line)


async def test_lines_are_split_cut_and_the_exit_status_set() -> None:
    """Lines arrive without newlines across chunks; over-long ones are cut and counted."""
    conn = _Conn([b"one\ntw", b"o\n" + b"x" * 150 + b"\nlast"])
    stream = _stream(conn, max_line=100)
    lines = [line async for line in stream]
    assert lines == ["one", "two", "x" * 100, "last"]
    assert stream.cut_lines == 1
    assert stream.exit_status == 0
    assert stream.stderr_tail == b"warn\n"
    assert conn.process.closed


async def test_timeout_while_the_consumer_works_is_raised_at_the_next_read() -> None:
    """A stream's timeout never cancels the consumer's code: it raises GuestTimeout on reading."""
    conn = _Conn([b"first\n", None])
    stream = _stream(conn, timeout=0.2)
    seen = []
    with pytest.raises(GuestTimeout):
        async for line in stream:
            await asyncio.sleep(0.4)  # past the deadline: must not be cancelled
            seen.append(line)
    assert seen == ["first"]
    assert conn.process.closed


async def test_closing_early_closes_the_channel() -> None:
    """Leaving the iteration early (async with) closes the command's channel."""
    conn = _Conn([b"a\n", None])
    async with _stream(conn) as stream:
        async for line in stream:
            assert line == "a"
            break
    assert conn.process.closed
