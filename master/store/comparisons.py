"""Per-release comparisons, kept with the job when its result is stored.

Runs on the writer thread inside ``store.jobs.finish``'s transaction, so a job is
never finished without its comparison nor compared against a half-stored
result. The logic is ``master.compare``; this module reads the candidates and
writes two columns of ``jobs``:

- ``profile``: the release's behaviour profile (``[[phase, class, target], ...]``);
- ``comparison``: ``{"behaviour_diff": {...}, "quality_trend": {...}}`` against the
  previous release of the same project (PEP 503 name, ``project_key``) and image.

When an older release finishes after a newer one (a backlog, a re-run), the
releases of the next higher version are compared again, so their "previous" is
the closest tested one.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import structlog

from master import compare
from master.jobs import Job
from master.store.db import query
from master.store.rows import dumps, loads

log = structlog.get_logger("pyti.master.store")

_NOT_COMPARABLE = tuple(sorted(compare.NOT_COMPARABLE))
_MARKS = ", ".join("?" * len(_NOT_COMPARABLE))
_CANDIDATES = f"SELECT id, version, finished_at FROM jobs WHERE project_key = ? AND image = ? AND state = 'finished' AND outcome NOT IN ({_MARKS})"  # noqa: E501, S608  # constants only


def _candidates(conn: sqlite3.Connection, project_key: str, image: str) -> list[compare.Release]:
    with query(conn, _CANDIDATES, (project_key, image, *_NOT_COMPARABLE)) as cur:
        return [compare.Release(r[0], r[1], r[2] or 0.0) for r in cur.fetchall()]


def _release_data(
    conn: sqlite3.Connection, job_id: int
) -> tuple[frozenset[compare.ProfileEntry], compare.QualitySnapshot]:
    """A finished job's profile (stored, else from its summary) and quality snapshot."""
    with query(conn, "SELECT profile, summary FROM jobs WHERE id = ?", (job_id,)) as cur:
        row = cur.fetchone()
    if row is None:
        return frozenset(), compare.QualitySnapshot(None, {})
    summary = loads(row["summary"], {})
    summary = summary if isinstance(summary, dict) else {}
    stored = loads(row["profile"], None)
    profile = compare.behaviour_profile(
        {"profile": stored} if isinstance(stored, list) else summary
    )
    return profile, compare.quality_snapshot(summary)


def _compare_one(
    conn: sqlite3.Connection, release: compare.Release, candidates: list[compare.Release]
) -> None:
    profile, quality = _release_data(conn, release.job_id)
    previous = compare.pick_previous(release, candidates)
    if previous is None:
        before_profile: frozenset[compare.ProfileEntry] = frozenset()
        before_quality = compare.QualitySnapshot(None, {})
    else:
        before_profile, before_quality = _release_data(conn, previous.job_id)
    comparison = {
        "behaviour_diff": compare.behaviour_diff(
            previous, before_profile, profile, release.version
        ),
        "quality_trend": compare.quality_trend(previous, before_quality, quality),
    }
    conn.execute("UPDATE jobs SET comparison = ? WHERE id = ?", (dumps(comparison), release.job_id))


def record_comparison(conn: sqlite3.Connection, job: Job, project_key: str) -> None:
    """Keep ``job``'s profile and compare it (and the next higher version) with the previous.

    ``job`` was just finished in this transaction. A failure rolls back only the
    comparison (the result itself is stored regardless) and is logged: a bug here
    must never lose a result.
    """
    conn.execute("SAVEPOINT comparison")
    try:
        _record(conn, job, project_key)
    except Exception as exc:  # any bug in the comparison: keep the result, drop the comparison
        conn.execute("ROLLBACK TO comparison")
        conn.execute("RELEASE comparison")
        log.error("comparison_failed", job_id=job.id, error=f"{type(exc).__name__}: {exc}")
        return
    conn.execute("RELEASE comparison")


def _record(conn: sqlite3.Connection, job: Job, project_key: str) -> None:
    profile = compare.behaviour_profile(job.summary)
    conn.execute(
        "UPDATE jobs SET profile = ? WHERE id = ?",
        (dumps(compare.profile_to_json(profile)), job.id),
    )
    if job.outcome in compare.NOT_COMPARABLE:
        return
    candidates = _candidates(conn, project_key, job.image)
    current = compare.Release(job.id, job.version, job.finished_at or 0.0)
    _compare_one(conn, current, candidates)
    for later in compare.next_versions(current, candidates):
        _compare_one(conn, later, candidates)


def comparison_of(row: sqlite3.Row) -> dict[str, Any]:
    """``behaviour_diff`` and ``quality_trend`` of a job row (both None until compared)."""
    keys = row.keys()
    stored = loads(row["comparison"], None) if "comparison" in keys else None
    if not isinstance(stored, dict):
        return {"behaviour_diff": None, "quality_trend": None}
    return {
        "behaviour_diff": stored.get("behaviour_diff"),
        "quality_trend": stored.get("quality_trend"),
    }
