"""The real slave daemon reaches a real master over TLS when given the CA (tls_ca)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from protocol.messages import ImageInfo
from slave.config import ConfigError, build_config
from slave.daemon import SlaveDaemon
from tests.fakes.master import ScriptedExecutor, emitting, stop_task
from tests.integration.conftest import SECRET, Harness, make_config
from tests.integration.test_master_tls import _self_signed

IMAGE = ImageInfo(name="bookworm", python="3.11", digest="0123456789abcdef")


def _slave_config(tmp_path: Path, port: int, **extra: object) -> dict[str, object]:
    secret = tmp_path / "slave-secret"
    secret.write_bytes(SECRET)
    return {
        "master": f"127.0.0.1:{port}",
        "secret_file": str(secret),
        "image_dir": str(tmp_path / "images"),
        "work_dir": str(tmp_path / "work"),
        "name": "tls-slave",
        "accel": "tcg",
        "reconnect_min": 0.05,
        "reconnect_max": 0.2,
        **extra,
    }


async def test_slave_runs_a_job_over_tls(tmp_path: Path) -> None:
    """With tls_ca the slave verifies the master's certificate and runs a job over TLS."""
    cert, key = _self_signed(tmp_path)
    harness = Harness(make_config(tmp_path, tls_cert=str(cert), tls_key=str(key)))
    await harness.start()
    config = build_config({}, _slave_config(tmp_path, harness.port, tls_ca=str(cert)))
    daemon = SlaveDaemon(
        config, images=[IMAGE], accel="tcg", executor=ScriptedExecutor(emitting(3))
    )
    task = asyncio.create_task(daemon.run())
    try:
        with harness.ctx.bus.subscribe_ends() as ends:
            job = await harness.submit()
            async with asyncio.timeout(20):
                ended = await ends.get()
        assert ended.id == job.id and ended.outcome == "passed"
        assert [s.name for s in harness.ctx.slaves.list()] == ["tls-slave"]
    finally:
        await stop_task(task)
        await harness.stop()


async def test_slave_without_the_ca_never_connects(tmp_path: Path) -> None:
    """A slave trusting another CA fails the TLS handshake: no session, no job."""
    cert, key = _self_signed(tmp_path)
    (tmp_path / "other").mkdir()
    other_ca, _ = _self_signed(tmp_path / "other")
    harness = Harness(make_config(tmp_path, tls_cert=str(cert), tls_key=str(key)))
    await harness.start()
    config = build_config({}, _slave_config(tmp_path, harness.port, tls_ca=str(other_ca)))
    daemon = SlaveDaemon(
        config, images=[IMAGE], accel="tcg", executor=ScriptedExecutor(emitting(1))
    )
    task = asyncio.create_task(daemon.run())
    try:
        async with asyncio.timeout(10):
            await daemon.link.wait_failed(2)
        assert daemon.link.sessions == 0
        assert harness.ctx.slaves.list() == []
        assert daemon.link.last_error is not None
        assert "CERTIFICATE_VERIFY_FAILED" in daemon.link.last_error
    finally:
        await stop_task(task)
        await harness.stop()


def test_unreadable_ca_is_a_config_error(tmp_path: Path) -> None:
    """A tls_ca that is not a PEM bundle is refused when the config is built."""
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate")
    with pytest.raises(ConfigError, match="tls_ca"):
        build_config({}, _slave_config(tmp_path, 7600, tls_ca=str(bad)))
