"""``store.history``: one project's tested releases, newest first — what its page and badge show.

A release row is one finished job of the project (PEP 503 name, any image), read
with ``json_extract`` so a summary of tens of KiB is never loaded whole: outcome
and verdict, test counts, quality score, phase durations, findings by rule, and
its stored comparison with the previous release (``master.store.comparisons``).
Rows are ordered by PEP 440 version, highest first (legacy versions last), then
newest run first. Everything in a row came from a guest through a slave: the
readers here keep only values of the expected type.
"""

from __future__ import annotations

import json
from typing import Any, Final

from packaging.version import Version

from master.compare import parse_version
from master.store.db import Database
from master.store.schema import project_key

#: Jobs read for one project page (the newest by id); older ones are left out and counted.
MAX_RELEASES: Final = 500
#: Worst first: the outcome that makes a release "the worst" of its project.
OUTCOME_RANK: Final = {
    "harmful": 0,
    "crashed": 1,
    "failed": 2,
    "timed_out": 3,
    "infra_error": 4,
    "incomplete": 5,
    "passed": 6,
}
_TEST_COUNTS = ("collected", "passed", "failed", "errors", "skipped")

_RELEASES = """
SELECT id, project, version, image, source, outcome, verdict, created_at, started_at,
       finished_at, phases,
       json_extract(summary, '$.tests') AS tests,
       json_extract(summary, '$.quality.score') AS score,
       json_extract(summary, '$.reason') AS reason,
       json_extract(comparison, '$.behaviour_diff.previous') AS previous,
       json_array_length(json_extract(comparison, '$.behaviour_diff.new')) AS new_n,
       json_array_length(json_extract(comparison, '$.behaviour_diff.gone')) AS gone_n,
       json_extract(comparison, '$.quality_trend.score_change') AS score_change
FROM jobs WHERE project_key = ? AND state = 'finished' ORDER BY id DESC LIMIT ?
"""
_RULES = """
SELECT j.id, json_extract(f.value, '$.rule'), json_extract(f.value, '$.severity'), COUNT(*)
FROM jobs AS j, json_each(j.findings) AS f
WHERE j.project_key = ? AND j.state = 'finished' AND j.id >= ? AND json_valid(j.findings)
GROUP BY j.id, 2, 3
"""


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _json(text: Any) -> Any:
    if not isinstance(text, str):
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def _tests(text: Any) -> dict[str, int] | None:
    data = _json(text)
    if not isinstance(data, dict):
        return None
    counts = {k: int(v) for k in _TEST_COUNTS if isinstance(v := data.get(k), int)}
    return counts or None


def _phases(text: Any) -> dict[str, dict[str, Any]]:
    data = _json(text)
    phases: dict[str, dict[str, Any]] = {}
    for name, info in (data if isinstance(data, dict) else {}).items():
        if isinstance(info, dict):
            status = info.get("status")
            phases[str(name)] = {
                "status": status if isinstance(status, str) else None,
                "duration_s": _number(info.get("duration_s")),
            }
    return phases


def _previous(text: Any) -> dict[str, Any] | None:
    data = _json(text)
    if not isinstance(data, dict) or not isinstance(data.get("job_id"), int):
        return None
    return {"job_id": data["job_id"], "version": str(data.get("version", ""))}


_NO_VERSION: Final = Version("0")


def _sort_key(release: dict[str, Any]) -> tuple[bool, Version, str, float, int]:
    parsed = parse_version(release["version"])
    # Highest version first: sorted() with reverse=True; legacy versions sort below all,
    # among themselves by their text.
    return (
        parsed is not None,
        _NO_VERSION if parsed is None else parsed,
        "" if parsed is not None else release["version"],
        release["finished_at"] or 0.0,
        release["job_id"],
    )


def _rank(release: dict[str, Any]) -> tuple[int, float]:
    score = release["score"]
    return (OUTCOME_RANK.get(release["outcome"], 6), 101.0 if score is None else score)


class HistoryStore:
    """Read-only views of a project's results."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def releases(self, project: str) -> dict[str, Any]:
        """``{"project", "name", "releases", "worst", "truncated"}`` for any spelling of a name.

        ``releases`` is newest first (see the module doc); ``worst`` is the job id of
        the worst release (harmful, crashed, failed, timed_out, infra_error,
        incomplete, passed; then the lowest quality score), None when none is tested.
        """
        key = project_key(project)
        rows = await self._db.fetchall(_RELEASES, (key, MAX_RELEASES))
        releases = [self._release(r) for r in rows]
        oldest = min((r["job_id"] for r in releases), default=0)
        by_job: dict[int, dict[str, dict[str, Any]]] = {}
        for job_id, rule, severity, n in await self._db.fetchall(_RULES, (key, oldest)):
            if isinstance(rule, str):
                entry = by_job.setdefault(job_id, {}).setdefault(
                    rule, {"count": 0, "severity": severity if isinstance(severity, str) else ""}
                )
                entry["count"] += n
        for release in releases:
            rules = by_job.get(release["job_id"], {})
            release["rules"] = rules
            release["findings"] = sum(r["count"] for r in rules.values())
        releases.sort(key=_sort_key, reverse=True)
        worst = min(releases, key=_rank, default=None)
        return {
            "project": key,
            "name": releases[0]["project"] if releases else key,
            "releases": releases,
            "worst": None if worst is None else worst["job_id"],
            "truncated": len(rows) == MAX_RELEASES,
        }

    @staticmethod
    def _release(row: Any) -> dict[str, Any]:
        started, finished = row["started_at"], row["finished_at"]
        changes = None
        if row["new_n"] is not None or row["gone_n"] is not None:
            changes = (row["new_n"] or 0) + (row["gone_n"] or 0)
        score = _number(row["score"])
        change = _number(row["score_change"])
        return {
            "job_id": row["id"],
            "project": row["project"],
            "version": row["version"],
            "image": row["image"],
            "source": row["source"],
            "outcome": row["outcome"],
            "verdict": row["verdict"],
            "reason": row["reason"] if isinstance(row["reason"], str) else None,
            "created_at": row["created_at"],
            "finished_at": finished,
            "duration_s": None if started is None or finished is None else finished - started,
            "phases": _phases(row["phases"]),
            "tests": _tests(row["tests"]),
            "score": None if score is None else round(score),
            "previous": _previous(row["previous"]),
            "behaviour_changes": changes,
            "score_change": None if change is None else round(change),
        }
