"""The real guest image under QEMU (TCG): boot, restore, SSH, Python, no network."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from slave.image_builder.errors import ImageDamaged
from slave.image_builder.manifest import Image
from slave.vm.accel import Accel
from slave.vm.guest import Guest, GuestTimeout
from slave.vm.machine import VM

pytestmark = pytest.mark.system

PY_INFO = "import platform, os; print(platform.python_version(), os.getuid())"


async def test_restore_from_snapshot_runs_python(image: Image, tmp_path: Path) -> None:
    """A job VM restored from the snapshot answers SSH and runs the image's Python as root."""
    t0 = time.monotonic()
    async with await VM.start(image, tmp_path, Accel.TCG) as vm:
        assert vm.restored
        async with await Guest.connect(vm, image, timeout=30) as guest:
            result = await guest.run(["python3", "-c", PY_INFO], timeout=30)
            ready = time.monotonic() - t0
    assert result.exit_status == 0
    assert result.stdout.split() == [image.python_full_version, "0"]
    assert ready < 15, f"restore to SSH+Python took {ready:.1f}s"
    assert not vm.dir.exists()  # overlay, socket and log removed


async def test_cold_boot_runs_python(image: Image, tmp_path: Path) -> None:
    """Without the snapshot the kernel boots directly and SSH answers once it is up."""
    async with await VM.start(image, tmp_path, Accel.TCG, snapshot=False) as vm:
        assert not vm.restored
        async with await Guest.connect(vm, image, timeout=180) as guest:
            result = await guest.run(["python3", "-c", PY_INFO], timeout=60)
    assert result.stdout.split() == [image.python_full_version, "0"]


async def test_guest_has_no_network(image: Image, tmp_path: Path) -> None:
    """Only the loopback interface exists and connecting out fails with ENETUNREACH."""
    probe = (
        "import os, socket, errno\n"
        "print(sorted(os.listdir('/sys/class/net')))\n"
        "s = socket.socket()\n"
        "try:\n"
        "    s.connect(('192.0.2.1', 80))\n"
        "    print('connected')\n"
        "except OSError as e:\n"
        "    print(errno.errorcode[e.errno])\n"
    )
    async with (
        await VM.start(image, tmp_path, Accel.TCG) as vm,
        await Guest.connect(vm, image, timeout=30) as guest,
    ):
        result = await guest.run(["python3", "-c", probe], timeout=30)
    assert result.stdout.splitlines() == ["['lo']", "ENETUNREACH"]


async def test_guest_user_bait_tools_and_runner(image: Image, tmp_path: Path) -> None:
    """tester (uid 1000) has the manifest's bait; wheels, tools venv and runner are installed."""
    bait = image.bait
    script = (
        "id -u tester; cat /home/tester/.aws/credentials; grep PYTI_BAIT_TOKEN /etc/environment;"
        " ls /opt/pyti/wheels | grep -c '^pytest-'; /opt/pyti/tools/bin/ruff --version;"
        " python3 -I -S /opt/pyti/runner.pyz --help >/dev/null && echo runner;"
        " grep nproc /etc/security/limits.d/*"
    )
    async with (
        await VM.start(image, tmp_path, Accel.TCG) as vm,
        await Guest.connect(vm, image, timeout=30) as guest,
    ):
        out = (await guest.run(script, timeout=60)).stdout
    assert out.startswith("1000\n")
    assert bait["aws_secret_access_key"] in out
    assert f"PYTI_BAIT_TOKEN={bait['token']}" in out
    assert "ruff " in out
    assert "tester hard nproc" in out
    assert "runner" in out.split()


async def test_stream_put_and_timeout(image: Image, tmp_path: Path) -> None:
    """put() uploads over SFTP; stream() yields lines then the exit status; timeouts raise."""
    local = tmp_path / "payload.txt"
    local.write_text("hello from the host\n")
    work = tmp_path / "work"
    async with (
        await VM.start(image, work, Accel.TCG) as vm,
        await Guest.connect(vm, image, timeout=30) as guest,
    ):
        await guest.put([local], "/var/lib/pyti/job")
        stream = guest.stream(
            "cat /var/lib/pyti/job/payload.txt; printf 'x%.0s' $(seq 100000); echo; exit 7",
            timeout=60,
            max_line=1000,
        )
        lines = [line async for line in stream]
        with pytest.raises(GuestTimeout):
            await guest.run("sleep 30", timeout=1)
        still = await guest.run("echo alive", timeout=30)
    assert lines[0] == "hello from the host"
    assert lines[1] == "x" * 1000
    assert stream.cut_lines == 1
    assert stream.exit_status == 7
    assert still.stdout == "alive\n"


def _copy_with_initrd(image: Image, dest: Path, initrd: bytes) -> None:
    """A copy of the image (symlinks) whose initrd has the given contents."""
    copy = dest / image.name
    copy.mkdir(exist_ok=True)
    for f in image.dir.iterdir():
        (copy / f.name).unlink(missing_ok=True)
        if f.name == "initrd.img":
            (copy / f.name).write_bytes(initrd)
        else:
            os.symlink(f, copy / f.name)


def test_truncated_image_is_refused(image: Image, tmp_path: Path) -> None:
    """A copy of the image with one truncated file is refused at load."""
    data = image.initrd.read_bytes()
    _copy_with_initrd(image, tmp_path, data[: len(data) // 2])
    with pytest.raises(ImageDamaged, match=r"initrd\.img has"):
        Image.load(tmp_path, image.name)


def test_corrupted_image_fails_verify(image: Image, tmp_path: Path) -> None:
    """A flipped byte passes the cheap load check but verify() refuses the image."""
    data = bytearray(image.initrd.read_bytes())
    data[100] ^= 0xFF
    _copy_with_initrd(image, tmp_path, bytes(data))
    loaded = Image.load(tmp_path, image.name)
    with pytest.raises(ImageDamaged, match=r"initrd\.img does not match"):
        asyncio.run(loaded.verify())
