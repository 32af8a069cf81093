"""The store keeps one project under any spelling of its name (PEP 503) and migrates old rows."""

from __future__ import annotations

import contextlib
import sqlite3
import time
from pathlib import Path

from structlog.testing import capture_logs

from master.jobs import FinishDisposition, JobRequest, JobState, Source
from master.store import SCHEMA_VERSION, Store
from master.store.db import migrate
from protocol.messages import JobResult
from protocol.results import JobSummary
from protocol.vocabulary import Outcome, Verdict


def _request(project: str, version: str, source: Source = "api") -> JobRequest:
    files = [{"filename": "x.tar.gz", "sha256": "0" * 64, "size": 1, "packagetype": "sdist"}]
    return JobRequest(project, version, files, image="bookworm", source=source)


async def test_project_filter_and_dedupe_use_the_normalised_name(tmp_path: Path) -> None:
    """Foo.Bar_baz and foo-bar-baz are one project: filtered together and deduped."""
    store = await Store.open(tmp_path / "s.sqlite3")
    try:
        feed = (await store.jobs.submit(_request("Foo.Bar_baz", "1.0", source="feed"))).job
        upload = await store.jobs.submit(_request("foo-bar-baz", "1.0", source="upload"))
        assert upload.created is False and upload.job.id == feed.id
        other = (await store.jobs.submit(_request("foo-bar-baz", "1.1"))).job
        assert (await store.jobs.submit(_request("foobarbaz", "1.0"))).created  # another project
        for spelling in ("FOO_BAR.BAZ", "foo-bar-baz", "Foo.Bar_baz"):
            listed = await store.jobs.find(project=spelling)
            assert [j.id for j in listed] == [other.id, feed.id], spelling
    finally:
        await store.close()


async def test_migration_fills_the_normalised_name_of_old_jobs(tmp_path: Path) -> None:
    """Jobs stored at schema 2 get their PEP 503 key when the store opens at schema 3."""
    path = tmp_path / "old.sqlite3"
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        assert migrate(conn, target=2) == 2
        conn.execute(
            "INSERT INTO jobs (project, version, image, created_at) VALUES (?, '0.1', 'b', ?)",
            ("Old_Project", time.time()),
        )
    finally:
        conn.close()
    store = await Store.open(path)
    try:
        assert SCHEMA_VERSION >= 3
        [job] = await store.jobs.find(project="old-project")
        assert job.project == "Old_Project"
        detail = await store.jobs.detail(job.id)
        assert detail is not None
        assert detail[1] == {"behaviour_diff": None, "quality_trend": None}
    finally:
        await store.close()


async def _finish(store: Store, project: str, version: str) -> int:
    job = (await store.jobs.submit(_request(project, version))).job
    [claimed] = await store.jobs.claim("s1", ["bookworm"], 1)
    result = JobResult(
        job_id=claimed.id,
        lease=claimed.lease,
        outcome=Outcome.PASSED,
        isolation="tcg",
        last_seq=0,
        summary=JobSummary(findings=(), verdict=Verdict.CLEAN),
    )
    assert await store.jobs.finish(claimed.id, claimed.lease, result) == FinishDisposition.STORED
    return job.id


async def test_a_failing_comparison_never_loses_the_result(tmp_path: Path) -> None:
    """A corrupt stored profile fails the comparison: the result is stored, the diff is null."""
    path = tmp_path / "c.sqlite3"
    store = await Store.open(path)
    try:
        first = await _finish(store, "demo", "1.0")
        with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
            conn.execute("UPDATE jobs SET profile = '{not json' WHERE id = ?", (first,))
        with capture_logs() as logs:
            second = await _finish(store, "demo", "1.1")
        detail = await store.jobs.detail(second)
        assert detail is not None
        job, comparison = detail
        assert (job.state, job.outcome) == (JobState.FINISHED, "passed")
        assert comparison == {"behaviour_diff": None, "quality_trend": None}
        assert [e["event"] for e in logs if e["log_level"] == "error"] == ["comparison_failed"]
    finally:
        await store.close()
