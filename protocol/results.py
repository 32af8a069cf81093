"""What a job's result carries beyond its outcome, and what an offer asks for: typed records.

``JobResult.phases`` (per phase: :class:`PhaseResult`), ``JobResult.summary``
(:class:`JobSummary`), ``JobOffer.timeouts`` (:class:`JobTimeouts`) and
``JobOffer.options`` (:class:`JobOptions`). They are decoded by the protocol's own
decoder (``protocol.schema``) like every message: much of this is the guest's
output, relayed by a slave, so the decoder is the check — types, string lengths
and list lengths are bounded here, and a result that breaks them is an invalid
message. On the wire (and in the master's API JSON and stored rows) each is the
plain map it always was: a key is present only when it is known (``omit_none``).

Adding a field: one line in the record, with a default (``X | None = None`` for
"only when known", ``tuple[...] = ()`` for a list), plus a line in
``protocol/README.md``. Unknown keys are ignored by the decoder, so a newer slave
may send a field an older master drops (it is not stored until the master knows
it): declare every field the master should keep.

``summary.quality`` stays an opaque, size-bounded map: it has its own
format-versioned reader (``slave.quality.report.QualityReport.from_dict``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

from protocol.errors import InvalidMessage
from protocol.schema import MaxLen, decode_record, encode_record, record
from protocol.vocabulary import PhaseStatus, Verdict

#: Bounds of the guest-derived text and lists a result carries.
LINE = MaxLen(2000)  # one reason / error line (the slave cuts reasons to 300)
NAME = MaxLen(500)  # a module, test id, requirement, target
LIST = MaxLen(200)  # a list of names (the slave keeps 50)
MAX_FINDINGS = 200  # findings kept in a result (the rest are counted)
MAX_PROFILE = 5000  # behaviour profile entries
MAX_PHASES = 32

Line = Annotated[str, LINE]
Name = Annotated[str, NAME]
Names = Annotated[tuple[Annotated[str, NAME], ...], LIST]


@record(omit_none=True)
@dataclass(frozen=True, slots=True)
class PhaseResult:
    """How one phase ended: ``JobResult.phases[phase]`` (host or guest phase)."""

    status: PhaseStatus
    duration_s: float | None = None
    exit_code: int | None = None
    signal: int | None = None
    signal_name: Annotated[str, MaxLen(64)] | None = None
    reason: Line | None = None
    output_bytes: int | None = None
    output_dropped: int | None = None
    traced: bool | None = None
    killed_by: Annotated[str, MaxLen(64)] | None = None  # "slave": the host stopped a hung phase


@record(omit_none=True)
@dataclass(frozen=True, slots=True)
class OfflineFailures:
    """Tests that failed only for a reason outside the package, counted apart (and also
    counted as failed): the guest being offline, a speed check in an emulated guest, or a
    program the guest does not have (then ``programs`` names them), a file the sdist
    does not ship (then ``files`` names them, relative to the sdist's root), an
    ``async def`` test no installed plugin runs, a module not installed (then
    ``modules`` names them), a lint plugin's check (then ``tools`` names the linters),
    or a test that passes when its module runs as the script
    it is written as (then ``modules`` names those test modules), or a base class's test
    that passes in its subclasses (then ``classes`` names the bases)."""

    count: int
    tests: Names = ()
    programs: Names | None = None
    files: Names | None = None
    modules: Names | None = None
    tools: Names | None = None
    classes: Names | None = None


@record(omit_none=True)
@dataclass(frozen=True, slots=True)
class UncollectableModule:
    """A test module pytest could not collect, and the module it was missing."""

    module: Name
    missing: Name | None = None


@record(omit_none=True)
@dataclass(frozen=True, slots=True)
class Uncollectable:
    """Test modules not collected (``count`` may exceed the modules listed)."""

    count: int
    modules: Annotated[tuple[UncollectableModule, ...], LIST] = ()


@record(omit_none=True)
@dataclass(frozen=True, slots=True)
class TestCounts:
    """``summary.tests``: the tests phase's counts and what could not run."""

    __test__ = False  # not a pytest test class

    collected: int | None = None
    passed: int | None = None
    failed: int | None = None
    errors: int | None = None
    skipped: int | None = None
    duration_s: float | None = None
    offline_failures: OfflineFailures | None = None
    #: failures that are only a speed check ("took 1.99s, expected sub-second"): not the
    #: package's when the guest was emulated (TCG)
    speed_failures: OfflineFailures | None = None
    #: failures that only ran a program the guest lacks (``hg``, ``node``): a CI runner's
    #: tool, not the package's
    program_failures: OfflineFailures | None = None
    #: failures that only read a file the sdist leaves out (test data, a git submodule):
    #: upstream CI reads it from a checkout
    unshipped_failures: OfflineFailures | None = None
    #: ``async def`` tests no installed plugin ran (pytest: "async def functions are not
    #: natively supported"): the suite's async plugin was not known to be needed
    plugin_failures: OfflineFailures | None = None
    #: failures that only imported a module not installed (none of the release's, from
    #: outside its code): ``modules`` names them
    module_failures: OfflineFailures | None = None
    #: a lint plugin's checks (pytest-ruff, pytest-flake8, pytest-mypy...): the newest
    #: linter's style rules, not the package's behaviour; ``tools`` names the linters
    lint_failures: OfflineFailures | None = None
    #: failures under pytest only: their module, run as the script it is written as
    #: (``python test_x.py`` from its folder), passes
    script_failures: OfflineFailures | None = None
    #: a base class's tests that failed only for an attribute its subclasses supply, the
    #: same tests passing in those subclasses (pytest collects every TestCase subclass;
    #: the project's runner does not run the base): ``classes`` names the bases
    base_failures: OfflineFailures | None = None
    uncollectable: Uncollectable | None = None
    test_requirements_missing: Names | None = None
    reason: Line | None = None
    #: The test that was running when a suite past its budget was stopped.
    running: Line | None = None
    #: The first failure not counted apart: ``node id: error line``.
    first_failure: Line | None = None


@record(omit_none=True)
@dataclass(frozen=True, slots=True)
class CrashInfo:
    """``summary.crash``: the first package phase that died of a signal."""

    phase: Name
    signal: int | None = None
    signal_name: Annotated[str, MaxLen(64)] | None = None
    traceback: Annotated[str, MaxLen(65536)] | None = None


@record
@dataclass(frozen=True, slots=True)
class ImageRef:
    """``summary.image``: the guest image the job ran in."""

    name: Name
    digest: Name


@record
@dataclass(frozen=True, slots=True)
class FindingRecord:
    """One behaviour finding (``slave.findings.Finding`` as plain data)."""

    rule: Name
    severity: Annotated[str, MaxLen(16)]
    phase: Name
    pid: int | None = None  # None: a static finding
    process: Name = ""
    evidence: Line = ""
    target: Line = ""
    source: Annotated[str, MaxLen(16)] = "dynamic"


@record(omit_none=True)
@dataclass(frozen=True, slots=True)
class PrepareSummary:
    """``summary.prepare``: what the host's preparation found (lists capped by the slave)."""

    metadata_source: Name | None = None
    requirements: Names = ()
    test_sources: Names = ()
    test_requirements: Names = ()
    test_unavailable: Names = ()
    #: test requirements the project takes from git, a URL or a path (``[tool.uv.sources]``);
    #: the index release stood in: ``"hypercorn (git https://...)"``
    test_substituted: Names = ()
    #: ``setup.py``'s undeclared imports, and those whose wheels the host could fetch.
    build_imports: Names = ()
    build_import_wheels: Names = ()


ProfileEntry = Annotated[tuple[Annotated[str, NAME], ...], MaxLen(3)]


@record(omit_none=True)
@dataclass(slots=True)  # not frozen: the slave fills it in as the job goes
class JobSummary:
    """``JobResult.summary``: everything of a result beyond its outcome and phases."""

    verdict: Verdict | None = None
    reason: Line | None = None
    error: Line | None = None
    findings: Annotated[tuple[FindingRecord, ...], MaxLen(MAX_FINDINGS)] | None = None
    findings_total: int | None = None
    #: ``[[phase, class, target], ...]``: the slave's reading of its findings
    profile: Annotated[tuple[ProfileEntry, ...], MaxLen(MAX_PROFILE)] | None = None
    tests: TestCounts | None = None
    crash: CrashInfo | None = None
    #: ``slave.quality`` report (its own format-versioned reader)
    quality: Annotated[dict[str, Any], MaxLen(16)] | None = None
    quality_error: Line | None = None
    static_scan_error: Line | None = None
    image: ImageRef | None = None
    prepare: PrepareSummary | None = None
    events_dropped: int | None = None
    spool_error: Line | None = None
    #: how the job's VM ended under it, when that is why the job failed (``infra_error``)
    vm_exit: Line | None = None

    def to_json(self) -> dict[str, Any]:
        """The plain map (wire, API JSON, stored row)."""
        return encode_record(self)

    @classmethod
    def from_json(cls, data: Any) -> JobSummary:
        """Decode a map; raises ``protocol.errors.InvalidMessage`` naming the bad field."""
        return decode_record(cls, data, "summary")


@record(omit_none=True)
@dataclass(frozen=True, slots=True)
class JobTimeouts:
    """``JobOffer.timeouts``: seconds per phase; a missing phase takes the slave's own."""

    prepare: float | None = None
    boot: float | None = None
    upload: float | None = None
    install: float | None = None
    import_: float | None = field(default=None, metadata={"wire": "import"})
    tests: float | None = None
    quality: float | None = None

    def get(self, phase: str) -> float | None:
        """The timeout asked for ``phase``, if any."""
        value: float | None = getattr(self, "import_" if phase == "import" else phase, None)
        return value

    def to_json(self) -> dict[str, Any]:
        return encode_record(self)

    @classmethod
    def from_json(cls, data: Any) -> JobTimeouts:
        return decode_record(cls, data, "timeouts")


@record(omit_none=True)
@dataclass(frozen=True, slots=True)
class JobOptions:
    """``JobOffer.options``: per-job switches for the slave (none defined yet; unknown ignored)."""

    def to_json(self) -> dict[str, Any]:
        return encode_record(self)

    @classmethod
    def from_json(cls, data: Any) -> JobOptions:
        return decode_record(cls, data, "options")


Phases = Annotated[dict[str, PhaseResult], MaxLen(MAX_PHASES)]


def phases_to_json(phases: dict[str, PhaseResult]) -> dict[str, Any]:
    """``JobResult.phases`` as plain maps."""
    return {name: encode_record(entry) for name, entry in phases.items()}


def phases_from_json(data: Any) -> dict[str, PhaseResult]:
    """``JobResult.phases`` from plain maps; raises ``InvalidMessage`` on a bad entry."""
    if type(data) is not dict or len(data) > MAX_PHASES:
        raise InvalidMessage(f"field 'phases' must be a map of at most {MAX_PHASES} phases")
    return {str(k): decode_record(PhaseResult, v, f"phases.{k}") for k, v in data.items()}
