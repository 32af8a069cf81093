"""``JobFilter``: which jobs a list asks for — one definition for the API, the CLI and the page.

The HTTP API parses its query into a ``JobFilter`` (``master.http.validation``),
the store turns it into SQL (``where``), and ``to_query`` gives the same filter
back as query parameters (the ``next`` link, the page's own URL). The names are
the API's query parameters, so a filter means the same wherever it is written.

- ``project``: any spelling of a name (PEP 503, matched on ``project_key``);
- ``state``, ``outcome``, ``verdict``, ``source``, ``slave``: equal;
- ``since`` / ``until``: Unix seconds, ``since <= created_at < until`` (when the
  job was submitted);
- ``q`` (search): text contained in the project's PEP 503 name or in the version.

Every column compared has an index (``master.store.schema`` v5) whose order ends
in ``id`` or that SQLite can combine with the newest-first walk of the table.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from typing import Any

from master.store.schema import project_key

_EQUAL = ("state", "outcome", "verdict", "source", "slave")
_LIKE_SPECIALS = re.compile(r"([\\%_])")


def search_key(text: str) -> str:
    """Search text as it appears in PEP 503 names: lower case, runs of ``-_.`` as ``-``."""
    return re.sub(r"[-_.]+", "-", text).lower()


def _like(text: str) -> str:
    return "%" + _LIKE_SPECIALS.sub(r"\\\1", text) + "%"


@dataclass(frozen=True, slots=True)
class JobFilter:
    """What a job list keeps (every field None: all jobs). Values are validated by the caller."""

    project: str | None = None
    state: str | None = None
    outcome: str | None = None
    verdict: str | None = None
    source: str | None = None
    slave: str | None = None
    since: float | None = None
    until: float | None = None
    q: str | None = None

    def where(self) -> tuple[list[str], list[Any]]:
        """SQL conditions (to be joined with AND) and their parameters."""
        clauses: list[str] = []
        params: list[Any] = []
        if self.project is not None:
            clauses.append("project_key = ?")
            params.append(project_key(self.project))
        for name in _EQUAL:
            value = getattr(self, name)
            if value is not None:
                clauses.append(f"{name} = ?")
                params.append(value)
        if self.since is not None:
            clauses.append("created_at >= ?")
            params.append(self.since)
        if self.until is not None:
            clauses.append("created_at < ?")
            params.append(self.until)
        if self.q is not None:
            clauses.append("(project_key LIKE ? ESCAPE '\\' OR version LIKE ? ESCAPE '\\')")
            params.extend([_like(search_key(self.q)), _like(self.q)])
        return clauses, params

    def to_query(self) -> dict[str, str]:
        """The filter as API query parameters (only those set); numbers as plain text."""
        query: dict[str, str] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float):
                query[f.name] = repr(value) if value != int(value) else str(int(value))
            elif value is not None:
                query[f.name] = str(value)
        return query
