"""The slave port over TLS, and the daemon's HTTP API wired in next to it."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from pathlib import Path

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from master.daemon import Master
from protocol.errors import PeerTimeout
from protocol.messages import JobOffer, ResultAck
from tests.fakes.slave import FakeSlave
from tests.integration.conftest import SECRET, Harness, make_config


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


async def test_slaves_work_over_tls(tmp_path: Path) -> None:
    """With tls_cert/tls_key set, a slave verifying the certificate runs a job over TLS;
    a plaintext peer gets nothing."""
    cert, key = _self_signed(tmp_path)
    harness = Harness(make_config(tmp_path, tls_cert=str(cert), tls_key=str(key)))
    await harness.start()
    try:
        client_ctx = ssl.create_default_context(cafile=str(cert))
        slave = await harness.slave("tls", mode="accept", ssl=client_ctx)
        job = await harness.submit()
        offer = await slave.next(JobOffer)
        await slave.send_result(job.id, offer.lease, "passed")
        await slave.next(ResultAck)
        assert (await harness.job(job.id)).outcome == "passed"
        plain = FakeSlave("127.0.0.1", harness.port, SECRET, name="plain")
        with pytest.raises(PeerTimeout):  # the master says nothing in clear text
            await plain.connect(timeout=1)
        assert [s.name for s in harness.ctx.slaves.list()] == ["tls"]
    finally:
        await harness.stop()


async def test_daemon_serves_the_http_api_beside_the_slave_port(tmp_path: Path) -> None:
    """The Master starts the HTTP API on its own port: /healthz answers, /metrics has ours."""
    master = Master(make_config(tmp_path), slave_port=0, http_port=0)
    await master.start()
    try:
        assert master.http_port
        async with aiohttp.ClientSession() as http:
            base = f"http://127.0.0.1:{master.http_port}"
            async with http.get(f"{base}/healthz") as resp:
                assert resp.status == 200
            async with http.get(f"{base}/metrics") as resp:
                text = await resp.text()
        assert "pyti_jobs_dispatched_total" in text and "pyti_slaves_connected" in text
    finally:
        await master.stop()
