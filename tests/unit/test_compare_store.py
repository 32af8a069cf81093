"""The store keeps one project under any spelling of its name (PEP 503) and migrates old rows."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from master.jobs import JobRequest, Source
from master.store import SCHEMA_VERSION, Store
from master.store.db import migrate


def _request(project: str, version: str, source: Source = "api") -> JobRequest:
    files = [{"filename": "x.tar.gz", "sha256": "0" * 64, "size": 1, "packagetype": "sdist"}]
    return JobRequest(project, version, files, image="bookworm", source=source)


async def test_project_filter_and_dedupe_use_the_normalised_name(tmp_path: Path) -> None:
    """Foo.Bar_baz and foo-bar-baz are one project: filtered together and deduped."""
    store = await Store.open(tmp_path / "s.sqlite3")
    try:
        feed = (await store.submit_job(_request("Foo.Bar_baz", "1.0", source="feed"))).job
        upload = await store.submit_job(_request("foo-bar-baz", "1.0", source="upload"))
        assert upload.created is False and upload.job.id == feed.id
        other = (await store.submit_job(_request("foo-bar-baz", "1.1"))).job
        assert (await store.submit_job(_request("foobarbaz", "1.0"))).created  # another project
        for spelling in ("FOO_BAR.BAZ", "foo-bar-baz", "Foo.Bar_baz"):
            listed = await store.list_jobs(project=spelling)
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
        assert SCHEMA_VERSION == 3
        [job] = await store.list_jobs(project="old-project")
        assert job.project == "Old_Project"
        detail = await store.get_job_detail(job.id)
        assert detail is not None
        assert detail[1] == {"behaviour_diff": None, "quality_trend": None}
    finally:
        await store.close()
