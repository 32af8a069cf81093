"""Access to a running guest: SSH (asyncssh) over the VM's virtio-serial socket.

Only the image's own key is offered, only the image's host key is accepted
(``known_hosts`` pinned), and nothing from the user's ``~/.ssh`` (config, agent,
keys) is used. asyncssh errors are translated into :class:`GuestError`::

    SlaveError
     └── GuestError             anything that went wrong talking to the guest
          ├── GuestConnectError  SSH could not be established (timeout, host key, auth)
          ├── GuestTimeout       a command ran past its timeout (it was killed)
          └── GuestTransferError an SFTP upload failed
"""

from __future__ import annotations

import asyncio
import contextlib
import shlex
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

import asyncssh

from slave.errors import SlaveError
from slave.image_builder.manifest import Image
from slave.vm.errors import VMError
from slave.vm.machine import VM

#: Longest stdout line handed out by :meth:`Guest.stream`; longer ones are cut.
MAX_LINE = 64 << 10
#: Bytes of stderr a :class:`CommandStream` keeps (the last ones).
STDERR_TAIL = 64 << 10
#: Bytes of stdout/stderr :meth:`Guest.run` keeps per stream by default.
RUN_OUTPUT_CAP = 1 << 20
_READ_CHUNK = 32 << 10


class GuestError(SlaveError):
    """Talking to the guest failed."""


class GuestConnectError(GuestError):
    """SSH to the guest could not be established."""


class GuestTimeout(GuestError):
    """A guest command exceeded its timeout and was killed."""

    def __init__(self, command: str, timeout: float) -> None:
        super().__init__(f"guest command timed out after {timeout}s: {command}")
        self.command = command
        self.timeout = timeout


class GuestTransferError(GuestError):
    """Copying files into the guest failed."""


@dataclass(frozen=True, slots=True)
class CompletedCommand:
    """Result of :meth:`Guest.run`. ``exit_status`` is None when killed by a signal."""

    exit_status: int | None
    stdout: str
    stderr: str
    signal: str | None = None
    truncated: bool = False


def _command(cmd: str | Sequence[str]) -> str:
    return cmd if isinstance(cmd, str) else shlex.join(cmd)


class CommandStream:
    """A guest command whose stdout is read line by line as it arrives.

    ``async for line in guest.stream(cmd)`` starts the command and yields its
    stdout lines (without newline, cut at ``max_line``); afterwards
    :attr:`exit_status` (or :attr:`exit_signal`) is set. Stderr is drained
    concurrently, so the command never blocks on it, and its tail is kept in
    :attr:`stderr_tail`. The channel is closed when the iteration ends, fails or
    is abandoned (``async with stream:`` or :meth:`aclose` to stop early without
    waiting for garbage collection). Raises :class:`GuestTimeout` past ``timeout``.
    """

    def __init__(
        self, conn: asyncssh.SSHClientConnection, command: str, timeout: float | None,
        max_line: int,
    ) -> None:  # fmt: skip
        self._conn = conn
        self.command = command
        self._timeout = timeout
        self._max_line = max_line
        self.exit_status: int | None = None
        self.exit_signal: str | None = None
        self.stderr_tail = b""
        #: Lines longer than ``max_line`` (cut, the rest of the line dropped).
        self.cut_lines = 0
        self._iterator: AsyncGenerator[str, None] | None = None

    def __aiter__(self) -> AsyncIterator[str]:
        if self._iterator is not None:
            raise GuestError("a CommandStream can be iterated only once")
        self._iterator = self._iterate()
        return self._iterator

    async def aclose(self) -> None:
        """Stop early: close the command's channel (idempotent)."""
        if self._iterator is not None:
            await self._iterator.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _iterate(self) -> AsyncGenerator[str, None]:
        # The timeout is a deadline checked around each await here, never a scope
        # around ``yield``: the consumer's code runs while we are suspended there,
        # and must not be cancelled by a timeout it never entered.
        loop = asyncio.get_running_loop()
        deadline = None if self._timeout is None else loop.time() + self._timeout
        process: asyncssh.SSHClientProcess[bytes] | None = None
        stderr_task: asyncio.Task[None] | None = None
        splitter = _LineSplitter(self._max_line)
        try:
            async with asyncio.timeout_at(deadline):
                process = await self._conn.create_process(self.command, encoding=None)
            process.stdin.write_eof()
            stderr_task = asyncio.create_task(self._drain_stderr(process))
            while True:
                async with asyncio.timeout_at(deadline):
                    chunk = await process.stdout.read(_READ_CHUNK)
                lines = splitter.feed(chunk) if chunk else splitter.end()
                self.cut_lines = splitter.cut
                for line in lines:
                    yield line
                if not chunk:
                    break
            async with asyncio.timeout_at(deadline):
                await stderr_task
                result = await process.wait()
        except TimeoutError:
            raise GuestTimeout(self.command, self._timeout or 0.0) from None
        except (asyncssh.Error, OSError) as exc:
            raise GuestError(f"guest command failed: {self.command}: {exc}") from exc
        finally:
            if process is not None:
                process.close()
            if stderr_task is not None and not stderr_task.done():
                stderr_task.cancel()
                await asyncio.wait([stderr_task])
        self.exit_status = result.exit_status if result.exit_signal is None else None
        self.exit_signal = result.exit_signal[0] if result.exit_signal else None

    async def _drain_stderr(self, process: asyncssh.SSHClientProcess[bytes]) -> None:
        tail = bytearray()
        try:
            with contextlib.suppress(asyncssh.Error, OSError):
                while chunk := await process.stderr.read(_READ_CHUNK):
                    tail += chunk
                    del tail[:-STDERR_TAIL]
        finally:
            self.stderr_tail = bytes(tail)


class _LineSplitter:
    """Bytes in, whole lines out (decoded, without newline); lines past ``max_line`` are cut."""

    def __init__(self, max_line: int) -> None:
        self._max_line = max_line
        self._buf = bytearray()
        self._cutting = False  # inside an over-long line: drop until its newline
        #: Lines that were cut.
        self.cut = 0

    def feed(self, chunk: bytes) -> list[str]:
        """The lines ``chunk`` completes (and the cut start of an over-long one)."""
        out: list[str] = []
        self._buf += chunk
        while (nl := self._buf.find(b"\n")) >= 0:
            line = bytes(self._buf[:nl])
            del self._buf[: nl + 1]
            if self._cutting:
                self._cutting = False
                continue
            if len(line) > self._max_line:
                self.cut += 1
                line = line[: self._max_line]
            out.append(line.decode(errors="replace"))
        if len(self._buf) > self._max_line and not self._cutting:
            self.cut += 1
            out.append(bytes(self._buf[: self._max_line]).decode(errors="replace"))
            self._cutting = True
        if self._cutting:
            self._buf.clear()
        return out

    def end(self) -> list[str]:
        """The last line, if the output did not end with a newline."""
        if self._buf and not self._cutting:
            return [self._buf.decode(errors="replace")]
        return []


class Guest:
    """An SSH session to a VM's guest as root. Create with :meth:`connect`."""

    def __init__(self, conn: asyncssh.SSHClientConnection) -> None:
        self._conn = conn

    @classmethod
    async def connect(cls, vm: VM, image: Image, *, timeout: float = 120.0) -> Guest:
        """Open SSH over ``vm``'s virtio-serial socket, pinned to the image's keys.

        On a cold boot the guest's sshd only answers once booted: the handshake
        simply waits (QEMU buffers our bytes) up to ``timeout``. Raises
        :class:`GuestConnectError`; nothing is left open on failure or cancel.
        """
        try:
            key = asyncssh.read_private_key(image.client_key)
            host_key = asyncssh.import_public_key(image.host_key)
        except (OSError, asyncssh.KeyImportError) as exc:
            raise GuestConnectError(f"image {image.name}: bad SSH key files: {exc}") from exc
        try:
            sock = vm.connect_ssh()
        except VMError as exc:
            raise GuestConnectError(str(exc)) from exc
        try:
            async with asyncio.timeout(timeout):
                conn = await asyncssh.connect(
                    sock=sock,
                    host="pyti-guest",
                    username="root",
                    client_keys=[key],
                    known_hosts=([host_key], [], []),
                    config=[],
                    agent_path=None,
                    preferred_auth="publickey",
                    kex_algs=["curve25519-sha256"],
                    encryption_algs=["aes128-gcm@openssh.com"],
                    compression_algs=["none"],
                    keepalive_interval=0,
                    # asyncssh's own default (120 s) would cut a slow cold boot short
                    login_timeout=timeout,
                )
        except TimeoutError:
            sock.close()
            raise GuestConnectError(f"guest SSH did not answer within {timeout}s") from None
        except (asyncssh.Error, OSError) as exc:
            sock.close()
            raise GuestConnectError(f"guest SSH failed: {exc}") from exc
        except BaseException:
            sock.close()
            raise
        return cls(conn)

    async def run(
        self,
        cmd: str | Sequence[str],
        *,
        timeout: float | None = 60.0,
        input: bytes | None = None,
        max_output: int = RUN_OUTPUT_CAP,
    ) -> CompletedCommand:
        """Run ``cmd`` (a shell string or an argv) and collect its output (capped).

        Raises :class:`GuestTimeout` (the command's channel is closed) or
        :class:`GuestError`; a non-zero exit is a result, not an error.
        """
        command = _command(cmd)
        try:
            process = await self._conn.create_process(command, encoding=None)
        except (asyncssh.Error, OSError) as exc:
            raise GuestError(f"cannot start guest command {command}: {exc}") from exc
        try:
            async with asyncio.timeout(timeout):
                if input is not None:
                    process.stdin.write(input)
                process.stdin.write_eof()
                out, err = await asyncio.gather(
                    _read_capped(process.stdout, max_output),
                    _read_capped(process.stderr, max_output),
                )
                result = await process.wait()
        except TimeoutError:
            raise GuestTimeout(command, timeout or 0.0) from None
        except (asyncssh.Error, OSError) as exc:
            raise GuestError(f"guest command failed: {command}: {exc}") from exc
        finally:
            process.close()
        return CompletedCommand(
            exit_status=result.exit_status if result.exit_signal is None else None,
            stdout=out[0].decode(errors="replace"),
            stderr=err[0].decode(errors="replace"),
            signal=result.exit_signal[0] if result.exit_signal else None,
            truncated=out[1] or err[1],
        )

    def stream(
        self, cmd: str | Sequence[str], *, timeout: float | None = None, max_line: int = MAX_LINE
    ) -> CommandStream:
        """``async for line in guest.stream(cmd)``: see :class:`CommandStream`."""
        return CommandStream(self._conn, _command(cmd), timeout, max_line)

    async def put(
        self, local_paths: Sequence[Path], remote_dir: str, *, timeout: float | None = 300.0
    ) -> None:
        """Copy files into ``remote_dir`` (created if needed) over SFTP.

        Raises :class:`GuestTransferError` (also on timeout).
        """
        try:
            async with asyncio.timeout(timeout), self._conn.start_sftp_client() as sftp:
                await sftp.makedirs(remote_dir, exist_ok=True)
                await sftp.put([str(p) for p in local_paths], remote_dir)
        except TimeoutError:
            raise GuestTransferError(f"upload to {remote_dir} timed out after {timeout}s") from None
        except (asyncssh.Error, OSError) as exc:
            raise GuestTransferError(f"upload to {remote_dir} failed: {exc}") from exc

    async def close(self) -> None:
        """Close the SSH connection (the guest's sshd exits; its waiter restarts)."""
        self._conn.close()
        with contextlib.suppress(asyncssh.Error, OSError):
            await self._conn.wait_closed()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


async def _read_capped(reader: asyncssh.SSHReader[bytes], cap: int) -> tuple[bytes, bool]:
    """Read to EOF, keeping the first ``cap`` bytes; (data, whether some were dropped)."""
    data = bytearray()
    dropped = False
    while chunk := await reader.read(_READ_CHUNK):
        room = cap - len(data)
        data += chunk[:room]
        dropped = dropped or len(chunk) > room
    return bytes(data), dropped
