"""Runner events to phases, summary and outcome; findings analysed as events arrive."""

from __future__ import annotations

from slave.findings import Context, Finding
from slave.job.record import RunRecord, decide


def finished(phase: str, status: str, **extra: object) -> tuple[str, str, dict[str, object]]:
    return ("phase_finished", phase, {"status": status, "duration_s": 1.0, **extra})


def feed_all(record: RunRecord, events: list[tuple[str, str, dict[str, object]]]) -> None:
    for name, phase, fields in events:
        record.feed(name, phase, fields)


def test_decide_orders_outcomes() -> None:
    """harmful > crashed > timed_out > failed > infra_error > passed; quality never decides."""
    ok = {"status": "passed"}
    assert decide({"install": ok, "import": ok, "tests": ok}, "clean") == "passed"
    assert decide({"install": ok, "tests": {"status": "skipped"}}, "suspicious") == "passed"
    assert decide({"install": ok, "tests": {"status": "failed"}}, "clean") == "failed"
    assert decide({"install": ok, "import": {"status": "crashed"},
                   "tests": {"status": "failed"}}, "clean") == "crashed"  # fmt: skip
    assert decide({"install": ok, "tests": {"status": "timed_out"}}, "clean") == "timed_out"
    assert decide({"install": {"status": "error"}}, "clean") == "infra_error"
    assert decide({"install": ok, "quality": {"status": "error"}}, "clean") == "passed"
    assert decide({}, "clean") == "infra_error"
    assert decide({"install": {"status": "crashed"}}, "malicious") == "harmful"


def test_record_collects_phases_tests_and_crash() -> None:
    """Phase entries, test counts and the first crash's signal and traceback are kept."""
    record = RunRecord()
    feed_all(record, [
        ("phase_started", "install", {}),
        finished("install", "passed", exit_code=0, output_bytes=10, junk="x"),
        ("phase_started", "import", {}),
        finished("import", "crashed", signal=11, signal_name="SIGSEGV", traceback="Fatal..."),
        ("tests_summary", "tests", {"collected": 3, "passed": 2, "failed": 1, "errors": 0,
                                    "skipped": 0, "duration_s": 0.5, "offline": True}),
        ("runner_finished", "runner", {}),
    ])  # fmt: skip
    assert record.phases["install"] == {"status": "passed", "duration_s": 1.0, "exit_code": 0,
                                        "output_bytes": 10}  # fmt: skip
    assert record.crash == {"phase": "import", "signal": 11, "signal_name": "SIGSEGV",
                            "traceback": "Fatal..."}  # fmt: skip
    summary = record.summary()
    assert summary["tests"] == {"collected": 3, "passed": 2, "failed": 1, "errors": 0,
                                "skipped": 0, "duration_s": 0.5}  # fmt: skip
    assert summary["crash"]["signal_name"] == "SIGSEGV"
    assert summary["verdict"] == "clean" and summary["findings"] == []
    assert record.runner_finished and record.current is None
    assert decide(record.phases, record.verdict()) == "crashed"


def test_trace_of_bait_read_gives_findings_as_they_arrive() -> None:
    """A trace line reading the planted SSH key is a finding at once, and moves the verdict."""
    record = RunRecord(Context(bait_token="pyti_bait_x"))
    line = '1234 openat(AT_FDCWD, "/home/tester/.ssh/id_rsa", O_RDONLY|O_CLOEXEC) = 3'
    found = record.feed("trace", "import", {"pid": 1234, "line": line})
    assert found and any("id_rsa" in f.evidence for f in found)
    assert record.verdict() in ("suspicious", "malicious")
    assert record.summary()["findings_total"] >= 1


def test_host_timeout_marks_the_phase() -> None:
    """A phase the slave had to kill is timed_out (killed_by slave), so the job is timed_out."""
    record = RunRecord()
    feed_all(record, [finished("install", "passed"), ("phase_started", "tests", {})])
    assert record.current == "tests"
    record.timed_out_by_host("tests", 42.0)
    assert record.phases["tests"]["killed_by"] == "slave"
    assert decide(record.phases, record.verdict()) == "timed_out"


def test_quality_inputs_are_kept_bounded() -> None:
    """Events the quality indicators read are kept; install output is kept up to a bound."""
    record = RunRecord()
    for i in range(5000):
        record.feed("output", "install", {"stream": "stdout", "line": f"l{i}"})
    record.feed("quality", "quality", {"ruff": {"available": True}})
    names = [e["event"] for e in record.quality_events]
    assert names.count("output") == 2000 and names[-1] == "quality"


def test_summary_carries_the_behaviour_profile() -> None:
    """The result summary has the JSON profile of all findings, which the master can diff."""
    from slave.findings import profile_from_json

    record = RunRecord(Context(bait_token="tok-123"))
    line = (
        "7 connect(3, {sa_family=AF_INET, sin_port=htons(443), "
        'sin_addr=inet_addr("203.0.113.7")}, 16) = -1 ENETUNREACH (Network is unreachable)'
    )
    assert record.feed("trace", "install", {"pid": 7, "line": line})
    restored = profile_from_json(record.summary()["profile"])
    assert any(phase == "install" for phase, _cls, _target in restored)


def test_static_findings_enter_summary_verdict_and_profile() -> None:
    """The host's static findings join the record: listed (marked static), judged, profiled."""
    record = RunRecord(Context())
    feed_all(record, [finished("install", "failed")])
    evidence = "x-1.0.tar.gz:setup.py:3: pty.spawn('/bin/sh')"
    shell = Finding("static.reverse_shell", "critical", "install", None, "static", evidence,
                    "setup.py", source="static")  # fmt: skip
    assert record.add_static([shell, shell]) == [shell]
    summary = record.summary()
    assert summary["verdict"] == "malicious"
    assert summary["findings"][-1]["source"] == "static"
    assert ["install", "network", "setup.py"] in summary["profile"]
    # a failed install that did this is harmful, never a plain "failed"
    assert decide(record.phases, record.verdict()) == "harmful"
