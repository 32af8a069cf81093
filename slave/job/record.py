"""From the guest runner's events to per-phase results, a summary and the job's outcome.

:class:`RunRecord` is fed every sanitised runner event as it arrives. It keeps
what the result needs (phase statuses and durations, tests counts, crash
details, the raw inputs of quality indicators) and runs the behaviour
analysis (``slave.findings``) on each event, so findings are known — and
logged — while the job runs. :func:`decide` maps it all to one outcome::

    malicious verdict            → harmful
    a package phase crashed      → crashed      (install, import, tests)
    a package phase timed out    → timed_out
    a package phase failed       → failed
    a package phase had an error → infra_error  (the runner's own failure)
    install never reported       → infra_error
    otherwise                    → passed

``quality`` never decides the outcome: it runs our tools, not the package.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from slave.findings import Analyser, Context, Finding, profile, profile_to_json, verdict

#: Phases that run the package's code: their statuses decide the outcome.
PACKAGE_PHASES = ("install", "import", "tests")
#: Findings kept in the result (the rest are counted).
MAX_FINDINGS = 200
#: Runner events kept for the quality indicators (install output lines included).
_QUALITY_EVENTS = frozenset({"phase_finished", "tests_summary", "quality", "install_summary"})
_MAX_QUALITY_OUTPUT = 2000
_COUNTS = ("collected", "passed", "failed", "errors", "skipped")


class RunRecord:
    """What the job learned from the guest runner so far (see the module docstring)."""

    def __init__(self, context: Context | None = None) -> None:
        self.analyser = Analyser(context)
        self.phases: dict[str, dict[str, Any]] = {}
        self.tests: dict[str, Any] | None = None
        self.crash: dict[str, Any] | None = None
        self.quality_events: list[dict[str, Any]] = []
        self.current: str | None = None
        self.runner_finished = False
        self._install_output = 0

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
                    self.crash = {
                        "phase": phase,
                        "signal": fields.get("signal"),
                        "signal_name": fields.get("signal_name"),
                        "traceback": fields.get("traceback"),
                    }
            case "tests_summary":
                self.tests = {k: fields.get(k) for k in _COUNTS if isinstance(fields.get(k), int)}
                if isinstance(fields.get("duration_s"), int | float):
                    self.tests["duration_s"] = fields["duration_s"]
            case "runner_finished":
                self.runner_finished = True
            case _:
                pass
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
        entry = self.phases.setdefault(phase, {})
        entry.update(status="timed_out", duration_s=round(seconds, 3), killed_by="slave")

    @property
    def findings(self) -> list[Finding]:
        return self.analyser.findings

    def verdict(self) -> str:
        return verdict(self.analyser.findings)

    def summary(self) -> dict[str, Any]:
        """The result's summary fields this record knows (findings, verdict, tests, crash)."""
        findings = self.analyser.findings
        out: dict[str, Any] = {
            "verdict": self.verdict(),
            "findings": [f.to_dict() for f in findings[:MAX_FINDINGS]],
            "findings_total": len(findings) + self.analyser.suppressed,
            # From all findings (not only those kept above): the master diffs it
            # against the project's previous release ("started opening sockets").
            "profile": profile_to_json(profile(findings)),
        }
        if self.tests is not None:
            out["tests"] = self.tests
        if self.crash is not None:
            out["crash"] = self.crash
        return out


_PHASE_KEYS = ("status", "duration_s", "exit_code", "signal", "signal_name", "reason",
               "output_bytes", "output_dropped", "traced", "stage")  # fmt: skip


def _phase_entry(fields: Mapping[str, Any]) -> dict[str, Any]:
    return {k: fields[k] for k in _PHASE_KEYS if k in fields}


def decide(phases: Mapping[str, Mapping[str, Any]], verdict_: str) -> str:
    """The job's outcome (table in the module docstring)."""
    if verdict_ == "malicious":
        return "harmful"
    statuses = [str(phases[p].get("status")) for p in PACKAGE_PHASES if p in phases]
    for status, outcome in (
        ("crashed", "crashed"),
        ("timed_out", "timed_out"),
        ("failed", "failed"),
        ("error", "infra_error"),
    ):
        if status in statuses:
            return outcome
    if "install" not in phases:
        return "infra_error"
    return "passed"
