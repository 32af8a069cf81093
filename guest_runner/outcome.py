"""How a command ended, and what that makes of its phase's status."""

from __future__ import annotations

import signal
from dataclasses import dataclass, field
from typing import Any

TRACEBACK_LIMIT = 16 * 1024
#: Phase statuses by how bad they are: a phase reports its worst command.
SEVERITY = {"passed": 0, "skipped": 0, "failed": 1, "timed_out": 2, "crashed": 3, "error": 4}


@dataclass
class Result:
    """How one command ended."""

    returncode: int | None
    timed_out: bool
    stderr_tail: str
    stdout_tail: str


@dataclass
class Outcome:
    """A phase's status and the fields that go into its ``phase_finished``."""

    status: str
    fields: dict[str, Any] = field(default_factory=dict)


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"SIG{signum}"


def extract_traceback(stderr: str) -> str | None:
    """The faulthandler dump (or pytest's timeout dump) at the end of a dead process's stderr."""
    starts = [stderr.rfind(marker) for marker in ("Fatal Python error", "Timeout (")]
    start = max(starts)
    if start < 0:
        return None
    return stderr[start : start + TRACEBACK_LIMIT]


def outcome_of(result: Result) -> Outcome:
    """passed / failed (exit code) / crashed (signal, traceback) / timed_out."""
    if result.timed_out:
        fields: dict[str, Any] = {}
        tb = extract_traceback(result.stderr_tail)
        if tb:
            fields["traceback"] = tb
        return Outcome("timed_out", fields)
    rc = result.returncode
    if rc is not None and rc < 0:
        tail = result.stderr_tail
        return Outcome(
            "crashed",
            {
                "signal": -rc,
                "signal_name": signal_name(-rc),
                "traceback": extract_traceback(tail) or tail[-TRACEBACK_LIMIT:],
            },
        )
    if rc != 0:
        return Outcome("failed", {"exit_code": rc})
    return Outcome("passed", {"exit_code": 0})


def setup_error(result: Result, reason: str) -> Outcome:
    """A command of the runner's own set-up failed: ``error`` (not the package's ``failed``)."""
    outcome = outcome_of(result)
    outcome.fields["reason"] = reason
    if outcome.status == "failed":
        outcome.status = "error"
    return outcome
