"""Late files: when a queued release is looked at again, which new files deserve a run,
and how the store answers a file set (covered, added to the queued job, or a new job)."""

from __future__ import annotations

from pathlib import Path

import pytest

from master.feed.fileset import new_files, worth_a_run
from master.feed.late import next_recheck
from master.feed.settings import FeedSettings
from master.jobs import JobRequest
from master.pypi import ReleaseFile
from master.store import Store


def _file(filename: str, packagetype: str = "bdist_wheel", sha: str = "a") -> ReleaseFile:
    return ReleaseFile(filename, sha * 64, 10, packagetype, f"http://127.0.0.1/{filename}")


def test_rechecks_grow_fourfold_and_end_at_the_window() -> None:
    """Defaults: 10 min after queueing, then 50 min, 3.5 h, ~14 h, the window's end, then done."""
    s = FeedSettings.from_mapping({})
    at, times = 0.0, []
    rechecks = 0
    when = next_recheck(s, 0.0, 0, at)
    while when is not None:
        times.append(when)
        rechecks += 1
        when = next_recheck(s, 0.0, rechecks, when)
    assert times == [600.0, 3000.0, 12600.0, 51000.0, 86400.0]


def test_window_zero_means_no_rechecks() -> None:
    """late_files_window = 0 turns the re-checks off."""
    s = FeedSettings.from_mapping({"late_files_window": 0})
    assert next_recheck(s, 100.0, 0, 100.0) is None


@pytest.mark.parametrize(
    ("filename", "packagetype", "worth"),
    [
        ("demo-1.0.tar.gz", "sdist", True),
        ("demo-1.0-py3-none-any.whl", "bdist_wheel", True),
        (
            "demo-1.0-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
            "bdist_wheel",
            True,
        ),
        ("demo-1.0-cp312-cp312-linux_x86_64.whl", "bdist_wheel", True),
        ("demo-1.0-cp312-cp312-macosx_11_0_arm64.whl", "bdist_wheel", False),
        ("demo-1.0-cp312-cp312-win_amd64.whl", "bdist_wheel", False),
        ("demo-1.0-cp312-cp312-musllinux_1_2_x86_64.whl", "bdist_wheel", False),
        (
            "demo-1.0-cp312-cp312-manylinux_2_17_aarch64.manylinux2014_aarch64.whl",
            "bdist_wheel",
            False,
        ),
        ("demo-1.0-cp312-cp312-manylinux_2_5_i686.whl", "bdist_wheel", False),
        ("not a wheel name.whl", "bdist_wheel", False),
    ],
)
def test_only_files_a_linux_guest_can_use_are_worth_a_run(
    filename: str, packagetype: str, worth: bool
) -> None:
    """The sdist and Linux (or pure) wheels count; macOS, Windows and musl wheels do not."""
    assert worth_a_run(_file(filename, packagetype)) is worth


def test_new_files_are_those_not_known_yet() -> None:
    """Known digests are never new, whatever their name."""
    sdist = _file("demo-1.0.tar.gz", "sdist", "a")
    wheel = _file("demo-1.0-py3-none-any.whl", sha="b")
    assert new_files([sdist, wheel], frozenset({"a" * 64})) == [wheel]
    assert new_files([sdist, wheel], frozenset({"a" * 64, "b" * 64})) == []


def _request(*files: ReleaseFile, source: str = "feed") -> JobRequest:
    return JobRequest(
        project="Demo",
        version="1.0",
        files=[f.to_dict() for f in files],
        image="bookworm",
        source="feed" if source == "feed" else "api",
    )


async def test_submit_files_covers_updates_then_queues(tmp_path: Path) -> None:
    """The same file set twice is one job; a queued job takes new files; a taken one gets a
    successor; an API job of the release is not the feed's and is left alone."""
    sdist = _file("demo-1.0.tar.gz", "sdist", "a")
    wheel = _file("demo-1.0-py3-none-any.whl", sha="b")
    linux = _file("demo-1.0-cp312-cp312-linux_x86_64.whl", sha="c")
    store = await Store.open(tmp_path / "s.sqlite3")
    try:
        api = (await store.jobs.submit(_request(sdist, source="api"))).job
        first = await store.jobs.submit_files(_request(sdist))
        assert first.how == "queued" and first.job.id != api.id
        assert (await store.jobs.submit_files(_request(sdist))).how == "covered"
        updated = await store.jobs.submit_files(_request(sdist, wheel))
        assert (updated.how, updated.job.id, len(updated.job.files)) == ("updated", first.job.id, 2)
        claimed = await store.jobs.claim_next("s", ["bookworm"])
        assert claimed is not None and claimed.id == api.id  # the older API job first
        claimed = await store.jobs.claim_next("s", ["bookworm"])
        assert claimed is not None and claimed.id == first.job.id
        assert (await store.jobs.submit_files(_request(sdist, wheel))).how == "covered"
        again = await store.jobs.submit_files(_request(sdist, wheel, linux))
        assert again.how == "queued" and again.job.id not in (api.id, first.job.id)
        assert (await store.jobs.submit_files(_request(sdist, wheel, linux))).how == "covered"
        assert len(await store.jobs.find()) == 3
    finally:
        await store.close()


async def test_recorded_files_only_grow_and_rechecks_are_counted(tmp_path: Path) -> None:
    """record_recheck adds files and counts; untracked (filtered) releases are left alone."""
    store = await Store.open(tmp_path / "s.sqlite3")
    try:
        await store.feed.mark_release_seen(
            "demo", "1.0", "feed", files=frozenset("a"), recheck_at=5
        )
        await store.feed.mark_release_seen("skipped", "1.0", "feed")
        assert [t.project for t in await store.feed.due_rechecks(10.0, 10)] == ["demo"]
        assert await store.feed.due_rechecks(4.0, 10) == []
        await store.feed.record_recheck("demo", "1.0", frozenset("b"), None)
        await store.feed.record_recheck("skipped", "1.0", frozenset("b"), 1.0)
        tracked = await store.feed.tracked("demo", "1.0")
        assert tracked is not None
        assert (tracked.files, tracked.rechecks) == (frozenset("ab"), 1)
        assert await store.feed.tracked("skipped", "1.0") is None
        assert await store.feed.due_rechecks(1e12, 10) == []
    finally:
        await store.close()
