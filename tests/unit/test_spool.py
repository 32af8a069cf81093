"""The per-job event spool: order, acknowledgement, bounds, persistence across restarts."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from protocol.events import Event
from protocol.messages import JobResult
from protocol.results import JobSummary, PhaseResult
from protocol.vocabulary import Outcome, PhaseStatus
from slave.spool import SpoolError, SpoolLimits, SpoolStore


def ev(seq: int, text: str = "x") -> Event:
    return Event(seq=seq, ts=time.time(), level="info", event="output", phase="tests",
                 fields={"line": text, "nested": [1, {"a": None}]})  # fmt: skip


def meta(job_id: int = 1, lease: int = 1, first_seq: int = 1) -> dict[str, object]:
    return {"job_id": job_id, "lease": lease, "first_seq": first_seq, "project": "demo"}


def test_pending_in_order_bounded_by_count_and_bytes(tmp_path: Path) -> None:
    """pending() returns events after a seq, in order, capped by count and by bytes."""
    spool = SpoolStore(tmp_path).create(meta())
    for seq in range(1, 101):
        spool.append(ev(seq, "y" * 100))
    assert [e.seq for e in spool.pending(0, max_count=10, max_bytes=1 << 20)] == list(range(1, 11))
    assert [e.seq for e in spool.pending(95, max_count=10, max_bytes=1 << 20)] == [
        96,
        97,
        98,
        99,
        100,
    ]
    small = spool.pending(0, max_count=100, max_bytes=500)
    assert 1 <= len(small) < 5
    # An event bigger than the byte budget still goes, alone.
    assert len(spool.pending(0, max_count=100, max_bytes=1)) == 1


def test_append_refuses_a_gap(tmp_path: Path) -> None:
    """Sequence numbers must follow on without gaps."""
    spool = SpoolStore(tmp_path).create(meta(first_seq=5))
    spool.append(ev(5))
    with pytest.raises(SpoolError):
        spool.append(ev(7))


def test_ack_forgets_events_and_deletes_finished_segments(tmp_path: Path) -> None:
    """An ack drops the events up to it and the segment files holding only acknowledged ones."""
    store = SpoolStore(tmp_path, SpoolLimits(segment_bytes=2000))
    spool = store.create(meta())
    for seq in range(1, 201):
        spool.append(ev(seq, "z" * 50))
    segments = sorted(spool.dir.glob("events-*.log"))
    assert len(segments) > 3
    before = spool.unacked_bytes
    spool.ack(150)
    assert spool.acked_seq == 150 and spool.unacked_bytes < before
    assert [e.seq for e in spool.pending(0, max_count=1000, max_bytes=1 << 20)] == list(
        range(151, 201)
    )
    left = sorted(spool.dir.glob("events-*.log"))
    assert len(left) < len(segments)
    spool.ack(100)  # an older ack changes nothing
    assert spool.acked_seq == 150


def test_bound_keeps_room_for_important_events(tmp_path: Path) -> None:
    """Past max_bytes only important events have room; past twice that, none."""
    spool = SpoolStore(tmp_path, SpoolLimits(max_bytes=5000)).create(meta())
    seq = 0
    while spool.has_room(important=False):
        seq += 1
        spool.append(ev(seq, "a" * 100))
    assert spool.has_room(important=True)
    while spool.has_room(important=True):
        seq += 1
        spool.append(ev(seq, "a" * 100))
    assert 10_000 <= spool.unacked_bytes < 10_500
    spool.ack(seq)
    assert spool.has_room(important=False)


async def test_reload_after_restart_restores_unacked_events_and_result(tmp_path: Path) -> None:
    """A new store finds the spool: unacknowledged events, ack mark and result survive."""
    store = SpoolStore(tmp_path, SpoolLimits(segment_bytes=1000))
    spool = store.create(meta(job_id=4, lease=2, first_seq=10))
    for seq in range(10, 60):
        spool.append(ev(seq))
    await spool.sync()
    spool.ack(29)
    result = JobResult(4, 2, Outcome.PASSED, "tcg", 59, {"tests": PhaseResult(PhaseStatus.PASSED)},
                       JobSummary(findings_total=1))  # fmt: skip
    spool.save_result(result)
    spool.close()

    (loaded,) = SpoolStore(tmp_path).load_all()
    assert (loaded.job_id, loaded.lease, loaded.acked_seq, loaded.last_seq) == (4, 2, 29, 59)
    assert [e.seq for e in loaded.pending(0, max_count=1000, max_bytes=1 << 20)] == list(
        range(30, 60)
    )
    assert loaded.pending(0, max_count=1, max_bytes=1 << 20)[0].fields["line"] == "x"
    assert loaded.result == result
    # It goes on from where it was, in a fresh segment.
    loaded.append(ev(60))
    assert loaded.last_seq == 60


def test_torn_tail_is_ignored_on_reload(tmp_path: Path) -> None:
    """A record cut short by a crash is dropped on reload; the events before it are kept."""
    spool = SpoolStore(tmp_path).create(meta())
    for seq in range(1, 11):
        spool.append(ev(seq))
    spool.close()
    (segment,) = spool.dir.glob("events-*.log")
    data = segment.read_bytes()
    segment.write_bytes(data[:-7])
    (loaded,) = SpoolStore(tmp_path).load_all()
    assert loaded.last_seq == 9
    loaded.append(ev(10))
    loaded.close()
    (again,) = SpoolStore(tmp_path).load_all()
    assert [e.seq for e in again.pending(0, max_count=100, max_bytes=1 << 20)] == list(range(1, 11))


def test_unreadable_spool_is_removed_and_others_kept(tmp_path: Path) -> None:
    """A spool whose metadata is garbage is deleted on load; good ones are still found."""
    store = SpoolStore(tmp_path)
    good = store.create(meta(job_id=1))
    good.append(ev(1))
    good.close()
    bad = store.create(meta(job_id=2))
    (bad.dir / "meta.json").write_text("{not json")
    loaded = store.load_all()
    assert [s.job_id for s in loaded] == [1]
    assert not bad.dir.exists()


def test_remove_deletes_everything(tmp_path: Path) -> None:
    """remove() leaves nothing of the job on disk."""
    spool = SpoolStore(tmp_path).create(meta())
    spool.append(ev(1))
    spool.remove()
    assert list(tmp_path.iterdir()) == []
    assert SpoolStore(tmp_path).load_all() == []


def test_disk_failure_keeps_events_in_memory(tmp_path: Path) -> None:
    """When the disk write fails the event is still kept (in memory) and the error recorded."""
    spool = SpoolStore(tmp_path).create(meta())
    spool.append(ev(1))
    spool.close()
    spool._limits = SpoolLimits(segment_bytes=1)  # force a new segment file on the next write
    shutil.rmtree(spool.dir)  # the disk "fails": the new segment cannot be created
    spool.append(ev(2))
    spool.append(ev(3))
    assert spool.disk_error is not None and "cannot open" in spool.disk_error
    assert [e.seq for e in spool.pending(0, max_count=10, max_bytes=1 << 20)] == [1, 2, 3]


def test_oversized_event_is_replaced_by_a_stub(tmp_path: Path) -> None:
    """An event too big for any frame is kept as a stub naming its size, seq unchanged."""
    spool = SpoolStore(tmp_path, SpoolLimits(max_event_bytes=1000)).create(meta())
    spool.append(ev(1, "q" * 5000))
    (stub,) = spool.pending(0, max_count=10, max_bytes=1 << 20)
    assert stub.seq == 1 and stub.event == "output"
    assert stub.fields["oversized_bytes"] > 5000 and "line" not in stub.fields
