"""The persisted cursor round-trips, survives garbage, and bounds pending retries."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from master.feed.items import FeedEntry
from master.feed.state import MAX_PENDING, FeedCursor, Pending


def test_cursor_round_trips_through_its_text() -> None:
    """newest, keys and pending (with new-project entries) come back as written."""
    cursor = FeedCursor(newest=1234.5, keys=["a==1", "b"])
    cursor.add_pending(Pending(FeedEntry("A", "1", 1000.0), attempts=2, next_at=99.0))
    cursor.add_pending(Pending(FeedEntry("B", None, None), attempts=1, next_at=98.0))
    again = FeedCursor.loads(cursor.dumps(), url="u")
    assert again == cursor


@pytest.mark.parametrize("text", ["{", "[]", '{"v": 99}', "null"])
def test_unreadable_cursor_starts_empty_and_says_so(text: str) -> None:
    """A corrupt or future cursor is replaced by an empty one, with a warning."""
    with capture_logs() as logs:
        cursor = FeedCursor.loads(text, url="u")
    assert cursor == FeedCursor()
    assert [e["event"] for e in logs] == ["feed_cursor_reset"]


def test_bad_pending_entries_are_skipped() -> None:
    """Pending entries with unsafe versions or wrong types are dropped on load."""
    text = (
        '{"v":1,"newest":null,"keys":["a",3],"pending":['
        '{"name":"ok","version":"1","published":null,"attempts":1,"next_at":5},'
        '{"name":"bad","version":"1/../x","published":null,"attempts":1,"next_at":5},'
        '{"name":"","version":"1","published":null,"attempts":1,"next_at":5},'
        '{"name":"t","version":"1","published":"x","attempts":1,"next_at":5},'
        '"junk"]}'
    )
    cursor = FeedCursor.loads(text, url="u")
    assert cursor.keys == ["a"]
    assert list(cursor.pending) == ["ok==1"]


def test_pending_overflow_evicts_the_most_failed_entry() -> None:
    """Past MAX_PENDING the entry with the most attempts is evicted and returned."""
    cursor = FeedCursor()
    for i in range(MAX_PENDING):
        assert cursor.add_pending(Pending(FeedEntry(f"p{i}", "1", None), 1, 0.0)) is None
    cursor.pending["p7==1"].attempts = 9
    evicted = cursor.add_pending(Pending(FeedEntry("new", "1", None), 1, 0.0))
    assert evicted is not None
    assert evicted.entry.key == "p7==1"
    assert len(cursor.pending) == MAX_PENDING
    assert "new==1" in cursor.pending
