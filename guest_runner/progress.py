"""The tests' progress file, read when pytest left no JUnit XML.

Our pytest plugin (:mod:`guest_runner.pytest_plugin`) appends ``S nodeid`` when a test
starts, ``E outcome nodeid`` when it ends and ``C nodeid`` for a module that could not
be collected. A suite stopped for good at its deadline (pytest ignored SIGINT, or a
test waited on threads that never ended) writes no XML; this file still says what ran,
and which test was running when it was stopped.

Package code can write the file as it can write the XML: it is read defensively and
size-capped, and only counts and one node id come out of it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from guest_runner.apart import Apart

PROGRESS_LIMIT = 16 * 1024 * 1024
_OUTCOMES = ("passed", "failed", "error", "skipped")
_NODE_ID_MAX = 300


def read_progress(path: Path) -> dict[str, Any] | None:
    """``{passed, failed, errors, skipped, collected, collection_error_count, running,
    offline_failures, speed_failures, program_failures, first_failure}`` from the progress
    file, or None when there is none (or it is unreadable). Failed tests are sorted by
    their failure texts as the JUnit reader sorts them (:class:`~guest_runner.apart.Apart`).

    ``running`` is the last test that started and never ended (None when every test
    that started ended).
    """
    try:
        if path.is_symlink() or path.stat().st_size > PROGRESS_LIMIT:
            return None
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    counts = dict.fromkeys(_OUTCOMES, 0)
    uncollected = 0
    running: str | None = None
    texts: dict[str, list[str]] = {}
    messages: dict[str, str] = {}
    failed: list[str] = []
    for line in text.splitlines():
        kind, _, rest = line.partition(" ")
        if kind == "S":
            running = rest
        elif kind == "E":
            outcome, _, node = rest.partition(" ")
            if outcome in counts:
                counts[outcome] += 1
            if outcome in ("failed", "error"):
                failed.append(node)
            if node == running:
                running = None
        elif kind == "C":
            uncollected += 1
        elif kind == "M":
            node, _, message = rest.partition("\t")
            messages.setdefault(node, message)
        elif kind == "F":
            node, _, failure = rest.partition("\t")
            # As the JUnit reader's texts: the message's line first, then the report.
            texts.setdefault(node, []).append(messages.get(node, "") + "\n" + failure)
    apart = Apart()
    for node in failed:
        apart.add(node, texts.get(node, []))
    return {
        **apart.fields(),
        "collected": sum(counts.values()),
        "passed": counts["passed"],
        "failed": counts["failed"],
        "errors": counts["error"],
        "skipped": counts["skipped"],
        "collection_error_count": uncollected,
        "running": running[:_NODE_ID_MAX] if running else None,
    }
