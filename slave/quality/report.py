"""The quality report of one job: indicators, a 0-100 score, and trends between releases.

Score: each indicator is worth 1 (`pass`), 0.5 (`warn`) or 0 (`fail`). A group's
score is the mean over its indicators. The summary is the weighted mean of the
groups that have indicators, times 100, rounded to an integer::

    score = round(100 * sum(w[g] * mean(points in g)) / sum(w[g] for groups present))

with weights metadata 25, distribution 20, tests 25, code 15, install 15.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from slave.quality.indicator import GROUPS, Group, Indicator, IndicatorFormatError, Level

POINTS: Final[Mapping[Level, float]] = {"pass": 1.0, "warn": 0.5, "fail": 0.0}
WEIGHTS: Final[Mapping[Group, int]] = {
    "metadata": 25,
    "distribution": 20,
    "tests": 25,
    "code": 15,
    "install": 15,
}
REPORT_FORMAT: Final = 1
_RANK: Final[Mapping[Level, int]] = {"fail": 0, "warn": 1, "pass": 2}


def group_scores(indicators: Iterable[Indicator]) -> dict[Group, float]:
    """Mean points per group, for the groups that have at least one indicator."""
    points: dict[Group, list[float]] = {}
    for indicator in indicators:
        points.setdefault(indicator.group, []).append(POINTS[indicator.level])
    return {g: sum(p) / len(p) for g in GROUPS if (p := points.get(g))}


def score(indicators: Iterable[Indicator]) -> int:
    """The summary score, 0-100 (see the module docstring); 0 without indicators."""
    groups = group_scores(indicators)
    total_weight = sum(WEIGHTS[g] for g in groups)
    if not total_weight:
        return 0
    return round(100 * sum(WEIGHTS[g] * s for g, s in groups.items()) / total_weight)


@dataclass(frozen=True, slots=True)
class QualityReport:
    """Indicators of one job and their summary score."""

    indicators: tuple[Indicator, ...]
    score: int

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON and msgpack friendly), with per-group scores for display."""
        return {
            "format": REPORT_FORMAT,
            "score": self.score,
            "groups": {g: round(s, 3) for g, s in group_scores(self.indicators).items()},
            "indicators": [i.to_dict() for i in self.indicators],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> QualityReport:
        """Rebuild a report; raises `IndicatorFormatError` if anything is malformed.

        Group scores in `data` are ignored: they are derived, so they are recomputed.
        """
        if not isinstance(data, Mapping) or data.get("format") != REPORT_FORMAT:
            raise IndicatorFormatError("not a quality report of a known format")
        value = data.get("score")
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 100:
            raise IndicatorFormatError("score must be an integer from 0 to 100")
        raw = data.get("indicators")
        if not isinstance(raw, list):
            raise IndicatorFormatError("indicators must be a list")
        indicators = tuple(
            Indicator.from_dict(item) if isinstance(item, Mapping) else _bad(item) for item in raw
        )
        return cls(indicators, value)

    def by_id(self) -> dict[str, Indicator]:
        """Indicators keyed by id (the last one wins if an id repeats)."""
        return {i.id: i for i in self.indicators}


def _bad(item: object) -> Indicator:
    raise IndicatorFormatError(f"indicator must be a mapping, not {type(item).__name__}")


def build_report(static: Sequence[Indicator], runtime: Sequence[Indicator]) -> QualityReport:
    """Combine host-side and guest-side indicators into a scored report."""
    indicators = (*static, *runtime)
    return QualityReport(indicators, score(indicators))


def trend(previous: QualityReport | None, current: QualityReport) -> list[str]:
    """What regressed, then what improved, since the previous release's report.

    One line per indicator whose level changed, plus the score change and indicators
    that appeared or disappeared. No previous report (a first release): empty list.
    """
    if previous is None:
        return []
    before, after = previous.by_id(), current.by_id()
    regressed: list[str] = []
    improved: list[str] = []
    for ident, now in after.items():
        then = before.get(ident)
        if then is None or then.level == now.level:
            continue
        line = f"{ident}: {then.level} → {now.level} ({now.reason})"
        if _RANK[now.level] < _RANK[then.level]:
            regressed.append(f"regressed {line}")
        else:
            improved.append(f"improved {line}")
    lines: list[str] = []
    if current.score != previous.score:
        delta = current.score - previous.score
        lines.append(f"score {previous.score} → {current.score} ({delta:+d})")
    lines += regressed + improved
    lines += [f"new {i}: {after[i].level} ({after[i].reason})" for i in after if i not in before]
    lines += [f"gone {i} (was {before[i].level})" for i in before if i not in after]
    return lines
