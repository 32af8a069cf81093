"""Shared pieces of the HTTP API tests: a real master context in ``tmp_path`` and a fake producer.

The other ``test_api_*``/``test_client_*``/``test_web_page`` modules import the
fixtures from here. ``FakeProducer`` plays the slave server's part: it claims a
job, stores events through the store and publishes the new rows on the bus, and
finishes the job the same way (store, then ``publish_end``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from master.config import MasterConfig
from master.context import MasterContext
from master.http.app import create_app
from master.http.keys import HttpSettings
from master.jobs import FINAL_STATES, EventRow, Job, JobRequest
from protocol.events import Event
from protocol.messages import JobResult
from protocol.results import JobSummary, phases_from_json
from protocol.vocabulary import Outcome
from slave.findings.profile import rule_kind

TOKEN = "test-token-0123456789"
CALLBACK_SECRET = "callback-secret-0123456789"
#: Test receivers listen on loopback, which callbacks may not reach unless allowed.
LOOPBACK_CALLBACKS = {"callback_secret": CALLBACK_SECRET, "callback_allow": ["127.0.0.0/8"]}
IMAGE = "bookworm"


def make_config(
    tmp_path: Path,
    *,
    pypi_url: str = "http://127.0.0.1:9",
    tokens: frozenset[str] = frozenset({TOKEN}),
    require_read_token: bool = False,
    http: dict[str, Any] | None = None,
) -> MasterConfig:
    """A master config rooted in ``tmp_path`` (port 9 on loopback: nothing listens there)."""
    return MasterConfig(
        data_dir=tmp_path,
        db_path=tmp_path / "pyti.sqlite3",
        secret=b"slave-secret-0123456789",
        tokens=tokens,
        pypi_url=pypi_url,
        require_read_token=require_read_token,
        default_image=IMAGE,
        http=dict(LOOPBACK_CALLBACKS) if http is None else http,
    )


async def open_ctx(tmp_path: Path, **kwargs: Any) -> MasterContext:
    """A real context (SQLite in ``tmp_path``, created if needed); the caller closes it."""
    await asyncio.to_thread(tmp_path.mkdir, parents=True, exist_ok=True)
    return await MasterContext.open(make_config(tmp_path, **kwargs))


@pytest.fixture
async def ctx(tmp_path: Path) -> AsyncIterator[MasterContext]:
    """A master context with one token and a callback secret."""
    context = await open_ctx(tmp_path)
    try:
        yield context
    finally:
        await context.close()


@pytest.fixture
def app(ctx: MasterContext) -> web.Application:
    """The HTTP app over ``ctx``."""
    return create_app(ctx)


def app_with(ctx: MasterContext, **settings: Any) -> web.Application:
    """The HTTP app over ``ctx`` with some `HttpSettings` changed (short timeouts, small queues)."""
    return create_app(
        ctx, settings=dataclasses.replace(HttpSettings.from_config(ctx.config), **settings)
    )


def auth(token: str = TOKEN) -> dict[str, str]:
    """The Authorization header."""
    return {"Authorization": f"Bearer {token}"}


async def queue_job(
    ctx: MasterContext, project: str = "demo", version: str = "1.0", **kwargs: Any
) -> Job:
    """A job queued directly in the store (no index involved)."""
    files = [
        {
            "filename": f"{project}-{version}.tar.gz",
            "sha256": "0" * 64,
            "size": 1,
            "packagetype": "sdist",
            "url": "http://127.0.0.1:9/x",
        }
    ]
    req = JobRequest(project=project, version=version, files=files, image=IMAGE, **kwargs)
    return (await ctx.store.jobs.submit(req)).job


async def store_snapshot(ctx: MasterContext) -> list[dict[str, Any]]:
    """Every job as a dict: to show a refused request changed nothing."""
    jobs = await ctx.store.jobs.find(limit=1000)
    return [j.to_dict() for j in jobs]


def profile_of(findings: Sequence[dict[str, Any]]) -> list[list[str]]:
    """The behaviour profile a slave would send with these findings (its own rule table)."""
    entries = {
        (str(f["phase"]), rule_kind(str(f["rule"])), str(f.get("target", ""))) for f in findings
    }
    return [[phase, kind, target] for phase, kind, target in sorted(entries) if kind is not None]


class FakeProducer:
    """What the slave server does with a running job: store events, publish them, finish."""

    def __init__(self, ctx: MasterContext, job: Job) -> None:
        self.ctx = ctx
        self.job = job
        self.lease = job.lease
        self.seq = 0

    @classmethod
    async def start(cls, ctx: MasterContext, job: Job) -> FakeProducer:
        """Claim ``job`` (it must be the next queued one) and mark it running."""
        claimed = await ctx.store.jobs.claim_next("fake-slave", [IMAGE])
        assert claimed is not None and claimed.id == job.id
        running = await ctx.store.jobs.start(claimed.id, claimed.lease)
        return cls(ctx, running)

    def make(self, n: int, **fields: Any) -> list[Event]:
        """The next ``n`` events (seq continues), with ``fields``."""
        events = []
        for _ in range(n):
            self.seq += 1
            events.append(
                Event(
                    seq=self.seq,
                    ts=time.time(),
                    level="info",
                    event="output",
                    phase="install",
                    fields=dict(fields, line=f"line {self.seq}"),
                )
            )
        return events

    async def send(self, events: Sequence[Event]) -> list[EventRow]:
        """Store, then publish the new rows (as the slave server does after the commit)."""
        stored = await self.ctx.store.events.save(self.job.id, self.lease, events)
        self.ctx.bus.publish(self.job.id, stored.new)
        return stored.new

    async def emit(self, n: int, **fields: Any) -> list[EventRow]:
        """``make`` and ``send``."""
        return await self.send(self.make(n, **fields))

    async def finish(self, outcome: str = "passed", **summary: Any) -> Job:
        """Store the result and publish the end (findings get their profile, as a slave sends)."""
        if "findings" in summary and "profile" not in summary:
            summary["profile"] = profile_of(summary["findings"])
        result = JobResult(
            job_id=self.job.id,
            lease=self.lease,
            outcome=Outcome(outcome),
            isolation="tcg",
            last_seq=self.seq,
            phases=phases_from_json({"install": {"status": "passed", "duration_s": 1.5}}),
            summary=JobSummary.from_json(dict(summary)),
        )
        await self.ctx.store.jobs.finish(self.job.id, self.lease, result)
        job = await self.ctx.store.jobs.get(self.job.id)
        assert job is not None and job.state in FINAL_STATES
        self.ctx.bus.publish_end(job)
        return job


async def test_fake_producer_stores_gap_free(ctx: MasterContext) -> None:
    """The fake producer stores events 1..n and finishes the job like the slave server."""
    job = await queue_job(ctx)
    producer = await FakeProducer.start(ctx, job)
    with ctx.bus.subscribe(job.id) as sub:
        rows = await producer.emit(3)
        assert [r.seq for r in rows] == [1, 2, 3]
        assert [getattr(await sub.get(), "seq", None) for _ in range(3)] == [1, 2, 3]
        ended = await producer.finish("failed")
        assert ended.outcome == "failed"
        assert isinstance(await sub.get(), Job)
    assert [r.seq for r in await ctx.store.events.read(job.id)] == [1, 2, 3]
