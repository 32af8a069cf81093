"""SIGHUP to a running ``pyti master``: tokens, slave secrets and log level change live;
a slave on an old secret stays connected; a bad file keeps the old settings."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import aiohttp

from protocol.errors import HandshakeFailed
from tests.fakes.slave import FakeSlave
from tests.integration.test_master_daemon import FAST_TOML, SECRET, daemon

NEW_SECRET = b"rotated-secret-0123456789abcdef"


async def _cancel_status(http: aiohttp.ClientSession, base: str, token: str) -> int:
    # A mutating request: 401 for a refused token, 404 (no such job) once the token passes.
    headers = {"Authorization": f"Bearer {token}"}
    async with http.post(f"{base}/api/v1/jobs/999/cancel", headers=headers) as response:
        return response.status


async def _slave_names(http: aiohttp.ClientSession, base: str) -> set[str]:
    async with http.get(f"{base}/api/v1/slaves") as response:
        body = await response.json()
    rows = body["slaves"] if isinstance(body, dict) else body
    return {row["name"] for row in rows if row.get("connected", True)}


async def test_sighup_rotates_tokens_and_secrets_and_keeps_old_settings_on_a_bad_file(
    tmp_path: Path,
) -> None:
    """Old token refused and new accepted after SIGHUP; both secrets admit slaves while listed;
    a broken file changes nothing; log_level applies."""
    async with daemon(tmp_path) as d, aiohttp.ClientSession() as http:
        assert d.proc is not None
        base = "http://" + d.argv[d.argv.index("--http-addr") + 1]
        old = FakeSlave("127.0.0.1", d.slave_port, SECRET, name="old")
        await old.connect()
        assert await _cancel_status(http, base, "tok-1") == 404

        # Rotate: a second token file content and a second secret next to the first.
        (tmp_path / "tokens").write_text("tok-2\n")
        (tmp_path / "secret-new").write_bytes(NEW_SECRET)
        (tmp_path / "master.toml").write_text(FAST_TOML + 'secret_files = ["secret-new"]\n')
        refused = FakeSlave("127.0.0.1", d.slave_port, NEW_SECRET, name="early")
        try:
            await refused.connect()
            raise AssertionError("the new secret worked before the reload")
        except HandshakeFailed:
            pass
        d.proc.send_signal(signal.SIGHUP)
        entry = await d.wait_log("config_reloaded")
        assert entry["slave_secrets"] == 2 and entry["tokens"] == 1
        assert await _cancel_status(http, base, "tok-1") == 401
        assert await _cancel_status(http, base, "tok-2") == 404
        new = FakeSlave("127.0.0.1", d.slave_port, NEW_SECRET, name="new")
        await new.connect()
        also_old = FakeSlave("127.0.0.1", d.slave_port, SECRET, name="also-old")
        await also_old.connect()
        assert await _slave_names(http, base) >= {"old", "new", "also-old"}
        assert not old.closed

        # A bad file (the listed secret is gone): the reload is refused, old settings stay.
        (tmp_path / "master.toml").write_text(
            FAST_TOML + 'log_level = "warning"\nsecret_files = ["gone"]\n'
        )
        (tmp_path / "tokens").write_text("tok-3\n")
        d.proc.send_signal(signal.SIGHUP)
        failed = await d.wait_log("config_reload_failed")
        assert "gone" in str(failed["error"]) and failed["level"] == "error"
        assert await _cancel_status(http, base, "tok-3") == 401
        assert await _cancel_status(http, base, "tok-2") == 404
        late = FakeSlave("127.0.0.1", d.slave_port, NEW_SECRET, name="late")
        await late.connect()

        # Only the new secret now (in --secret-file's file), and log_level warning.
        (tmp_path / "master.toml").write_text(FAST_TOML + 'log_level = "warning"\n')
        (tmp_path / "secret").write_bytes(NEW_SECRET)
        d.proc.send_signal(signal.SIGHUP)
        entry = await d.wait_log("config_reloaded")
        assert entry["slave_secrets"] == 1 and entry["log_level"] == "warning"
        stale = FakeSlave("127.0.0.1", d.slave_port, SECRET, name="stale")
        try:
            await stale.connect()
            raise AssertionError("a dropped secret still worked")
        except HandshakeFailed:
            pass
        quiet = FakeSlave("127.0.0.1", d.slave_port, NEW_SECRET, name="quiet")
        await quiet.connect()
        await asyncio.sleep(0.2)
        (tmp_path / "secret").write_bytes(b"short")
        d.proc.send_signal(signal.SIGHUP)
        await d.wait_log("config_reload_failed")
        connected = [e for e in d.lines if e.get("event") == "slave_connected"]
        assert "quiet" not in str(connected) and "late" in str(connected)
        assert not old.closed  # connected on a secret no longer accepted: not dropped
        for s in (old, new, also_old, late, quiet):
            await s.close()
        assert await d.signal(signal.SIGTERM) == 0
