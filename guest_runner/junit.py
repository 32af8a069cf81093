"""pytest's JUnit XML, read defensively: package code wrote it."""

from __future__ import annotations

import contextlib
import re
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

JUNIT_LIMIT = 32 * 1024 * 1024
NETWORK_ERROR = re.compile(
    r"Temporary failure in name resolution|Name or service not known|Network is unreachable|"
    r"gaierror|NewConnectionError|ConnectionError|No address associated with hostname|"
    r"Could not resolve host|nodename nor servname",
)


def parse_junit(path: Path) -> dict[str, Any]:
    """Counts from pytest's JUnit XML (written by package code: size-capped, defensive)."""
    summary: dict[str, Any] = {
        "collected": None,
        "passed": None,
        "failed": None,
        "errors": None,
        "skipped": None,
        "duration_s": None,
        "offline": True,
        "network_errors": 0,
        "junit": False,
    }
    try:
        if path.is_symlink() or path.stat().st_size > JUNIT_LIMIT:
            return summary
        root = ElementTree.parse(path).getroot()  # noqa: S314 - capped; expat resists entity bombs
    except (OSError, ElementTree.ParseError):
        return summary
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    duration = 0.0
    for suite in suites:
        for key in totals:
            with contextlib.suppress(ValueError):
                totals[key] += int(suite.get(key, "0"))
        with contextlib.suppress(ValueError):
            duration += float(suite.get("time", "0"))
    network = 0
    for case in root.iter("testcase"):
        for bad in [*case.iter("failure"), *case.iter("error")]:
            if NETWORK_ERROR.search((bad.get("message") or "") + (bad.text or "")[:20_000]):
                network += 1
                break
    passed = totals["tests"] - totals["failures"] - totals["errors"] - totals["skipped"]
    summary.update(
        collected=totals["tests"],
        passed=max(0, passed),
        failed=totals["failures"],
        errors=totals["errors"],
        skipped=totals["skipped"],
        duration_s=round(duration, 3),
        network_errors=network,
        junit=True,
    )
    return summary
