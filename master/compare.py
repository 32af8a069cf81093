"""Release-to-release comparison: behaviour diff (issue 8) and quality trend (issue 9).

Pure functions on the plain JSON a slave puts in ``JobResult.summary``; the
store calls them when a result is stored (``master.store.comparisons``). The
master never imports ``slave``: this re-implements the small parts of
``slave.findings.profile`` and ``slave.quality.report.trend`` it needs, on data
that is untrusted (it came from a guest through a slave), so every reader here
skips what is malformed and caps what it keeps.

Behaviour profile: a set of ``(phase, behaviour class, target)``, taken from
``summary["profile"]`` (``[[phase, class, target], ...]``), which the slave computes
from its rule table. Classes are ``protocol.vocabulary.BehaviourClass``; an entry
of any other class is skipped like any malformed one. The master has no rule table
of its own.

Previous release: among the other finished jobs of the same project (PEP 503
name) and image, the one with the highest PEP 440 version below this job's
version, the latest finished of those if re-run; jobs of the same version and
jobs that ended in ``infra_error`` or ``cancelled`` never count. When this job's
version is not PEP 440, the latest job finished before it with another version.

Quality score (computed by the slave, ``slave/quality/report.py``): each
indicator is worth pass 1, warn 0.5, fail 0; a group's score is their mean; the
score is ``round(100 * sum(w[g] * group score) / sum(w[g] of groups present))``
with weights metadata 25, distribution 20, tests 25, code 15, install 15.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from packaging.version import InvalidVersion, Version

from protocol.vocabulary import BEHAVIOUR_TEXT, BehaviourClass, Outcome, values

#: Entries kept from one profile, and characters per field (a profile is small:
#: deduped findings; a flood from a hostile guest must not make it large).
MAX_ENTRIES: Final = 2000
MAX_FIELD: Final = 500
#: Targets listed in one sentence; all of them stay in the structured entry.
SHOWN_TARGETS: Final = 5

ProfileEntry = tuple[str, str, str]  # (phase, behaviour class, target)

#: Outcomes whose release is never a "previous release": nothing was really tested.
NOT_COMPARABLE: Final = frozenset({Outcome.INFRA_ERROR.value, Outcome.CANCELLED.value})

PHASE_TEXT: Final[Mapping[str, str]] = {
    "install": "install time",
    "import": "import time",
    "tests": "test time",
    "quality": "quality-check time",
}
_CLASSES: Final = frozenset(values(BehaviourClass))
_LEVEL_RANK: Final[Mapping[str, int]] = {"fail": 0, "warn": 1, "pass": 2}


# ------------------------------------------------------------- releases ----


@dataclass(frozen=True, slots=True)
class Release:
    """One finished job as a candidate "previous release"."""

    job_id: int
    version: str
    finished_at: float


@functools.lru_cache(maxsize=4096)
def parse_version(text: str) -> Version | None:
    """PEP 440 version, or None for a legacy/invalid one (cached: a lookup parses them all)."""
    try:
        return Version(text)
    except InvalidVersion:
        return None


def pick_previous(current: Release, candidates: Iterable[Release]) -> Release | None:
    """The release ``current`` is compared with (rules in the module docstring)."""
    others = [c for c in candidates if c.job_id != current.job_id and c.version != current.version]
    mine = parse_version(current.version)
    if mine is None:
        earlier = [c for c in others if c.finished_at <= current.finished_at]
        return max(earlier, key=lambda c: (c.finished_at, c.job_id), default=None)
    ranked: list[tuple[Version, float, int, Release]] = []
    for c in others:
        theirs = parse_version(c.version)
        if theirs is not None and theirs < mine:
            ranked.append((theirs, c.finished_at, c.job_id, c))
    return max(ranked, key=lambda r: r[:3])[3] if ranked else None


def next_versions(current: Release, candidates: Iterable[Release]) -> list[Release]:
    """The finished releases whose previous release may now be ``current``.

    Those of the lowest PEP 440 version above ``current``'s (all re-runs of it); empty
    when ``current``'s version is not PEP 440 (the finish-time rule only looks back).
    """
    mine = parse_version(current.version)
    if mine is None:
        return []
    above = [
        (v, c)
        for c in candidates
        if c.job_id != current.job_id and (v := parse_version(c.version)) is not None and v > mine
    ]
    if not above:
        return []
    lowest = min(v for v, _ in above)
    return [c for v, c in above if v == lowest]


# ------------------------------------------------------------ behaviour ----


def _field(value: object) -> str | None:
    return value[:MAX_FIELD] if isinstance(value, str) else None


def behaviour_profile(summary: Mapping[str, Any]) -> frozenset[ProfileEntry]:
    """The profile a result summary carries; malformed parts and unknown classes skipped."""
    entries: set[ProfileEntry] = set()
    raw = summary.get("profile")
    # Arrays decoded from the wire are tuples (protocol), from the store lists.
    if not isinstance(raw, list | tuple):
        return frozenset()
    for item in raw[:MAX_ENTRIES]:
        if isinstance(item, list | tuple) and len(item) == 3:
            phase, kind, target = (_field(part) for part in item)
            if phase is not None and kind in _CLASSES and target is not None:
                entries.add((phase, kind, target))
    return frozenset(entries)


def profile_to_json(entries: Iterable[ProfileEntry]) -> list[list[str]]:
    """A profile as sorted ``[phase, class, target]`` lists (how the store keeps it)."""
    return [list(entry) for entry in sorted(set(entries))]


def _sentence(
    change: str, phase: str, kind: str, targets: Sequence[str], now: str, then: str
) -> str:
    what = BEHAVIOUR_TEXT[BehaviourClass(kind)] if kind in _CLASSES else kind
    when = PHASE_TEXT.get(phase, f"{phase} time")
    shown = ", ".join(targets[:SHOWN_TARGETS])
    if len(targets) > SHOWN_TARGETS:
        shown += f", ... ({len(targets)} in all)"
    match change:
        case "started":
            return f"{now} started {what} at {when} ({shown}); {then} did not"
        case "stopped":
            return f"{now} stopped {what} at {when} ({shown}); {then} did"
        case "new targets":
            return f"{now} is {what} at {when} with new targets ({shown}); {then} was not"
        case _:
            return f"{now} is no longer {what} at {when} with some targets ({shown}); {then} was"


def behaviour_changes(
    previous: Iterable[ProfileEntry],
    current: Iterable[ProfileEntry],
    *,
    version: str,
    previous_version: str,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``(new, gone)``: behaviours ``version`` shows that ``previous_version`` did not, and back.

    One entry per (phase, behaviour class): ``change`` is ``started``/``stopped`` when
    the class is new/gone in that phase, ``new targets``/``gone targets`` when only
    some targets are; ``text`` is the sentence for people.
    """
    before, after = set(previous), set(current)
    classes_before = {(p, k) for p, k, _ in before}
    classes_after = {(p, k) for p, k, _ in after}
    result: list[list[dict[str, Any]]] = []
    for entries, known, whole, part in (
        (after - before, classes_before, "started", "new targets"),
        (before - after, classes_after, "stopped", "gone targets"),
    ):
        groups: dict[tuple[str, str], list[str]] = {}
        for phase, kind, target in sorted(entries):
            groups.setdefault((phase, kind), []).append(target)
        changes = []
        for (phase, kind), targets in groups.items():
            change = part if (phase, kind) in known else whole
            changes.append(
                {
                    "change": change,
                    "phase": phase,
                    "kind": kind,
                    "targets": targets,
                    "text": _sentence(change, phase, kind, targets, version, previous_version),
                }
            )
        result.append(changes)
    return result[0], result[1]


def behaviour_diff(
    previous: Release | None,
    previous_profile: Iterable[ProfileEntry],
    current_profile: Iterable[ProfileEntry],
    version: str,
) -> dict[str, Any]:
    """The ``behaviour_diff`` of the job API: ``{previous, new, gone}``."""
    if previous is None:
        return {"previous": None, "new": [], "gone": []}
    new, gone = behaviour_changes(
        previous_profile, current_profile, version=version, previous_version=previous.version
    )
    return {
        "previous": {"job_id": previous.job_id, "version": previous.version},
        "new": new,
        "gone": gone,
    }


# -------------------------------------------------------------- quality ----


@dataclass(frozen=True, slots=True)
class QualitySnapshot:
    """What the trend needs of one quality report: the score and each indicator's level."""

    score: int | None
    levels: dict[str, tuple[str, str]]  # indicator id -> (level, reason)


def quality_snapshot(summary: Mapping[str, Any]) -> QualitySnapshot:
    """The score and indicator levels of ``summary["quality"]``; malformed parts skipped."""
    report = summary.get("quality")
    if not isinstance(report, Mapping):
        return QualitySnapshot(None, {})
    raw_score = report.get("score")
    score = (
        raw_score
        if isinstance(raw_score, int) and not isinstance(raw_score, bool) and 0 <= raw_score <= 100
        else None
    )
    levels: dict[str, tuple[str, str]] = {}
    indicators = report.get("indicators")
    for item in indicators[:MAX_ENTRIES] if isinstance(indicators, list | tuple) else ():
        if not isinstance(item, Mapping):
            continue
        ident, level = _field(item.get("id")), item.get("level")
        if ident and level in _LEVEL_RANK:
            levels[ident] = (str(level), _field(item.get("reason")) or "")
    return QualitySnapshot(score, levels)


def _level_change(ident: str, then: str | None, now: str | None, reason: str) -> dict[str, Any]:
    if then is None:
        change, text = "new", f"new indicator {ident}: {now} ({reason})"
    elif now is None:
        change, text = "gone", f"indicator {ident} is gone (was {then})"
    else:
        change = "regressed" if _LEVEL_RANK[now] < _LEVEL_RANK[then] else "improved"
        text = f"{change} {ident}: {then} → {now} ({reason})"
    return {"indicator": ident, "change": change, "before": then, "after": now, "text": text}


def quality_trend(
    previous: Release | None, before: QualitySnapshot, after: QualitySnapshot
) -> dict[str, Any]:
    """The ``quality_trend`` of the job API: ``{previous, score, score_change, changes}``.

    ``changes``: regressions first, then improvements, then indicators that appeared
    or went away. ``score_change`` is None unless both releases have a score.
    """
    if previous is None:
        return {"previous": None, "score": after.score, "score_change": None, "changes": []}
    changes: list[dict[str, Any]] = []
    for ident, (now, reason) in after.levels.items():
        then = before.levels.get(ident)
        if then is None:
            changes.append(_level_change(ident, None, now, reason))
        elif then[0] != now:
            changes.append(_level_change(ident, then[0], now, reason))
    changes += [
        _level_change(ident, level, None, reason)
        for ident, (level, reason) in before.levels.items()
        if ident not in after.levels
    ]
    order = {"regressed": 0, "improved": 1, "new": 2, "gone": 3}
    changes.sort(key=lambda c: order[c["change"]])
    delta = None
    if before.score is not None and after.score is not None:
        delta = after.score - before.score
    return {
        "previous": {
            "job_id": previous.job_id,
            "version": previous.version,
            "score": before.score,
        },
        "score": after.score,
        "score_change": delta,
        "changes": changes,
    }
