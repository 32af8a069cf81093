"""The fleet view, the jobs list and the project page in headless Chromium, over a real master.

Each test renders a page with ``populate``'s data, checks the elements that matter
by DOM queries (numbers equal to the API's, plots drawn, hostile text shown as
text), takes a screenshot and checks it shows them (a PNG of the viewport size
in which the checked elements lie). With ``PYTI_SCREENSHOT_DIR`` set, the
screenshots are kept there (how ``docs/screenshots/`` is made:
``PYTI_SCREENSHOT_DIR=docs/screenshots pytest tests/integration/test_web_overview.py``).
API, CLI and page are checked to agree on the same filters.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import struct
import zlib
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from master.context import MasterContext
from master.http.app import create_app
from master.store.filters import JobFilter
from pyti.cli import main
from tests.integration.test_api_harness import IMAGE, FakeProducer, ctx
from tests.integration.test_api_overview import HOSTILE, populate
from tests.integration.test_web_page import WebDriver, chromium, pytestmark

__all__ = ["ctx", "pytestmark"]  # fixture; the chromium skip mark

ServerFactory = Any
WIDTH, HEIGHT = 1200, 860


def png_facts(data: bytes) -> tuple[int, int, int]:
    """Width, height and the number of distinct byte values of the pixels (0 = not a PNG)."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        return 0, 0, 0
    width, height = struct.unpack(">II", data[16:24])
    pos, idat = 8, b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        if kind == b"IDAT":
            idat += data[pos + 8 : pos + 8 + length]
        pos += 12 + length
    return width, height, len(set(zlib.decompress(idat)))


async def shoot(browser: WebDriver, name: str, selectors: list[str]) -> None:
    """Screenshot the viewport; check it is a real picture holding every selector's element."""
    png = await browser.screenshot()
    width, height, distinct = png_facts(png)
    assert width > 800 and height > 500 and distinct > 20  # a drawn page, not a blank one
    for css in selectors:
        rect = await browser.script(
            "const r = document.querySelector(arguments[0]).getBoundingClientRect();"
            "return [r.width, r.height, r.top, r.left];",
            css,
        )
        w, h, top, left = rect
        assert w > 0 and h > 0, f"{css} is not drawn"
        assert top < height and left < width, f"{css} is outside the screenshot"
    where = os.environ.get("PYTI_SCREENSHOT_DIR")
    if where:
        await asyncio.to_thread(Path(where).mkdir, parents=True, exist_ok=True)
        await asyncio.to_thread((Path(where) / f"{name}.png").write_bytes, png)


async def no_console_errors(browser: WebDriver) -> None:
    """No CSP refusal and no script error was logged."""
    messages = await browser.console()
    assert [m for m in messages if "Refused" in m or "Error" in m] == []


async def count(browser: WebDriver, css: str) -> int:
    """How many elements ``css`` matches."""
    found: int = await browser.script("return document.querySelectorAll(arguments[0]).length", css)
    return found


async def wait_rows(browser: WebDriver, css: str, n: int) -> None:
    """Wait until ``css`` matches at least ``n`` elements."""

    async def enough() -> bool:
        return await count(browser, css) >= n

    await browser.wait_for(enough, css)


@pytest.fixture
async def base(aiohttp_server: ServerFactory, ctx: MasterContext) -> str:
    """A real master app over ``populate``'s data on 127.0.0.1."""
    await populate(ctx)
    server: TestServer = await aiohttp_server(create_app(ctx))
    return str(server.make_url("")).rstrip("/")


async def fetch_json(url: str) -> Any:
    """GET a URL of the master as JSON."""
    import aiohttp

    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        assert resp.status == 200
        return await resp.json()


async def test_front_page_fleet(base: str, ctx: MasterContext, tmp_path: Path) -> None:
    """The front page shows the queue, jobs per hour, outcome mix, infra rate and slave load,
    and follows the fleet live."""
    fleet = await fetch_json(f"{base}/api/v1/fleet")
    async with chromium(tmp_path) as browser:
        await browser.resize(WIDTH, HEIGHT)
        await browser.get(f"{base}/")
        await wait_rows(browser, "#plot-throughput rect.bar", 1)
        await wait_rows(browser, "#fleet-slaves tbody tr", 1)
        assert await browser.text("#fleet-depth") == str(fleet["queue"]["depth"]) == "2"
        assert await browser.text("#fleet-per-hour") == str(fleet["totals"]["jobs_per_hour"])
        assert await browser.text("#fleet-finished") == "4"
        assert await browser.text("#fleet-infra") == "20.0 %"
        bars = await browser.script(
            "return [...document.querySelectorAll('#plot-throughput rect.bar')]"
            ".map(r => [r.dataset.key, Number(r.dataset.value)])"
        )
        by_key: dict[str, int] = {}
        for key, n in bars:  # one bar, or two when the jobs straddle an hour
            by_key[key] = by_key.get(key, 0) + n
        assert by_key == {"crashed": 1, "failed": 1, "passed": 2}
        mix = await browser.script(
            "return [...document.querySelectorAll('#plot-mix rect')].map(r => r.dataset.key)"
        )
        assert mix == ["passed", "failed", "crashed"]
        assert "passed 2" in await browser.text("#fleet-mix-legend")
        assert await count(browser, "#plot-queue circle") == 24
        slaves = await browser.text("#fleet-slaves")
        assert "slave-a" in slaves and "1 / 2" in slaves
        assert await count(browser, '#jobs-recent a[href^="/projects/"]') == 6
        plots = ["#plot-queue svg", "#plot-throughput svg", "#plot-mix svg", "#plot-infra svg"]
        await shoot(browser, "front-page", [*plots, "#fleet-slaves"])
        # Live: a job finishes while the page is open; the figures follow without a reload.
        waiting = (await ctx.store.jobs.find(JobFilter(project="waiting")))[0]
        claimed = await ctx.store.jobs.claim_next("slave-a", [IMAGE])
        assert claimed is not None
        await FakeProducer(ctx, await ctx.store.jobs.start(claimed.id, claimed.lease)).finish()
        assert claimed.id in (waiting.id, waiting.id - 1)

        async def updated() -> bool:
            return await browser.text("#fleet-finished") == "5"

        await browser.wait_for(updated, "the live update")
        assert await browser.text("#fleet-depth") == "1"
        await no_console_errors(browser)


async def test_project_page(base: str, tmp_path: Path) -> None:
    """The project page lists releases newest first with the API's numbers, plots and diff links."""
    history = await fetch_json(f"{base}/api/v1/projects/demo-pkg")
    async with chromium(tmp_path) as browser:
        await browser.resize(WIDTH, HEIGHT)
        await browser.get(f"{base}/projects/Demo_Pkg")
        await wait_rows(browser, "#releases tbody tr", 3)
        rows = await browser.script(
            "return [...document.querySelectorAll('#releases tbody tr')].map(r =>"
            " [r.dataset.version, r.querySelector('.score').textContent,"
            "  r.querySelector('.tests').textContent, r.className])"
        )
        expected = []
        for r in history["releases"]:
            t = r["tests"]
            kinds = ("passed", "failed", "errors", "skipped")
            tests = ", ".join(f"{t[k]} {k}" for k in kinds if k in t)
            worst = "worst" if r["job_id"] == history["worst"] else ""
            expected.append([r["version"], str(r["score"]), tests, worst])
        assert rows == expected
        assert rows[1][3] == "worst" and rows[1][0] == "1.1"
        assert "worst 1.1: failed, quality 55" in await browser.text("#project-summary")
        text = await browser.text("#releases")
        assert f"2 tests failed {HOSTILE}" in text  # guest text shown as text ...
        assert await browser.script("return document.getElementById('injected')") is None
        assert await browser.script("return window.pwned === undefined") is True  # ... not run
        assert "net.connect ×2" in text
        diff = await browser.script(
            "return [...document.querySelectorAll('#releases a.diff-link')]"
            ".map(a => [a.getAttribute('href'), a.textContent])"
        )
        newest, failed = history["releases"][0]["job_id"], history["releases"][1]["job_id"]
        assert diff == [
            [f"/jobs/{newest}#since-previous", "vs 1.1: 2 behaviour change(s), quality +35"],
            [f"/jobs/{failed}#since-previous", "vs 1.0: 2 behaviour change(s), quality -25"],
        ]
        scores = await browser.script(
            "return [...document.querySelectorAll('#plot-quality circle')]"
            ".map(c => Number(c.dataset.value))"
        )
        assert scores == [80, 55, 90]  # oldest release first
        tests = await browser.script(
            "return [...document.querySelectorAll('#plot-tests rect.bar')]"
            ".map(r => r.dataset.key + ' ' + r.dataset.value)"
        )
        assert tests == ["passed 10", "passed 7", "failed 3", "passed 12"]
        assert await count(browser, "#plot-duration circle") == 3

        async def badge_loaded() -> bool:
            width: int = await browser.script(
                "return document.getElementById('project-badge').naturalWidth"
            )
            return width > 0

        await browser.wait_for(badge_loaded, "the badge")
        # pyti project prints the same numbers, and marks the same release as the worst.
        printed = await cli("project", "DEMO_PKG", "--master", base)
        lines = printed.splitlines()
        assert lines[1].split()[:6] == ["2.0", str(newest), "passed", "12/0/-/1", "90", "0.0"]
        assert lines[2].split()[:5] == ["*", "1.1", str(failed), "failed", "·"]
        assert "7/2/1/0" in lines[2] and " 55 " in lines[2] and "vs 1.0: 2 behaviour" in lines[2]
        assert lines[-1] == f"worst: 1.1 (job {failed})"
        assert json.loads(await cli("project", "demo.pkg", "--master", base, "--json")) == history
        plots = ["#plot-quality svg", "#plot-tests svg", "#plot-duration svg"]
        await shoot(browser, "project-page", [*plots, "#releases tr.worst"])
        await no_console_errors(browser)
        await browser.get(f"{base}{diff[1][0]}")

        async def compared() -> bool:
            return "compared with 1.0" in await browser.text("#compare-summary")

        await browser.wait_for(compared, "the job page's comparison")


async def cli(*argv: str) -> str:
    """What ``pyti ARGV`` prints (it must succeed)."""
    out = io.StringIO()

    def run() -> int:
        with contextlib.redirect_stdout(out):
            return main(list(argv))

    assert await asyncio.to_thread(run) == 0
    return out.getvalue()


async def cli_ids(base: str, *flags: str) -> list[int]:
    """The job ids ``pyti jobs FLAGS --json`` prints."""
    body = json.loads(await cli("jobs", "--master", base, "--json", *flags))
    return [j["id"] for j in body["jobs"]]


async def page_ids(browser: WebDriver) -> list[int]:
    """The job ids in the jobs list page's table."""
    found: list[str] = await browser.script(
        "return [...document.querySelectorAll('#jobs-list tbody tr')].map(r => r.dataset.job)"
    )
    return [int(i) for i in found]


CASES = [
    ("source=feed", ["--source", "feed"]),
    ("project=DEMO.pkg&outcome=passed", ["--project", "DEMO.pkg", "--outcome", "passed"]),
    ("slave=slave-a&verdict=suspicious", ["--slave", "slave-a", "--verdict", "suspicious"]),
    ("q=pkg&state=finished", ["--search", "pkg", "--state", "finished"]),
    ("since=2000-01-01&until=2000-02-01", ["--since", "2000-01-01", "--until", "2000-02-01"]),
]


async def test_jobs_list_agrees_with_api_and_cli(base: str, tmp_path: Path) -> None:
    """The same filters give the same jobs in the API, ``pyti jobs`` and the jobs page."""
    async with chromium(tmp_path) as browser:
        await browser.resize(WIDTH, HEIGHT)
        for query, flags in CASES:
            api = [j["id"] for j in (await fetch_json(f"{base}/api/v1/jobs?{query}"))["jobs"]]
            assert await cli_ids(base, *flags) == api, query
            await browser.get(f"{base}/jobs?{query}")
            shown = f"({len(api)})"
            await browser.wait_for(lambda: _count_is(browser, shown), f"the list for {query}")  # noqa: B023 - awaited here
            assert await page_ids(browser) == api, query
        assert await cli_ids(base, "--since", "1h") == await cli_ids(base)  # all made just now
        # The form: choose filters, submit; the URL becomes the API's query.
        await browser.get(f"{base}/jobs")
        await wait_rows(browser, "#jobs-list tbody tr", 6)
        await browser.script(
            "const f = document.getElementById('filters');"
            "f.elements.outcome.value = 'passed'; f.elements.project.value = 'demo_pkg';"
            "f.requestSubmit();"
        )
        await browser.wait_for(lambda: _count_is(browser, "(2)"), "the filtered list")
        search = await browser.script("return location.search")
        assert search == "?project=demo_pkg&outcome=passed"
        api = [j["id"] for j in (await fetch_json(f"{base}/api/v1/jobs{search}"))["jobs"]]
        assert await page_ids(browser) == api
        await browser.get(f"{base}/jobs")
        await wait_rows(browser, "#jobs-list tbody tr", 6)
        await shoot(browser, "jobs-list", ["#filters", "#jobs-list tbody tr"])
        await no_console_errors(browser)


async def _count_is(browser: WebDriver, text: str) -> bool:
    return await browser.text("#jobs-count") == text
