"""Indicators from the guest runner's events: tests, ruff findings, installation.

Everything here is guest output, so untrusted: fields of the wrong type or out of
range are ignored (as if absent), strings are bounded, and rule codes must look
like rule codes before they become keys of a report.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from slave.quality.indicator import Group, Indicator, Level, Value

# Above these the phase works but makes every job (and every contributor) wait.
SLOW_INSTALL_S: Final = 120.0
SLOW_TESTS_S: Final = 600.0
# More than this share of skipped tests means the suite mostly does not run here.
MAX_SKIPPED_SHARE: Final = 0.5
# Pyflakes/bugbear findings per linted file (see `ruff_indicator`).
DEFECT_FAMILIES: Final = ("F", "B")
RUFF_PASS_DENSITY: Final = 0.5
RUFF_WARN_DENSITY: Final = 2.0

_RULE_RE: Final = re.compile(r"^([A-Z]{1,8})[0-9]{0,6}$")
_MAX_RULES: Final = 1000
# pip prints this only when it runs a build backend; dependencies reach the guest as
# binary wheels only (`--only-binary=:all:` on the host), so a build is of the release.
_BUILD_RE: Final = re.compile(r"\bBuilding wheels? for\b")
_FAILED_STATUSES: Final = frozenset({"failed", "crashed", "timed_out", "error"})


def _count(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


def _seconds(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
        if math.isfinite(seconds) and seconds >= 0:
            return round(seconds, 3)
    return None


def _text(value: object, limit: int = 120) -> str | None:
    return value[:limit] if isinstance(value, str) else None


@dataclass
class _Seen:
    summary: Mapping[str, Any] | None = None
    quality: Mapping[str, Any] | None = None
    finished: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    built_wheel: bool = False


def _collect(events: Iterable[Mapping[str, Any]]) -> _Seen:
    seen = _Seen()
    for item in events:
        # Typed as mappings, but decoded from guest output: check, do not trust.
        event: object = item
        if not isinstance(event, Mapping):
            continue
        kind, phase = event.get("event"), event.get("phase")
        if kind == "tests_summary":
            seen.summary = event
        elif kind == "quality":
            seen.quality = event
        elif kind == "phase_finished" and isinstance(phase, str):
            seen.finished[phase] = event
        elif kind == "output" and phase == "install":
            line = event.get("line")
            if isinstance(line, str) and _BUILD_RE.search(line[:500]):
                seen.built_wheel = True
    return seen


def _make(group: Group, name: str, value: Value, level: Level, reason: str) -> Indicator:
    return Indicator(f"{group}.{name}", group, value, level, reason)


def runtime_indicators(events: Iterable[Mapping[str, Any]]) -> list[Indicator]:
    """Every `tests.*`, `code.ruff` and runtime `install.*` indicator from runner events.

    Consumes `events` once; missing events give `warn` indicators that say so.
    """
    seen = _collect(events)
    return [
        *tests_indicators(seen.summary, seen.finished.get("tests")),
        ruff_indicator(seen.quality),
        install_duration(seen.finished.get("install")),
        wheel_built(seen.finished.get("install"), seen.built_wheel),
    ]


def _status(finished: Mapping[str, Any] | None) -> str:
    status = _text(finished.get("status"), 20) if finished else None
    return status or "not run"


def tests_indicators(
    summary: Mapping[str, Any] | None, finished: Mapping[str, Any] | None
) -> list[Indicator]:
    """collected, failures, skipped, duration and offline, from `tests_summary`."""
    status = _status(finished)
    if summary is None:
        missing = f"no test summary (tests phase {status})"
        failures_level: Level = "fail" if status in ("crashed", "timed_out") else "warn"
        signal = _text(finished.get("signal_name"), 20) if finished else None
        crash = f"tests phase {status}" + (f" ({signal})" if signal else "")
        duration = _seconds(finished.get("duration_s")) if finished else None
        return [
            _make("tests", "collected", None, "warn", missing),
            _make(
                "tests",
                "failures",
                None,
                failures_level,
                crash if failures_level == "fail" else missing,
            ),
            _make("tests", "skipped", None, "warn", missing),
            _duration(duration, status),
            _make("tests", "offline", None, "warn", missing),
        ]
    collected = _count(summary.get("collected"))
    failed = _count(summary.get("failed")) or 0
    errors = _count(summary.get("errors")) or 0
    skipped = _count(summary.get("skipped")) or 0
    passed = _count(summary.get("passed")) or 0
    result: list[Indicator] = []
    if not collected:
        result.append(_make("tests", "collected", collected, "warn", "no tests collected"))
    else:
        result.append(
            _make("tests", "collected", collected, "pass", f"{collected} tests collected")
        )
    counts: dict[str, Value] = {"passed": passed, "failed": failed, "errors": errors}
    if failed or errors or status in ("crashed", "timed_out"):
        result.append(
            _make(
                "tests",
                "failures",
                counts,
                "fail",
                f"{failed} failed, {errors} errors, {passed} passed (tests phase {status})",
            )
        )
    else:
        result.append(_make("tests", "failures", counts, "pass", f"{passed} passed, none failed"))
    share = skipped / collected if collected else 0.0
    level: Level = "warn" if share > MAX_SKIPPED_SHARE else "pass"
    result.append(
        _make("tests", "skipped", skipped, level, f"{skipped} of {collected or 0} tests skipped")
    )
    result.append(_duration(_seconds(summary.get("duration_s")), status))
    offline = summary.get("offline")
    if offline is True:
        result.append(_make("tests", "offline", True, "pass", "test suite ran without network"))
    elif offline is False:
        result.append(_make("tests", "offline", False, "warn", "test suite needs the network"))
    else:
        result.append(_make("tests", "offline", None, "warn", "offline status not reported"))
    return result


def _duration(seconds: float | None, status: str) -> Indicator:
    if status == "timed_out":
        return _make("tests", "duration", seconds, "fail", "tests phase timed out")
    if seconds is None:
        return _make("tests", "duration", None, "warn", f"no test duration (tests phase {status})")
    if seconds > SLOW_TESTS_S:
        return _make("tests", "duration", seconds, "warn", f"tests took {seconds:.0f} s")
    return _make("tests", "duration", seconds, "pass", f"tests took {seconds:.1f} s")


def ruff_indicator(quality: Mapping[str, Any] | None) -> Indicator:
    """Ruff findings counted by rule family (`E`, `F`, `S`...); likely defects set the level.

    The runner lints the sdist (tests included) with `E,W,F,B,S`. Style (`E`, `W`) and
    bandit (`S`, which flags every `assert` of a test suite) are counted and shown but
    do not set the level; pyflakes and bugbear findings per linted file do, and any
    syntax error fails.
    """
    ruff = quality.get("ruff") if quality is not None else None
    if not isinstance(ruff, Mapping):
        return _make("code", "ruff", None, "warn", "no ruff results reported")
    if ruff.get("available") is not True:
        return _make("code", "ruff", None, "warn", "ruff not available in the guest")
    error = _text(ruff.get("error"))
    if error:
        return _make("code", "ruff", None, "warn", f"ruff failed: {error}")
    families = _families(ruff.get("counts"))
    files = _count(ruff.get("files")) or 0
    total = sum(families.values())
    defects = sum(families.get(f, 0) for f in DEFECT_FAMILIES)
    value: dict[str, Value] = {"total": total, "files": files, "families": dict(families)}
    top = ", ".join(f"{k}:{v}" for k, v in sorted(families.items(), key=lambda kv: -kv[1])[:5])
    reason = f"{total} findings in {files} files" + (f" ({top})" if top else "")
    density = defects / max(files, 1)
    if families.get("syntax") or density > RUFF_WARN_DENSITY:
        return _make("code", "ruff", value, "fail", reason)
    if density > RUFF_PASS_DENSITY:
        return _make("code", "ruff", value, "warn", reason)
    return _make("code", "ruff", value, "pass", reason)


def _families(counts: object) -> dict[str, int]:
    families: dict[str, int] = {}
    if not isinstance(counts, Mapping):
        return families
    for rule, number in list(counts.items())[:_MAX_RULES]:
        amount = _count(number)
        if rule == "syntax-error":
            family = "syntax"
        elif isinstance(rule, str) and (match := _RULE_RE.match(rule)):
            family = match.group(1)
        else:
            continue
        if amount:
            families[family] = families.get(family, 0) + amount
    return families


def install_duration(finished: Mapping[str, Any] | None) -> Indicator:
    """The install phase passed, and how long it took."""
    status = _status(finished)
    seconds = _seconds(finished.get("duration_s")) if finished else None
    if status in _FAILED_STATUSES:
        return _make("install", "duration", seconds, "fail", f"install {status}")
    if status != "passed" or seconds is None:
        return _make("install", "duration", seconds, "warn", f"install {status}")
    if seconds > SLOW_INSTALL_S:
        return _make("install", "duration", seconds, "warn", f"install took {seconds:.0f} s")
    return _make("install", "duration", seconds, "pass", f"installed in {seconds:.1f} s")


def wheel_built(finished: Mapping[str, Any] | None, built: bool) -> Indicator:
    """Whether pip had to build the release from its sdist (seen in pip's output)."""
    if built:
        return _make(
            "install", "wheel_built", True, "warn", "no usable wheel: pip built one from the sdist"
        )
    if finished is None:
        return _make("install", "wheel_built", None, "warn", "install did not run")
    return _make("install", "wheel_built", False, "pass", "installed from a wheel, no build")
