"""The slave's download cache stays under cache_max_bytes, least recently used out first, and
the master's /metrics shows the slave's cache size and evicted bytes."""

from __future__ import annotations

import os
import time
from pathlib import Path

from slave.prepare.cache import TRIM_MIN_AGE_S, BlobCache
from tests.integration.conftest import Harness, make_config, real_slave


def _blob(cache: BlobCache, n: int, size: int, age_s: float) -> Path:
    path = cache.blob(f"{n:064x}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"w" * size)
    used = time.time() - age_s
    os.utime(path, (used, used))
    return path


def test_trim_evicts_least_recently_used_and_keeps_recent_use(tmp_path: Path) -> None:
    """Oldest blobs go first; a blob found (``has``) just now is kept though it was old."""
    cache = BlobCache(tmp_path / "cache")
    old = [_blob(cache, n, 100, age_s=TRIM_MIN_AGE_S + 1000 - n) for n in range(5)]
    assert cache.has(f"{0:064x}")  # a job finds blob 0: it is in use again
    trimmed = cache.trim(300)
    assert (trimmed.files, trimmed.bytes, trimmed.left) == (2, 200, 300)
    assert [p.exists() for p in old] == [True, False, False, True, True]


async def test_daemon_trims_and_the_master_shows_it(tmp_path: Path) -> None:
    """A slave over its bound trims at start; the master's /metrics carries the figures."""
    h = Harness(make_config(tmp_path))
    await h.start()
    cache = BlobCache(tmp_path / "work" / "cache")
    for n in range(4):
        _blob(cache, n, 1000, age_s=TRIM_MIN_AGE_S * 2 + n)
    async with real_slave(h, tmp_path, cache_max_bytes=2500, cache_trim_interval=60.0):

        async def shown() -> bool:
            text = await h.ctx.metrics.render()
            return 'pyti_slave_cache_evicted_bytes{slave="slave-1"} 2000' in text

        await h.until(shown)
        text = await h.ctx.metrics.render()
        assert 'pyti_slave_cache_bytes{slave="slave-1"} 2000' in text
