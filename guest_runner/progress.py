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

from guest_runner.offline import is_offline_failure
from guest_runner.speed_checks import is_speed_failure

PROGRESS_LIMIT = 16 * 1024 * 1024
_OUTCOMES = ("passed", "failed", "error", "skipped")
_NODE_ID_MAX = 300
_LISTED = 50


def read_progress(path: Path) -> dict[str, Any] | None:
    """``{passed, failed, errors, skipped, collected, collection_error_count, running,
    offline_failures, speed_failures}`` from the progress file, or None when there is
    none (or it is unreadable). A failed test whose failure text shows only the missing
    network, or only a speed check, is counted in ``offline_failures`` /
    ``speed_failures`` (``{count, tests}``) as the JUnit reader does.

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
    texts: dict[str, str] = {}
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
        elif kind == "F":
            node, _, failure = rest.partition("\t")
            texts[node] = texts.get(node, "") + failure
    offline = [n for n in failed if n in texts and is_offline_failure(texts[n])]
    speed = [n for n in failed if n in texts and n not in offline and is_speed_failure(n, texts[n])]
    return {
        "offline_failures": {"count": len(offline), "tests": offline[:_LISTED]},
        "speed_failures": {"count": len(speed), "tests": speed[:_LISTED]},
        "collected": sum(counts.values()),
        "passed": counts["passed"],
        "failed": counts["failed"],
        "errors": counts["error"],
        "skipped": counts["skipped"],
        "collection_error_count": uncollected,
        "running": running[:_NODE_ID_MAX] if running else None,
    }
