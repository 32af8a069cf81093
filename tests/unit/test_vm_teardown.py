"""VM start/stop against a fake QEMU: teardown always runs (quit, kill, files removed)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from slave.image_builder.manifest import (
    BASE_FILES,
    MANIFEST_FORMAT,
    Image,
    file_entries,
    write_manifest,
)
from slave.vm.accel import Accel
from slave.vm.argv import KERNEL_CMDLINE, MACHINE
from slave.vm.errors import VMError
from slave.vm.machine import VM, VMState

FAKE_QEMU = r"""
import json, os, socket, sys, time
mode = os.environ.get("FAKE_QEMU_MODE", "ok")
with open(os.environ["FAKE_QEMU_PIDFILE"], "w") as f:
    f.write(str(os.getpid()))
with open(os.environ["FAKE_QEMU_PIDFILE"] + ".argv", "w") as f:
    f.write(json.dumps(sys.argv))
if mode == "die":
    sys.stderr.write("fake-qemu: cannot open kernel\n")
    sys.exit(1)
fd = next(int(a.split("fd=")[1]) for a in sys.argv if a.startswith("socket,id=qmp,fd="))
sock = socket.socket(fileno=fd)
if mode == "silent":
    time.sleep(3600)
version = {"qemu": {"major": 7, "minor": 2, "micro": 0}, "package": "fake"}
sock.sendall(json.dumps({"QMP": {"version": version, "capabilities": []}}).encode() + b"\n")
if mode == "mute-after-greeting":
    time.sleep(3600)
# Like QEMU, parse a JSON stream: qemu.qmp does not end commands with a newline.
decoder, buf = json.JSONDecoder(), ""
while chunk := sock.recv(4096):
    buf += chunk.decode()
    while buf.strip():
        try:
            cmd, end = decoder.raw_decode(buf.lstrip())
        except ValueError:
            break
        buf = buf.lstrip()[end:]
        name, ident = cmd["execute"], cmd.get("id")
        if name == "quit" and mode == "ignore-quit":
            continue
        status = "inmigrate" if mode == "inmigrate" else "running"
        ret = {"status": status, "running": True} if name == "query-status" else {}
        sock.sendall(json.dumps({"return": ret, "id": ident}).encode() + b"\n")
        if name == "quit":
            sys.exit(0)
"""


@pytest.fixture
def fake_qemu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake qemu-system-x86_64 first on PATH; returns the file it writes its pid to."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    exe = bin_dir / "qemu-system-x86_64"
    exe.write_text(f"#!{sys.executable}\n{FAKE_QEMU}")
    exe.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    pidfile = tmp_path / "qemu.pid"
    monkeypatch.setenv("FAKE_QEMU_PIDFILE", str(pidfile))
    return pidfile


@pytest.fixture
def image(tmp_path: Path) -> Image:
    """A tiny image whose disk is a real (empty) qcow2, so real qemu-img can make overlays."""
    d = tmp_path / "images" / "demo"
    d.mkdir(parents=True)
    for f in BASE_FILES:
        (d / f).write_text(f"{f}\n")
    (d / "disk.qcow2").unlink()
    qemu_img = ["qemu-img", "create", "-q", "-f", "qcow2", str(d / "disk.qcow2"), "16M"]
    subprocess.run(qemu_img, check=True)
    files = file_entries(d)
    write_manifest(
        d,
        {
            "format": MANIFEST_FORMAT, "name": "demo", "recipe_hash": "0" * 64, "built_at": 0.0,
            "python_version": "3.11.2", "kernel_version": "test",
            "vm": {"memory_mb": 128, "cpus": 1, "disk_gib": 1},
            "sizes": {}, "files": files, "bait": {},
            "snapshots": {"tcg-max": {
                "state": "snapshot-tcg-max.state", "disk": "disk.qcow2", "memory_mb": 128,
                "cpus": 1, "qemu_version": "7.2.0", "machine": MACHINE, "cmdline": KERNEL_CMDLINE,
            }},
        },
    )  # fmt: skip
    return Image.load(tmp_path / "images", "demo")


def _wait_for_file(path: Path, limit: float = 30.0) -> None:
    deadline = time.monotonic() + limit
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


def _argv(pidfile: Path) -> list[str]:
    """The argv the fake QEMU was started with."""
    argv: list[str] = json.loads(Path(f"{pidfile}.argv").read_text())
    return argv


def _alive(pidfile: Path) -> bool:
    pid = int(pidfile.read_text())
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie not reaped yet still answers kill(0): look at its state.
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.split(")")[1].split()[0] != "Z"


async def test_stop_quits_and_removes_the_vm_directory(
    fake_qemu: Path, image: Image, tmp_path: Path
) -> None:
    """A started VM runs on an overlay in its own dir; stop() quits QEMU and deletes the dir."""
    vm = await VM.start(image, tmp_path / "work", Accel.TCG, snapshot=False)
    assert "running" in repr(vm)
    assert vm.overlay.is_file()
    assert not vm.restored
    await vm.stop()
    assert vm.state is VMState.STOPPED
    assert not vm.dir.exists()
    assert not _alive(fake_qemu)
    await vm.stop()  # idempotent


async def test_qemu_ignoring_quit_is_killed_after_grace(
    fake_qemu: Path, image: Image, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If QEMU does not quit within the grace period it is killed; the dir still goes."""
    monkeypatch.setenv("FAKE_QEMU_MODE", "ignore-quit")
    async with await VM.start(image, tmp_path / "work", Accel.TCG) as vm:
        pass
    assert vm.state is VMState.STOPPED
    assert not _alive(fake_qemu)
    assert not vm.dir.exists()


async def test_qemu_dying_at_start_is_a_vm_error_with_its_message(
    fake_qemu: Path, image: Image, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """QEMU exiting at start raises VMError quoting QEMU's stderr, and leaves no files."""
    monkeypatch.setenv("FAKE_QEMU_MODE", "die")
    with pytest.raises(VMError, match="cannot open kernel"):
        await VM.start(image, tmp_path / "work", Accel.TCG)
    assert list((tmp_path / "work").iterdir()) == []


async def test_cancelled_start_kills_qemu_and_cleans_up(
    fake_qemu: Path, image: Image, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cancelling start() while QEMU hangs kills QEMU and removes the VM's directory."""
    monkeypatch.setenv("FAKE_QEMU_MODE", "silent")
    task = asyncio.create_task(VM.start(image, tmp_path / "work", Accel.TCG))
    await asyncio.to_thread(_wait_for_file, fake_qemu)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not _alive(fake_qemu)
    assert list((tmp_path / "work").iterdir()) == []


async def test_start_timeout_is_a_vm_error(
    fake_qemu: Path, image: Image, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A QEMU that never answers QMP makes start() fail after its timeout, QEMU killed."""
    monkeypatch.setenv("FAKE_QEMU_MODE", "silent")
    with pytest.raises(VMError, match="did not start within"):
        await VM.start(image, tmp_path / "work", Accel.TCG, timeout=1.0)
    assert not _alive(fake_qemu)


async def test_snapshot_is_restored_with_incoming_fd(
    fake_qemu: Path, image: Image, tmp_path: Path
) -> None:
    """With a fitting snapshot, QEMU gets -incoming fd:N and the VM counts as restored."""
    (image.dir / "snapshot-tcg-max.state").write_bytes(b"saved ram")
    async with await VM.start(image, tmp_path / "work", Accel.TCG) as vm:
        assert vm.restored
    argv = _argv(fake_qemu)
    assert argv[argv.index("-incoming") + 1].startswith("fd:")


async def test_missing_snapshot_state_falls_back_to_cold_boot(
    fake_qemu: Path, image: Image, tmp_path: Path
) -> None:
    """A snapshot whose state file vanished (image rebuilt meanwhile) means a cold boot."""
    async with await VM.start(image, tmp_path / "work", Accel.TCG) as vm:
        assert not vm.restored
    assert "-incoming" not in _argv(fake_qemu)


async def test_snapshot_for_other_memory_is_not_used(
    fake_qemu: Path, image: Image, tmp_path: Path
) -> None:
    """A snapshot taken with another RAM size cannot be restored: cold boot instead."""
    (image.dir / "snapshot-tcg-max.state").write_bytes(b"saved ram")
    async with await VM.start(image, tmp_path / "work", Accel.TCG, memory_mb=256) as vm:
        assert not vm.restored


async def test_deep_work_dir_gets_a_short_socket_path(
    fake_qemu: Path, image: Image, tmp_path: Path
) -> None:
    """A work dir too deep for a Unix socket still works: the socket lives in a short temp dir."""
    deep = tmp_path / ("d" * 70) / "work"
    vm = await VM.start(image, deep, Accel.TCG, snapshot=False)
    try:
        assert len(os.fsencode(vm.ssh_path)) <= 107
        assert not vm.ssh_path.is_relative_to(deep)
        sock_dir = vm.ssh_path.parent
        assert sock_dir.is_dir() and (sock_dir.stat().st_mode & 0o777) == 0o700
    finally:
        await vm.stop()
    assert not sock_dir.exists() and not vm.dir.exists()


class _CancelOn(logging.Handler):
    """Cancels ``task`` when qemu.qmp logs a message containing ``marker`` (once).

    qemu.qmp logs each step of its handshake just before awaiting it, so the
    cancellation lands exactly in that step.
    """

    def __init__(self, marker: str) -> None:
        super().__init__(logging.DEBUG)
        self.marker = marker
        self.task: asyncio.Task[Any] | None = None
        self.fired = False

    def emit(self, record: logging.LogRecord) -> None:
        if not self.fired and self.task is not None and self.marker in record.getMessage():
            self.fired = True
            self.task.cancel()


@pytest.fixture
def qmp_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """qemu.qmp's debug log captured (the slave keeps it at CRITICAL) and its handlers reset."""
    caplog.set_level(logging.DEBUG, logger="qemu.qmp")
    before = list(logging.getLogger("qemu.qmp").handlers)
    yield caplog
    logging.getLogger("qemu.qmp").handlers[:] = before


def _children() -> set[int]:
    """Live (not zombie) child processes of this process."""
    me, kids = os.getpid(), set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) == me and fields[0] != "Z":
                    kids.add(int(entry))
    return kids


def _socket_fds() -> set[str]:
    """This process's open sockets (as /proc/self/fd link targets)."""
    fds = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/self/fd/{fd}")
            if target.startswith("socket:"):
                fds.add(target)
    return fds


async def _loop_errors() -> list[dict[str, Any]]:
    """Start collecting what the loop reports (e.g. "Task exception was never retrieved")."""
    errors: list[dict[str, Any]] = []
    asyncio.get_running_loop().set_exception_handler(lambda _loop, ctx: errors.append(ctx))
    return errors


def _assert_quiet(errors: list[dict[str, Any]], caplog: pytest.LogCaptureFixture) -> None:
    gc.collect()  # an unretrieved task exception is reported when the task is collected
    assert errors == []
    noisy = [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.CRITICAL
        or "never retrieved" in r.getMessage()
        or "AssertionError" in r.getMessage()
        or (r.exc_info and isinstance(r.exc_info[1], AssertionError))
    ]
    assert noisy == []


@pytest.mark.parametrize(
    ("mode", "snapshot", "marker"),
    [
        ("ok", False, "Connecting with existing socket"),  # QMP accept pending
        ("silent", False, "Awaiting greeting"),  # greeting pending
        ("mute-after-greeting", False, "Negotiating capabilities"),  # capabilities pending
        # connected, still inside connect()
        ("ok", False, "Transitioning from 'Runstate.CONNECTING' to 'Runstate.RUNNING'"),
        ("inmigrate", True, '"execute": "query-status"'),  # restore pending
    ],
    ids=["accept", "greeting", "negotiation", "connected", "restoring"],
)
async def test_start_cancelled_at_each_stage_is_quiet_and_complete(
    fake_qemu: Path,
    image: Image,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    qmp_log: pytest.LogCaptureFixture,
    mode: str,
    snapshot: bool,
    marker: str,
) -> None:
    """A start cancelled at any QMP stage logs no error, leaves no QEMU, socket or overlay."""
    monkeypatch.setenv("FAKE_QEMU_MODE", mode)
    if snapshot:
        (image.dir / "snapshot-tcg-max.state").write_bytes(b"saved ram")
    errors = await _loop_errors()
    sockets = _socket_fds()
    hook = _CancelOn(marker)
    logging.getLogger("qemu.qmp").addHandler(hook)
    hook.task = asyncio.create_task(VM.start(image, tmp_path / "work", Accel.TCG))
    with pytest.raises(asyncio.CancelledError):
        await hook.task
    assert hook.fired
    assert _children() == set()
    assert list((tmp_path / "work").iterdir()) == []
    _assert_quiet(errors, qmp_log)
    assert _socket_fds() <= sockets


async def test_start_timing_out_mid_greeting_is_quiet(
    fake_qemu: Path,
    image: Image,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    qmp_log: pytest.LogCaptureFixture,
) -> None:
    """A start that times out while QMP is greeting is a VMError, and nothing else is logged."""
    monkeypatch.setenv("FAKE_QEMU_MODE", "mute-after-greeting")
    errors = await _loop_errors()
    with pytest.raises(VMError, match="did not start within"):
        await VM.start(image, tmp_path / "work", Accel.TCG, timeout=1.0)
    assert _children() == set()
    _assert_quiet(errors, qmp_log)


async def test_boot_task_cancelled_mid_greeting_like_a_refused_job(
    fake_qemu: Path,
    image: Image,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    qmp_log: pytest.LogCaptureFixture,
) -> None:
    """Cancelling a start task and awaiting it via asyncio.wait (as the executor does) is quiet."""
    monkeypatch.setenv("FAKE_QEMU_MODE", "silent")
    errors = await _loop_errors()
    hook = _CancelOn("Awaiting greeting")
    logging.getLogger("qemu.qmp").addHandler(hook)
    booting = asyncio.create_task(VM.start(image, tmp_path / "work", Accel.TCG))
    hook.task = booting
    await asyncio.wait([booting])
    assert booting.cancelled()
    del booting, hook
    _assert_quiet(errors, qmp_log)
    assert _children() == set()
