"""The master daemon: the context and its components, started and stopped in order.

Components (each ``start()``/``stop()``): the slave server, the scheduler
(dispatch + watchdog), the HTTP API (``master.http.app.create_app`` on an
``AppRunner``), the feed watcher (unless disabled), the retention pass
(``master.retention``). ``start`` brings them up in
that order and, if one fails, stops those already started before raising.
``stop`` is the staged shutdown: stop taking work (feed, HTTP), drain the
slaves (their running jobs are re-queued if they do not finish within
``drain_grace``), stop the scheduler, then close the store (queued event
batches are committed first). Every acknowledgement to a slave follows its
commit, so ``kill -9`` at any moment loses nothing that was acknowledged.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

import structlog
from aiohttp import web

from master.config import MasterConfig
from master.context import MasterContext
from master.feed.watcher import FeedWatcher
from master.http.app import create_app
from master.http.auth import TokenCheck
from master.http.keys import TOKENS, HttpSettings
from master.metrics import Metrics
from master.reload import reloaded
from master.retention import Retention
from master.slaves.listener import SlaveListener
from pyti.logging import set_level
from pyti.tasks import cancel_and_wait

log = structlog.get_logger("master.daemon")


class Component(Protocol):
    """A part of the daemon with a lifecycle."""

    name: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class TaskComponent:
    """A coroutine that runs until cancelled (scheduler, feed watcher)."""

    def __init__(self, name: str, factory: Callable[[], Coroutine[Any, Any, None]]) -> None:
        self.name = name
        self._factory = factory
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.task = asyncio.create_task(self._guarded(), name=self.name)

    async def _guarded(self) -> None:
        try:
            await self._factory()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("component_crashed", component=self.name)
            raise

    async def stop(self) -> None:
        if self.task is None:
            return
        await cancel_and_wait(self.task)  # a crash was logged when it happened


class SlaveListenerComponent:
    name = "slave_listener"

    def __init__(self, ctx: MasterContext, port: int | None) -> None:
        self.listener = SlaveListener(ctx, port=port, ssl_context=ctx.config.ssl_context())
        self._grace = ctx.config.drain_grace

    async def start(self) -> None:
        await self.listener.start()

    async def stop(self) -> None:
        await self.listener.stop(self._grace)


class HttpComponent:
    """The HTTP API served on ``config.http_host:http_port``."""

    name = "http"

    def __init__(self, ctx: MasterContext, port: int | None) -> None:
        self._ctx = ctx
        self._port = ctx.config.http_port if port is None else port
        self._runner: web.AppRunner | None = None
        self.port: int | None = None
        #: the tokens the API accepts; a reload replaces them
        self.tokens: TokenCheck | None = None

    async def start(self) -> None:
        settings = HttpSettings.from_config(self._ctx.config)
        app = create_app(self._ctx, settings=settings)
        self.tokens = app[TOKENS]
        # keepalive_timeout also closes a connection that never completes a request
        # (aiohttp >= 3.14.5 arms it at connect): the idle and slow-loris bound.
        runner = web.AppRunner(
            app, access_log=None, shutdown_timeout=5.0, keepalive_timeout=settings.idle_timeout
        )
        await runner.setup()
        self._runner = runner
        site = web.TCPSite(runner, self._ctx.config.http_host, self._port)
        await site.start()
        self.port = int(runner.addresses[0][1])
        log.info("http_listening", host=self._ctx.config.http_host, port=self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


class Master:
    """One master daemon. ``await start()``, ``await stop()`` always (idempotent).

    ``slave_port``/``http_port`` override the configured ports (0: any free
    port, for tests); ``http=False`` leaves the HTTP API out.
    """

    def __init__(
        self,
        config: MasterConfig,
        *,
        metrics: Metrics | None = None,
        slave_port: int | None = None,
        http_port: int | None = None,
        http: bool = True,
    ) -> None:
        self.config = config
        self._metrics = metrics
        self._slave_port = slave_port
        self._http_port = http_port
        self._http = http
        self._ctx: MasterContext | None = None
        self._started: list[Component] = []
        self._stop_requested = asyncio.Event()
        self._stopped = False
        self.slaves: SlaveListenerComponent | None = None
        self.http: HttpComponent | None = None

    @property
    def ctx(self) -> MasterContext:
        assert self._ctx is not None, "Master.start() first"
        return self._ctx

    @property
    def slave_port(self) -> int:
        assert self.slaves is not None
        return self.slaves.listener.port

    @property
    def http_port(self) -> int | None:
        return None if self.http is None else self.http.port

    def components(self, ctx: MasterContext) -> list[Component]:
        """The components, in start order."""
        self.slaves = SlaveListenerComponent(ctx, self._slave_port)
        parts: list[Component] = [
            self.slaves,
            TaskComponent("scheduler", ctx.scheduler.run),
        ]
        if self._http:
            self.http = HttpComponent(ctx, self._http_port)
            parts.append(self.http)
        if self.config.feed_enabled:
            parts.append(TaskComponent("feed", FeedWatcher(ctx).run))
        parts.append(TaskComponent("retention", Retention(ctx).run))
        return parts

    async def start(self) -> None:
        """Open the store and start every component. On failure, undo and raise
        (``StoreError``, ``ConfigError``, ``OSError`` for a port in use)."""
        self._ctx = await MasterContext.open(self.config, metrics=self._metrics)
        try:
            for part in self.components(self._ctx):
                await part.start()
                self._started.append(part)
        except BaseException:
            await self.stop()
            raise
        self._ctx.scheduler.kick()
        log.info(
            "master_started",
            slave_port=self.slave_port,
            http_port=self.http_port,
            feed=self.config.feed_enabled,
        )

    def reload(self, new: MasterConfig) -> None:
        """Apply ``new``'s live settings (``master.reload``): tokens, slave secrets, log level.

        Other differences are logged (``config_reload_needs_restart``) and ignored.
        """
        config, needs_restart = reloaded(self.config, new)
        self.config = config
        if self._ctx is not None:
            self._ctx.config = config  # the slave listener reads it at each handshake
        if self.http is not None and self.http.tokens is not None:
            self.http.tokens.replace(config.tokens)
        log.info(
            "config_reloaded",
            tokens=len(config.tokens),
            slave_secrets=len(config.slave_secrets),
            log_level=config.log_level,
        )
        if needs_restart:
            log.warning("config_reload_needs_restart", settings=needs_restart)
        set_level(config.log_level)  # after the lines above: a reload is always on record

    def request_stop(self) -> None:
        """Ask ``wait()`` to return (signal handlers call this)."""
        self._stop_requested.set()

    async def wait(self) -> None:
        """Until ``request_stop()``."""
        await self._stop_requested.wait()

    async def stop(self) -> None:
        """Staged shutdown; see the module docstring. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        started = list(self._started)
        order = ["retention", "feed", "http", "slave_listener", "scheduler"]
        for name in order:
            for part in started:
                if part.name == name:
                    try:
                        await part.stop()
                    except Exception:
                        log.exception("component_stop_failed", component=name)
        if self._ctx is not None:
            await self._ctx.close()
        log.info("master_stopped")
