"""The job page in headless Chromium: the comparison with the previous release, and trace lines
hidden from the live log until the checkbox asks for them. Skipped without chromium."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestServer

from master.context import MasterContext
from master.http.app import create_app
from protocol.events import Event
from tests.integration.test_api_compare import SOCKET_AT_INSTALL
from tests.integration.test_api_harness import FakeProducer, ctx, queue_job
from tests.integration.test_web_page import chromium, pytestmark

__all__ = ["ctx", "pytestmark"]  # fixture; the chromium skip mark

ServerFactory = Any
HOSTILE = "<img src=x onerror=window.pwned=1><b id=injected>x</b>"


def _quality(score: int, level: str) -> dict[str, Any]:
    indicator = {"id": "tests.present", "group": "tests", "value": 1, "level": level,
                 "reason": "no tests"}  # fmt: skip
    return {"format": 1, "score": score, "groups": {"tests": 0.0}, "indicators": [indicator]}


def _trace(seq: int, line: str) -> Event:
    return Event(seq=seq, ts=time.time(), level="debug", event="trace", phase="install",
                 fields={"pid": 9, "line": line})  # fmt: skip


async def test_page_shows_comparison_and_hides_traces(
    aiohttp_server: ServerFactory, ctx: MasterContext, tmp_path: Path
) -> None:
    """The diff sentence and trend show as text; traces appear only when the box is ticked."""
    server: TestServer = await aiohttp_server(create_app(ctx))
    base = str(server.make_url("")).rstrip("/")
    first = await queue_job(ctx, "demo", "1.4.1")
    await (await FakeProducer.start(ctx, first)).finish("passed", quality=_quality(90, "pass"))
    second = await queue_job(ctx, "demo", "1.4.2")
    producer = await FakeProducer.start(ctx, second)
    await producer.emit(1)  # an output line
    producer.seq = 3
    await producer.send([_trace(2, "openat(/etc/trace-one)"), _trace(3, "openat(/etc/trace-two)")])
    await producer.finish(
        "passed",
        findings=[dict(SOCKET_AT_INSTALL, target=HOSTILE)],
        quality=_quality(70, "fail"),
    )

    async with chromium(tmp_path) as browser:
        await browser.get(f"{base}/jobs/{second.id}")

        async def ended() -> bool:
            return "ended" in await browser.text("#log-state")

        await browser.wait_for(ended, "the end of the log")
        summary = await browser.text("#compare-summary")
        assert "compared with 1.4.1" in summary and "quality 90 → 70 (-20)" in summary
        diff = await browser.text("#behaviour-diff")
        assert f"1.4.2 started opening sockets at install time ({HOSTILE}); 1.4.1 did not" in diff
        assert await browser.script("return document.getElementById('injected')") is None
        assert await browser.script("return window.pwned === undefined") is True
        href = await browser.script("return document.querySelector('#compare-summary a').href")
        assert href == f"{base}/jobs/{first.id}"
        assert "regressed tests.present: pass → fail" in await browser.text("#quality-trend")

        log = await browser.text("#log")
        assert "line 1" in log and "trace-one" not in log
        assert await browser.text("#trace-hidden") == "(2 trace lines hidden)"
        await browser.script("document.getElementById('show-trace').click()")

        async def traces_shown() -> bool:
            return "trace-two" in await browser.text("#log")

        await browser.wait_for(traces_shown, "the trace lines")
        seqs = await browser.script(
            "return [...document.querySelectorAll('#log .ev')].map(e => e.dataset.seq)"
        )
        assert seqs == ["1", "2", "3"]
        assert await browser.text("#trace-hidden") == ""
        messages = await browser.console()
        assert [m for m in messages if "Refused" in m or "Error" in m] == []
