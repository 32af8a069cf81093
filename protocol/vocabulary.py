"""pyti's words, each defined once: outcomes, phases, phase statuses, verdicts, behaviours.

Both daemons, the HTTP API (validation, OpenAPI, ``GET /api/v1/vocabulary``) and the
command line derive from these enums. They are ``StrEnum``: a member *is* its wire
string (``Outcome.PASSED == "passed"``), so msgpack, JSON and SQLite see plain
strings and nothing on the wire changes.

The web page cannot import Python: it reads the meanings from
``GET /api/v1/vocabulary``, and a test checks its stylesheet has a badge class for
every outcome and verdict (``tests/unit/test_vocabulary.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Final


class Outcome(StrEnum):
    """How a job ended (table in ``protocol/README.md`` and ``docs/outcomes.md``)."""

    PASSED = "passed"
    FAILED = "failed"
    INCOMPLETE = "incomplete"
    CRASHED = "crashed"
    HARMFUL = "harmful"
    TIMED_OUT = "timed_out"
    INFRA_ERROR = "infra_error"
    CANCELLED = "cancelled"


OUTCOME_TEXT: Final[Mapping[Outcome, str]] = {
    Outcome.PASSED: "installed, imported and its tests ran without a real failure",
    Outcome.FAILED: "a test of the package failed, its install failed for its own fault, "
    "or an import failed",
    Outcome.INCOMPLETE: "could not test: the tests could not run at all (none shipped, none "
    "collectable, all errored in their set-up, dependencies not installable, no image for its "
    "Python) or did not finish "
    "within their time budget",
    Outcome.CRASHED: "package code died of a signal (install, import or tests)",
    Outcome.HARMFUL: "the behaviour verdict is malicious, whatever the phases did",
    Outcome.TIMED_OUT: "package code ran past the install or import phase's timeout",
    Outcome.INFRA_ERROR: "pyti's own machinery failed (retried before it is final)",
    Outcome.CANCELLED: "cancelled by a user before it ended",
}


class Phase(StrEnum):
    """The phases of a job, in order (prepare, boot and upload run on the host)."""

    PREPARE = "prepare"
    BOOT = "boot"
    UPLOAD = "upload"
    INSTALL = "install"
    IMPORT = "import"
    TESTS = "tests"
    QUALITY = "quality"
    VERDICT = "verdict"
    TEARDOWN = "teardown"


#: Phases that run the package's code: their statuses decide the outcome.
PACKAGE_PHASES: Final = (Phase.INSTALL, Phase.IMPORT, Phase.TESTS)


class PhaseStatus(StrEnum):
    """How one phase ended (``phase_finished.status``, ``JobResult.phases[p].status``)."""

    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"
    CRASHED = "crashed"
    TIMED_OUT = "timed_out"
    ERROR = "error"  # pyti's own failure in that phase (the runner's, or the host's)


class Verdict(StrEnum):
    """What the findings say about the release's behaviour (table in ``docs/verdicts.md``)."""

    CLEAN = "clean"
    SUSPICIOUS = "suspicious"
    MALICIOUS = "malicious"


VERDICT_TEXT: Final[Mapping[Verdict, str]] = {
    Verdict.CLEAN: "nothing above low severity",
    Verdict.SUSPICIOUS: "medium or single high-severity behaviour: worth a look",
    Verdict.MALICIOUS: "critical behaviour, or high-severity threats that corroborate",
}


class BehaviourClass(StrEnum):
    """The class of a finding's rule, for behaviour profiles and release-to-release diffs."""

    NETWORK = "network"
    SOCKET = "socket"
    PROCESS = "process"
    CREDENTIALS = "credentials"
    WRITE = "write"
    PERSISTENCE = "persistence"
    PRIVILEGE = "privilege"
    RESOURCE = "resource"
    OBFUSCATION = "obfuscation"
    EVASION = "evasion"


#: How a behaviour class reads in a sentence ("started reaching for the network").
BEHAVIOUR_TEXT: Final[Mapping[BehaviourClass, str]] = {
    BehaviourClass.NETWORK: "reaching for the network",
    BehaviourClass.SOCKET: "opening sockets",
    BehaviourClass.PROCESS: "starting programs",
    BehaviourClass.CREDENTIALS: "reading credentials",
    BehaviourClass.WRITE: "writing outside the venv",
    BehaviourClass.PERSISTENCE: "installing persistence",
    BehaviourClass.PRIVILEGE: "trying to change privileges",
    BehaviourClass.RESOURCE: "exhausting resources",
    BehaviourClass.OBFUSCATION: "hiding code (static)",
    BehaviourClass.EVASION: "checking for a VM or sandbox",
}


def values(enum: type[StrEnum]) -> tuple[str, ...]:
    """The wire strings of an enum, in definition order (for validation and OpenAPI)."""
    return tuple(member.value for member in enum)


def shown(outcome: str | None, verdict: str | None) -> str:
    """How a job's result reads in a list: the outcome, with the verdict when it is not clean.

    ``failed · suspicious``: a failed install with suspicious behaviour is never a
    plain ``failed``. A malicious verdict already made the outcome ``harmful``.
    """
    if not outcome:
        return "-"
    if verdict and verdict != Verdict.CLEAN and outcome != Outcome.HARMFUL:
        return f"{outcome} · {verdict}"
    return outcome


def vocabulary() -> dict[str, object]:
    """The vocabulary as JSON (``GET /api/v1/vocabulary``): words in order, with meanings."""
    return {
        "outcomes": {o.value: OUTCOME_TEXT[o] for o in Outcome},
        "verdicts": {v.value: VERDICT_TEXT[v] for v in Verdict},
        "phases": list(values(Phase)),
        "phase_statuses": list(values(PhaseStatus)),
        "behaviour_classes": {c.value: BEHAVIOUR_TEXT[c] for c in BehaviourClass},
    }
