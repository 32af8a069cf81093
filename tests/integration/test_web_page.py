"""The web page in headless Chromium: it loads, shows a job, and shows a new event arriving live.

Driven through chromedriver's W3C WebDriver HTTP API straight from the test with
aiohttp (no selenium). Skipped only when Debian's ``chromium``/``chromium-driver``
are not installed.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import shutil
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from master.context import MasterContext
from master.http.app import create_app
from tests.integration.test_api_harness import FakeProducer, ctx, queue_job

__all__ = ["ctx"]  # fixture

ServerFactory = Any
CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
ELEMENT = "element-6066-11e4-a52e-4f735466cecf"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="chromium and chromedriver are not installed (apt-get install chromium chromium-driver)",
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class WebDriver:
    """A minimal W3C WebDriver client over one chromedriver process and one browser session."""

    def __init__(self, http: aiohttp.ClientSession, base: str, session_id: str) -> None:
        self.http = http
        self.base = base
        self.session = session_id

    async def command(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        url = f"{self.base}/session/{self.session}{path}"
        async with self.http.request(method, url, json=body) as resp:
            payload = await resp.json()
            if resp.status != 200:
                raise AssertionError(f"webdriver {method} {path}: {payload}")
            return payload["value"]

    async def get(self, url: str) -> None:
        await self.command("POST", "/url", {"url": url})

    async def script(self, source: str, *args: Any) -> Any:
        return await self.command("POST", "/execute/sync", {"script": source, "args": list(args)})

    async def screenshot(self) -> bytes:
        """A PNG of the viewport."""
        return base64.b64decode(await self.command("GET", "/screenshot"))

    async def resize(self, width: int, height: int) -> None:
        """Set the browser window's size (the viewport a screenshot shows)."""
        await self.command("POST", "/window/rect", {"width": width, "height": height})

    async def console(self) -> list[str]:
        """Browser console messages since the last call (chromedriver's log extension)."""
        entries = await self.command("POST", "/se/log", {"type": "browser"})
        return [str(e.get("message", "")) for e in entries]

    async def text(self, css: str) -> str:
        """The text of the element ``css`` selects. The page replaces elements when it
        renders a job again (``replaceWith``): one replaced between the find and the read
        is "stale", and is found again."""
        for attempt in range(5):
            found = await self.command("POST", "/element", {"using": "css selector", "value": css})
            try:
                text: str = await self.command("GET", f"/element/{found[ELEMENT]}/text")
            except AssertionError as exc:
                if "stale element reference" not in str(exc) or attempt == 4:
                    raise
                continue
            return text
        raise AssertionError("unreachable")

    async def wait_for(
        self, check: Callable[[], Awaitable[bool]], what: str, timeout: float = 15.0
    ) -> None:
        """Poll ``check`` (the browser has no way to push to us) until true or fail."""
        async with asyncio.timeout(timeout):
            while not await check():  # noqa: ASYNC110 - a remote browser cannot notify us
                await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def chromium(tmp_path: Path) -> AsyncIterator[WebDriver]:
    """chromedriver + headless Chromium with a fresh profile; both torn down on exit."""
    assert CHROMEDRIVER is not None and CHROMIUM is not None
    port = _free_port()
    driver = await asyncio.create_subprocess_exec(
        CHROMEDRIVER,
        f"--port={port}",
        "--allowed-ips=127.0.0.1",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
            async with asyncio.timeout(20):
                while True:
                    with contextlib.suppress(aiohttp.ClientError):
                        async with http.get(f"{base}/status") as resp:
                            if (await resp.json())["value"]["ready"]:
                                break
                    await asyncio.sleep(0.1)
            options = {
                "binary": CHROMIUM,
                "args": [*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"],
            }
            caps = {
                "capabilities": {
                    "alwaysMatch": {
                        "goog:chromeOptions": options,
                        "goog:loggingPrefs": {"browser": "ALL"},
                    }
                }
            }
            async with http.post(f"{base}/session", json=caps) as resp:
                session_id = (await resp.json())["value"]["sessionId"]
            wd = WebDriver(http, base, session_id)
            try:
                yield wd
            finally:
                with contextlib.suppress(aiohttp.ClientError, AssertionError):
                    await wd.command("DELETE", "")
    finally:
        if driver.returncode is None:
            driver.terminate()
        await driver.wait()


async def test_page_shows_job_and_live_event(
    aiohttp_server: ServerFactory, ctx: MasterContext, tmp_path: Path
) -> None:
    """The job page shows the job (outcome · verdict, reason), escapes guest text, live events."""
    server: TestServer = await aiohttp_server(create_app(ctx))
    base = str(server.make_url("")).rstrip("/")
    job = await queue_job(ctx, "demo", "1.0")
    producer = await FakeProducer.start(ctx, job)
    hostile = "<img src=x onerror=window.pwned=1><b id=injected>x</b>"
    await producer.emit(2, note=hostile)

    async with chromium(tmp_path) as browser:
        await browser.get(f"{base}/jobs/{job.id}")

        async def log_lines() -> int:
            n: int = await browser.script("return document.querySelectorAll('#log .ev').length")
            return n

        async def has_two() -> bool:
            return await log_lines() >= 2

        await browser.wait_for(has_two, "the stored history")
        assert f"#{job.id} demo 1.0" in await browser.text("#job-title")
        assert await browser.text("#job-state") == "running"
        log_text = await browser.text("#log")
        assert hostile in log_text  # shown as text ...
        assert await browser.script("return document.getElementById('injected')") is None
        assert await browser.script("return window.pwned === undefined") is True  # ... not run

        await producer.emit(1, marker="live-event-arrived")

        async def has_live() -> bool:
            return "live-event-arrived" in await browser.text("#log")

        await browser.wait_for(has_live, "the live event")
        assert await log_lines() == 3
        seqs = await browser.script(
            "return [...document.querySelectorAll('#log .ev')].map(e => e.dataset.seq)"
        )
        assert seqs == ["1", "2", "3"]

        quality = {
            "format": 1,
            "score": 87,
            "groups": {"metadata": 0.9},
            "indicators": [
                {
                    "id": "has_readme",
                    "group": "metadata",
                    "value": True,
                    "level": "good",
                    "reason": "<i id=q>README</i>",
                },
            ],
        }
        finding = {
            "rule": "net.connect",
            "severity": "high",
            "phase": "install",
            "pid": 7,
            "process": "python",
            "evidence": 'connect(3, "<svg onload=alert(1)>")',
        }
        reason = "install failed: pip exited with status 1"
        await producer.finish(
            "failed", quality=quality, findings=[finding], verdict="suspicious", reason=reason
        )

        async def ended() -> bool:
            return "ended: failed" in await browser.text("#log-state")

        await browser.wait_for(ended, "the end event")

        async def outcome_shown() -> bool:  # the page fetches the job again after its end
            return await browser.text("#job-outcome") == "failed · suspicious"

        # The verdict shows beside the outcome, the reason next to them.
        await browser.wait_for(outcome_shown, "the outcome · verdict")
        assert await browser.text("#job-reason") == reason
        assert "install" in await browser.text("#phases")
        assert "87" in await browser.text("#quality")
        indicators = await browser.text("#quality-indicators")
        assert "has_readme" in indicators and "<i id=q>README</i>" in indicators
        findings = await browser.text("#findings")
        assert "net.connect" in findings and "<svg onload=alert(1)>" in findings
        assert await browser.script("return document.querySelector('#q, svg')") is None

        await browser.get(f"{base}/")

        async def listed() -> bool:
            rows: int = await browser.script(
                "return document.querySelectorAll('#jobs-recent tbody tr').length"
            )
            return rows >= 1

        await browser.wait_for(listed, "the recent jobs table")
        recent = await browser.text("#jobs-recent")
        assert "demo" in recent and "failed · suspicious" in recent
        title = await browser.script(
            "return document.querySelector('#jobs-recent .verdict-suspicious').title"
        )
        assert "worth a look" in title  # the meaning, from GET /api/v1/vocabulary
        # No CSP violation and no script error anywhere along the way (the probe shows
        # that the console is really being read).
        await browser.script("console.error('pyti-probe Error')")
        messages = await browser.console()
        assert any("pyti-probe" in m for m in messages)
        problems = [
            m for m in messages if ("Refused" in m or "Error" in m) and "pyti-probe" not in m
        ]
        assert problems == []
