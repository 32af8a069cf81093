"""VM start/stop against a fake QEMU: teardown always runs (quit, kill, files removed)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from slave.images.manifest import BASE_FILES, MANIFEST_FORMAT, Image, file_entries, write_manifest
from slave.vm.accel import Accel
from slave.vm.argv import KERNEL_CMDLINE, MACHINE
from slave.vm.machine import VM, VMError, VMState

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
        ret = {"status": "running", "running": True} if name == "query-status" else {}
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
