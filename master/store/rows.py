"""Conversions between database rows and the records in ``master.jobs``."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from master.jobs import Attempt, Callback, EventRow, Job, JobState
from protocol.results import JobOptions, JobTimeouts

#: Stored ``fields`` of one event are capped: what a guest logs is untrusted.
MAX_FIELDS_BYTES = 64 * 1024
MAX_NAME_CHARS = 200


def _default(value: Any) -> Any:
    # msgpack-native values JSON cannot hold: bytes become text (lossy on purpose).
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "replace")
    return str(value)


#: One encoder for all: ``json.dumps`` with options builds a new one per call.
_ENCODER = json.JSONEncoder(default=_default, separators=(",", ":"), ensure_ascii=False)


def dumps(value: Any) -> str:
    return _ENCODER.encode(value)


def loads(text: str | None, empty: Any) -> Any:
    if text is None or text == "":
        return empty
    return json.loads(text)


def capped_fields(fields: dict[str, Any]) -> str:
    """The JSON of an event's fields, replaced by a marker when over the cap."""
    text = dumps(fields)
    if len(text) > MAX_FIELDS_BYTES:
        return dumps({"truncated": True, "original_bytes": len(text)})
    return text


def job_from_row(row: sqlite3.Row) -> Job:
    keys = row.keys()
    return Job(
        id=row["id"],
        project=row["project"],
        version=row["version"],
        image=row["image"],
        state=JobState(row["state"]),
        outcome=row["outcome"],
        priority=row["priority"],
        attempt=row["attempt"],
        lease=row["lease"],
        slave=row["slave"],
        source=row["source"],
        callback_url=row["callback_url"],
        files=loads(row["files"], []),
        phases=loads(row["phases"], {}),
        summary=loads(row["summary"], {}),
        findings=loads(row["findings"], []),
        isolation=row["isolation"],
        error=row["error"],
        created_at=row["created_at"],
        assigned_at=row["assigned_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        quarantined=bool(row["quarantined"]),
        timeouts=JobTimeouts.from_json(loads(row["timeouts"], {}) if "timeouts" in keys else {}),
        options=JobOptions.from_json(loads(row["options"], {}) if "options" in keys else {}),
        slave_losses=row["slave_losses"],
        infra_retries=row["infra_retries"],
        event_seq=row["event_seq"],
        verdict=row["verdict"] if "verdict" in keys else None,
    )


def attempt_from_row(row: sqlite3.Row) -> Attempt:
    return Attempt(
        job_id=row["job_id"],
        attempt=row["attempt"],
        lease=row["lease"],
        slave=row["slave"],
        status=row["status"],
        assigned_at=row["assigned_at"],
        started_at=row["started_at"],
        ended_at=row["ended_at"],
        outcome=row["outcome"],
        reason=row["reason"],
        isolation=row["isolation"],
        phases=loads(row["phases"], {}),
        summary=loads(row["summary"], {}),
    )


def event_from_row(row: sqlite3.Row) -> EventRow:
    return EventRow(
        job_id=row["job_id"],
        seq=row["seq"],
        ts=row["ts"],
        level=row["level"],
        event=row["event"],
        phase=row["phase"],
        fields=loads(row["fields"], {}),
    )


def callback_from_row(row: sqlite3.Row) -> Callback:
    return Callback(
        id=row["id"],
        job_id=row["job_id"],
        url=row["url"],
        payload=loads(row["payload"], {}),
        attempts=row["attempts"],
        next_at=row["next_at"],
        created_at=row["created_at"],
    )
