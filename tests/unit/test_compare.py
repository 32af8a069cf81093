"""Release comparison logic on plain result JSON (master.compare): diff, trend, previous pick."""

from __future__ import annotations

from typing import Any

from master import compare
from master.compare import (
    MAX_ENTRIES,
    QualitySnapshot,
    Release,
    behaviour_diff,
    behaviour_profile,
    next_versions,
    pick_previous,
    quality_snapshot,
    quality_trend,
)


def _finding(rule: str, phase: str, target: str) -> dict[str, Any]:
    return {"rule": rule, "severity": "info", "phase": phase, "pid": 1, "process": "pip",
            "evidence": "socket(AF_INET, ...)", "target": target}  # fmt: skip


def _indicator(ident: str, level: str, reason: str = "why") -> dict[str, Any]:
    group = ident.split(".", maxsplit=1)[0]
    return {"id": ident, "group": group, "value": 1, "level": level, "reason": reason}


def test_sockets_at_install_time_in_the_new_release_is_said_in_words() -> None:
    """1.4.1 clean, 1.4.2 opens sockets at install: one "started" entry with that sentence."""
    clean = behaviour_profile({"verdict": "clean", "findings": [], "profile": []})
    noisy = behaviour_profile(
        {
            "findings": [_finding("net.socket", "install", "AF_INET")],
            "profile": [["install", "socket", "AF_INET"]],
        }
    )
    diff = behaviour_diff(Release(7, "1.4.1", 10.0), clean, noisy, "1.4.2")
    assert diff["previous"] == {"job_id": 7, "version": "1.4.1"}
    assert diff["gone"] == []
    [entry] = diff["new"]
    assert (entry["change"], entry["phase"], entry["kind"], entry["targets"]) == (
        "started",
        "install",
        "socket",
        ["AF_INET"],
    )
    assert entry["text"] == "1.4.2 started opening sockets at install time (AF_INET); 1.4.1 did not"


def test_new_targets_and_stopped_behaviours() -> None:
    """A class already shown gets "new targets"; a class no longer shown is "stopped" (gone)."""
    before = frozenset({("install", "network", "1.2.3.4:443"), ("import", "process", "curl")})
    after = frozenset({("install", "network", "1.2.3.4:443"), ("install", "network", "5.6.7.8:80")})
    diff = behaviour_diff(Release(1, "2.0", 1.0), before, after, "2.1")
    assert [(e["change"], e["targets"]) for e in diff["new"]] == [("new targets", ["5.6.7.8:80"])]
    assert "with new targets (5.6.7.8:80)" in diff["new"][0]["text"]
    assert [(e["change"], e["phase"], e["kind"]) for e in diff["gone"]] == [
        ("stopped", "import", "process")
    ]
    assert diff["gone"][0]["text"] == "2.1 stopped starting programs at import time (curl); 2.0 did"


def test_no_previous_release_means_nothing_to_compare() -> None:
    """The first tested release has previous null and empty lists, whatever it does."""
    profile = frozenset({("install", "network", "1.2.3.4:443")})
    assert behaviour_diff(None, frozenset(), profile, "1.0") == {
        "previous": None,
        "new": [],
        "gone": [],
    }


def test_profile_is_the_summary_profile_with_malformed_entries_skipped() -> None:
    """Only summary.profile counts (never findings); malformed entries and unknown classes drop."""
    summary = {
        "profile": [["install", "socket", "AF_INET"], ["x", 1, "y"], ["a", "b"], "junk",
                    ["tests", "write", "t" * 900], ["install", "telepathy", "x"]],
        "findings": [_finding("proc.shell", "install", "sh")],
    }  # fmt: skip
    profile = behaviour_profile(summary)
    assert ("install", "socket", "AF_INET") in profile
    assert ("tests", "write", "t" * 500) in profile  # cut, not refused
    assert len(profile) == 2
    flood = {"profile": [["install", "network", str(i)] for i in range(MAX_ENTRIES + 50)]}
    assert len(behaviour_profile(flood)) == MAX_ENTRIES
    assert behaviour_profile({"profile": "nope"}) == frozenset()
    assert behaviour_profile({"findings": [_finding("net.socket", "install", "x")]}) == frozenset()


def test_previous_is_the_highest_lower_pep440_version() -> None:
    """Version order (not finish order) picks the previous; same version and re-runs ignored."""
    current = Release(10, "1.10.0", 50.0)
    candidates = [
        Release(1, "1.9.0", 5.0),
        Release(2, "1.2.0", 40.0),  # finished later but older
        Release(3, "1.10.0", 45.0),  # another run of the same version
        Release(4, "2.0.0", 30.0),  # newer version, tested earlier
        Release(5, "1.9.0", 20.0),  # a re-run of 1.9.0: the latest run counts
        Release(6, "not a version!", 49.0),
        current,
    ]
    assert pick_previous(current, candidates) == Release(5, "1.9.0", 20.0)
    assert pick_previous(Release(11, "1.0", 60.0), candidates) is None
    assert [r.job_id for r in next_versions(Release(1, "1.9.0", 5.0), candidates)] == [3, 10]
    assert next_versions(Release(4, "2.0.0", 30.0), candidates) == []


def test_legacy_version_falls_back_to_finish_time() -> None:
    """A non-PEP 440 version compares with the latest earlier-finished other version."""
    current = Release(9, "2004-custom", 100.0)
    candidates = [Release(1, "1.0", 10.0), Release(2, "1.1", 90.0), Release(3, "9.9", 150.0)]
    assert pick_previous(current, candidates) == Release(2, "1.1", 90.0)
    assert next_versions(current, candidates) == []


def test_quality_trend_lists_score_change_and_level_changes() -> None:
    """Score delta, regressions before improvements, then new and gone indicators."""
    before = quality_snapshot(
        {"quality": {"format": 1, "score": 80, "indicators": [
            _indicator("tests.present", "pass"), _indicator("metadata.license", "fail"),
            _indicator("code.ruff", "warn"), _indicator("install.clean", "pass")]}}
    )  # fmt: skip
    after = quality_snapshot(
        {"quality": {"format": 1, "score": 74, "indicators": [
            _indicator("tests.present", "fail", "no tests found"),
            _indicator("metadata.license", "pass"), _indicator("code.ruff", "warn"),
            _indicator("distribution.wheel", "pass")]}}
    )  # fmt: skip
    trend = quality_trend(Release(3, "0.9", 1.0), before, after)
    assert trend["previous"] == {"job_id": 3, "version": "0.9", "score": 80}
    assert (trend["score"], trend["score_change"]) == (74, -6)
    assert [(c["indicator"], c["change"], c["before"], c["after"]) for c in trend["changes"]] == [
        ("tests.present", "regressed", "pass", "fail"),
        ("metadata.license", "improved", "fail", "pass"),
        ("distribution.wheel", "new", None, "pass"),
        ("install.clean", "gone", "pass", None),
    ]
    assert trend["changes"][0]["text"] == "regressed tests.present: pass → fail (no tests found)"


def test_quality_trend_without_scores_or_previous() -> None:
    """No previous: no change; a missing or malformed report: score and change are None."""
    snap = quality_snapshot({"quality": {"score": 90, "indicators": []}})
    assert quality_trend(None, QualitySnapshot(None, {}), snap) == {
        "previous": None,
        "score": 90,
        "score_change": None,
        "changes": [],
    }
    broken = quality_snapshot({"quality": {"score": True, "indicators": [{"id": "x"}, 3]}})
    assert broken == QualitySnapshot(None, {})
    trend = quality_trend(Release(1, "1.0", 0.0), broken, snap)
    assert trend["score_change"] is None and trend["previous"]["score"] is None


def test_reads_the_profile_the_slave_puts_in_the_summary() -> None:
    """summary.profile as slave.findings writes it reads back to the same set on the master."""
    from slave.findings import Finding, profile, profile_to_json

    findings = [
        Finding("net.socket", "info", "install", 5, "build-backend", "socket(...)", "AF_INET"),
        Finding(
            "cred.bait", "critical", "import", 6, "import demo", "openat(...)", "~/.ssh/id_rsa"
        ),
    ]
    sent = {"profile": profile_to_json(profile(findings)), "findings": []}
    assert behaviour_profile(sent) == profile(findings)


def test_summaries_decoded_from_the_wire_are_read_too() -> None:
    """A summary as the protocol decodes it (arrays as tuples) gives the same profile and scores."""
    from protocol.framing import HEADER_SIZE, pack, unpack_body

    summary = {
        "profile": [["install", "socket", "AF_INET"]],
        "findings": [{"rule": "net.connect", "phase": "install", "target": "203.0.113.7:443"}],
        "quality": {
            "score": 80,
            "indicators": [{"id": "code.ruff", "level": "warn", "reason": "r"}],
        },
    }
    wire = unpack_body(pack({"summary": summary})[HEADER_SIZE:])["summary"]
    assert isinstance(wire["profile"], tuple)
    assert compare.behaviour_profile(wire) == compare.behaviour_profile(summary) != frozenset()
    assert compare.quality_snapshot(wire) == compare.quality_snapshot(summary)
