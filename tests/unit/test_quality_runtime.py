"""Indicators from the guest runner's events (slave.quality.runtime)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from slave.quality import Indicator, runtime_indicators

Event = Mapping[str, Any]


def indicator(indicators: Sequence[Indicator], ident: str) -> Indicator:
    """The one indicator called `ident`."""
    found = [i for i in indicators if i.id == ident]
    assert len(found) == 1, [i.id for i in indicators]
    return found[0]


def summary(**fields: Any) -> Event:
    """A `tests_summary` event of a clean, offline run, with `fields` overriding."""
    base = {"collected": 10, "passed": 10, "failed": 0, "errors": 0, "skipped": 0}
    return {"event": "tests_summary", "phase": "tests", **base, "duration_s": 3.5,
            "offline": True, **fields}  # fmt: skip


def finished(phase: str, status: str = "passed", duration: float = 2.0, **extra: Any) -> Event:
    """A `phase_finished` event."""
    return {"event": "phase_finished", "phase": phase, "status": status,
            "duration_s": duration, **extra}  # fmt: skip


def ruff(counts: Mapping[str, Any], files: int = 10, **extra: Any) -> Event:
    """A `quality` event with ruff results."""
    data = {"available": True, "counts": dict(counts), "files": files, "error": None, **extra}
    return {"event": "quality", "phase": "quality", "ruff": data}


def test_clean_run_passes_everything() -> None:
    """Installed from a wheel, all tests passed offline, few ruff findings: all pass."""
    events = [
        {"event": "output", "phase": "install", "stream": "stdout", "line": "Processing x.whl"},
        finished("install", duration=4.0),
        summary(),
        finished("tests"),
        ruff({"E501": 3}),
    ]
    indicators = runtime_indicators(events)
    assert {i.id for i in indicators} == {
        "tests.collected", "tests.failures", "tests.skipped", "tests.duration",
        "tests.offline", "code.ruff", "install.duration", "install.wheel_built",
    }  # fmt: skip
    assert {i.level for i in indicators} == {"pass"}, [i.reason for i in indicators]


@pytest.mark.parametrize(
    ("fields", "ident", "level"),
    [
        ({"collected": 0, "passed": 0}, "tests.collected", "warn"),
        ({"failed": 2, "passed": 8}, "tests.failures", "fail"),
        ({"errors": 1}, "tests.failures", "fail"),
        ({"skipped": 6}, "tests.skipped", "warn"),
        ({"skipped": 5}, "tests.skipped", "pass"),
        ({"duration_s": 900.0}, "tests.duration", "warn"),
        ({"offline": False}, "tests.offline", "warn"),
        ({"offline": "yes"}, "tests.offline", "warn"),
    ],
)
def test_tests_summary_levels(fields: dict[str, Any], ident: str, level: str) -> None:
    """Each tests_summary field moves its own indicator off `pass`."""
    found = indicator(runtime_indicators([summary(**fields), finished("tests")]), ident)
    assert found.level == level, found.reason


def test_crashed_tests_without_summary_fail_with_signal() -> None:
    """A crashed tests phase with no summary fails `tests.failures`, naming the signal."""
    events = [finished("tests", "crashed", signal=11, signal_name="SIGSEGV")]
    found = indicator(runtime_indicators(events), "tests.failures")
    assert found.level == "fail"
    assert "SIGSEGV" in found.reason


def test_timed_out_tests_fail_duration() -> None:
    """A timed-out tests phase fails `tests.duration`."""
    events = [summary(), finished("tests", "timed_out", duration=1800.0)]
    assert indicator(runtime_indicators(events), "tests.duration").level == "fail"


def test_no_events_warn_instead_of_passing() -> None:
    """Without events nothing passes: every indicator warns and says what is missing."""
    indicators = runtime_indicators([])
    assert {i.level for i in indicators} == {"warn"}
    assert "not run" in indicator(indicators, "tests.collected").reason


@pytest.mark.parametrize(
    ("event", "level", "families"),
    [
        (ruff({"E501": 50, "W291": 9, "F401": 3, "S101": 400}, files=10), "pass",
         {"E": 50, "W": 9, "F": 3, "S": 400}),
        (ruff({"F401": 6, "B006": 4}, files=10), "warn", {"F": 6, "B": 4}),
        (ruff({"F821": 200}, files=10), "fail", {"F": 200}),
        (ruff({"syntax-error": 1, "E501": 1}, files=10), "fail", {"syntax": 1, "E": 1}),
    ],
)  # fmt: skip
def test_ruff_counts_by_family(event: Event, level: str, families: dict[str, int]) -> None:
    """Findings are grouped by family; pyflakes/bugbear per file and syntax errors set the
    level, style and bandit (asserts in tests) do not."""
    found = indicator(runtime_indicators([event]), "code.ruff")
    assert found.level == level
    assert isinstance(found.value, dict)
    assert found.value["families"] == families


def test_ruff_unavailable_or_failed_warns() -> None:
    """Ruff missing in the guest, or erroring, warns with the reason."""
    missing = {"event": "quality", "phase": "quality", "ruff": {"available": False}}
    assert indicator(runtime_indicators([missing]), "code.ruff").level == "warn"
    failed = indicator(runtime_indicators([ruff({}, error="boom")]), "code.ruff")
    assert (failed.level, failed.reason) == ("warn", "ruff failed: boom")


def test_hostile_guest_values_are_dropped() -> None:
    """Non-rule keys, negative or non-int counts and junk events never reach the report."""
    counts = {"E501": 2, "<script>": 5, "E1": -3, "W291": "many", "F401": True, "B": 10**6}
    events: list[Any] = ["not a mapping", None, ruff(counts, files=-1)]
    found = indicator(runtime_indicators(events), "code.ruff")
    assert isinstance(found.value, dict)
    assert found.value["families"] == {"E": 2, "B": 10**6}
    assert found.value["files"] == 0


@pytest.mark.parametrize(
    ("events", "level"),
    [
        ([finished("install", duration=30.0)], "pass"),
        ([finished("install", duration=300.0)], "warn"),
        ([finished("install", "failed")], "fail"),
        ([finished("install", "timed_out")], "fail"),
        ([], "warn"),
    ],
)
def test_install_duration(events: list[Event], level: str) -> None:
    """A quick install passes, a slow one warns, a failed one fails, none warns."""
    assert indicator(runtime_indicators(events), "install.duration").level == level


def test_wheel_built_from_sdist_is_seen_in_pip_output() -> None:
    """pip's 'Building wheel for' line during install marks a build from the sdist."""
    line = "  Building wheel for demo (pyproject.toml): started"
    events = [
        {"event": "output", "phase": "install", "stream": "stdout", "line": line},
        finished("install"),
    ]
    found = indicator(runtime_indicators(events), "install.wheel_built")
    assert (found.value, found.level) == (True, "warn")
    tests_output = {"event": "output", "phase": "tests", "stream": "stdout", "line": line}
    found = indicator(
        runtime_indicators([tests_output, finished("install")]), "install.wheel_built"
    )
    assert (found.value, found.level) == (False, "pass")
