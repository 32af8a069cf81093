"""Fault table row 7: TLS failures on the slave port are refused, counted and logged."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from master.jobs import JobState
from protocol.errors import ProtocolError
from protocol.messages import JobOffer
from tests.fakes.slave import FakeSlave
from tests.integration.conftest import SECRET, Harness, make_config
from tests.integration.test_master_tls import _self_signed


async def _tls_attempt(port: int, ctx: ssl.SSLContext, hostname: str) -> str:
    """A TLS client that must fail; what failed, as its exception's name."""
    try:
        _, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=ctx, server_hostname=hostname
        )
    except (ssl.SSLError, OSError) as exc:
        return type(exc).__name__
    writer.close()
    return "connected"


async def test_tls_failures_are_refused_counted_and_logged(tmp_path: Path) -> None:
    """A peer without TLS, one trusting another CA and one expecting another host name get
    no session and no job; each failure is counted and logged with its peer."""
    cert, key = _self_signed(tmp_path)
    (tmp_path / "other").mkdir()
    other_cert, _ = _self_signed(tmp_path / "other")
    h = Harness(make_config(tmp_path, tls_cert=str(cert), tls_key=str(key), handshake_timeout=1.0))
    await h.start()
    try:
        job = await h.submit()
        with capture_logs() as logs:
            plain = FakeSlave("127.0.0.1", h.port, SECRET, name="plain")
            with pytest.raises((ProtocolError, OSError)):
                await plain.connect(timeout=3)
            with contextlib.suppress(Exception):
                await plain.close()
            other_ca = ssl.create_default_context(cafile=str(other_cert))
            assert await _tls_attempt(h.port, other_ca, "127.0.0.1") == "SSLCertVerificationError"
            right_ca = ssl.create_default_context(cafile=str(cert))
            assert (
                await _tls_attempt(h.port, right_ca, "pyti.example") == "SSLCertVerificationError"
            )
            refused = h.ctx.metrics.counter("slave_handshake_failures_total", "", ["reason"])
            await h.until(lambda: refused.value("tls") == 3, timeout=5)
        audit = [e for e in logs if e["event"] == "slave_tls_failed"]
        assert len(audit) == 3 and all("127.0.0.1" in str(e["peer"]) for e in audit)
        assert h.ctx.slaves.list() == []
        assert (await h.job(job.id)).state is JobState.QUEUED
        good = await h.slave("good", ssl=right_ca)
        assert (await good.next(JobOffer)).job_id == job.id
    finally:
        await h.stop()
    print(f"tls: refused {[e['reason'] for e in audit]}")
