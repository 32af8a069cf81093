"""From the guest runner's events to per-phase results, a summary and the job's outcome.

:class:`RunRecord` is fed every sanitised runner event as it arrives. It keeps
what the result needs (phase statuses and durations, tests counts, crash
details, the raw inputs of quality indicators) and runs the behaviour
analysis (``slave.findings``) on each event, so findings are known — and
logged — while the job runs. :func:`decide` maps it all to one outcome and a
one-line ``reason`` (``summary.reason``; table also in ``docs/outcomes.md``)::

    malicious verdict                      → harmful      the worst finding
    the tests were OOM-killed (SIGKILL,    → incomplete   "the tests ran out of memory"
      the guest's OOM killer struck)
    a package phase crashed                → crashed      install, import or tests
    install or import timed out            → timed_out
    tests ran past their time budget       → incomplete   how long, how many passed
      (a real failure before it: failed)
    install or import failed               → failed       pip's / the import's error
    tests: real (non-offline) failures     → failed       "3 of 120 tests failed, first
                                                          tests/t.py::test_x: KeyError: 'a'"
      (unless every test errored in its set-up and none passed: incomplete)
    a package phase had an error           → infra_error  (the runner's own failure)
    install never reported                 → infra_error
    tests: none ran (none shipped, none    → incomplete   the runner's reason
      collectable, all skipped, only
      offline failures, pytest stopped
      before any test: exit 2/3/4)
    otherwise                              → passed       what was not run, if anything

Tests that fail only because the guest is offline, lacks a program they run (a
CI runner's tool: ``hg``, ``node``) or the sdist lacks a file they read, modules
that could not be collected and test requirements that could not be installed never
make a release ``failed``: they are counted and named in the reason. (A module the
release's own code kept from being collected arrives from the runner as a failed
test: ``guest_runner.release_fault``.) pytest's exit status alone (collection
errors) decides nothing when the counts are known.
``quality`` never decides the outcome: it runs our tools, not the package.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from protocol.errors import InvalidMessage
from protocol.results import (
    MAX_FINDINGS,
    CrashInfo,
    FindingRecord,
    JobSummary,
    OfflineFailures,
    PhaseResult,
    TestCounts,
    Uncollectable,
    UncollectableModule,
)
from protocol.schema import decode_record
from protocol.vocabulary import PACKAGE_PHASES, Outcome, PhaseStatus, Verdict
from slave.findings import Analyser, Context, Finding, profile, profile_to_json, verdict
from slave.findings.model import SEVERITY_RANK

#: Runner events kept for the quality indicators (install output lines included).
_QUALITY_EVENTS = frozenset({"phase_finished", "tests_summary", "quality", "install_summary"})
_MAX_QUALITY_OUTPUT = 2000
_COUNTS = ("collected", "passed", "failed", "errors", "skipped")
R = TypeVar("R")
#: Names listed in a reason (the summary keeps up to ``_MAX_LISTED``); a reason's length.
_NAMED = 3
_MAX_LISTED = 50
MAX_REASON = 300
#: Characters of the first failure (``node id: error``) in a ``failed`` reason.
FIRST_CHARS = 180
#: pytest's exit statuses that say no test verdict was reached (pytest.ExitCode).
_PYTEST_COULD_NOT_RUN = {2: "interrupted", 3: "internal error", 4: "usage error"}
#: An exception named in pytest's output (``INTERNALERROR> SystemExit: 2``, ``E   ImportError:
#: cannot import name ...``): the last one says why pytest could not run the tests.
_EXCEPTION_LINE = re.compile(
    r"^(?:INTERNALERROR>\s*|E\s+)?((?:[A-Za-z_]\w*\.)*[A-Za-z_]\w*(?:Error|Exception|Exit)(?::\s.*)?)$"
)


class RunRecord:
    """What the job learned from the guest runner so far (see the module docstring)."""

    def __init__(self, context: Context | None = None, *, emulated: bool = False) -> None:
        self.analyser = Analyser(context)
        #: the guest ran under TCG (~10x slower): failed speed checks are not the package's
        self.emulated = emulated
        self.phases: dict[str, PhaseResult] = {}
        self.tests: TestCounts | None = None
        self.crash: CrashInfo | None = None
        self.quality_events: list[dict[str, Any]] = []
        self.current: str | None = None
        self.import_failure: str | None = None
        #: "soupsieve needs bs4": modules that imported only once the test requirements
        #: were installed, as they import a module the release does not declare
        self.undeclared: list[str] = []
        #: test requirements the index release stood in for (``summary.prepare``'s
        #: ``test_substituted``), set by the executor once the host has prepared
        self.substituted: tuple[str, ...] = ()
        self.runner_finished = False
        #: phases in which the guest's OOM killer struck (``oom_kills`` of phase_finished)
        self.out_of_memory: set[str] = set()
        self._install_output = 0
        #: the last exception line of the tests phase's output (why pytest could not run)
        self.pytest_error: str | None = None

    def feed(self, event: str, phase: str | None, fields: Mapping[str, Any]) -> list[Finding]:
        """Take one runner event; returns the findings it produced (already recorded)."""
        raw = {"event": event, "phase": phase, **fields}
        match event:
            case "phase_started":
                self.current = phase
            case "phase_finished" if phase is not None:
                self.current = None
                self.phases[phase] = _phase_entry(fields)
                if fields.get("status") == "crashed" and self.crash is None:
                    self.crash = _crash(phase, fields)
                kills = fields.get("oom_kills")
                if _is_count(kills) and kills:
                    self.out_of_memory.add(phase)
            case "tests_summary":
                self.tests = read_tests_summary(fields)
            case "import_result":
                status = fields.get("status")
                module = _line(fields.get("module")) or "?"
                failed = status not in (None, PhaseStatus.PASSED, PhaseStatus.SKIPPED)
                if failed and self.import_failure is None:
                    error = _line(fields.get("error")) or str(status)
                    self.import_failure = f"{module}: {error}"
                needs = _line(fields.get("undeclared"), 100)
                if not failed and needs and len(self.undeclared) < _MAX_LISTED:
                    self.undeclared.append(f"{module} needs {needs}")
            case "runner_finished":
                self.runner_finished = True
            case _:
                pass
        if event == "output" and phase == "tests":
            found = _EXCEPTION_LINE.match(str(fields.get("line") or "")[:400].strip())
            if found:
                self.pytest_error = found.group(1)[:200]
        if event in _QUALITY_EVENTS:
            self.quality_events.append(raw)
        elif (
            event == "output" and phase == "install" and self._install_output < _MAX_QUALITY_OUTPUT
        ):
            self._install_output += 1
            self.quality_events.append(raw)
        return self.analyser.feed_event(raw)

    def add_static(self, findings: list[Finding]) -> list[Finding]:
        """The static scan's findings (``slave.findings.static_scan``); returns those kept."""
        return self.analyser.add(findings)

    def timed_out_by_host(self, phase: str, seconds: float) -> None:
        """The slave killed the VM because ``phase`` ran past its timeout (the runner hung)."""
        entry = self.phases.get(phase) or PhaseResult(PhaseStatus.TIMED_OUT)
        self.phases[phase] = replace(
            entry, status=PhaseStatus.TIMED_OUT, duration_s=round(seconds, 3), killed_by="slave"
        )

    @property
    def findings(self) -> list[Finding]:
        return self.analyser.findings

    def verdict(self) -> str:
        return verdict(self.analyser.findings)

    def decide(self) -> Decision:
        """The outcome and reason of what was recorded (see :func:`decide`)."""
        return decide(
            self.phases,
            self.verdict(),
            self.tests,
            import_failure=self.import_failure,
            threat=threat(self.analyser.findings),
            out_of_memory=frozenset(self.out_of_memory),
            undeclared=tuple(self.undeclared),
            emulated=self.emulated,
            substituted=self.substituted,
            pytest_error=self.pytest_error,
        )

    def fill(self, summary: JobSummary) -> None:
        """Set the summary fields this record knows (findings, verdict, tests, crash)."""
        findings = self.analyser.findings
        summary.verdict = Verdict(self.verdict())
        summary.findings = tuple(
            FindingRecord(**f.to_dict())  # type: ignore[arg-type]
            for f in findings[:MAX_FINDINGS]
        )
        summary.findings_total = len(findings) + self.analyser.suppressed
        # From all findings (not only those kept above): the master diffs it
        # against the project's previous release ("started opening sockets").
        summary.profile = tuple(tuple(e) for e in profile_to_json(profile(findings)))
        if self.tests is not None:
            summary.tests = self.tests
        if self.crash is not None:
            summary.crash = self.crash

    def summary(self) -> JobSummary:
        """A summary holding only what this record knows (see :meth:`fill`)."""
        out = JobSummary()
        self.fill(out)
        return out


_PHASE_KEYS = ("status", "duration_s", "exit_code", "signal", "signal_name", "reason",
               "output_bytes", "output_dropped", "traced", "stage")  # fmt: skip


def _phase_entry(fields: Mapping[str, Any]) -> PhaseResult:
    """The runner's ``phase_finished`` as a :class:`PhaseResult`; malformed: status ``error``."""
    known = {k: fields[k] for k in _PHASE_KEYS if k in fields}
    try:
        return decode_record(PhaseResult, known, "phase_finished")
    except InvalidMessage as exc:
        return PhaseResult(
            PhaseStatus.ERROR, reason=f"malformed phase_finished: {exc.detail}"[:300]
        )


def _crash(phase: str, fields: Mapping[str, Any]) -> CrashInfo:
    """The crash details the runner sent; a malformed one keeps only the phase."""
    known = {k: fields[k] for k in ("signal", "signal_name", "traceback") if k in fields}
    return _decoded(CrashInfo, {"phase": phase, **known}, CrashInfo(phase=phase[:500]))


def _decoded(cls: type[R], data: Mapping[str, Any], fallback: R) -> R:
    try:
        return decode_record(cls, dict(data))
    except InvalidMessage:
        return fallback


def _line(value: object, limit: int = 200) -> str:
    """The first line of a text value, cut to ``limit`` (guest data: anything may be here)."""
    if not isinstance(value, str):
        return ""
    text = value.strip().splitlines()[0] if value.strip() else ""
    return text[:limit]


def _strings(value: object) -> list[str]:
    items = value if isinstance(value, list | tuple) else []
    return [_line(v, 300) for v in items[:_MAX_LISTED] if isinstance(v, str) and v.strip()]


def _count(value: object, listed: Sequence[object]) -> int:
    return (
        value
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0
        else len(listed)
    )


def read_tests_summary(fields: Mapping[str, Any]) -> TestCounts:
    """The result's ``summary.tests`` from the runner's ``tests_summary`` (every field optional).

    Counts as sent; then, only when there is something to say: ``offline_failures``
    (``{count, tests}``: failed only because the guest is offline; also counted in
    ``failed``/``errors``), ``uncollectable`` (``{count, modules: [{module, missing}]}``),
    ``test_requirements_missing`` and ``reason`` (why no test ran). Both the runner's
    shapes are read: ``offline_failures`` as a list of ids or ``{count, tests}``;
    ``uncollectable`` or ``collection_errors`` (+ ``collection_error_count``);
    ``test_requirements_missing`` or ``test_requirements.failed[].requirement``.
    """
    counts: dict[str, int] = {k: fields[k] for k in _COUNTS if _is_count(fields.get(k))}
    duration = fields.get("duration_s")
    offline = _failures(fields.get("offline_failures"))
    speed = _failures(fields.get("speed_failures"))
    programs = _failures(fields.get("program_failures"))
    unshipped = _failures(fields.get("unshipped_failures"))
    plugins = _failures(fields.get("plugin_failures"))
    absent = _failures(fields.get("module_failures"))
    lint = _failures(fields.get("lint_failures"))
    scripts = _failures(fields.get("script_failures"))
    bases = _failures(fields.get("base_failures"))
    raw = fields.get("uncollectable", fields.get("collection_errors"))
    modules = [
        UncollectableModule(
            module=_line(m.get("module"), 300) or "?", missing=_line(m.get("missing")) or None
        )
        for m in (raw if isinstance(raw, list | tuple) else [])[:_MAX_LISTED]
        if isinstance(m, Mapping)
    ]
    uncollectable = _count(fields.get("collection_error_count"), modules)
    missing = _strings(fields.get("test_requirements_missing"))
    requirements = fields.get("test_requirements")
    if not missing and isinstance(requirements, Mapping):
        failed = requirements.get("failed")
        missing = _strings(
            [f.get("requirement") for f in failed if isinstance(f, Mapping)]
            if isinstance(failed, list | tuple)
            else []
        )
    return TestCounts(
        **counts,
        duration_s=float(duration)
        if isinstance(duration, int | float) and not isinstance(duration, bool)
        else None,
        offline_failures=offline,
        speed_failures=speed,
        program_failures=programs,
        unshipped_failures=unshipped,
        plugin_failures=plugins,
        module_failures=absent,
        lint_failures=lint,
        script_failures=scripts,
        base_failures=bases,
        uncollectable=Uncollectable(uncollectable, tuple(modules)) if uncollectable else None,
        test_requirements_missing=tuple(missing) or None,
        reason=_line(fields.get("reason"), MAX_REASON) or None,
        running=_line(fields.get("running"), MAX_REASON) or None,
        first_failure=_first_failure(fields.get("first_failure")),
    )


def _first_failure(value: object) -> str | None:
    """``node id: error`` from the runner's ``first_failure`` ``{test, error}``."""
    if not isinstance(value, Mapping):
        return None
    test, error = _line(value.get("test"), 300), _line(value.get("error"), 300)
    if not test:
        return None
    return f"{test}: {error}" if error else test


def _failures(value: object) -> OfflineFailures | None:
    """Failures counted apart, as a list of ids or ``{count, tests}``; None when there are none."""
    programs: list[str] = []
    files: list[str] = []
    modules: list[str] = []
    tools: list[str] = []
    classes: list[str] = []
    if isinstance(value, Mapping):
        ids = _strings(value.get("tests"))
        count = _count(value.get("count"), ids)
        programs = _strings(value.get("programs"))
        files = _strings(value.get("files"))
        modules = _strings(value.get("modules"))
        tools = _strings(value.get("tools"))
        classes = _strings(value.get("classes"))
    else:
        ids = _strings(value)
        count = len(ids)
    if not count:
        return None
    return OfflineFailures(
        count,
        tuple(ids),
        tuple(programs) or None,
        tuple(files) or None,
        tuple(modules) or None,
        tuple(tools) or None,
        tuple(classes) or None,
    )


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def threat(findings: Sequence[Finding]) -> str | None:
    """The worst finding in a few words (``cred.bait at import (~/.ssh/id_rsa)``), if any."""
    if not findings:
        return None
    worst = max(findings, key=lambda f: SEVERITY_RANK[f.severity])
    target = f" ({worst.target[:80]})" if worst.target else ""
    return f"{worst.severity} {worst.rule} at {worst.phase}{target}"


@dataclass(frozen=True, slots=True)
class Decision:
    """A job's outcome and its one-line reason (None only for a passed job with nothing to say)."""

    outcome: Outcome
    reason: str | None = None


def decide(
    phases: Mapping[str, PhaseResult],
    verdict_: str,
    tests: TestCounts | None = None,
    *,
    import_failure: str | None = None,
    threat: str | None = None,
    out_of_memory: frozenset[str] = frozenset(),
    undeclared: Sequence[str] = (),
    emulated: bool = False,
    substituted: Sequence[str] = (),
    pytest_error: str | None = None,
) -> Decision:
    """The job's outcome and reason (table in the module docstring).

    ``tests`` is ``summary.tests`` (:func:`read_tests_summary`), absent when the runner sent
    none; ``import_failure`` the first module that did not import (``demo: ImportError``);
    ``threat`` the worst finding (:func:`threat`); ``out_of_memory`` the phases in which
    the guest's OOM killer struck; ``undeclared`` the modules that imported only with the
    test requirements installed ("soupsieve needs bs4"), a note on a job that passes;
    ``emulated`` whether the guest ran under TCG, where failed speed checks
    (``speed_failures``) are counted apart like offline ones; ``substituted`` the test
    requirements whose index release stood in for the project's own build (a note).
    """
    if verdict_ == Verdict.MALICIOUS:
        return _decision(Outcome.HARMFUL, f"malicious behaviour: {threat or 'see the findings'}")
    entries = {str(p): phases[p] for p in PACKAGE_PHASES if p in phases}
    for phase, entry in entries.items():
        if entry.status is PhaseStatus.CRASHED:
            if phase == "tests" and phase in out_of_memory and entry.signal_name == "SIGKILL":
                # A big suite outgrowing the guest's RAM (chardet's), like one outgrowing
                # its time budget: the release is not shown broken, but not passed either.
                return _decision(
                    Outcome.INCOMPLETE,
                    "the tests ran out of memory: the guest's OOM killer stopped them (SIGKILL)",
                )
            signal = _line(entry.signal_name) or "a signal"
            running = tests.running if tests is not None and phase == "tests" else None
            where = f" in {running}" if running else ""
            return _decision(Outcome.CRASHED, f"{phase} crashed ({signal}){where}")
    for phase, entry in entries.items():
        if entry.status is PhaseStatus.TIMED_OUT:
            took = entry.duration_s
            after = f" (stopped after {took:g} s)" if took is not None else ""
            if phase == "tests":
                return _tests_out_of_time(tests, after, emulated)
            return _decision(Outcome.TIMED_OUT, f"{phase} ran past its timeout{after}")
    install, imported = entries.get("install"), entries.get("import")
    if install is not None and install.status is PhaseStatus.FAILED:
        return _decision(Outcome.FAILED, f"install failed: {_why(install, 'pip')}")
    if imported is not None and imported.status is PhaseStatus.FAILED:
        why = import_failure or _why(imported, "the import")
        return _decision(Outcome.FAILED, f"import failed: {why}")
    judged = _judge_tests(entries.get("tests"), tests, emulated, substituted, pytest_error)
    if judged.outcome is Outcome.FAILED:
        return judged
    for phase, entry in entries.items():
        if entry.status is PhaseStatus.ERROR:
            why = _line(entry.reason) or "the guest runner failed"
            return _decision(Outcome.INFRA_ERROR, f"pyti failed in {phase}: {why}")
    if install is None:
        return _decision(Outcome.INFRA_ERROR, "the guest runner never reported the install")
    if undeclared and judged.outcome is Outcome.PASSED:
        note = "imports only with its test requirements installed" + _named(undeclared)
        return _decision(Outcome.PASSED, _joined([note, *filter(None, [judged.reason])]))
    return judged


def _tests_out_of_time(tests: TestCounts | None, after: str, emulated: bool) -> Decision:
    """The tests ran past their budget. A big suite under emulation (TCG costs ~10x) does
    far more often than a suite hangs: not the release's failure, but not a pass either,
    unless a test had already failed for real. pytest is interrupted shortly before the
    deadline, so the counts of what ran are usually known."""
    why = f"the tests did not finish within their time budget{after}"
    tests = tests or TestCounts()
    # The test it was in goes last: a node id can be long, and the reason is cut at
    # MAX_REASON characters.
    was_in = f"; it was in {tests.running}" if tests.running else ""
    passed, failed, errors = tests.passed, tests.failed, tests.errors
    if passed is None or failed is None or errors is None:
        return _decision(Outcome.INCOMPLETE, f"{why}{was_in}")
    real, ran, only_set_up_errors = _tally(passed, failed, errors, tests, emulated)
    if real and not only_set_up_errors:
        return _decision(
            Outcome.FAILED,
            f"{real} of {ran} tests failed before the time budget ran out{after}" + _first(tests),
        )
    if passed:
        return _decision(
            Outcome.INCOMPLETE, f"{why}: {passed} passed, none failed, before it{was_in}"
        )
    return _decision(Outcome.INCOMPLETE, f"{why}{was_in}")


def _tally(
    passed: int, failed: int, errors: int, tests: TestCounts, emulated: bool
) -> tuple[int, int, bool]:
    """(real failures, tests that ran, only set-up errors): failures that are not the guest
    being offline, nor (in an emulated guest) a speed check; every test errored in its
    set-up with none passed or failed for real."""
    apart = sum(kind.count for kind, _ in _set_apart(tests, emulated))
    real = max(0, failed + errors - apart)
    # tests that passed run by their module's script ran, and passed
    as_scripts = tests.script_failures.count if tests.script_failures is not None else 0
    only_set_up_errors = bool(errors) and not passed and not as_scripts and failed <= apart
    return real, passed + failed + errors, only_set_up_errors


def _why(entry: PhaseResult, program: str) -> str:
    reason = _line(entry.reason)
    if reason:
        return reason
    code = entry.exit_code
    return f"{program} exited with status {code}" if code is not None else "no detail"


def _decision(outcome: Outcome, reason: str | None) -> Decision:
    return Decision(outcome, None if reason is None else reason[:MAX_REASON])


def _judge_tests(
    entry: PhaseResult | None,
    tests: TestCounts | None,
    emulated: bool,
    substituted: Sequence[str] = (),
    pytest_error: str | None = None,
) -> Decision:
    """passed, failed or incomplete, from the tests phase and ``summary.tests``;
    ``pytest_error`` is the last exception pytest's output named."""
    tests = tests or TestCounts()
    said = _line(tests.reason, MAX_REASON) or None
    if entry is None:
        return _decision(Outcome.INCOMPLETE, said or "the tests phase did not run")
    phase_reason = _line(entry.reason, MAX_REASON) or None
    notes = _not_run(tests, emulated, substituted)
    if entry.status is PhaseStatus.SKIPPED:
        return _decision(Outcome.INCOMPLETE, said or phase_reason or "no test ran")
    passed, failed, errors = tests.passed, tests.failed, tests.errors
    if passed is None or failed is None or errors is None:
        # No counts (no JUnit XML): only the phase's status is known.
        if entry.status is PhaseStatus.FAILED:
            if said:
                return _decision(Outcome.INCOMPLETE, said)
            if entry.exit_code in _PYTEST_COULD_NOT_RUN:
                # No test ran: pytest stopped before any did (a test plugin that does not
                # import, requests' pytest-httpbin against a newer werkzeug), nothing of
                # the package was tried.
                meaning = _PYTEST_COULD_NOT_RUN[entry.exit_code]
                why = f": {pytest_error}" if pytest_error else ""
                return _decision(
                    Outcome.INCOMPLETE,
                    f"pytest could not run the tests (exit status {entry.exit_code}: {meaning})"
                    + why,
                )
            return _decision(Outcome.FAILED, f"tests failed: {_why(entry, 'pytest')}")
        return _decision(Outcome.PASSED, _joined(notes))
    real, ran, only_set_up_errors = _tally(passed, failed, errors, tests, emulated)
    if only_set_up_errors:
        # Every test errored in its set-up (a fixture or conftest raising: wcwidth's
        # "C extension not loaded" when only its pure wheel is installed): no test of
        # the package ran, so nothing says it is broken.
        why = f"no test ran: all {errors} tests errored in their set-up"
        return _decision(Outcome.INCOMPLETE, _joined([why, *notes]))
    if real:
        failed_what = f"{real} of {ran} tests failed" + _first(tests)
        return _decision(Outcome.FAILED, _joined([failed_what, *notes]))
    if ran == 0:
        skipped = tests.skipped
        reason = said or phase_reason
        if reason is None and skipped:
            reason = f"no test ran: all {skipped} were skipped"
        return _decision(Outcome.INCOMPLETE, _joined([reason or "no test ran", *notes]))
    if passed == 0 and tests.script_failures is None:
        return _decision(Outcome.INCOMPLETE, _joined(["no test passed or failed for real", *notes]))
    return _decision(Outcome.PASSED, _joined(notes))


def _first(tests: TestCounts) -> str:
    """ ", first tests/t.py::test_x: AssertionError: …" when the runner named the first real
    failure (cut so that the notes after it still fit the reason)."""
    if not tests.first_failure:
        return ""
    said = tests.first_failure
    return f", first {said if len(said) <= FIRST_CHARS else said[: FIRST_CHARS - 1] + '…'}"


def _set_apart(tests: TestCounts, emulated: bool) -> list[tuple[OfflineFailures, str]]:
    """The failures counted apart (speed checks only in an emulated guest), each with what
    its note says of them, in the order the reason names them."""
    kinds = [
        (tests.offline_failures, "tests failed only because the guest is offline"),
        (tests.program_failures, "tests failed only because the guest lacks a program they run"),
        (
            tests.unshipped_failures,
            "tests failed only because the sdist does not ship a file they read",
        ),
        (
            tests.plugin_failures,
            "tests did not run: no installed pytest plugin runs them (async) or provides"
            " their fixture",
        ),
        (
            tests.module_failures,
            "tests failed only because a module they import is not installed",
        ),
        (
            tests.lint_failures,
            "lint checks failed (the newest linter's rules, not the package's behaviour)",
        ),
        (
            tests.script_failures,
            "tests failed under pytest only: their modules pass run as scripts, as their"
            " authors run them",
        ),
        (
            tests.base_failures,
            "tests of a base class failed only for what its subclasses supply (they pass there)",
        ),
        (
            tests.speed_failures if emulated else None,
            "tests failed only a speed check in an emulated guest",
        ),
    ]
    return [(kind, what) for kind, what in kinds if kind is not None and kind.count]


def _not_run(tests: TestCounts, emulated: bool, substituted: Sequence[str] = ()) -> list[str]:
    """What the tests phase could not run (or ran with a stand-in), one clause each."""
    notes: list[str] = []
    if substituted:
        notes.append(f"the index release stood in for {', '.join(substituted)}")
    for kind, what in _set_apart(tests, emulated):
        named = (
            kind.programs or kind.files or kind.modules or kind.tools or kind.classes or kind.tests
        )
        notes.append(f"{kind.count} {what}" + _named(named))
    uncollectable = tests.uncollectable
    if uncollectable is not None and uncollectable.count:
        modules = [
            m.module + (f" needs {m.missing}" if m.missing else "") for m in uncollectable.modules
        ]
        notes.append(f"{uncollectable.count} test modules not collected" + _named(modules))
    if missing := tests.test_requirements_missing:
        notes.append("test requirements not installable" + _named(missing))
    return notes


def _named(names: Sequence[str]) -> str:
    if not names:
        return ""
    more = ", ..." if len(names) > _NAMED else ""
    return f" ({', '.join(names[:_NAMED])}{more})"


def _joined(parts: Sequence[str]) -> str | None:
    return "; ".join(parts)[:MAX_REASON] if parts else None


def default_reason(outcome: str, summary: JobSummary) -> str | None:
    """``summary.reason`` for an outcome the executor did not explain (the daemon's own ends)."""
    if outcome == Outcome.PASSED:
        return None
    error = _line(summary.error, MAX_REASON - 40)
    if outcome == Outcome.INFRA_ERROR:
        return f"pyti could not run the job: {error or 'unknown error'}"
    return (f"{outcome}: {error}" if error else str(outcome))[:MAX_REASON]
