"""``pyti slave`` as a real process: it connects, reports its images, and stops on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

from protocol.messages import Heartbeat
from slave.vm.accel import probe_kvm
from tests.fakes.images import fake_image
from tests.fakes.master import FakeMaster

SECRET = b"cli-test-secret-0123456789abcdef"


async def test_slave_process_connects_and_stops_on_sigterm(tmp_path: Path) -> None:
    """The CLI loads images, refuses a damaged one by name, serves, and exits 0 on SIGTERM."""
    images = tmp_path / "images"
    fake_image(images, "good")
    fake_image(images, "broken")
    (images / "broken" / "vmlinuz").write_bytes(b"content of vmlinuX")  # same size, wrong sha
    secret = tmp_path / "secret"
    secret.write_bytes(SECRET)
    async with FakeMaster(SECRET) as master:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "pyti.cli", "slave", "--master", master.address,
            "--secret-file", str(secret), "--image-dir", str(images), "--accel", "tcg",
            "--work-dir", str(tmp_path / "work"), "--name", "cli-slave", "--slots", "3",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        try:
            session = await master.wait_session(timeout=30)
            caps = session.auth.capabilities
            assert session.auth.name == "cli-slave"
            assert caps.slots == 3 and caps.accel == "tcg"
            assert [i.name for i in caps.images] == ["good"]
            assert caps.images[0].python == "3.11.2" and len(caps.images[0].digest) == 16
            assert isinstance(session.received[0], Heartbeat)
            proc.send_signal(signal.SIGTERM)
            async with asyncio.timeout(20):
                code = await proc.wait()
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        assert proc.stderr is not None
        stderr = (await proc.stderr.read()).decode()
        assert code == 0, stderr
        assert "refusing image 'broken'" in stderr and "sha256" in stderr


async def test_slave_refuses_auto_accel_without_kvm(tmp_path: Path) -> None:
    """Without working KVM, --accel auto (the default) refuses to start and says why."""
    if await probe_kvm():
        pytest.skip("KVM works on this machine: auto would start")
    images = tmp_path / "images"
    fake_image(images, "good")
    secret = tmp_path / "secret"
    secret.write_bytes(SECRET)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pyti.cli", "slave", "--master", "127.0.0.1:9",
        "--secret-file", str(secret), "--image-dir", str(images),
        "--work-dir", str(tmp_path / "work"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    async with asyncio.timeout(60):
        _, err = await proc.communicate()
    assert proc.returncode == 2
    assert "use --accel tcg explicitly" in err.decode()


async def _wait_line(proc: asyncio.subprocess.Process, event: str) -> str:
    assert proc.stdout is not None
    async with asyncio.timeout(20):
        while line := (await proc.stdout.readline()).decode():
            if f'"event": "{event}"' in line:
                return line
    raise AssertionError(f"the slave exited before logging {event}")


async def test_slave_sighup_rereads_its_secret_and_keeps_it_when_the_file_is_bad(
    tmp_path: Path,
) -> None:
    """SIGHUP: a short secret is refused (old one kept); a good one is used next handshake."""
    images = tmp_path / "images"
    fake_image(images, "good")
    secret = tmp_path / "secret"
    secret.write_bytes(SECRET)
    rotated = b"rotated-cli-secret-0123456789abcdef"
    async with FakeMaster(SECRET) as master:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "pyti.cli", "slave", "--master", master.address,
            "--secret-file", str(secret), "--image-dir", str(images), "--accel", "tcg",
            "--work-dir", str(tmp_path / "work"), "--name", "hup-slave", "--log-format", "json",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        try:
            await master.wait_session(timeout=30)
            secret.write_bytes(b"short")
            proc.send_signal(signal.SIGHUP)
            assert "too short" in await _wait_line(proc, "config_reload_failed")
            secret.write_bytes(rotated)
            proc.send_signal(signal.SIGHUP)
            await _wait_line(proc, "config_reloaded")
            master.secret = rotated
            await master.restart()
            session = await master.wait_session(count=2, timeout=30)
            assert session.auth.name == "hup-slave"
            proc.send_signal(signal.SIGTERM)
            async with asyncio.timeout(20):
                assert await proc.wait() == 0
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
