"""Score, report serialisation and trend (slave.quality.report)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgpack
import pytest

from slave.quality import (
    Indicator,
    IndicatorFormatError,
    QualityReport,
    build_report,
    runtime_indicators,
    score,
    static_indicators,
    trend,
)
from tests.fakes.dists import make_project


def ind(ident: str, level: str, reason: str = "r") -> Indicator:
    """An indicator in the group its id names."""
    group = ident.split(".", maxsplit=1)[0]
    data = {"id": ident, "group": group, "value": None, "level": level, "reason": reason}
    return Indicator.from_dict(data)


def test_score_is_weighted_mean_of_group_means() -> None:
    """Group means of pass=1/warn=0.5/fail=0, weighted 25/20/25/15/15, over groups present."""
    assert score([ind("metadata.a", "pass"), ind("metadata.b", "fail")]) == 50
    indicators = [
        ind("metadata.a", "pass"),  # metadata 1.0 x 25
        ind("tests.a", "warn"),  # tests 0.5 x 25
        ind("code.a", "fail"),  # code 0.0 x 15
    ]
    assert score(indicators) == round(100 * (25 * 1.0 + 25 * 0.5) / (25 + 25 + 15))
    assert score([]) == 0
    all_pass = [ind(f"{g}.x", "pass") for g in ("metadata", "distribution", "tests", "code")]
    assert score(all_pass) == 100


def test_report_round_trips_through_json_and_msgpack(tmp_path: Path) -> None:
    """A real report survives JSON and msgpack encoding unchanged."""
    proj = make_project(tmp_path, "demo", "1.0")
    events = [{"event": "phase_finished", "phase": "install", "status": "passed", "duration_s": 1}]
    report = build_report(static_indicators(proj.files), runtime_indicators(events))
    data = report.to_dict()
    assert data["score"] == report.score
    assert set(data["groups"]) == {"metadata", "distribution", "code", "install", "tests"}
    via_json = QualityReport.from_dict(json.loads(json.dumps(data)))
    via_msgpack = QualityReport.from_dict(msgpack.unpackb(msgpack.packb(data)))
    assert via_json == report
    assert via_msgpack == report


@pytest.mark.parametrize(
    "data",
    [
        {"format": 99, "score": 1, "indicators": []},
        {"format": 1, "score": 101, "indicators": []},
        {"format": 1, "score": True, "indicators": []},
        {"format": 1, "score": 1, "indicators": "x"},
        {"format": 1, "score": 1, "indicators": [1]},
        {"format": 1, "score": 1, "indicators": [{"id": "a.b"}]},
        {"format": 1, "score": 1, "indicators": [
            {"id": "x", "group": "nope", "value": None, "level": "pass", "reason": ""}]},
        {"format": 1, "score": 1, "indicators": [
            {"id": "x", "group": "code", "value": None, "level": "great", "reason": ""}]},
        {"format": 1, "score": 1, "indicators": [
            {"id": "x", "group": "code", "value": {"k": object()}, "level": "pass", "reason": ""}]},
        {"format": 1, "score": 1, "indicators": [
            {"id": "x", "group": "code", "value": float("nan"), "level": "pass", "reason": ""}]},
    ],
)  # fmt: skip
def test_from_dict_rejects_malformed_reports(data: dict[str, Any]) -> None:
    """Wrong format, score, group, level or non-plain values raise IndicatorFormatError."""
    with pytest.raises(IndicatorFormatError):
        QualityReport.from_dict(data)


def test_reason_is_one_bounded_line() -> None:
    """Reasons quoting hostile names become one printable line (no escapes), capped."""
    indicator = ind("code.x", "pass", "evil\nname\r\t\x1b[31m" + "y" * 1000)
    assert "\n" not in indicator.reason
    assert indicator.reason.startswith("evil name \ufffd[31my")
    assert len(indicator.reason) <= 300


def test_trend_lists_score_regressions_improvements_and_changes() -> None:
    """Level changes are reported worst first, with the score delta and new/gone ids."""
    previous = build_report(
        [ind("metadata.license", "fail"), ind("tests.failures", "pass"), ind("code.old", "pass")],
        [],
    )
    current = build_report(
        [
            ind("metadata.license", "pass", "License-Expression MIT"),
            ind("tests.failures", "fail", "2 failed"),
            ind("code.new", "warn", "fresh"),
        ],
        [],
    )
    assert trend(previous, current) == [
        f"score {previous.score} → {current.score} ({current.score - previous.score:+d})",
        "regressed tests.failures: pass → fail (2 failed)",
        "improved metadata.license: fail → pass (License-Expression MIT)",
        "new code.new: warn (fresh)",
        "gone code.old (was pass)",
    ]


def test_trend_of_identical_reports_and_first_release_is_empty() -> None:
    """Nothing changed, or nothing to compare with: no lines."""
    report = build_report([ind("metadata.a", "warn")], [])
    assert trend(report, report) == []
    assert trend(None, report) == []


def test_to_dict_turns_tuples_into_lists() -> None:
    """Values built from tuples serialise as lists, so a JSON round trip compares equal."""
    indicator = Indicator("code.x", "code", {"a": (1, 2)}, "pass", "r")
    assert indicator.to_dict()["value"] == {"a": [1, 2]}
    assert Indicator.from_dict(json.loads(json.dumps(indicator.to_dict()))).value == {"a": [1, 2]}
