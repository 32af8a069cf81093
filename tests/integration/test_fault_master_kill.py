"""Fault table row 3 (CI size): the master SIGKILLed at random points of dispatch and finish."""

from __future__ import annotations

import os
from pathlib import Path

from benchmarks.master_kill_bench import run

#: The benchmark runs 100 (``benchmarks/master_kill_bench.py``); CI a few.
KILLS = int(os.environ.get("PYTI_MASTER_KILLS", "3"))


async def test_master_killed_mid_dispatch_leaves_a_consistent_store(tmp_path: Path) -> None:
    """After each SIGKILL every job is in one valid state with at most one live lease and
    the database is intact; once left alone, every job finishes exactly once."""
    figures = await run(tmp_path, KILLS, jobs_per_round=100, seed=KILLS)
    assert figures["violations"] == 0, figures["violation_samples"]
    assert figures["finished_passed"] == figures["jobs"] == 100 * KILLS
    assert figures["finished_once"] == figures["jobs"]
    assert sum(figures["in_flight_at_kill"]) > 0  # the kills did land mid-work
    print(f"master kills: {figures}")
