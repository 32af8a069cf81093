"""One reload at a time, off the event loop's thread: what SIGHUP starts in both daemons.

A reload reads the daemon's configuration files again (blocking, so in a thread)
and hands a usable result to the daemon; a configuration that cannot be used is
logged as ``config_reload_failed`` with the reason, and nothing changes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Generic, TypeVar

import structlog

from pyti.tasks import cancel_and_wait

log = structlog.get_logger("pyti.reload")

Config = TypeVar("Config")


class Reloader(Generic[Config]):
    """Runs one reload at a time off the event loop's thread; owns that task.

    ``load`` reads and checks the configuration (blocking; run in a thread) and
    raises one of ``errors`` for an unusable one; ``apply`` puts a loaded one into service.
    """

    def __init__(
        self,
        load: Callable[[], Config],
        apply: Callable[[Config], None],
        errors: tuple[type[Exception], ...],
    ) -> None:
        self._load = load
        self._apply = apply
        self._errors = errors
        self._task: asyncio.Task[None] | None = None
        self._again = False

    def __repr__(self) -> str:
        busy = self._task is not None and not self._task.done()
        return f"<Reloader {'busy' if busy else 'idle'}>"

    def request(self) -> None:
        """Reload soon (a signal handler calls this); a request during a reload runs after it."""
        if self._task is not None and not self._task.done():
            self._again = True
            return
        self._task = asyncio.create_task(self.reload(), name="reload")

    async def reload(self) -> None:
        """Read the configuration and apply it; a bad one is logged and changes nothing."""
        while True:
            self._again = False
            try:
                config = await asyncio.to_thread(self._load)
            except self._errors as exc:
                log.error("config_reload_failed", error=str(exc), kept="previous settings")
            else:
                self._apply(config)
            if not self._again:
                return

    async def close(self) -> None:
        """Cancel a reload in progress and wait for it."""
        if self._task is not None:
            for error in await cancel_and_wait(self._task):
                log.error("config_reload_crashed", error=repr(error))
