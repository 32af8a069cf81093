"""From runner events to findings and a verdict (profiles and diffs: ``profile.py``).

`Analyser` is fed the runner's events (or bare strace lines) as they arrive. It
keeps the little state the rules need: unfinished syscalls per pid, what each pid
is running (so a finding says ``curl`` started by ``build-backend``, not a pid),
and per-rule counters for threshold rules. Findings are deduplicated per
(rule, phase, target) and capped per rule and phase, so a hostile package cannot
flood the report.

Verdict table (`verdict`; docs/verdicts.md has examples). "Early" is the
``install`` and ``import`` phases: what every user of the package gets.

| # | findings                                                       | verdict      |
|---|----------------------------------------------------------------|--------------|
| 1 | any ``critical`` (dynamic or static)                           | `malicious`  |
| 2 | a dynamic ``high`` at an early phase of a threat class:        | `malicious`  |
|   | network, credentials, persistence, privilege, or a program     |              |
|   | run from a temp dir (``THREAT_KINDS`` / ``THREAT_RULES``)       |              |
| 3 | ``high`` findings of two or more different rules outside       | `malicious`  |
|   | ``tests`` (static ones count: static + dynamic corroborate)    |              |
| 4 | any other ``high``, or any ``medium``                          | `suspicious` |
| 5 | only ``low`` / ``info``, or none                               | `clean`      |
"""

from __future__ import annotations

import json
import posixpath
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from slave.findings.model import SEVERITY_RANK, Call, Context, Finding, Severity
from slave.findings.profile import BehaviourChange, ChangeKind, ProfileEntry, diff, profile
from slave.findings.rules import (
    AWS_SDK,
    EVENT_RULES,
    INSTALLERS,
    PIP_HELPERS,
    PIP_SETUP_SHIM,
    PREPARED_BUILD_DIR,
    RULES,
    RUNNER_IMPORT_CODES,
    UV_HOOK_SHIM,
    UV_PROBE,
    EventRule,
    Rule,
)
from slave.findings.static_rules import STATIC_KINDS
from slave.findings.strace import (
    LineKind,
    TraceLine,
    TraceParser,
    annotation,
    fd_peer,
    sockaddr,
    string_array,
    unquote,
)

Verdict = Literal["clean", "suspicious", "malicious"]
#: Behaviour classes whose dynamic ``high`` findings at install/import are malicious alone.
THREAT_KINDS = frozenset({"network", "credentials", "persistence", "privilege"})
#: Rules of other classes that count as threats the same way (a dropped payload run).
THREAT_RULES = frozenset({"proc.exec_temp", "proc.network_tool"})
EARLY_PHASES = frozenset({"install", "import"})
_KIND: dict[str, str] = {r.id: r.kind for r in RULES} | {r.id: r.kind for r in EVENT_RULES}
_KIND |= {"cred.token": "credentials", "cred.token_name": "credentials"} | STATIC_KINDS
MAX_PER_RULE_AND_PHASE = 50
EVIDENCE_MAX = 2000
MAX_PROCESSES = 100_000

_PYTHON = re.compile(r"python(\d+(\.\d+)?)?")
_WRITE_FLAGS = re.compile(r"O_WRONLY|O_RDWR|O_CREAT|O_TRUNC|O_APPEND")
_FLAG_VALUE_OPTS = frozenset({"-X", "-W"})
_FORKS = frozenset({"clone", "clone3", "fork", "vfork"})
_CHILD = re.compile(r"\{parent_tid=\[(\d+)\]\}")
#: `classify` labels of `python -c` shims that are expected only when an installer runs them
_SHIM_LABELS = frozenset({"setup.py", "build-backend", "uv-probe"})


@dataclass(frozen=True, slots=True)
class Proc:
    """What a pid is running: a label for findings, and whether it is pip itself."""

    label: str
    trusted: bool


UNKNOWN = Proc("?", trusted=False)


#: botocore's own modules (source or bytecode), opened by a process that loads it
AWS_SDK_MODULE = re.compile(r"/site-packages/botocore/[^/]+\.py[c]?$|/botocore/__pycache__/")
#: guest_runner.prepared_build's hook script, under the job's scratch dir
PREPARED_BUILD = re.compile(PREPARED_BUILD_DIR + r"build_hooks\.py$")


def classify(exe: str, argv: tuple[str, ...]) -> tuple[str, bool]:
    """(label, expected) of an exec: expected means the runner or pip starts it every time."""
    base = posixpath.basename(exe)
    if base == "uv":
        return "uv", True
    if not _PYTHON.fullmatch(base):
        return base, False
    rest = list(argv[1:])
    while rest and rest[0].startswith("-") and rest[0] not in ("-c", "-m"):
        opt = rest.pop(0)
        if opt in _FLAG_VALUE_OPTS and rest:
            rest.pop(0)
    if rest[:2] == ["-m", "pip"] or (rest and rest[0].endswith("/pip/__pip-runner__.py")):
        return "pip", True
    if rest and rest[0].endswith(("/_in_process/_in_process.py", "/in_process/_in_process.py")):
        return "build-backend", True  # pyproject_hooks, and pep517 in older pips
    if rest and PREPARED_BUILD.search(rest[0]):
        return "build-backend", True  # the runner's build in a prepared environment
    if rest[:2] == ["-m", "pytest"]:
        return "pytest", True
    if rest[:2] == ["-m", "venv"]:
        return "venv", True
    if rest[:1] == ["-c"] and len(rest) > 1 and rest[1] in RUNNER_IMPORT_CODES:
        return f"import {rest[2] if len(rest) > 2 else '?'}"[:120], True
    if rest[:1] == ["-c"] and len(rest) > 1 and PIP_SETUP_SHIM.search(rest[1][:4096]):
        # the package's setup.py (its code, traced as such), started by pip: see _enrich
        return "setup.py", True
    if rest[:1] == ["-c"] and len(rest) > 1 and UV_HOOK_SHIM.search(rest[1][:4096]):
        return "build-backend", True  # uv's PEP 517 hook runner; only when uv starts it
    if rest[:1] == ["-c"] and len(rest) > 1 and UV_PROBE.search(rest[1][:4096]):
        return "uv-probe", True  # uv asking the interpreter about itself
    if rest[:1] == ["-c"]:
        return "python -c", False
    if rest[:1] == ["-m"] and len(rest) > 1:
        return f"python -m {rest[1]}"[:120], False
    return (f"python {posixpath.basename(rest[0])}" if rest else "python")[:120], False


class Analyser:
    """Turns one job's runner events into findings. Not thread-safe; one per job."""

    def __init__(self, context: Context | None = None) -> None:
        self.context = context or Context()
        self._parsers: dict[str, TraceParser] = {}
        self._procs: dict[int, Proc] = {}
        #: pids that loaded the AWS SDK (botocore): its credential chain reads ~/.aws
        self._aws_sdk: set[int] = set()
        self._exited: dict[int, Proc] = {}  # labels of pids that exited, for late events
        self._seen: set[tuple[str, str, str]] = set()
        self._per_rule: Counter[tuple[str, str]] = Counter()
        self._counts: Counter[tuple[str, str, str]] = Counter()
        self.findings: list[Finding] = []
        self.suppressed = 0  # findings dropped by the per-rule cap

    # -- input -----------------------------------------------------------------------

    def feed_event(self, event: Mapping[str, Any]) -> list[Finding]:
        """A runner event (one JSON line of the runner); unknown events give nothing."""
        name = event.get("event")
        phase = str(event.get("phase", "?"))[:40]
        if name == "trace":
            line = event.get("line")
            return self.feed(phase, line) if isinstance(line, str) else []
        found: list[Finding] = []
        pid, process = self._event_source(phase, event)
        for rule in EVENT_RULES:
            if rule.event != name:
                continue
            for hit in rule.match(event, self.context):
                severity = hit.severity or rule.phase_severity.get(phase, rule.severity)
                evidence = _event_evidence(event)
                found += self._record(rule.id, severity, phase, pid, process, evidence, hit.target)
        return found

    def _event_source(self, phase: str, event: Mapping[str, Any]) -> tuple[int | None, str]:
        """(pid, process) of an event: the runner's own, or the traced process a sinkhole
        ``network`` event names (its label from the trace, else the guest's ``comm``)."""
        if event.get("event") != "network":
            return None, "runner"
        pid = event.get("pid")
        if not isinstance(pid, int) or isinstance(pid, bool):
            return None, "sinkhole"
        label = self._procs.get(pid, self._exited.get(pid, UNKNOWN)).label
        if label == "?" and isinstance(event.get("process"), str):
            label = str(event["process"])[:120]
        return pid, label

    def feed(self, phase: str, line: str) -> list[Finding]:
        """One strace line of ``phase``; never raises on hostile content."""
        parser = self._parser(phase)
        records = list(parser.parse(line))
        found = self._token(phase, line)
        for record in records:
            if record.kind is LineKind.SYSCALL:
                found += self._syscall(phase, record)
            elif record.kind in (LineKind.EXITED, LineKind.KILLED) and record.pid is not None:
                gone = self._procs.pop(record.pid, None)
                if gone is not None:  # sinkhole events about it may still come
                    if len(self._exited) > MAX_PROCESSES:
                        self._exited.clear()
                    self._exited[record.pid] = gone
        return found

    def add(self, findings: Iterable[Finding]) -> list[Finding]:
        """Findings made elsewhere (the static scan): deduped and capped like the rest."""
        found: list[Finding] = []
        for f in findings:
            before = len(self.findings)
            self._record(f.rule, f.severity, f.phase, f.pid, f.process, f.evidence, f.target)
            if len(self.findings) > before:
                self.findings[-1] = f  # keep its source and exact fields
                found.append(f)
        return found

    # -- rules -----------------------------------------------------------------------

    def _token(self, phase: str, line: str) -> list[Finding]:
        """The bait token's value (or its name) in any line: argv, a path, a buffer."""
        token = self.context.bait_token
        pid = _leading_pid(line)
        # The caller's label (a vforked child inherits it), before an exec relabels the pid.
        process = self._proc(phase, pid).label if pid is not None else "?"
        if token and len(token) >= 8 and token in line:
            return self._record("cred.token", "critical", phase, pid, process, line, "token")
        if "PYTI_BAIT_TOKEN" in line:
            severity: Severity = "low" if phase == "tests" else "medium"
            return self._record("cred.token_name", severity, phase, pid, process, line, "name")
        return []

    def _syscall(self, phase: str, record: TraceLine) -> list[Finding]:
        proc = self._proc(phase, record.pid)
        call = self._enrich(phase, record, proc)
        self._track(record, proc, call)
        self._track_aws_sdk(record, call)
        found: list[Finding] = []
        for rule in RULES:
            if rule.syscalls and record.name not in rule.syscalls:
                continue
            for hit in rule.match(call):
                severity = hit.severity or rule.phase_severity.get(phase, rule.severity)
                found += self._count(rule, severity, call, hit.target)
        return found

    def _count(self, rule: Rule, severity: Severity, call: Call, target: str) -> list[Finding]:
        if rule.min_count > 1:
            key = (rule.id, call.phase, target)
            self._counts[key] += 1
            if self._counts[key] != rule.min_count:
                return []
        return self._record(
            rule.id, severity, call.phase, call.pid, call.process, call.evidence, target
        )

    def _record(
        self,
        rule: str,
        severity: Severity,
        phase: str,
        pid: int | None,
        process: str,
        evidence: str,
        target: str,
    ) -> list[Finding]:
        key = (rule, phase, target[:500])
        if key in self._seen:
            return []
        if self._per_rule[(rule, phase)] >= MAX_PER_RULE_AND_PHASE:
            self.suppressed += 1
            return []
        self._seen.add(key)
        self._per_rule[(rule, phase)] += 1
        finding = Finding(
            rule=rule,
            severity=severity,
            phase=phase,
            pid=pid,
            process=process,
            evidence=evidence[:EVIDENCE_MAX],
            target=target[:500],
        )
        self.findings.append(finding)
        return [finding]

    # -- state -----------------------------------------------------------------------

    def _parser(self, phase: str) -> TraceParser:
        parser = self._parsers.get(phase)
        if parser is None:
            if len(self._parsers) >= 16:
                phase = "*"  # phases are few: a stream inventing names shares one parser
            parser = self._parsers.setdefault(phase, TraceParser())
        return parser

    def _proc(self, phase: str, pid: int | None) -> Proc:
        if pid is None:
            return UNKNOWN
        proc = self._procs.get(pid)
        if proc is None:
            parents = self._parser(phase).pending_forks()
            proc = self._procs.get(parents[0], UNKNOWN) if parents else UNKNOWN
            self._procs[pid] = proc
        return proc

    def _track(self, record: TraceLine, proc: Proc, call: Call) -> None:
        """Children inherit their parent's label; a successful exec relabels the pid."""
        if len(self._procs) > MAX_PROCESSES:
            self._procs.clear()  # a fork bomb: labels degrade to "?", findings still flow
        if record.name in _FORKS and record.retval is not None and record.retval > 0:
            # setdefault: a vforked child may have exec'd (and been relabelled) already
            self._procs.setdefault(record.retval, proc)
            if record.name == "clone3" and (child := _CHILD.search(record.raw)):
                self._procs.setdefault(int(child.group(1)), proc)
        elif call.exe and record.pid is not None and record.retval == 0:
            helper = proc.trusted and posixpath.basename(call.exe) in PIP_HELPERS
            trusted = call.exec_label in INSTALLERS or helper
            self._procs[record.pid] = Proc(call.exec_label or "?", trusted)

    def _track_aws_sdk(self, record: TraceLine, call: Call) -> None:
        """Mark the calls of processes that loaded botocore (``AWS_SDK``): a fork keeps
        the mark, an exec drops it (another program)."""
        pid = record.pid
        if pid is None:
            return
        if record.name in _FORKS and record.retval is not None and record.retval > 0:
            if pid in self._aws_sdk:
                self._aws_sdk.add(record.retval)
        elif call.exe and record.retval == 0:
            self._aws_sdk.discard(pid)
        elif pid in self._aws_sdk:
            call.extra[AWS_SDK] = "1"
        elif len(self._aws_sdk) < MAX_PROCESSES and any(
            AWS_SDK_MODULE.search(path) for path in call.reads
        ):
            self._aws_sdk.add(pid)

    def _enrich(self, phase: str, line: TraceLine, proc: Proc) -> Call:
        """Work out paths, exec target and peer address once, for every rule."""
        name, args = line.name, line.args
        reads: list[str] = []
        writes: list[str] = []
        exe: str | None = None
        argv: tuple[str, ...] = ()
        peer = None
        mode = None
        resolved = line.ret_path if line.ret_path and line.ret_path.startswith("/") else None

        def at(dir_arg: int, path_arg: int) -> str | None:
            if len(args) <= path_arg:
                return None
            return _resolve(args[dir_arg] if dir_arg >= 0 else "", args[path_arg])

        match name:
            case "open" | "openat" | "openat2":
                path = at(-1, 0) if name == "open" else at(0, 1)
                flags = " ".join(args[1:] if name == "open" else args[2:])
                bucket = writes if _WRITE_FLAGS.search(flags) else reads
                bucket += [p for p in (path, resolved) if p]
            case "creat" | "truncate" | "unlink" | "mkdir" | "rmdir":
                writes += [p for p in (at(-1, 0),) if p]
            case "unlinkat" | "mkdirat":
                writes += [p for p in (at(0, 1),) if p]
            case "chmod":
                writes += [p for p in (at(-1, 0),) if p]
                mode = _octal(args[1] if len(args) > 1 else "")
            case "fchmodat":
                writes += [p for p in (at(0, 1),) if p]
                mode = _octal(args[2] if len(args) > 2 else "")
            case "rename" | "link" | "symlink":
                first = at(-1, 0) if name != "symlink" else None
                writes += [p for p in (first, at(-1, 1)) if p]
            case "renameat" | "renameat2" | "linkat":
                writes += [p for p in (at(0, 1), at(2, 3)) if p]
            case "symlinkat":
                writes += [p for p in (at(1, 2),) if p]
            case "execve":
                exe = at(-1, 0)
                argv = tuple(string_array(args[1])) if len(args) > 1 else ()
            case "execveat":
                exe = at(0, 1) or annotation(args[0]) if args else None
                argv = tuple(string_array(args[2])) if len(args) > 2 else ()
            case "connect" | "sendto" | "sendmsg" | "sendmmsg":
                peer = next(filter(None, (sockaddr(a) for a in args[1:])), None)
                if peer is None and args:
                    peer = fd_peer(args[0])
        label, expected = classify(exe, argv) if exe else ("", False)
        if label in _SHIM_LABELS and "-c" in argv and not proc.trusted:
            # a shim's text, but not started by pip/uv: the package's own python -c
            label, expected = "python -c", False
        if exe and not expected and proc.trusted:
            expected = posixpath.basename(exe) in PIP_HELPERS
        return Call(
            phase=phase,
            pid=line.pid,
            process=proc.label,
            trusted=proc.trusted,
            line=line,
            context=self.context,
            reads=tuple(dict.fromkeys(reads)),
            writes=tuple(dict.fromkeys(writes)),
            exe=exe,
            argv=argv,
            exec_label=label,
            exec_expected=expected,
            peer=peer,
            mode=mode,
        )


def _resolve(dir_arg: str, path_arg: str) -> str | None:
    """An absolute, normalised path from a (dirfd annotation, path string) pair."""
    path = unquote(path_arg)
    if path is None:
        return None
    if not path.startswith("/"):
        base = annotation(dir_arg) if dir_arg else None
        if base and base.startswith("/"):
            path = posixpath.join(base, path)
        elif not path:
            return None
    return posixpath.normpath(path) if path.startswith("/") else path


def _octal(text: str) -> int | None:
    text = text.strip()
    return int(text, 8) if re.fullmatch(r"0[0-7]{1,6}", text) else None


def _leading_pid(line: str) -> int | None:
    found = re.match(r"\s*(?:\[pid\s+)?(\d{1,9})", line)
    return int(found.group(1)) if found else None


_RESOURCES = frozenset({"disk_free_min", "disk_total", "oom_kills", "signal_name", "outlived"})


def _event_evidence(event: Mapping[str, Any]) -> str:
    if event.get("event") == "network":  # the sinkhole's record, as it came (runner-cleaned)
        fields = {k: v for k, v in event.items() if k not in ("event", "phase", "time")}
        return json.dumps(fields, sort_keys=True, default=str)[:EVIDENCE_MAX]
    keep = {k: v for k, v in event.items() if k in ("event", "phase", "status", "files")}
    keep.update(
        {k: v for k, v in event.items() if k.endswith(("_dropped", "_cap")) or k in _RESOURCES}
    )
    return repr(keep)[:EVIDENCE_MAX]


# ---------------------------------------------------------------------------- API


def analyse(phase: str, trace_line: str, context: Context | None = None) -> list[Finding]:
    """Findings of one strace line on its own (no process labels, no thresholds)."""
    return Analyser(context).feed(phase, trace_line)


def verdict(findings: Iterable[Finding]) -> Verdict:
    """The table in this module's docstring."""
    high_rules: set[str] = set()
    suspicious = False
    for finding in findings:
        rank = SEVERITY_RANK[finding.severity]
        if rank >= SEVERITY_RANK["critical"]:
            return "malicious"
        if rank == SEVERITY_RANK["high"]:
            if _threat(finding):
                return "malicious"
            if finding.phase != "tests":
                high_rules.add(finding.rule)
        suspicious = suspicious or rank >= SEVERITY_RANK["medium"]
    if len(high_rules) >= 2:
        return "malicious"
    return "suspicious" if suspicious else "clean"


def _threat(finding: Finding) -> bool:
    """Row 2 of the verdict table: a dynamic high of a threat class at install or import."""
    if finding.source != "dynamic" or finding.phase not in EARLY_PHASES:
        return False
    return _KIND.get(finding.rule) in THREAT_KINDS or finding.rule in THREAT_RULES


__all__ = [
    "THREAT_KINDS",
    "THREAT_RULES",
    "Analyser",
    "BehaviourChange",
    "ChangeKind",
    "EventRule",
    "ProfileEntry",
    "Verdict",
    "analyse",
    "classify",
    "diff",
    "profile",
    "verdict",
]
