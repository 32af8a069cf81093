"""Runner events to phases, summary and outcome; findings analysed as events arrive."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from protocol.results import TestCounts, phases_from_json
from protocol.schema import decode_record, encode_record
from protocol.vocabulary import Outcome
from slave.findings import Context, Finding
from slave.job.record import Decision, RunRecord, decide, read_tests_summary


def judge(
    phases: Mapping[str, Any], verdict: str, tests: Mapping[str, Any] | None = None, **kw: Any
) -> Decision:
    """``decide`` on plain maps, as they travel."""
    counts = None if tests is None else decode_record(TestCounts, dict(tests))
    return decide(phases_from_json(dict(phases)), verdict, counts, **kw)


def plain(rec: object) -> Any:
    """A record as the JSON it becomes."""
    return json.loads(json.dumps(rec if isinstance(rec, dict) else encode_record(rec)))


def finished(phase: str, status: str, **extra: object) -> tuple[str, str, dict[str, object]]:
    return ("phase_finished", phase, {"status": status, "duration_s": 1.0, **extra})


def feed_all(record: RunRecord, events: list[tuple[str, str, dict[str, object]]]) -> None:
    for name, phase, fields in events:
        record.feed(name, phase, fields)


Phases = dict[str, dict[str, Any]]
OK: dict[str, Any] = {"status": "passed"}
FAILED_TESTS: dict[str, Any] = {"status": "failed", "exit_code": 1}


def counts(passed: int, failed: int = 0, errors: int = 0, **extra: object) -> dict[str, object]:
    total = passed + failed + errors
    return {"collected": total, "passed": passed, "failed": failed, "errors": errors,
            "skipped": 0, **extra}  # fmt: skip


def test_decide_orders_outcomes() -> None:
    """harmful > crashed > timed_out > failed > infra_error; slow tests: incomplete."""
    assert judge({"install": OK, "import": {"status": "crashed"},
                   "tests": FAILED_TESTS}, "clean").outcome == "crashed"  # fmt: skip
    assert judge({"install": {"status": "timed_out"}}, "clean").outcome == "timed_out"
    # tests past their budget: not the release's failure (big suites under TCG), not a pass
    tests_slow = judge(
        {"install": OK, "tests": {"status": "timed_out", "duration_s": 900.0}}, "clean"
    )
    assert tests_slow == Decision(
        Outcome.INCOMPLETE,
        "the tests did not finish within their time budget (stopped after 900 s)",
    )
    assert judge({"install": {"status": "error"}}, "clean").outcome == "infra_error"
    assert judge({}, "clean").outcome == "infra_error"
    assert judge({"install": {"status": "crashed"}}, "malicious").outcome == "harmful"
    quality_error = {"install": OK, "import": OK, "tests": OK, "quality": {"status": "error"}}
    assert judge(quality_error, "clean", counts(3)) == Decision(Outcome.PASSED, None)


def test_malicious_verdict_is_harmful_with_the_worst_finding() -> None:
    """A malicious verdict makes any run harmful; the reason names the worst finding."""
    got = judge({"install": {"status": "failed"}}, "malicious", threat="critical cred.bait at "
                 "import (~/.ssh/id_rsa)")  # fmt: skip
    assert got == Decision(Outcome.HARMFUL, "malicious behaviour: critical cred.bait at import "
                           "(~/.ssh/id_rsa)")  # fmt: skip


def test_crash_and_timeout_say_which_phase() -> None:
    """crashed names the phase and signal; timed_out the phase and how long it ran."""
    crashed = {"install": OK, "tests": {"status": "crashed", "signal_name": "SIGSEGV"}}
    assert judge(crashed, "clean") == Decision(Outcome.CRASHED, "tests crashed (SIGSEGV)")
    # the test pytest was in when it died is named (from the plugin's progress file)
    assert judge(crashed, "clean", {"running": "tests/t.py::test_c"}) == Decision(
        Outcome.CRASHED, "tests crashed (SIGSEGV) in tests/t.py::test_c"
    )
    hung = {"install": {"status": "timed_out", "duration_s": 300.0}}
    assert judge(hung, "clean") == Decision(
        Outcome.TIMED_OUT, "install ran past its timeout (stopped after 300 s)"
    )


def test_failed_speed_checks_count_apart_only_in_an_emulated_guest() -> None:
    """Under TCG a speed check ("took 1.99s, expected sub-second") says nothing about the
    package: counted apart with a note; under KVM it is a failure like any other."""
    ran = {"install": OK, "import": OK, "tests": {"status": "failed", "exit_code": 1}}
    slow = counts(536, failed=1, speed_failures={"count": 1, "tests": ["t.py::test_fast"]})
    assert judge(ran, "clean", slow, emulated=True) == Decision(
        Outcome.PASSED, "1 tests failed only a speed check in an emulated guest (t.py::test_fast)"
    )
    assert judge(ran, "clean", slow) == Decision(Outcome.FAILED, "1 of 537 tests failed")
    both = counts(536, failed=2, speed_failures={"count": 1, "tests": ["t.py::test_fast"]})
    assert judge(ran, "clean", both, emulated=True).outcome is Outcome.FAILED


def test_a_failed_reason_names_the_first_real_failure() -> None:
    """The first failure not counted apart is named with its error (cut to fit), before the
    notes; the runner's ``{test, error}`` becomes ``summary.tests.first_failure``."""
    ran = {"install": OK, "import": OK, "tests": {"status": "failed", "exit_code": 1}}
    first = {"test": "tests/test_api.py::test_valid", "error": "FileNotFoundError: 'data/'"}
    offline = {"count": 1, "tests": ["t.py::test_net"]}
    read = read_tests_summary(
        {**counts(21, failed=2), "first_failure": first, "offline_failures": offline}
    )
    assert read.first_failure == "tests/test_api.py::test_valid: FileNotFoundError: 'data/'"
    assert judge(ran, "clean", plain(read)) == Decision(
        Outcome.FAILED,
        "1 of 23 tests failed, first tests/test_api.py::test_valid: FileNotFoundError: 'data/'; "
        "1 tests failed only because the guest is offline (t.py::test_net)",
    )
    long = read_tests_summary(
        {**counts(1, failed=1), "first_failure": {"test": "t.py::" + "x" * 400}}
    )
    reason = judge(ran, "clean", plain(long)).reason or ""
    assert reason.startswith("1 of 2 tests failed, first t.py::xxx") and reason.endswith("x…")
    assert len(reason) == len("1 of 2 tests failed, first ") + 180
    assert read_tests_summary({"first_failure": "not a map"}).first_failure is None


def test_failures_that_only_ran_a_missing_program_count_apart() -> None:
    """Tests that only ran a CI runner's tool the guest lacks do not fail the release (under
    KVM too); a real failure beside them still does."""
    ran = {"install": OK, "import": OK, "tests": {"status": "failed", "exit_code": 1}}
    lacking = {"count": 2, "tests": ["t.py::test_a", "t.py::test_b"], "programs": ["hg"]}
    tests = plain(read_tests_summary({**counts(40, failed=2), "program_failures": lacking}))
    assert judge(ran, "clean", tests) == Decision(
        Outcome.PASSED, "2 tests failed only because the guest lacks a program they run (hg)"
    )
    worse = plain(read_tests_summary({**counts(40, failed=3), "program_failures": lacking}))
    assert judge(ran, "clean", worse).outcome is Outcome.FAILED


def test_failures_that_only_read_a_file_the_sdist_lacks_are_not_the_release() -> None:
    """Tests that failed only reading data the sdist does not ship (a git submodule) are
    counted apart and named by the file; a real failure beside them still fails."""
    ran = {"install": OK, "import": OK, "tests": {"status": "failed", "exit_code": 1}}
    absent = {"count": 2, "tests": ["t.py::test_a", "t.py::test_b"], "files": ["toml-test"]}
    tests = plain(read_tests_summary({**counts(23, failed=2), "unshipped_failures": absent}))
    assert tests["unshipped_failures"]["files"] == ["toml-test"]
    assert judge(ran, "clean", tests) == Decision(
        Outcome.PASSED,
        "2 tests failed only because the sdist does not ship a file they read (toml-test)",
    )
    worse = plain(read_tests_summary({**counts(23, failed=3), "unshipped_failures": absent}))
    assert judge(ran, "clean", worse).outcome is Outcome.FAILED


def test_async_tests_no_plugin_ran_are_not_the_release() -> None:
    """``async def`` tests no installed plugin ran are counted apart and said; a real
    failure beside them still fails; with nothing else run, no test passed is said too."""
    ran = {"install": OK, "import": OK, "tests": {"status": "failed", "exit_code": 1}}
    unrun = {"count": 32, "tests": ["tests/test_timeout.py::test_timeout"]}
    tests = plain(read_tests_summary({**counts(1, failed=32), "plugin_failures": unrun}))
    assert tests["plugin_failures"]["count"] == 32
    assert judge(ran, "clean", tests) == Decision(
        Outcome.PASSED,
        "32 tests did not run: no installed pytest plugin runs them (async) or provides"
        " their fixture (tests/test_timeout.py::test_timeout)",
    )
    worse = plain(read_tests_summary({**counts(1, failed=33), "plugin_failures": unrun}))
    assert judge(ran, "clean", worse).outcome is Outcome.FAILED


def test_tests_that_only_lacked_a_module_are_not_the_release() -> None:
    """Tests that failed only importing a module that is not installed are said, with the
    modules; a real failure beside them still fails."""
    ran = {"install": OK, "import": OK, "tests": {"status": "failed", "exit_code": 1}}
    absent = {"count": 1, "tests": ["dill/tests/test_classdef.py::test_attr"], "modules": ["attr"]}
    tests = plain(read_tests_summary({**counts(97, failed=1), "module_failures": absent}))
    assert judge(ran, "clean", tests) == Decision(
        Outcome.PASSED, "1 tests failed only because a module they import is not installed (attr)"
    )
    worse = plain(read_tests_summary({**counts(97, failed=2), "module_failures": absent}))
    assert judge(ran, "clean", worse).outcome is Outcome.FAILED


def test_lint_checks_are_not_the_release() -> None:
    """A lint plugin's failed checks are said, with the linters; a real failure fails."""
    ran = {"install": OK, "import": OK, "tests": {"status": "failed", "exit_code": 1}}
    lint = {"count": 12, "tests": ["tests/backend_test.py::ruff"], "tools": ["ruff"]}
    tests = plain(read_tests_summary({**counts(378, failed=12), "lint_failures": lint}))
    assert judge(ran, "clean", tests) == Decision(
        Outcome.PASSED,
        "12 lint checks failed (the newest linter's rules, not the package's behaviour) (ruff)",
    )
    worse = plain(read_tests_summary({**counts(378, failed=13), "lint_failures": lint}))
    assert judge(ran, "clean", worse).outcome is Outcome.FAILED


def test_tests_that_pass_run_as_their_modules_scripts_are_not_the_release() -> None:
    """Failures under pytest whose modules pass run as scripts are said, with the modules;
    a real failure beside them still fails; a suite that only passed as scripts passed."""
    ran = {"install": OK, "import": OK, "tests": {"status": "failed", "exit_code": 1}}
    scripts = {
        "count": 8,
        "tests": ["dill/tests/test_abc.py::test_abc_local"],
        "modules": ["dill/tests/test_abc.py", "dill/tests/test_classdef.py"],
    }
    tests = plain(read_tests_summary({**counts(88, failed=8), "script_failures": scripts}))
    assert tests["script_failures"]["modules"] == scripts["modules"]
    assert judge(ran, "clean", tests) == Decision(
        Outcome.PASSED,
        "8 tests failed under pytest only: their modules pass run as scripts, as their"
        " authors run them (dill/tests/test_abc.py, dill/tests/test_classdef.py)",
    )
    worse = plain(read_tests_summary({**counts(88, failed=9), "script_failures": scripts}))
    assert judge(ran, "clean", worse).outcome is Outcome.FAILED
    only = plain(read_tests_summary({**counts(0, failed=8), "script_failures": scripts}))
    assert judge(ran, "clean", only).outcome is Outcome.PASSED


def test_a_base_classs_tests_that_pass_in_its_subclasses_are_not_the_release() -> None:
    """A base class's failures, passing in its subclasses, are said with the bases; a real
    failure beside them still fails."""
    ran = {"install": OK, "import": OK, "tests": {"status": "failed", "exit_code": 1}}
    bases = {
        "count": 11,
        "tests": ["tests.py::BaseTests::test_allow_expansion"],
        "classes": ["tests.py::BaseTests"],
    }
    tests = plain(read_tests_summary({**counts(77, failed=11), "base_failures": bases}))
    assert tests["base_failures"]["classes"] == bases["classes"]
    assert judge(ran, "clean", tests) == Decision(
        Outcome.PASSED,
        "11 tests of a base class failed only for what its subclasses supply (they pass"
        " there) (tests.py::BaseTests)",
    )
    worse = plain(read_tests_summary({**counts(77, failed=12), "base_failures": bases}))
    assert judge(ran, "clean", worse).outcome is Outcome.FAILED


def test_a_stand_in_for_a_test_requirement_is_said() -> None:
    """When the index release stood in for a build the project tests with (git), the reason
    says so, after the first failure; a job that passes carries it as a note."""
    ran = {"install": OK, "import": OK, "tests": {"status": "failed", "exit_code": 1}}
    tests = counts(9, failed=1, first_failure="t.py::test_tls: KeyError: 'tls'")
    stood_in = ("hypercorn (git https://github.com/urllib3/hypercorn)",)
    assert judge(ran, "clean", tests, substituted=stood_in) == Decision(
        Outcome.FAILED,
        "1 of 10 tests failed, first t.py::test_tls: KeyError: 'tls'; the index release "
        "stood in for hypercorn (git https://github.com/urllib3/hypercorn)",
    )
    passed = {"install": OK, "import": OK, "tests": OK}
    assert judge(passed, "clean", counts(9), substituted=stood_in) == Decision(
        Outcome.PASSED,
        "the index release stood in for hypercorn (git https://github.com/urllib3/hypercorn)",
    )


def test_import_that_needed_the_test_requirements_passes_with_a_note() -> None:
    """A module that imported only once the test requirements were in (it imports a module
    it does not declare) passes with a note; one that still failed is a failed import."""
    missing = "ModuleNotFoundError: No module named 'bs4'"
    fields: dict[str, object] = {"module": "soupsieve", "status": "passed"}
    helped = ("import_result", "import", {**fields, "undeclared": "bs4", "first_error": missing})
    tests = ("tests_summary", "tests", counts(12))
    record = RunRecord()
    feed_all(record, [finished("install", "passed"), helped, finished("import", "passed"),
                      tests, finished("tests", "passed")])  # fmt: skip
    assert record.decide() == Decision(
        Outcome.PASSED, "imports only with its test requirements installed (soupsieve needs bs4)"
    )
    still = ("import_result", "import", {**fields, "status": "failed", "error": missing})
    record = RunRecord()
    feed_all(record, [finished("install", "passed"), still, finished("import", "failed"),
                      tests, finished("tests", "passed")])  # fmt: skip
    assert record.decide() == Decision(
        Outcome.FAILED, "import failed: soupsieve: ModuleNotFoundError: No module named 'bs4'"
    )


def test_tests_killed_by_the_oom_killer_are_incomplete_not_crashed() -> None:
    """A suite outgrowing the guest's RAM is not the release crashing; elsewhere it still is."""
    record = RunRecord()
    feed_all(record, [
        finished("install", "passed"), finished("import", "passed"),
        finished("tests", "crashed", signal=9, signal_name="SIGKILL", oom_kills=1),
    ])  # fmt: skip
    assert record.out_of_memory == {"tests"}
    assert record.decide() == Decision(
        Outcome.INCOMPLETE,
        "the tests ran out of memory: the guest's OOM killer stopped them (SIGKILL)",
    )
    assert record.summary().crash is not None  # what happened stays on record
    # SIGKILL with no OOM kill counted, or an OOM kill at import: still crashed
    killed = {"install": OK, "tests": {"status": "crashed", "signal_name": "SIGKILL"}}
    assert judge(killed, "clean").outcome is Outcome.CRASHED
    at_import = {"install": OK, "import": {"status": "crashed", "signal_name": "SIGKILL"}}
    assert judge(at_import, "clean", out_of_memory=frozenset({"import"})).outcome is (
        Outcome.CRASHED
    )
    segv = {"install": OK, "tests": {"status": "crashed", "signal_name": "SIGSEGV"}}
    assert judge(segv, "clean", out_of_memory=frozenset({"tests"})).outcome is Outcome.CRASHED


def test_tests_out_of_time_say_what_ran_and_fail_only_on_a_real_failure() -> None:
    """pytest interrupted at the budget leaves counts: passes are named, a failure fails."""
    out = {"install": OK, "import": OK, "tests": {"status": "timed_out", "duration_s": 1800.0}}
    assert judge(out, "clean", counts(14000, skipped=3)) == Decision(
        Outcome.INCOMPLETE,
        "the tests did not finish within their time budget (stopped after 1800 s): "
        "14000 passed, none failed, before it",
    )
    assert judge(out, "clean", counts(900, failed=2)) == Decision(
        Outcome.FAILED,
        "2 of 902 tests failed before the time budget ran out (stopped after 1800 s)",
    )
    offline_only = counts(900, failed=2, offline_failures={"count": 2, "tests": ["t::a", "t::b"]})
    assert judge(out, "clean", offline_only).outcome is Outcome.INCOMPLETE
    assert judge(out, "clean", counts(0, errors=5)).outcome is Outcome.INCOMPLETE
    assert judge(out, "clean").reason == (
        "the tests did not finish within their time budget (stopped after 1800 s)"
    )
    # The test it was in when stopped is named last (a long node id is cut, not the counts).
    running = counts(2100, running="tests/test_more.py::TestSerialize::test_concurrent_calls")
    assert judge(out, "clean", running).reason == (
        "the tests did not finish within their time budget (stopped after 1800 s): "
        "2100 passed, none failed, before it; it was in "
        "tests/test_more.py::TestSerialize::test_concurrent_calls"
    )
    assert judge(out, "clean", {"running": "t.py::test_x"}).reason == (
        "the tests did not finish within their time budget (stopped after 1800 s); "
        "it was in t.py::test_x"
    )


def test_pytest_stopping_before_any_test_is_incomplete() -> None:
    """No counts and pytest's internal/usage error (a test plugin that does not import):
    no test of the package ran, so it is not failed; exit 1 without counts still is."""
    stopped = {"install": OK, "import": OK, "tests": {"status": "failed", "exit_code": 3}}
    assert judge(stopped, "clean") == Decision(
        Outcome.INCOMPLETE, "pytest could not run the tests (exit status 3: internal error)"
    )
    failed = {"install": OK, "import": OK, "tests": {"status": "failed", "exit_code": 1}}
    assert judge(failed, "clean") == Decision(
        Outcome.FAILED, "tests failed: pytest exited with status 1"
    )
    # the last exception pytest's output named says why, in the same line
    error = "ImportError: cannot import name 'parse_authorization_header' from 'werkzeug.http'"
    output: list[tuple[str, str, dict[str, object]]] = [
        ("output", "tests", {"stream": "stdout", "line": "INTERNALERROR> Traceback (most recent"}),
        ("output", "tests", {"stream": "stderr", "line": "    from .core import *"}),
        ("output", "tests", {"stream": "stderr", "line": f"E   {error} (/venv/werkzeug/http.py)"}),
        ("output", "tests", {"stream": "stdout", "line": "no tests ran in 1.60s"}),
    ]
    record = RunRecord()
    feed_all(record, [finished("install", "passed"), finished("import", "passed"), *output,
                      finished("tests", "failed", exit_code=3)])  # fmt: skip
    assert record.decide() == Decision(
        Outcome.INCOMPLETE,
        f"pytest could not run the tests (exit status 3: internal error): {error} "
        "(/venv/werkzeug/http.py)",
    )
    # with counts, the counts decide (urllib3: INTERNALERROR after 800 tests ran)
    assert judge(stopped, "clean", counts(800, failed=2)).outcome is Outcome.FAILED


def test_failed_install_or_import_is_failed_with_the_error() -> None:
    """An install or import that failed is the package's failure, with pip's or the error."""
    install = {"install": {"status": "failed", "exit_code": 1}}
    assert judge(install, "clean") == Decision(
        Outcome.FAILED, "install failed: pip exited with status 1"
    )
    imported = {"install": OK, "import": {"status": "failed"}, "tests": OK}
    got = judge(imported, "suspicious", counts(3), import_failure="demo: ImportError: no _c")
    assert got == Decision(Outcome.FAILED, "import failed: demo: ImportError: no _c")


def test_real_test_failures_are_failed_and_counted() -> None:
    """Failures that are not the guest being offline make the release failed."""
    tests = counts(10, failed=3, offline_failures={"count": 1, "tests": ["t.py::net"]})
    got = judge({"install": OK, "import": OK, "tests": FAILED_TESTS}, "clean", tests)
    assert got.outcome is Outcome.FAILED
    assert got.reason == (
        "2 of 13 tests failed; 1 tests failed only because the guest is offline (t.py::net)"
    )


def test_offline_and_uncollectable_only_is_passed_with_what_did_not_run() -> None:
    """Only offline failures and uncollectable modules, the rest passing: passed, with a reason."""
    tests = counts(
        800,
        failed=2,
        offline_failures={"count": 2, "tests": ["a.py::x", "b.py::y"]},
        uncollectable={"count": 2, "modules": [{"module": "tests/test_trio.py", "missing": "trio"},
                                               {"module": "tests/test_b.py", "missing": None}]},
        test_requirements_missing=["trio"],
    )  # fmt: skip
    got = judge({"install": OK, "import": OK, "tests": FAILED_TESTS}, "clean", tests)
    assert got.outcome is Outcome.PASSED
    assert got.reason == (
        "2 tests failed only because the guest is offline (a.py::x, b.py::y); "
        "2 test modules not collected (tests/test_trio.py needs trio, tests/test_b.py); "
        "test requirements not installable (trio)"
    )


def test_collection_errors_alone_do_not_fail_the_release() -> None:
    """pytest's exit status from collection errors decides nothing when the counts are known."""
    tests = counts(5, uncollectable={"count": 1, "modules": [{"module": "t.py", "missing": "x"}]})
    got = judge({"install": OK, "import": OK, "tests": {"status": "failed", "exit_code": 1}},
                 "clean", tests)  # fmt: skip
    assert got == Decision(Outcome.PASSED, "1 test modules not collected (t.py needs x)")


def test_no_test_run_is_incomplete_with_the_reason() -> None:
    """No tests shipped, none collectable, all skipped, all errored in set-up or only offline
    failures: incomplete; one real failure among set-up errors is failed."""
    phases = {"install": OK, "import": OK}
    skipped = {**phases, "tests": {"status": "skipped", "reason": "no tests found in the sdist"}}
    assert judge(skipped, "clean", {"reason": "no tests found in the sdist"}) == Decision(
        Outcome.INCOMPLETE, "no tests found in the sdist"
    )
    assert judge(skipped, "clean") == Decision(Outcome.INCOMPLETE, "no tests found in the sdist")
    none = counts(0, uncollectable={"count": 3, "modules": []},
                  reason="no test module could be collected")  # fmt: skip
    got = judge({**phases, "tests": FAILED_TESTS}, "clean", none)
    assert got == Decision(
        Outcome.INCOMPLETE, "no test module could be collected; 3 test modules not collected"
    )
    all_skipped = {**counts(0), "skipped": 4}
    got = judge({**phases, "tests": OK}, "clean", all_skipped)
    assert got == Decision(Outcome.INCOMPLETE, "no test ran: all 4 were skipped")
    offline_only = counts(0, failed=2, offline_failures={"count": 2, "tests": []})
    got = judge({**phases, "tests": FAILED_TESTS}, "clean", offline_only)
    assert got.outcome is Outcome.INCOMPLETE
    no_phase = judge(phases, "clean")
    assert no_phase == Decision(Outcome.INCOMPLETE, "the tests phase did not run")
    all_errored = {**counts(0, errors=1944), "skipped": 53}
    got = judge({**phases, "tests": FAILED_TESTS}, "clean", all_errored)
    why = "no test ran: all 1944 tests errored in their set-up"
    assert got == Decision(Outcome.INCOMPLETE, why)
    one_failure = counts(0, failed=1, errors=5)
    assert judge({**phases, "tests": FAILED_TESTS}, "clean", one_failure).outcome is Outcome.FAILED


def test_failed_tests_without_counts_use_the_phase() -> None:
    """No JUnit counts: a failed tests phase is failed, unless the runner said none ran."""
    phases: Phases = {"install": OK, "import": OK, "tests": FAILED_TESTS}
    assert judge(phases, "clean") == Decision(
        Outcome.FAILED, "tests failed: pytest exited with status 1"
    )
    said = judge(phases, "clean", {"reason": "cannot install pytest"})
    assert said == Decision(Outcome.INCOMPLETE, "cannot install pytest")


def test_runner_tests_summary_in_either_shape_is_read() -> None:
    """tests_summary fields may be absent, lists or the runner's {count, tests} maps."""
    listed = read_tests_summary({"passed": 1, "failed": 1, "errors": 0,
                            "offline_failures": ["a::b"],
                            "uncollectable": [{"module": "m.py", "missing": "trio"}],
                            "test_requirements_missing": ["trio"], "reason": None})  # fmt: skip
    assert plain(listed) == {
        "passed": 1, "failed": 1, "errors": 0,
        "offline_failures": {"count": 1, "tests": ["a::b"]},
        "uncollectable": {"count": 1, "modules": [{"module": "m.py", "missing": "trio"}]},
        "test_requirements_missing": ["trio"],
    }  # fmt: skip
    mapped = read_tests_summary({"offline_failures": {"count": 70, "tests": ["x"]},
                            "collection_errors": [{"module": "m.py", "missing": None,
                                                   "error": "E"}],
                            "collection_error_count": 60,
                            "test_requirements": {"failed": [{"requirement": "hypothesis",
                                                              "error": "no wheel"}]},
                            "reason": "no test module could be collected\nmore"})  # fmt: skip
    assert plain(mapped)["offline_failures"] == {"count": 70, "tests": ["x"]}
    assert mapped.uncollectable is not None and mapped.uncollectable.count == 60
    assert mapped.test_requirements_missing == ("hypothesis",)
    assert mapped.reason == "no test module could be collected"
    assert plain(read_tests_summary({"passed": True, "failed": -1, "offline_failures": 3})) == {}


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
    assert plain(record.phases["install"]) == {"status": "passed", "duration_s": 1.0,
                                               "exit_code": 0, "output_bytes": 10}  # fmt: skip
    assert plain(record.crash) == {"phase": "import", "signal": 11, "signal_name": "SIGSEGV",
                            "traceback": "Fatal..."}  # fmt: skip
    summary = record.summary().to_json()
    assert plain(summary["tests"]) == {"collected": 3, "passed": 2, "failed": 1, "errors": 0,
                                "skipped": 0, "duration_s": 0.5}  # fmt: skip
    assert summary["crash"]["signal_name"] == "SIGSEGV"
    assert summary["verdict"] == "clean" and summary["findings"] == []
    assert record.runner_finished and record.current is None
    assert record.decide().outcome is Outcome.CRASHED


def test_trace_of_bait_read_gives_findings_as_they_arrive() -> None:
    """A trace line reading the planted SSH key is a finding at once, and moves the verdict."""
    record = RunRecord(Context(bait_token="pyti_bait_x"))
    line = '1234 openat(AT_FDCWD, "/home/tester/.ssh/id_rsa", O_RDONLY|O_CLOEXEC) = 3'
    found = record.feed("trace", "import", {"pid": 1234, "line": line})
    assert found and any("id_rsa" in f.evidence for f in found)
    assert record.verdict() in ("suspicious", "malicious")
    assert (record.summary().findings_total or 0) >= 1


def test_host_timeout_marks_the_phase() -> None:
    """A phase the slave had to kill is timed_out (killed_by slave); tests past it: incomplete."""
    record = RunRecord()
    feed_all(record, [finished("install", "passed"), ("phase_started", "tests", {})])
    assert record.current == "tests"
    record.timed_out_by_host("tests", 42.0)
    assert record.phases["tests"].killed_by == "slave"
    assert record.decide().outcome is Outcome.INCOMPLETE


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
    restored = profile_from_json(plain(record.summary())["profile"])
    assert any(phase == "install" for phase, _cls, _target in restored)


def test_static_findings_enter_summary_verdict_and_profile() -> None:
    """The host's static findings join the record: listed (marked static), judged, profiled."""
    record = RunRecord(Context())
    feed_all(record, [finished("install", "failed")])
    evidence = "x-1.0.tar.gz:setup.py:3: pty.spawn('/bin/sh')"
    shell = Finding("static.reverse_shell", "critical", "install", None, "static", evidence,
                    "setup.py", source="static")  # fmt: skip
    assert record.add_static([shell, shell]) == [shell]
    summary = plain(record.summary())
    assert summary["verdict"] == "malicious"
    assert summary["findings"][-1]["source"] == "static"
    assert ["install", "network", "setup.py"] in summary["profile"]
    # a failed install that did this is harmful, never a plain "failed"
    assert decide(record.phases, record.verdict()).outcome == Outcome.HARMFUL
