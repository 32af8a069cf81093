"""A slave whose work dir is under its ``min_free_mb`` is seen in the master's /metrics.

Such a slave takes no job (its heartbeats say no free slot), so nothing fails and no job
is re-queued: without its own figure, a full slave disk was invisible (the soak's
disk-full fault, docs/reliability.md row 15). Real master, real slave daemon, loopback.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from pathlib import Path

from master.jobs import JobState
from tests.integration.conftest import Harness, make_config, real_slave


async def test_a_slave_short_of_disk_is_shown_counted_once_and_offered_nothing(
    tmp_path: Path,
) -> None:
    """While its heartbeats say disk short the slave gets no offer at all (the soak's s1
    refused 485 offers in an hour, one after each heartbeat, each an attempt row); when
    space returns the queued job runs there."""
    h = Harness(make_config(tmp_path))
    await h.start()
    async with real_slave(h, tmp_path, min_free_mb=1 << 40) as daemon:

        def shown(text: str) -> Callable[[], Awaitable[bool]]:
            async def check() -> bool:
                return text in await h.ctx.metrics.render()

            return check

        await h.until(shown('pyti_slave_disk_short{slave="slave-1"} 1'))
        job = await h.submit()
        await asyncio.sleep(1.0)  # more heartbeats, all short: still one onset, no offer
        text = await h.ctx.metrics.render()
        assert 'pyti_slave_disk_short_total{slave="slave-1"} 1' in text
        assert "pyti_job_refusals_total{" not in text
        assert "pyti_jobs_dispatched_total 0" in text

        daemon.config = dataclasses.replace(daemon.config, min_free_mb=0)  # space is back
        await h.until(shown('pyti_slave_disk_short{slave="slave-1"} 0'))
        done = await h.until_job(job.id, lambda j: j.state is JobState.FINISHED)
        assert done.attempt == 1
        text = await h.ctx.metrics.render()
        assert 'pyti_slave_disk_short_total{slave="slave-1"} 1' in text
