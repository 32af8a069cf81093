"""The master's retention policy and the periodic task that applies it (``[retention]``).

::

    [retention]
    events_days = 90                 # events of jobs ended longer ago are deleted; 0: keep
    uploads_max_bytes = 10737418240  # uploads/ bound, least recently uploaded out first; 0: none
    interval = 3600                  # seconds between two runs (the first is at start)

Only events go: a job's row (outcome, phases, summary, findings) is kept forever;
its event log reads as empty afterwards. An upload that a job not yet ended still
needs is never removed, nor one that arrived in the last ``UPLOAD_MIN_AGE_S``
(its job may not be stored yet); a finished job whose upload was evicted cannot
be re-run from it (upload the file again). Counted in ``/metrics``:
``pyti_retention_events_pruned_total``, ``pyti_retention_evicted_bytes_total{what}``,
``pyti_retention_evicted_files_total{what}``, ``pyti_uploads_bytes``.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from master.config import ConfigError
from master.context import MasterContext
from pyti import lru
from pyti.settings import Int, Number, Setting, SettingsError, check

log = structlog.get_logger("master.retention")

DAY_S = 86400.0
#: An upload younger than this is never evicted (its job may be about to be stored).
UPLOAD_MIN_AGE_S = 600.0
#: The keys of ``[retention]``, for ``pyti.settings``.
RETENTION_SETTINGS: dict[str, Setting] = {
    "events_days": Number(minimum=0),
    "uploads_max_bytes": Int(minimum=0),
    "interval": Number(above=0),
}


@dataclass(frozen=True)
class RetentionSettings:
    """The policy; 0 turns a bound off."""

    events_days: float = 90.0
    uploads_max_bytes: int = 10 << 30
    interval: float = 3600.0

    @classmethod
    def from_table(cls, table: dict[str, Any]) -> RetentionSettings:
        """From ``[retention]``; ``ConfigError`` naming a bad key."""
        try:
            values = check(table, RETENTION_SETTINGS, source="[retention]")
        except SettingsError as exc:
            raise ConfigError(str(exc)) from None
        return cls(**values)


@dataclass(frozen=True)
class Pass:
    """What one run removed."""

    events: int
    upload_files: int
    upload_bytes: int


class Retention:
    """Applies the policy every ``interval`` s until cancelled (a daemon component)."""

    def __init__(self, ctx: MasterContext, settings: RetentionSettings | None = None) -> None:
        self._ctx = ctx
        self.settings = settings or RetentionSettings.from_table(ctx.config.retention)
        self._uploads = ctx.config.data_dir / "uploads"
        metrics = ctx.metrics
        self._pruned = metrics.counter(
            "retention_events_pruned_total", "Events deleted by the retention policy."
        )
        self._evicted_bytes = metrics.counter(
            "retention_evicted_bytes_total", "Bytes evicted by the retention policy.", ["what"]
        )
        self._evicted_files = metrics.counter(
            "retention_evicted_files_total", "Files evicted by the retention policy.", ["what"]
        )
        self._uploads_bytes = metrics.gauge("uploads_bytes", "Bytes of uploaded files kept.")
        self._runs = metrics.counter(
            "retention_runs_total", "Retention passes by result.", ["result"]
        )

    def __repr__(self) -> str:
        return f"<Retention {self.settings}>"

    async def run(self) -> None:
        """One pass now, then one every ``interval`` s; a failed pass is logged and counted."""
        while True:
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                self._runs.inc(1, "failed")
                log.exception("retention_failed")
            await asyncio.sleep(self.settings.interval)

    async def run_once(self, now: float | None = None) -> Pass:
        """Prune old events, then trim the uploads; what was removed."""
        now = time.time() if now is None else now
        events = 0
        if self.settings.events_days > 0:
            cutoff = now - self.settings.events_days * DAY_S
            while deleted := await self._ctx.store.events.prune(cutoff):
                events += deleted
                self._pruned.inc(deleted)
        trimmed = await self._trim_uploads(now)
        self._runs.inc(1, "ok")
        done = Pass(events, trimmed.files, trimmed.bytes)
        if events or trimmed.files:
            log.info(
                "retention_applied",
                events_pruned=events,
                uploads_evicted=trimmed.files,
                upload_bytes_evicted=trimmed.bytes,
                upload_bytes_left=trimmed.left,
            )
        return done

    async def _trim_uploads(self, now: float) -> lru.Trimmed:
        entries = await asyncio.to_thread(lru.scan, self._uploads, _partial)
        if self.settings.uploads_max_bytes <= 0:
            left = sum(e.size for e in entries)
            self._uploads_bytes.set(left)
            return lru.Trimmed(0, 0, left)
        in_use = await self._ctx.store.jobs.upload_paths_in_use()
        trimmed = await asyncio.to_thread(
            lru.trim,
            entries,
            self.settings.uploads_max_bytes,
            keep=lambda e: str(e.path) in in_use,
            min_age=UPLOAD_MIN_AGE_S,
            now=now,
        )
        self._evicted_bytes.inc(trimmed.bytes, "uploads")
        self._evicted_files.inc(trimmed.files, "uploads")
        self._uploads_bytes.set(trimmed.left)
        return trimmed


def _partial(path: Path) -> bool:
    return path.name.startswith(".incoming-")
