"""The typed result and offer records: decoded by the protocol's decoder, plain maps on the wire."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from protocol.errors import InvalidMessage
from protocol.messages import JobOffer, JobResult, decode, encode
from protocol.results import (
    CrashInfo,
    FindingRecord,
    JobOptions,
    JobSummary,
    JobTimeouts,
    PhaseResult,
    PrepareSummary,
    TestCounts,
    phases_from_json,
    phases_to_json,
)
from protocol.schema import decode_record, encode_record
from protocol.vocabulary import Outcome, PhaseStatus, Verdict

SUMMARY: dict[str, Any] = {
    "verdict": "suspicious",
    "reason": "3 of 812 tests failed",
    "findings": [
        {"rule": "net.socket", "severity": "medium", "phase": "install", "pid": 7,
         "process": "python", "evidence": "connect(...)", "target": "1.2.3.4:443",
         "source": "dynamic"}
    ],
    "findings_total": 3,
    "profile": [["install", "network", "1.2.3.4:443"]],
    "tests": {"collected": 812, "passed": 809, "failed": 3, "errors": 0, "skipped": 0,
              "duration_s": 12.5, "offline_failures": {"count": 1, "tests": ["t::a"]},
              "uncollectable": {"count": 1, "modules": [{"module": "t.py", "missing": "trio"}]},
              "test_requirements_missing": ["trio"], "reason": "why"},
    "crash": {"phase": "tests", "signal": 11, "signal_name": "SIGSEGV", "traceback": "..."},
    "quality": {"format": 1, "score": 80, "groups": {}, "indicators": []},
    "image": {"name": "bookworm", "digest": "abc"},
    "prepare": {"metadata_source": "wheel", "requirements": ["six"], "test_sources": [],
                "test_requirements": [], "test_unavailable": [], "test_substituted": [],
                "build_imports": ["numpy"],
                "build_import_wheels": ["numpy"]},
    "error": "boom",
    "events_dropped": 2,
}  # fmt: skip
PHASES: dict[str, Any] = {
    "install": {"status": "passed", "duration_s": 1.5, "exit_code": 0, "output_bytes": 10},
    "tests": {"status": "timed_out", "duration_s": 42.0, "killed_by": "slave"},
    "runner": {"status": "error", "reason": "the guest runner failed"},
}


def plain(value: Any) -> Any:
    return json.loads(json.dumps(value))


def test_summary_round_trips_to_the_same_json() -> None:
    """Every summary field decodes to its type and encodes back to the same plain JSON."""
    summary = JobSummary.from_json(SUMMARY)
    assert summary.verdict is Verdict.SUSPICIOUS
    assert summary.tests is not None and summary.tests.offline_failures is not None
    assert summary.tests.offline_failures.tests == ("t::a",)
    assert summary.crash == CrashInfo("tests", 11, "SIGSEGV", "...")
    assert summary.prepare == PrepareSummary(
        "wheel", ("six",), build_imports=("numpy",), build_import_wheels=("numpy",)
    )
    assert summary.findings is not None and summary.findings[0].pid == 7
    assert plain(summary.to_json()) == SUMMARY


def test_phases_round_trip_and_absent_keys_stay_absent() -> None:
    """Phase entries decode to PhaseResult; only the keys that were sent come back."""
    phases = phases_from_json(PHASES)
    assert phases["tests"].status is PhaseStatus.TIMED_OUT and phases["tests"].signal is None
    assert plain(phases_to_json(phases)) == PHASES


def test_job_result_on_the_wire_is_the_plain_map() -> None:
    """A job_result carries phases and summary as plain maps and decodes back to records."""
    msg = JobResult(1, 2, Outcome.FAILED, "tcg", 9, phases_from_json(PHASES),
                    JobSummary.from_json(SUMMARY))  # fmt: skip
    wire = encode(msg)
    assert plain(wire["summary"]) == SUMMARY and plain(wire["phases"]) == PHASES
    assert decode(plain(wire)) == msg


def test_empty_summary_is_an_empty_map() -> None:
    """A summary with nothing known encodes to {} (as before typed results)."""
    assert JobSummary().to_json() == {} and JobSummary.from_json({}) == JobSummary()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"verdict": "evil"}, "'summary.verdict' must be one of clean|suspicious|malicious"),
        ({"reason": 3}, "'summary.reason' must be a string"),
        ({"reason": "x" * 2001}, "'summary.reason' is longer than 2000"),
        ({"findings_total": True}, "'summary.findings_total' must be an integer"),
        ({"findings": [{"rule": "r"}] * 201}, "'summary.findings' is longer than 200"),
        ({"findings": [{"rule": "r"}]}, "missing field 'summary.findings.severity'"),
        ({"tests": {"passed": "3"}}, "'summary.tests.passed' must be an integer"),
        ({"tests": {"test_requirements_missing": ["x"] * 201}}, "is longer than 200"),
        ({"tests": {"offline_failures": {"tests": []}}}, "missing field"),
        ({"crash": {"signal": 11}}, "missing field 'summary.crash.phase'"),
        ({"crash": {"phase": "tests", "traceback": "x" * 70000}}, "is longer than 65536"),
        ({"profile": [["a", "b", "c", "d"]]}, "'summary.profile' is longer than 3"),
        ({"profile": [[1, 2, 3]]}, "'summary.profile' must be a string"),
        ({"image": {"name": "x"}}, "missing field 'summary.image.digest'"),
        ({"prepare": {"requirements": "six"}}, "'summary.prepare.requirements' must be an array"),
        ({"quality": [1]}, "'summary.quality' must be a map"),
        ("not a map", "'summary' must be a map"),
    ],
)
def test_summary_decoder_refuses_malformed_fields(data: Any, message: str) -> None:
    """Wrong types, oversized strings and lists, missing required fields: named errors."""
    with pytest.raises(InvalidMessage, match=re.escape(message)):
        JobSummary.from_json(data)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"install": {"duration_s": 1}}, "missing field 'phases.install.status'"),
        ({"install": {"status": "fine"}}, "must be one of passed|failed"),
        ({"install": {"status": "passed", "exit_code": 1.5}}, "must be an integer"),
        ({"install": {"status": "passed", "reason": "x" * 5000}}, "is longer than 2000"),
        ({f"p{i}": {"status": "passed"} for i in range(33)}, "at most 32 phases"),
        ({"install": "passed"}, "'phases.install' must be a map"),
    ],
)
def test_phases_decoder_refuses_malformed_entries(data: Any, message: str) -> None:
    """A phase entry must be a map with a known status and typed optional fields."""
    with pytest.raises(InvalidMessage, match=re.escape(message)):
        phases_from_json(data)


def test_job_result_with_too_many_phases_is_invalid() -> None:
    """The wire decoder bounds the phases map too (the guest's output is untrusted)."""
    wire = plain(encode(JobResult(1, 1, Outcome.PASSED, "tcg", 0)))
    wire["phases"] = {f"p{i}": {"status": "passed"} for i in range(33)}
    with pytest.raises(InvalidMessage, match="'phases' is longer than 32"):
        decode(wire)


def test_timeouts_use_the_phase_names_on_the_wire() -> None:
    """JobTimeouts is keyed by phase name, ``import`` included; unknown phases are ignored."""
    timeouts = JobTimeouts.from_json({"import": 30, "tests": 8.5, "lunch": 5})
    assert timeouts.get("import") == 30.0 and timeouts.get("tests") == 8.5
    assert timeouts.get("install") is None and timeouts.get("lunch") is None
    assert timeouts.to_json() == {"import": 30.0, "tests": 8.5}
    with pytest.raises(InvalidMessage, match=r"'timeouts\.tests' must be a number"):
        JobTimeouts.from_json({"tests": "600"})


def test_offer_carries_timeouts_and_options_as_plain_maps() -> None:
    """A job_offer's timeouts and options are the maps they were; absent ones are {}."""
    offer = JobOffer(1, 1, 1, "demo", "1.0", "img", (), timeouts=JobTimeouts(install=60))
    wire = encode(offer)
    assert wire["timeouts"] == {"install": 60} and wire["options"] == {}
    del wire["timeouts"], wire["options"]
    back = decode(wire)
    assert isinstance(back, JobOffer) and back.timeouts == JobTimeouts()
    assert back.options == JobOptions()
    with pytest.raises(InvalidMessage, match="'options' must be a map"):
        decode({**encode(offer), "options": []})


def test_finding_and_counts_records_decode_alone() -> None:
    """The smaller records decode on their own with defaults for optional fields."""
    finding = decode_record(FindingRecord, {"rule": "r", "severity": "low", "phase": "install"})
    assert finding.pid is None and finding.source == "dynamic"
    assert encode_record(TestCounts(passed=1)) == {"passed": 1}
    assert encode_record(PhaseResult(PhaseStatus.PASSED)) == {"status": "passed"}
