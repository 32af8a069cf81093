"""The values the findings engine works with: findings, the job context, enriched calls."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from typing import Literal

from slave.findings.strace import SockAddr, TraceLine

Severity = Literal["info", "low", "medium", "high", "critical"]
SEVERITY_RANK: dict[Severity, int] = {"info": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}
#: Where a finding comes from: the traced run, or the static read of the release's files.
Source = Literal["dynamic", "static"]


@dataclass(frozen=True, slots=True)
class Finding:
    """One behaviour worth reporting.

    ``process`` is what the process was running (``pip``, ``build-backend``,
    ``pytest``, ``import demo``, ``curl``...); ``evidence`` is the strace line (or the
    runner fact) that shows it; ``target`` is the normalised thing it touched
    (``~/.ssh/id_rsa``, ``1.2.3.4:443``, ``curl``), which dedups findings and feeds
    the behaviour profile. ``source`` is ``static`` for what the host read in the
    release's files without running them (``slave.findings.static_scan``): then
    ``pid`` is None, ``process`` is ``static`` and ``evidence`` is ``file:line: code``.
    """

    rule: str
    severity: Severity
    phase: str
    pid: int | None
    process: str
    evidence: str
    target: str = ""
    source: Source = "dynamic"

    def to_dict(self) -> dict[str, object]:
        return {
            "rule": self.rule,
            "severity": self.severity,
            "phase": self.phase,
            "pid": self.pid,
            "process": self.process,
            "evidence": self.evidence,
            "target": self.target,
            "source": self.source,
        }


@dataclass(frozen=True, slots=True)
class Context:
    """What is normal in this guest: where package code may write, what the bait is.

    The defaults describe the pyti guest image (``docs/contracts.md``).
    """

    home: str = "/home/tester"
    venv: str = "/home/tester/venv"
    temp_dirs: tuple[str, ...] = ("/tmp", "/var/tmp", "/dev/shm")  # noqa: S108 - the guest's
    # Extra places package code may write (the job's scratch dir when it is not in /tmp).
    write_dirs: tuple[str, ...] = ()
    # Where the interpreter itself lives when that is not /usr (a host run of the runner):
    # reads there are the interpreter loading itself, never a finding.
    trusted_dirs: tuple[str, ...] = ()
    # uv's cache (relative to home): its build environments and unpacked wheels, like
    # pip's /tmp/pip-* dirs; writes there are the installer's work, not findings.
    uv_cache: str = ".cache/uv"
    bait_token: str | None = None
    bait_files: tuple[str, ...] = (".ssh/id_rsa", ".aws/credentials")  # relative to home

    def under(self, path: str, roots: tuple[str, ...]) -> bool:
        return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)

    def in_home(self, path: str, rel: str) -> bool:
        """``path`` is ``~/rel`` or inside it."""
        return self.under(path, (posixpath.join(self.home, rel),))

    def display(self, path: str) -> str:
        """``/home/tester/.ssh/id_rsa`` → ``~/.ssh/id_rsa``; the venv → ``$VENV``."""
        if self.under(path, (self.venv,)):
            return "$VENV" + path[len(self.venv.rstrip("/")) :]
        if self.under(path, (self.home,)):
            return "~" + path[len(self.home.rstrip("/")) :]
        return path


@dataclass(frozen=True, slots=True)
class Call:
    """A syscall with what the rules need already worked out.

    ``reads``/``writes`` are absolute, normalised paths (a write through a symlink
    lists both the name and the resolved file); ``exe``/``argv`` are set for execve;
    ``peer`` is the remote address of connect/sendto/sendmsg (from the sockaddr or the
    ``-yy`` annotation of a connected socket); ``process``/``trusted`` describe the
    calling process (trusted: pip itself, not code it runs for the package).
    """

    phase: str
    pid: int | None
    process: str
    trusted: bool
    line: TraceLine
    context: Context
    reads: tuple[str, ...] = ()
    writes: tuple[str, ...] = ()
    exe: str | None = None
    argv: tuple[str, ...] = ()
    exec_label: str = ""  # what the exec'd program is, as `classify` names it
    exec_expected: bool = False
    peer: SockAddr | None = None
    mode: int | None = None  # chmod modes
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.line.name

    @property
    def evidence(self) -> str:
        return self.line.raw
