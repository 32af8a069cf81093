"""pytest's JUnit XML, read defensively: package code wrote it.

pytest runs with ``-o junit_family=xunit1`` so every ``testcase`` carries its
``file``. A module pytest could not collect is a ``testcase`` whose ``error`` has
the message ``collection failure``; those are reported apart
(``collection_errors``) and not counted as tests, unless the release's own code
raised the error (:mod:`guest_runner.release_fault`): then it is a failed test.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

from guest_runner.apart import MAX_LISTED, Apart
from guest_runner.release_fault import error_of, missing_from, raised_by_release

JUNIT_LIMIT = 32 * 1024 * 1024
NETWORK_ERROR = re.compile(
    r"Temporary failure in name resolution|Name or service not known|Network is unreachable|"
    r"gaierror|NewConnectionError|ConnectionError|No address associated with hostname|"
    r"Could not resolve host|nodename nor servname",
)
_TEXT_LIMIT = 20_000  # characters of a failure's text that are searched


def empty_summary() -> dict[str, Any]:
    """A ``tests_summary`` with nothing known yet (no JUnit XML)."""
    return {
        "collected": None,
        "passed": None,
        "failed": None,
        "errors": None,
        "skipped": None,
        "duration_s": None,
        "offline": True,
        "network_errors": 0,
        "junit": False,
        "collection_errors": [],
        "collection_error_count": 0,
        "offline_failures": {"count": 0, "tests": []},
        "speed_failures": {"count": 0, "tests": []},
        "program_failures": {"count": 0, "tests": [], "programs": []},
        "unshipped_failures": {"count": 0, "tests": [], "files": []},
        "plugin_failures": {"count": 0, "tests": []},
        "module_failures": {"count": 0, "tests": [], "modules": []},
        "lint_failures": {"count": 0, "tests": [], "tools": []},
        "script_failures": {"count": 0, "tests": [], "modules": []},
        "base_failures": {"count": 0, "tests": [], "classes": []},
        "first_failure": None,
        "running": None,
    }


def parse_junit(
    path: Path, modules: Sequence[str] = (), root: Path | None = None, apart: Apart | None = None
) -> dict[str, Any]:
    """Counts from pytest's JUnit XML (written by package code: size-capped, defensive).

    ``modules`` are the release's top-level modules: a test module that could not be
    collected because one of them raised (`raised_by_release`) is a failed test.
    ``root`` is the sdist's tree the tests ran from (None for a wheel-only release's
    installed package): failures that only read a file it lacks are counted apart.
    ``apart`` (a new one when None) sorts the failures; the caller may read it after.
    """
    summary = empty_summary()
    try:
        if path.is_symlink() or path.stat().st_size > JUNIT_LIMIT:
            return summary
        document = ElementTree.parse(path).getroot()  # noqa: S314 - capped; expat resists entity bombs
    except (OSError, ElementTree.ParseError):
        return summary
    suites = [document] if document.tag == "testsuite" else list(document.iter("testsuite"))
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    duration = 0.0
    for suite in suites:
        for key in totals:
            with contextlib.suppress(ValueError):
                totals[key] += int(suite.get(key, "0"))
        with contextlib.suppress(ValueError):
            duration += float(suite.get("time", "0"))
    network = 0
    uncollected: list[dict[str, str | None]] = []
    uncollected_count = 0
    broken = 0
    apart = apart if apart is not None else Apart(root, modules)
    for case in document.iter("testcase"):
        if not any(child.tag in ("failure", "error", "skipped") for child in case):
            apart.passed(node_id(case))
    for case in document.iter("testcase"):
        bad = [*case.iter("failure"), *case.iter("error")]
        texts = [(b.get("message") or "") + "\n" + (b.text or "")[:_TEXT_LIMIT] for b in bad]
        if any(b.tag == "error" and b.get("message") == "collection failure" for b in bad):
            own = raised_by_release(texts[0], modules, root)
            if own is None:
                uncollected_count += 1
                if len(uncollected) < MAX_LISTED:
                    uncollected.append(collection_error(case, texts[0], root))
                continue
            # The release's own code failed to import: a failed test, not a module
            # set aside (pytest counted it among the errors).
            broken += 1
            apart.add(case.get("file") or node_id(case), [f"{own}\n{texts[0]}"])
            continue
        if any(NETWORK_ERROR.search(text) for text in texts):
            network += 1
        apart.add(node_id(case), texts)
    # Collection failures are counted by pytest as errored tests: they are not tests,
    # except a module the release's own code broke, which counts as a failed one.
    collected = max(0, totals["tests"] - uncollected_count)
    errors = max(0, totals["errors"] - uncollected_count - broken)
    failed = totals["failures"] + broken
    passed = collected - failed - errors - totals["skipped"]
    summary.update(
        collected=collected,
        passed=max(0, passed),
        failed=failed,
        errors=errors,
        skipped=totals["skipped"],
        duration_s=round(duration, 3),
        network_errors=network,
        junit=True,
        collection_errors=uncollected,
        collection_error_count=uncollected_count,
        **apart.fields(),
    )
    return summary


def collection_error(
    case: ElementTree.Element, text: str, root: Path | None = None
) -> dict[str, str | None]:
    """``{module, missing, error}`` for a module pytest could not collect."""
    module = case.get("file") or case.get("name") or "?"
    missing = missing_from(text, root)
    return {
        "module": module[:300],
        "missing": missing[:200] if missing else None,
        "error": error_of(text, 300),
    }


def node_id(case: ElementTree.Element) -> str:
    """pytest's node id (``file::Class::name``) from an xunit1 ``testcase``."""
    name = case.get("name") or "?"
    classname = case.get("classname") or ""
    file = case.get("file")
    if not file:
        return f"{classname}::{name}"[:300] if classname else name[:300]
    parts = [file]
    module = file.removesuffix(".py").replace("/", ".")
    if classname.startswith(module + "."):
        parts.append(classname[len(module) + 1 :].replace(".", "::"))
    return "::".join([*parts, name])[:300]
