"""The periodic trim of the slave's download cache to ``cache_max_bytes``.

``CacheTrimmer.run`` trims once at start, then after each job (``poke``) and every
``cache_trim_interval`` seconds; the slave daemon owns its task. The cache's size
and the bytes evicted since start go to the master in every heartbeat, which shows
them in ``/metrics`` (``pyti_slave_cache_bytes``, ``pyti_slave_cache_evicted_bytes``).
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog

from pyti import lru
from slave.prepare.cache import BlobCache

log = structlog.get_logger(__name__)


class CacheTrimmer:
    """Keeps ``cache`` under ``max_bytes`` (0: only measures it)."""

    def __init__(self, cache: BlobCache, max_bytes: int, interval: float) -> None:
        self.cache = cache
        self.max_bytes = max_bytes
        self.interval = interval
        #: bytes in the cache after the last trim
        self.cache_bytes = 0
        #: bytes evicted since this slave started
        self.evicted_bytes = 0
        self._wake = asyncio.Event()

    def __repr__(self) -> str:
        return f"<CacheTrimmer {self.cache_bytes}/{self.max_bytes} evicted={self.evicted_bytes}>"

    def poke(self) -> None:
        """Trim soon (a job ended: it may have added to the cache)."""
        self._wake.set()

    async def trim_once(self) -> lru.Trimmed:
        """One trim (in a thread); updates the counters."""
        if self.max_bytes > 0:
            trimmed = await asyncio.to_thread(self.cache.trim, self.max_bytes)
        else:
            trimmed = lru.Trimmed(0, 0, await asyncio.to_thread(self.cache.size))
        self.cache_bytes = trimmed.left
        self.evicted_bytes += trimmed.bytes
        if trimmed.files:
            log.info("cache_trimmed", files=trimmed.files, bytes=trimmed.bytes, left=trimmed.left)
        return trimmed

    async def run(self) -> None:
        """Trim until cancelled; a failed trim (a file system error) is logged, not fatal."""
        while True:
            self._wake.clear()
            try:
                await self.trim_once()
            except OSError as exc:
                log.warning("cache_trim_failed", error=str(exc))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.interval):
                    await self._wake.wait()
