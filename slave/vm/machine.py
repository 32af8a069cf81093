"""One job VM: QEMU started by us, controlled over QMP, always torn down.

``VM.start`` makes a fresh qcow2 overlay in a directory of its own, then either
restores the image's RAM snapshot (``-incoming fd:N`` from the saved state,
then ``cont``) or boots the kernel directly. QMP runs over a socketpair whose
other end QEMU inherits, so there is no socket path to race for. Every wait on
QEMU has a timeout. ``stop`` (also run by ``__aexit__``, by a failed ``start``
and on cancellation) sends ``quit``, kills QEMU after a grace period and
deletes the VM's directory (overlay, SSH socket, console log).

States::

    STARTING ──▶ RUNNING ──▶ STOPPING ──▶ STOPPED
        └──────────────────────▲ (start failed or was cancelled)

Teardown, at any point of a start, first does what cannot wait (kill QEMU,
shut the QMP socket down: :mod:`slave.vm.qmp_channel`, remove the directory),
then waits for what that ended (the QMP handshake or connection, the console
reader, QEMU's exit). It finishes even if cancelled meanwhile (each step is
bounded once QEMU is killed), then re-raises the cancellation.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import os
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import Awaitable
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import structlog
from qemu.qmp import QMPClient, QMPError

from slave.image_builder.manifest import Image, Snapshot
from slave.vm.accel import Accel
from slave.vm.argv import KERNEL_CMDLINE, MACHINE, QemuSpec, die_with_parent, qemu_argv
from slave.vm.console import Console
from slave.vm.disk import create_overlay, make_vm_dir
from slave.vm.errors import VMError
from slave.vm.qmp_channel import QMPChannel
from slave.vm.qmp_events import BoundedListener, DiskErrorWatch

log = structlog.get_logger(__name__)

#: AF_UNIX paths are limited to 108 bytes, including the terminating NUL.
_SUN_PATH_MAX = 107
#: QMP events that tell why the guest ended: a guest poweroff or reset (a kernel panic
#: with ``panic=-1`` resets, and ``-no-reboot`` turns that into an exit), a signal to QEMU.
END_EVENTS = frozenset({"SHUTDOWN", "GUEST_PANICKED"})
#: Seconds :meth:`VM.death` waits for QEMU's exit and its last QMP events.
DEATH_WAIT = 1.0


class VMState(enum.Enum):
    """Life cycle of a :class:`VM`."""

    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"


_TRANSITIONS: dict[VMState, set[VMState]] = {
    VMState.STARTING: {VMState.RUNNING, VMState.STOPPING},
    VMState.RUNNING: {VMState.STOPPING},
    VMState.STOPPING: {VMState.STOPPED},
    VMState.STOPPED: set(),
}


class VM:
    """A running QEMU guest. Create with :meth:`start`; use as an async context manager."""

    def __init__(
        self,
        image: Image,
        vm_dir: Path,
        accel: Accel,
        memory_mb: int,
        cpus: int,
        keep_disk: Path | None = None,
    ) -> None:
        self.image = image
        self.dir = vm_dir
        self.accel = accel
        self.memory_mb = memory_mb
        self.cpus = cpus
        #: The guest's writable disk: a throw-away overlay unless ``keep_disk`` was given.
        self.overlay = keep_disk or vm_dir / "overlay.qcow2"
        self._keep_disk = keep_disk is not None
        self.ssh_path = vm_dir / "ssh.sock"
        #: Where the SSH socket lives when the VM dir is too deep for a Unix
        #: socket path (108 bytes): a private (0700) directory in the temp dir.
        self._sock_dir: Path | None = None
        if len(os.fsencode(self.ssh_path)) > _SUN_PATH_MAX:
            self._sock_dir = Path(tempfile.mkdtemp(prefix="pyti-vm-"))
            self.ssh_path = self._sock_dir / "ssh.sock"
        self.console_log = vm_dir / "console.log"
        #: Whether this VM came from a RAM snapshot (else it was booted cold).
        self.restored = False
        #: Seconds from the start of :meth:`start` until QEMU ran the guest.
        self.start_seconds = 0.0
        self._state = VMState.STARTING
        self._proc: asyncio.subprocess.Process | None = None
        self._qmp: QMPClient | None = None
        self._channel: QMPChannel | None = None
        self._console = Console(self.console_log)
        self._stopped = asyncio.Event()
        #: QEMU's own reports of the guest's end, kept from launch to teardown.
        self._ends = BoundedListener(set(END_EVENTS))
        #: QEMU's reports of a failed write to the guest's disk (the slave's disk full).
        self._disk_errors = DiskErrorWatch()

    def __repr__(self) -> str:
        pid = self._proc.pid if self._proc else None
        return f"<VM {self.image.name} {self.accel.value} pid={pid} {self._state.value}>"

    @property
    def state(self) -> VMState:
        """Where the VM is in its life cycle."""
        return self._state

    def _set_state(self, new: VMState) -> None:
        if new not in _TRANSITIONS[self._state]:
            raise VMError(f"VM cannot go from {self._state.value} to {new.value}")
        self._state = new

    # ------------------------------------------------------------------ start

    @classmethod
    async def start(
        cls,
        image: Image,
        work_dir: Path,
        accel: Accel,
        *,
        snapshot: bool = True,
        memory_mb: int | None = None,
        cpus: int | None = None,
        timeout: float = 60.0,
        keep_disk: Path | None = None,
    ) -> VM:
        """Start a VM on a fresh overlay; restore the snapshot when one fits, else boot.

        A snapshot fits when it was taken under ``accel`` with the same memory and
        CPU count; if restoring it fails anyway (e.g. another QEMU version), the VM
        is booted cold instead. Returns once the guest runs (SSH may still be
        starting on a cold boot: :class:`~slave.vm.guest.Guest` waits for it).
        ``keep_disk`` (for the snapshot builder) puts the overlay at that path and
        keeps it after :meth:`stop`.

        Raises :class:`VMError`. On any failure or cancellation QEMU is killed and
        the VM's directory deleted before this returns.
        """
        memory_mb = memory_mb or image.memory_mb
        cpus = cpus or image.cpus
        snap = image.snapshot(accel.value, accel.cpu_model) if snapshot else None
        if snap is not None and (
            (snap.memory_mb, snap.cpus) != (memory_mb, cpus)
            or (snap.cmdline, snap.machine) != (KERNEL_CMDLINE, MACHINE)
        ):
            snap = None
        if snap is not None and keep_disk is None:
            vm = await cls._start_once(image, work_dir, accel, memory_mb, cpus, snap, timeout)
            if vm is not None:
                return vm
        started = await cls._start_once(
            image, work_dir, accel, memory_mb, cpus, None, timeout, keep_disk
        )
        assert started is not None
        return started

    @classmethod
    async def _start_once(
        cls,
        image: Image,
        work_dir: Path,
        accel: Accel,
        memory_mb: int,
        cpus: int,
        snap: Snapshot | None,
        timeout: float,
        keep_disk: Path | None = None,
    ) -> VM | None:
        """One attempt; ``None`` when a snapshot restore failed (cold boot may still work)."""
        t0 = time.monotonic()
        vm_dir = Path(await asyncio.to_thread(make_vm_dir, work_dir))
        vm = cls(image, vm_dir, accel, memory_mb, cpus, keep_disk)
        try:
            await create_overlay(snap.disk if snap else image.disk, vm.overlay)
            async with asyncio.timeout(timeout):
                await vm._launch(snap)
            vm.restored = snap is not None
        except BaseException as exc:
            await vm._teardown(grace=0.0)
            if snap is not None and isinstance(exc, VMError | TimeoutError):
                log.warning("vm_restore_failed", image=image.name, error=str(exc))
                return None
            if isinstance(exc, TimeoutError):
                raise VMError(f"QEMU did not start within {timeout}s", vm.console_tail()) from exc
            raise
        vm.start_seconds = time.monotonic() - t0
        vm._set_state(VMState.RUNNING)
        log.info(
            "vm_restored" if vm.restored else "vm_booted",
            image=image.name,
            accel=accel.value,
            seconds=round(vm.start_seconds, 3),
        )
        return vm

    async def _launch(self, snap: Snapshot | None) -> None:
        qmp_ours, qmp_theirs = socket.socketpair()
        con_ours, con_theirs = socket.socketpair()
        # Our ends belong to the VM from here: teardown closes them, whatever happens next.
        self._channel = QMPChannel(f"pyti-{self.image.name}", qmp_ours)
        self._qmp = self._channel.client
        self._console.start(con_ours)
        try:
            state_fd = os.open(snap.state, os.O_RDONLY | os.O_CLOEXEC) if snap else None
        except OSError as exc:  # e.g. the image was rebuilt since it was loaded
            qmp_theirs.close()
            con_theirs.close()
            raise VMError(f"cannot open the snapshot state: {exc}") from exc
        try:
            spec = QemuSpec(
                accel=self.accel,
                memory_mb=self.memory_mb,
                cpus=self.cpus,
                kernel=self.image.kernel,
                initrd=self.image.initrd,
                disk=self.overlay,
                ssh_socket=self.ssh_path,
                qmp_fd=qmp_theirs.fileno(),
                console_fd=con_theirs.fileno(),
                incoming_fd=state_fd,
                name=f"pyti-{self.image.name}",
                disk_cache="writeback" if self._keep_disk else "unsafe",
            )
            fds = [qmp_theirs.fileno(), con_theirs.fileno()]
            fds += [state_fd] if state_fd is not None else []
            with self.console_log.open("wb") as errlog:  # QEMU's own errors lead the log
                self._proc = await asyncio.create_subprocess_exec(
                    *die_with_parent(qemu_argv(spec)),
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=errlog,
                    pass_fds=fds,
                    cwd=self.dir,
                )
        finally:
            qmp_theirs.close()
            con_theirs.close()
            if state_fd is not None:
                os.close(state_fd)
        self._qmp.register_listener(self._ends)
        self._qmp.register_listener(self._disk_errors)
        listener = BoundedListener({"MIGRATION", "RESUME", "STOP", "SHUTDOWN"})
        self._qmp.register_listener(listener)
        try:
            await self._connect_qmp(self._channel)
            if snap is not None:
                await self._finish_incoming(listener)
        finally:
            self._qmp.remove_listener(listener)

    async def _connect_qmp(self, channel: QMPChannel) -> None:
        """The QMP handshake, unless QEMU exits first (:class:`VMError`).

        If cancelled, the handshake goes on (it is not ours to cancel): teardown ends it.
        """
        assert self._proc is not None
        try:
            await self._until_exit(channel.handshake(), "QMP connection")
        except (QMPError, OSError, EOFError, AssertionError) as exc:
            # AssertionError: qemu.qmp 0.0.x asserts in its own cleanup when
            # the greeting is malformed; to us it is just a broken QEMU.
            # Usually QEMU is exiting: give it a moment so its own message is logged.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await self._proc.wait()
            raise VMError(
                f"QMP connection failed ({exc!r}); QEMU exit code "
                f"{self._proc.returncode}: {self._qemu_stderr()}",
                self.console_tail(),
            ) from exc

    async def _until_exit(self, aw: Awaitable[Any], what: str) -> Any:
        """Await ``aw`` unless QEMU exits first (then :class:`VMError`).

        ``aw`` is cancelled if QEMU exits first or we are cancelled; wrap it in
        :func:`asyncio.shield` if it must not be.
        """
        assert self._proc is not None
        task = asyncio.ensure_future(aw)
        exited = asyncio.ensure_future(self._proc.wait())
        try:
            await asyncio.wait({task, exited}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            exited.cancel()
            if not task.done():
                task.cancel()
            # Both end at once once cancelled; if we are cancelled again meanwhile,
            # they still end on their own (a cancelled task reports nothing).
            await asyncio.wait({task, exited})
            if not task.cancelled():
                task.exception()  # retrieved: re-raised below unless a cancellation goes first
        if not task.cancelled():
            return task.result()
        raise VMError(
            f"QEMU exited with {self._proc.returncode} during {what}: {self._qemu_stderr()}",
            self.console_tail(),
        )

    def _qemu_stderr(self) -> str:
        """The start of console.log, where QEMU's own error messages go."""
        try:
            with self.console_log.open("rb") as f:
                return f.read(2048).decode(errors="replace").strip()
        except OSError:
            return ""

    async def _finish_incoming(self, listener: BoundedListener) -> None:
        """Wait for the restored RAM state to be loaded, then resume the guest."""
        while True:
            status = (await self.execute("query-status"))["status"]
            if status == "running":
                return
            if status in ("paused", "postmigrate", "prelaunch"):
                await self.execute("cont")
                return
            if status != "inmigrate":
                raise VMError(f"snapshot restore ended in state {status!r}", self.console_tail())
            await self._until_exit(listener.get(), "snapshot restore")

    # ----------------------------------------------------------------- console

    def console_tail(self) -> str:
        """The last bytes the guest wrote to its serial console."""
        return self._console.tail()

    @property
    def console_dropped(self) -> int:
        """Console bytes beyond the cap that were read and not logged."""
        return self._console.dropped

    # -------------------------------------------------------------------- use

    async def execute(
        self, command: str, arguments: dict[str, Any] | None = None, *, timeout: float = 10.0
    ) -> Any:
        """One QMP command with a timeout; :class:`VMError` on failure or timeout."""
        if self._qmp is None:
            raise VMError("QMP is not connected")
        try:
            async with asyncio.timeout(timeout):
                return await self._qmp.execute(command, arguments)
        except TimeoutError as exc:
            raise VMError(f"QMP {command} timed out after {timeout}s") from exc
        except (QMPError, OSError, EOFError) as exc:
            raise VMError(f"QMP {command} failed: {exc}", self.console_tail()) from exc

    def connect_ssh(self) -> socket.socket:
        """A new connected socket to the guest's SSH port (a virtio-serial chardev)."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(str(self.ssh_path))
        except OSError as exc:
            sock.close()
            raise VMError(f"cannot connect to the guest's SSH socket: {exc}") from exc
        return sock

    async def wait_ssh_port_open(
        self, timeout: float, *, after: Awaitable[Any] | None = None
    ) -> None:
        """Wait until a guest process opens the SSH port (QMP ``VSERPORT_CHANGE``).

        The guest's waiter opens it when it is ready for the next session.
        ``after`` (e.g. closing the current session) is awaited once we listen,
        so the event cannot be missed. Raises TimeoutError or :class:`VMError`.
        """
        assert self._qmp is not None
        listener = BoundedListener({"VSERPORT_CHANGE"})
        with self._qmp.listen(listener):
            if after is not None:
                await after
            async with asyncio.timeout(timeout):
                while True:
                    event = await self._until_exit(listener.get(), "wait for the SSH port")
                    if event["data"].get("open"):
                        return

    async def save_state(self, fd: int, *, timeout: float = 120.0) -> None:
        """Pause the guest and write its RAM and device state to ``fd`` (a file).

        Through QMP ``getfd`` + ``migrate fd:``: the sandbox forbids ``exec:``.
        The guest stays paused afterwards. Raises :class:`VMError`.
        """
        assert self._qmp is not None
        await self.execute("stop")
        await self.execute("migrate-set-parameters", {"max-bandwidth": 1 << 40})
        self._qmp.send_fd_scm(fd)
        await self.execute("getfd", {"fdname": "pyti-state"})
        listener = BoundedListener({"MIGRATION"})
        with self._qmp.listen(listener):
            await self.execute("migrate", {"uri": "fd:pyti-state"})
            async with asyncio.timeout(timeout):
                while True:
                    status = (await self.execute("query-migrate")).get("status")
                    if status == "completed":
                        return
                    if status in ("failed", "cancelled"):
                        raise VMError(f"saving the guest state {status}", self.console_tail())
                    await self._until_exit(listener.get(), "saving the guest state")

    async def death(self, wait: float = DEATH_WAIT) -> str | None:
        """Why QEMU ended under us, or None if it still runs after ``wait`` seconds.

        For a job that failed talking to its guest: the SSH socket's EOF often comes
        before our child watcher sees QEMU's exit, and QEMU's last QMP events (a
        ``SHUTDOWN`` with its reason, ``GUEST_PANICKED``) before the QMP EOF. Never raises.
        """
        proc, channel = self._proc, self._channel
        if proc is None or self._state is not VMState.RUNNING:
            return None
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait):
                await proc.wait()
                while channel is not None and channel.connected:  # noqa: ASYNC110
                    await asyncio.sleep(0.02)  # QMP reads its EOF after the last events
        code = proc.returncode
        if code is None:
            return None
        if code < 0:
            what = f"QEMU was killed by signal {-code} ({_signal_name(-code)})"
        else:
            what = f"QEMU exited with status {code}"
        events = self._ends.drain()
        if any(e["event"] == "GUEST_PANICKED" for e in events):
            what += ", the guest kernel panicked"
        reasons = [e.get("data", {}).get("reason") for e in events if e["event"] == "SHUTDOWN"]
        if reasons:
            what += f" (shutdown: {reasons[-1]})"
        return what

    async def disk_failed(self) -> str:
        """Returns (never raises) once QEMU reports a failed read or write on the guest's disk,
        with a line saying what failed: a full work dir pauses the guest."""
        return await self._disk_errors.failed()

    async def wait_exit(self) -> int:
        """Wait until QEMU exits (e.g. the guest powered off); its exit code."""
        assert self._proc is not None
        return await self._proc.wait()

    # --------------------------------------------------------------- teardown

    async def stop(self, grace: float = 5.0) -> None:
        """QMP ``quit``; SIGKILL after ``grace`` seconds; delete the VM's directory.

        Idempotent; concurrent callers wait for the first. If cancelled, QEMU is
        still killed and the directory removed before the cancellation propagates.
        """
        if self._state in (VMState.STOPPING, VMState.STOPPED):
            await self._stopped.wait()
            return
        await self._teardown(grace)

    async def _teardown(self, grace: float) -> None:
        self._set_state(VMState.STOPPING)
        proc, channel = self._proc, self._channel
        try:
            if (
                proc is not None
                and proc.returncode is None
                and channel is not None
                and channel.connected
                and grace > 0
            ):
                with contextlib.suppress(VMError, TimeoutError):
                    async with asyncio.timeout(grace):
                        await self.execute("quit", timeout=grace)
                        await proc.wait()
        finally:
            # Synchronous first: this part happens even if we are cancelled right here.
            if proc is not None and proc.returncode is None:
                proc.kill()
            if channel is not None:
                channel.abort()
            shutil.rmtree(self.dir, ignore_errors=True)
            if self._sock_dir is not None:
                shutil.rmtree(self._sock_dir, ignore_errors=True)
            self._set_state(VMState.STOPPED)
            try:
                await _to_the_end(self._reap(proc))
            finally:
                self._stopped.set()
            log.info("vm_stopped", image=self.image.name, exit_code=proc and proc.returncode)

    async def _reap(self, proc: asyncio.subprocess.Process | None) -> None:
        """Wait for what the synchronous teardown ended: QMP, console, QEMU."""
        if self._channel is not None:
            await self._channel.close()
        await self._console.close()
        if proc is not None:
            await proc.wait()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return "unknown"


async def _to_the_end(aw: Awaitable[None]) -> None:
    """Await ``aw`` to its end even if cancelled meanwhile; then re-raise the cancellation.

    For teardown whose every step is bounded: leaving half-way would leave a
    process, a task or a socket without an owner.
    """
    task = asyncio.ensure_future(aw)
    cancelled = False
    while not task.done():
        try:
            await asyncio.wait([task])
        except asyncio.CancelledError:
            cancelled = True
    task.result()
    if cancelled:
        raise asyncio.CancelledError
