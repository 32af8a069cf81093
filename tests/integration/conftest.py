"""A real master in-process (real sockets on 127.0.0.1, real SQLite) and fake slaves."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from master.config import MasterConfig, build_config
from master.context import MasterContext
from master.daemon import Master
from master.jobs import Job, JobRequest
from protocol.messages import ImageInfo
from slave.config import SlaveConfig
from slave.daemon import SlaveDaemon
from tests.fakes.callback_receiver import Receiver
from tests.fakes.master import ScriptedExecutor, emitting
from tests.fakes.slave import FakeSlave

SECRET = b"integration-secret-0123456789abcdef"

#: Short timings so failure paths run in well under a second.
FAST: dict[str, Any] = {
    "heartbeat_interval": 0.2,
    "heartbeat_timeout": 1.5,
    "reconnect_grace": 0.6,
    "drain_grace": 1.0,
    "retry_limit": 1,
    "quarantine_after": 2,
}


def make_config(tmp_path: Path, **overrides: Any) -> MasterConfig:
    secret_file = tmp_path / "secret"
    secret_file.write_bytes(SECRET + b"\n")
    values: dict[str, Any] = {
        "data_dir": str(tmp_path / "data"),
        "secret_file": str(secret_file),
        "slave_addr": "127.0.0.1:0",
        "http_addr": "127.0.0.1:0",
        "no_feed": True,
        "master_name": "test-master",
        **FAST,
        **overrides,
    }
    cfg = build_config(values)
    cfg.data_dir.mkdir(parents=True, exist_ok=True)
    return cfg


class Harness:
    """One running master plus helpers; ``restart()`` reopens the same database."""

    def __init__(self, config: MasterConfig) -> None:
        self.config = config
        self.master = Master(config, slave_port=0, http=False)
        self.slaves: list[FakeSlave] = []

    @property
    def ctx(self) -> MasterContext:
        return self.master.ctx

    @property
    def port(self) -> int:
        return self.master.slave_port

    async def start(self) -> None:
        await self.master.start()

    async def stop(self) -> None:
        for s in self.slaves:
            await s.close()
        self.slaves.clear()
        await self.master.stop()

    async def restart(self) -> None:
        await self.stop()
        self.master = Master(self.config, slave_port=0, http=False)
        await self.master.start()

    def fake(self, name: str = "s1", *, port: int | None = None, **kw: Any) -> FakeSlave:
        """A fake slave of this master (of its slave port, unless ``port`` names another)."""
        slave = FakeSlave("127.0.0.1", self.port if port is None else port, SECRET, name=name, **kw)
        self.slaves.append(slave)
        return slave

    async def slave(self, name: str = "s1", *, port: int | None = None, **kw: Any) -> FakeSlave:
        """A connected fake slave, once the master has reconciled it (ready for offers)."""
        slave = self.fake(name, port=port, **kw)
        await slave.connect()
        await self.until(lambda: _ready(self.ctx, name))
        return slave

    async def submit(self, project: str = "demo", version: str = "1.0", **kw: Any) -> Job:
        files = kw.pop("files", None) or [
            {
                "filename": f"{project}-{version}.tar.gz",
                "sha256": "0" * 64,
                "size": 10,
                "packagetype": "sdist",
                "url": f"http://127.0.0.1:1/{project}.tar.gz",
            }
        ]
        res = await self.ctx.store.jobs.submit(
            JobRequest(
                project=project,
                version=version,
                files=files,
                image=kw.pop("image", "bookworm"),
                **kw,
            )
        )
        self.ctx.scheduler.kick()
        return res.job

    async def job(self, job_id: int) -> Job:
        job = await self.ctx.store.jobs.get(job_id)
        assert job is not None
        return job

    async def until(
        self, predicate: Callable[[], bool | Awaitable[bool]], timeout: float = 10.0
    ) -> None:
        """Wait for a condition on master state (checked every 20 ms)."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if not isinstance(value, bool):
                value = await value
            if value:
                return
            if time.monotonic() > deadline:
                raise AssertionError("condition not reached in time")
            await asyncio.sleep(0.02)

    async def until_job(
        self, job_id: int, check: Callable[[Job], bool], timeout: float = 10.0
    ) -> Job:
        async def ok() -> bool:
            return check(await self.job(job_id))

        await self.until(ok, timeout)
        return await self.job(job_id)


def _ready(ctx: MasterContext, name: str) -> bool:
    link = ctx.slaves.get(name)
    return link is not None and link.accepting


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    h = Harness(make_config(tmp_path))
    await h.start()
    try:
        yield h
    finally:
        await h.stop()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A completion-callback receiver on loopback that accepts every delivery."""
    recv = Receiver()
    await recv.server.start_server()
    try:
        yield recv
    finally:
        await recv.server.close()


#: The image a real slave daemon announces in these tests (it never boots it).
SLAVE_IMAGE = ImageInfo(name="bookworm", python="3.11", digest="0123456789abcdef")


@contextlib.asynccontextmanager
async def real_slave(h: Harness, tmp_path: Path, **settings: Any) -> AsyncIterator[SlaveDaemon]:
    """A real `SlaveDaemon` ("slave-1", work dir ``tmp_path/work``) connected to the
    harness's master, its jobs scripted (one event each); ``settings`` go into its
    `SlaveConfig`. Stopped, then the master too, on exit."""
    config = SlaveConfig(
        master_host="127.0.0.1", master_port=h.port, secret=SECRET,
        image_dir=tmp_path / "images", work_dir=tmp_path / "work", name="slave-1",
        accel="tcg", **settings,
    )  # fmt: skip
    executor = ScriptedExecutor(emitting(1))
    daemon = SlaveDaemon(config, images=[SLAVE_IMAGE], accel="tcg", executor=executor)
    task = asyncio.create_task(daemon.run())
    try:
        yield daemon
    finally:
        daemon.request_stop()
        await asyncio.wait_for(task, 20)
        await h.stop()
