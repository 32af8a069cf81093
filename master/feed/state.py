"""What the watcher remembers about one feed between polls and across restarts.

The store keeps, per feed URL, the conditional-GET validators and one opaque
``cursor`` text; this module defines that text (JSON, versioned):

* ``newest``: the newest pubDate processed (epoch seconds) — the lag metric, and
  the lower bound of a gap backfill;
* ``keys``: the items of the last poll that were dealt with — gap detection (no
  overlap with the next poll) and "new project" items already looked up;
* ``pending``: releases whose JSON API answer is not there yet, with their retry
  count and next retry time — so a restart keeps retrying them.

Which releases were queued is *not* here: that is the store's seen-set, written
in the same step as the job. A cursor that cannot be read is replaced by an empty
one (logged): the seen-set still prevents re-queueing, only gap detection loses
one poll's memory.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import structlog

from master.feed.backoff import Backoff
from master.feed.fetch import Validators
from master.feed.items import FeedEntry, valid_version

log = structlog.get_logger(__name__)

CURSOR_VERSION = 1
#: Bound on remembered retries. Overflow policy: the entry with the most failed
#: attempts (the likeliest never to resolve) is dropped, and the caller logs and
#: counts it.
MAX_PENDING = 1000


@dataclass(slots=True)
class Pending:
    """A release (or a new project, ``version`` None) waiting for the JSON API."""

    entry: FeedEntry
    attempts: int
    next_at: float  # wall clock: it survives restarts

    def to_json(self) -> dict[str, Any]:
        e = self.entry
        return {
            "name": e.name,
            "version": e.version,
            "published": e.published,
            "attempts": self.attempts,
            "next_at": self.next_at,
        }

    @classmethod
    def from_json(cls, raw: Any) -> Pending | None:
        if not isinstance(raw, dict):
            return None
        name, version = raw.get("name"), raw.get("version")
        published, attempts, next_at = raw.get("published"), raw.get("attempts"), raw.get("next_at")
        if not isinstance(name, str) or not name:
            return None
        if version is not None and not (isinstance(version, str) and valid_version(version)):
            return None
        if published is not None and not isinstance(published, int | float):
            return None
        if not isinstance(attempts, int) or not isinstance(next_at, int | float):
            return None
        return cls(FeedEntry(name, version, published), attempts, float(next_at))


@dataclass(slots=True)
class FeedCursor:
    """The decoded ``cursor`` of one feed."""

    newest: float | None = None
    keys: list[str] = field(default_factory=list)
    pending: dict[str, Pending] = field(default_factory=dict)

    def dumps(self) -> str:
        """The text stored as the feed state's ``cursor``."""
        return json.dumps(
            {
                "v": CURSOR_VERSION,
                "newest": self.newest,
                "keys": self.keys,
                "pending": [p.to_json() for p in self.pending.values()],
            },
            separators=(",", ":"),
        )

    @classmethod
    def loads(cls, text: str | None, *, url: str) -> FeedCursor:
        """The cursor stored for ``url``; an empty one if there is none or it is unreadable."""
        if not text:
            return cls()
        try:
            raw = json.loads(text)
        except ValueError:
            raw = None
        if not isinstance(raw, dict) or raw.get("v") != CURSOR_VERSION:
            log.warning("feed_cursor_reset", url=url, reason="unreadable cursor")
            return cls()
        newest = raw.get("newest")
        keys = raw.get("keys")
        pending = [Pending.from_json(p) for p in raw.get("pending") or []]
        return cls(
            newest=float(newest) if isinstance(newest, int | float) else None,
            keys=[k for k in keys if isinstance(k, str)] if isinstance(keys, list) else [],
            pending={p.entry.key: p for p in pending if p is not None},
        )

    def add_pending(self, pending: Pending) -> Pending | None:
        """Remember ``pending``; returns the entry evicted to stay within `MAX_PENDING`."""
        self.pending[pending.entry.key] = pending
        if len(self.pending) <= MAX_PENDING:
            return None
        worst = max(self.pending.values(), key=lambda p: (p.attempts, -p.next_at))
        del self.pending[worst.entry.key]
        return worst


@dataclass(slots=True)
class FeedRun:
    """One feed while the watcher runs: what is persisted plus backoff and schedule."""

    url: str
    cursor: FeedCursor
    validators: Validators
    backoff: Backoff
    next_poll: float = 0.0  # monotonic
    dirty: bool = False  # cursor or validators changed since the last save


@dataclass(slots=True)
class PollReport:
    """What one poll of one feed did (returned by ``poll_once``, logged as ``feed_polled``)."""

    url: str
    ok: bool = True
    not_modified: bool = False
    items: int = 0
    queued: list[str] = field(default_factory=list)
    filtered: int = 0
    pending: int = 0
    gap: bool = False
