#!/usr/bin/env python3
"""pyti guest runner: install, import, test and lint one release, traced, as user ``tester``.

Runs inside the throw-away guest as root (stdlib only, Python 3.11)::

    python3 /opt/pyti/runner.py --job /var/lib/pyti/job/job.json

Every line on stdout is one JSON object (``event``, ``phase``, free-form fields),
flushed as it happens; nothing else is written to stdout. The contract is the
"Guest runner" section of ``docs/contracts.md``. Whatever the package does, the
runner keeps emitting well-formed events and ends with ``runner_finished``:
package code only ever runs in child processes that are traced, time-limited,
output-capped and killed (the whole tree) at the end of every command.

This file is copied into the image as ``/opt/pyti/runner.py``; it is one file on
purpose, so it is longer than our usual modules.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import ctypes
import fcntl
import json
import os
import pwd
import re
import resource
import shutil
import signal
import struct
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from xml.etree import ElementTree

RUNNER_VERSION = 1
LINE_LIMIT = 4096  # bytes per output line; the rest is dropped and counted
TRACE_LINE_LIMIT = 16 * 1024  # an execve with 32 arguments of 256 bytes still fits
TAIL_BYTES = 64 * 1024  # stderr kept per command for tracebacks, even past the cap
TRACEBACK_LIMIT = 16 * 1024
JUNIT_LIMIT = 32 * 1024 * 1024
RUFF_OUTPUT_LIMIT = 64 * 1024 * 1024
DEFAULT_TIMEOUTS = {"install": 600.0, "import": 120.0, "tests": 900.0, "quality": 120.0}
DEFAULT_OUTPUT_CAP = 1024 * 1024
# A plain pip install of a small sdist is ~1.5 MB of trace; its lines are the evidence.
DEFAULT_TRACE_CAP = 16 * 1024 * 1024
DEFAULT_NPROC = 512
# Package processes are the OOM killer's first choice, the runner never is.
OOM_PACKAGE = 1000
OOM_RUNNER = -1000
DISK_SAMPLE_S = 0.25  # how often a phase's free disk space is sampled
# Package processes live in a cgroup whose memory.max leaves this much of the guest's
# RAM to the rest (sshd and its relay, the runner): a memory hog is OOM-killed inside
# the cgroup, and the guest as a whole never runs out (which broke the SSH relay).
CGROUP = Path("/sys/fs/cgroup/pyti-package")
MEMORY_RESERVE = 128 << 20
MEMORY_MIN = 64 << 20
DRAIN_CHUNK = 1 << 16
PHASES = ("install", "import", "tests", "quality")
SDIST_SUFFIXES = (".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".zip")
# Syscalls worth a finding, and the ones that show what a process is; no stat/read/write
# noise, which would multiply the trace volume of a plain pip install several times.
#: Marks the image's pre-built job venv (see slave/images/rootfs.py: JOB_VENV).
VENV_TEMPLATE_MARKER = ".pyti-template"

TRACE_SET = ",".join(
    [
        "execve,execveat,clone,clone3,fork,vfork,kill,tkill,tgkill",
        "open,openat,openat2,creat,rename,renameat,renameat2,unlink,unlinkat",
        "mkdir,mkdirat,symlink,symlinkat,link,linkat,chmod,fchmodat,truncate",
        "socket,socketpair,connect,bind,listen,accept,accept4,sendto,sendmsg,sendmmsg",
        "setuid,setgid,setreuid,setregid,setresuid,setresgid,setgroups,capset",
        "ptrace,process_vm_readv,process_vm_writev,mount,umount2,chroot,pivot_root",
        "unshare,setns,init_module,finit_module,bpf,memfd_create,personality",
    ]
)
# Past the trace cap, these still go out (up to twice the cap): they are the evidence
# a package would try to bury under a flood of harmless opens.
PRIORITY_TRACE = re.compile(
    rb"\b(execve|execveat|connect|socket|sendto|sendmsg|sendmmsg|bind|ptrace|set[res]*[ug]id"
    rb"|setgroups|capset|mount|init_module|finit_module|bpf|unshare|setns|process_vm_\w+)\(|"
    rb"environ|\.ssh|\.aws|killed by|O_WRONLY|O_RDWR|O_CREAT|rename|unlink|ENOSPC|EAGAIN"
)
NETWORK_ERROR = re.compile(
    r"Temporary failure in name resolution|Name or service not known|Network is unreachable|"
    r"gaierror|NewConnectionError|ConnectionError|No address associated with hostname|"
    r"Could not resolve host|nodename nor servname",
)
RNDADDENTROPY = 0x40085203
PR_SET_CHILD_SUBREAPER = 36


# ---------------------------------------------------------------------------- events


class Emitter:
    """Writes events as JSON lines to stdout; thread-safe; never raises."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self._lock = threading.Lock()
        self._broken = False

    def emit(self, event: str, phase: str, **fields: Any) -> None:
        line = json.dumps({"event": event, "phase": phase, **fields}, default=str)
        with self._lock:
            if self._broken:
                return
            try:
                self._stream.write(line + "\n")
                self._stream.flush()
            except (OSError, ValueError):
                # The reader (SSH channel) is gone: nobody can hear us any more, but the
                # phases still have to be torn down properly.
                self._broken = True

    def log(self, phase: str, level: str, message: str, **fields: Any) -> None:
        self.emit("log", phase, level=level, message=message, **fields)


@dataclass
class Budget:
    """Per-phase output and trace caps, shared by every command the phase runs."""

    deadline: float
    output_cap: int
    trace_cap: int
    output_bytes: int = 0
    output_dropped: int = 0
    trace_lines: int = 0
    trace_bytes: int = 0
    trace_dropped: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take_output(self, size: int) -> bool:
        with self.lock:
            if self.output_bytes + size > self.output_cap:
                self.output_dropped += size
                return False
            self.output_bytes += size
            return True

    def take_trace(self, line: bytes) -> bool:
        size = len(line)
        with self.lock:
            fits = self.trace_bytes + size <= self.trace_cap
            urgent = self.trace_bytes + size <= 2 * self.trace_cap and bool(
                PRIORITY_TRACE.search(line)
            )
            if not (fits or urgent):
                self.trace_dropped += size
                return False
            self.trace_bytes += size
            self.trace_lines += 1
            return True

    def remaining(self) -> float:
        return max(0.0, self.deadline - time.monotonic())

    def counters(self) -> dict[str, int]:
        with self.lock:
            return {
                "output_bytes": self.output_bytes,
                "output_dropped": self.output_dropped,
                "output_cap": self.output_cap,
                "trace_lines": self.trace_lines,
                "trace_dropped": self.trace_dropped,
            }


def iter_lines(stream: IO[bytes], limit: int) -> Iterator[tuple[bytes, int]]:
    """Yield (line without newline, bytes cut off it); a line never exceeds ``limit``."""
    while True:
        chunk = stream.readline(limit)
        if not chunk:
            return
        if chunk.endswith(b"\n") or len(chunk) < limit:
            yield chunk.rstrip(b"\n"), 0
            continue
        cut = 0
        while rest := stream.readline(limit):
            if rest.endswith(b"\n"):
                cut += len(rest) - 1
                break
            cut += len(rest)
        yield chunk, cut


# ---------------------------------------------------------------------------- processes


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


SEVERITY = {"passed": 0, "skipped": 0, "failed": 1, "timed_out": 2, "crashed": 3, "error": 4}


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


class Executor:
    """Runs package-touching commands: as ``tester``, under strace, with the phase's caps.

    Every command's process tree is killed when it ends or times out, so nothing a
    package starts survives into the next command.
    """

    def __init__(
        self,
        emitter: Emitter,
        *,
        user: str,
        uid: int | None,
        gid: int | None,
        strace: str | None,
        nproc: int,
        cgroup: Path | None = None,
    ) -> None:
        self.emitter = emitter
        self.user = user
        self.uid = uid  # None: run as ourselves (tests on a host)
        self.gid = gid
        self.strace = strace
        #: strace's options that ``check_strace`` found to work in this guest: fast
        #: seccomp-bpf filtering, and how ``-u`` names the user.
        self.strace_opts = ["--seccomp-bpf", "-u", user]
        self.nproc = nproc
        self.cgroup = cgroup  # the package's memory-capped cgroup, when there is one

    def run(
        self,
        phase: str,
        argv: list[str],
        budget: Budget,
        *,
        cwd: str,
        env: dict[str, str],
        traced: bool = True,
        on_line: Callable[[str], None] | None = None,
    ) -> Result:
        """Run argv to completion or the phase deadline; stream output and trace events."""
        fifo_dir = tempfile.mkdtemp(prefix="pyti-trace-")  # 0700, root's: tester cannot reach
        trace_path = os.path.join(fifo_dir, "trace")
        keep_fd = trace_fd = -1
        full = list(argv)
        use_strace = traced and self.strace is not None
        if use_strace:
            assert self.strace is not None
            os.mkfifo(trace_path, 0o600)
            # Open both ends ourselves first: the reader then cannot block forever when
            # strace dies before opening its output, nor see EOF before strace starts.
            trace_fd = os.open(trace_path, os.O_RDONLY | os.O_NONBLOCK)
            keep_fd = os.open(trace_path, os.O_WRONLY)
            os.set_blocking(trace_fd, True)
            opts = self.strace_opts if self.uid is not None else self.strace_opts[:-2]
            prefix = [self.strace, "-f", "-q", *opts, "-s", "256", "-yy"]
            prefix += ["-e", "signal=none", "-e", f"trace={TRACE_SET}", "-o", trace_path]
            full = [*prefix, "--", *argv]
        # Untraced, the child drops to tester itself, after joining the cgroup as root.
        drop = self.uid is not None and not use_strace
        stderr_tail: collections.deque[str] = collections.deque()
        stdout_tail: collections.deque[str] = collections.deque()
        threads: list[threading.Thread] = []
        try:
            proc = subprocess.Popen(
                full,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=cwd,
                env=env,
                start_new_session=True,
                # setrlimit, two small writes, setuid: async-signal-safe enough
                preexec_fn=self._child_setup if drop else self._limits,  # noqa: PLW1509
            )
        except OSError as exc:
            for fd in (trace_fd, keep_fd):
                if fd >= 0:
                    os.close(fd)
            shutil.rmtree(fifo_dir, ignore_errors=True)
            self.emitter.log(phase, "error", f"cannot start {argv[0]}: {exc}")
            return Result(127, False, str(exc), "")
        assert proc.stdout is not None and proc.stderr is not None
        for name, stream, tail in (
            ("stdout", proc.stdout, stdout_tail),
            ("stderr", proc.stderr, stderr_tail),
        ):
            threads.append(self._reader(phase, name, stream, tail, budget, on_line))
        main = MainExit()
        if trace_fd >= 0:
            threads.append(self._tracer(phase, os.fdopen(trace_fd, "rb"), budget, main))
        timed_out = True
        try:
            timed_out = not wait_command(proc, budget, main)
        finally:
            self.kill_all()
            proc.wait()
            if keep_fd >= 0:
                os.close(keep_fd)
            for thread in threads:
                thread.join(timeout=10.0)
            shutil.rmtree(fifo_dir, ignore_errors=True)
        returncode = main.returncode if main.returncode is not None else proc.returncode
        return Result(returncode, timed_out, "".join(stderr_tail), "".join(stdout_tail))

    def _limits(self) -> None:
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if self.uid is not None:
            # Counts tester's processes: a fork bomb hits EAGAIN instead of the guest's limits.
            resource.setrlimit(resource.RLIMIT_NPROC, (self.nproc, self.nproc))
            # A memory hog is what the OOM killer takes, not the runner or sshd.
            set_oom_score(OOM_PACKAGE)
            if self.cgroup is not None:
                with contextlib.suppress(OSError):
                    fd = os.open(self.cgroup / "cgroup.procs", os.O_WRONLY)
                    try:
                        os.write(fd, b"0")  # "0": the writing process itself
                    finally:
                        os.close(fd)

    def _child_setup(self) -> None:
        """`_limits`, then become tester (untraced commands; strace -u does it otherwise)."""
        self._limits()
        assert self.uid is not None and self.gid is not None
        os.setgroups([])
        os.setgid(self.gid)
        os.setuid(self.uid)

    def _reader(
        self,
        phase: str,
        name: str,
        stream: IO[bytes],
        tail: collections.deque[str],
        budget: Budget,
        on_line: Callable[[str], None] | None,
    ) -> threading.Thread:
        def pump() -> None:
            kept = 0
            with contextlib.suppress(OSError, ValueError), stream:
                for raw, cut in iter_lines(stream, LINE_LIMIT):
                    text = raw.decode("utf-8", "replace")
                    tail.append(text + "\n")
                    kept += len(text) + 1
                    while kept > TAIL_BYTES and len(tail) > 1:
                        kept -= len(tail.popleft())
                    if on_line is not None:
                        on_line(text)
                    with budget.lock:
                        budget.output_dropped += cut
                    if budget.take_output(len(raw) + 1):
                        extra = {"truncated": cut} if cut else {}
                        self.emitter.emit("output", phase, stream=name, line=text, **extra)
                    else:
                        break
                drain(stream, tail, budget)

        thread = threading.Thread(target=pump, name=f"pump-{name}", daemon=True)
        thread.start()
        return thread

    def _tracer(
        self, phase: str, stream: IO[bytes], budget: Budget, main: MainExit
    ) -> threading.Thread:
        def pump() -> None:
            with contextlib.suppress(OSError, ValueError), stream:
                for raw, cut in iter_lines(stream, TRACE_LINE_LIMIT):
                    main.watch(raw)  # before the cap: the main process's end always counts
                    if not budget.take_trace(raw):
                        continue
                    text = raw.decode("utf-8", "replace")
                    pid_text, _, _ = text.partition(" ")
                    pid = int(pid_text) if pid_text.isdigit() else None
                    extra = {"truncated": cut} if cut else {}
                    self.emitter.emit("trace", phase, pid=pid, line=text, **extra)

        thread = threading.Thread(target=pump, name="pump-trace", daemon=True)
        thread.start()
        return thread

    # -- killing -------------------------------------------------------------------

    def kill_all(self) -> bool:
        """SIGKILL every process the package may own; True when none is left."""
        if self.cgroup is not None:
            with contextlib.suppress(OSError):  # cgroup.kill: Linux 5.14+, atomic
                (self.cgroup / "cgroup.kill").write_text("1")
        for _ in range(100):
            victims = self._victims()
            if not victims:
                return True
            for pid in victims:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            if self.uid is not None:
                self._kill_as_tester()
            time.sleep(0.02)
            reap_orphans()
        return not self._victims()

    def _kill_as_tester(self) -> None:
        # kill(-1) from a process running as tester hits all of tester's processes at
        # once, which a fork bomb cannot outrun; no exec, so RLIMIT_NPROC cannot stop it.
        assert self.uid is not None and self.gid is not None
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            try:
                os.setgroups([])
                os.setgid(self.gid)
                os.setuid(self.uid)
                os.kill(-1, signal.SIGKILL)
            finally:
                os._exit(0)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)

    def _victims(self) -> list[int]:
        me = os.getpid()
        parents: dict[int, int] = {}
        owned: set[int] = set()
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            pid = int(entry.name)
            try:
                stat = Path(f"/proc/{pid}/stat").read_bytes()
                status = Path(f"/proc/{pid}/status").read_text(errors="replace")
            except OSError:
                continue
            fields = stat[stat.rfind(b")") + 2 :].split()
            if fields[0] in (b"Z", b"X"):
                continue
            parents[pid] = int(fields[1])
            uid_line = next((ln for ln in status.splitlines() if ln.startswith("Uid:")), "")
            if self.uid is not None and uid_line.split()[1:2] == [str(self.uid)]:
                owned.add(pid)
        for pid in parents:
            seen: set[int] = set()
            cur = pid
            while cur in parents and cur not in seen:
                seen.add(cur)
                cur = parents[cur]
                if cur == me:
                    owned.add(pid)
                    break
        owned.discard(me)
        return sorted(owned)


class MainExit:
    """The end of a traced command's main process, as strace reports it.

    strace itself only exits when *every* tracee has: a background process the
    package left behind (a daemon, a fork bomb's children) would hold the command
    until the phase's timeout. The command ends when its main process does; the
    runner then kills whatever is left.
    """

    _EXIT = re.compile(rb"(\d+)\s+\+\+\+ (?:exited with (\d+)|killed by (SIG\w+))")

    def __init__(self) -> None:
        self.pid: int | None = None  # the first pid strace reports: the traced command
        self.returncode: int | None = None  # as Popen gives it: -signal when killed
        self.done = threading.Event()

    def watch(self, raw: bytes) -> None:
        if self.pid is None:
            head = raw.split(b" ", 1)[0]
            self.pid = int(head) if head.isdigit() else None
        if b"+++" not in raw or self.done.is_set():
            return
        found = self._EXIT.match(raw)
        if found is None or int(found.group(1)) != self.pid:
            return
        if found.group(2) is not None:
            self.returncode = int(found.group(2))
        else:
            name = found.group(3).decode()
            self.returncode = -signal.Signals[name] if name in signal.Signals.__members__ else -1
        self.done.set()


def wait_command(proc: subprocess.Popen[bytes], budget: Budget, main: MainExit) -> bool:
    """Wait until strace exits or the traced main process ends; False at the phase deadline."""
    while True:
        remaining = budget.remaining()
        try:
            proc.wait(timeout=min(remaining, 0.25))
            return True
        except subprocess.TimeoutExpired:
            if main.done.is_set():
                # Nothing left behind: strace ends on its own in a moment.
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=1.0)
                return True
            if remaining <= 0.25:
                return False


def drain(stream: IO[bytes], tail: collections.deque[str], budget: Budget) -> None:
    """Past the output cap: count the rest of ``stream`` as dropped, keep only its tail.

    Line by line, a 1 GiB flood takes minutes of guest CPU under TCG; big reads
    take seconds. The tail still holds what a crash printed last (the traceback).
    """
    read = getattr(stream, "read1", stream.read)  # read1: what is there, no waiting for more
    last = b""
    dropped = 0
    while chunk := read(DRAIN_CHUNK):
        dropped += len(chunk)
        last = (last + chunk)[-TAIL_BYTES:]
    with budget.lock:
        budget.output_dropped += dropped
    if last:
        tail.clear()
        tail.append(last.decode("utf-8", "replace"))


def memory_cgroup(path: Path, reserve: int) -> int:
    """Make ``path`` a cgroup v2 with ``memory.max`` = guest RAM - ``reserve``; returns the cap.

    Raises OSError (or ValueError) when cgroup v2 or its memory controller is missing.
    """
    root = path.parent
    if "memory" not in (root / "cgroup.controllers").read_text().split():
        raise OSError("no memory controller in cgroup v2")
    if "memory" not in (root / "cgroup.subtree_control").read_text().split():
        (root / "cgroup.subtree_control").write_text("+memory")
    total = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                total = int(line.split()[1]) * 1024
    cap = max(MEMORY_MIN, total - reserve)
    path.mkdir(exist_ok=True)
    (path / "memory.max").write_text(str(cap))
    with contextlib.suppress(OSError):
        (path / "memory.swap.max").write_text("0")
    return cap


def set_oom_score(value: int) -> None:
    """This process's ``oom_score_adj`` (inherited by children); no-op where not allowed."""
    with contextlib.suppress(OSError), open("/proc/self/oom_score_adj", "w") as f:
        f.write(str(value))


def oom_kills() -> int | None:
    """The kernel's count of OOM kills since boot (``/proc/vmstat``), if it has one."""
    try:
        with open("/proc/vmstat") as f:
            for line in f:
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
    except (OSError, ValueError):
        return None
    return None


class PhaseWatch:
    """Watches what a phase does to the guest as a whole: free disk space, OOM kills.

    A thread samples the space left to unprivileged users on the filesystem of the
    job's scratch dir every ``DISK_SAMPLE_S``; a package that fills the disk and
    deletes its files at once can slip between samples, one that leaves them cannot.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.free_min: int | None = None
        self.total: int | None = None
        self._oom_before = oom_kills()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="phase-watch", daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        try:
            st = os.statvfs(self.path)
        except OSError:
            return
        free = st.f_bavail * st.f_frsize
        self.total = st.f_blocks * st.f_frsize
        self.free_min = free if self.free_min is None else min(self.free_min, free)

    def _run(self) -> None:
        while True:
            self._sample()
            if self._stop.wait(DISK_SAMPLE_S):
                return

    def finish(self) -> dict[str, int]:
        """Stop sampling; the fields for ``phase_finished``."""
        self._stop.set()
        self._thread.join(timeout=5.0)
        self._sample()
        fields: dict[str, int] = {}
        if self.free_min is not None and self.total is not None:
            fields.update(disk_free_min=self.free_min, disk_total=self.total)
        after = oom_kills()
        if after is not None and self._oom_before is not None:
            fields["oom_kills"] = max(0, after - self._oom_before)
        return fields


def reap_orphans() -> None:
    """Collect exited orphans we became the parent of (we are a child subreaper)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


# ---------------------------------------------------------------------------- archives


def safe_extract(archive: Path, dest: Path) -> int:
    """Extract regular files and dirs of a hostile sdist; return how many members were refused.

    Links, devices, absolute names and ``..`` are refused: the runner is root, and a
    link planted in the tree could make it write outside ``dest``.
    """
    refused = 0

    def target(name: str) -> Path | None:
        parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]
        if not parts or name.startswith("/") or ".." in parts:
            return None
        return dest.joinpath(*parts)

    if archive.name.endswith(".zip"):
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                path = target(info.filename)
                mode = info.external_attr >> 16
                if path is None or (mode and mode & 0o170000 not in (0, 0o100000, 0o040000)):
                    refused += 1
                    continue
                if info.is_dir():
                    path.mkdir(parents=True, exist_ok=True)
                    continue
                path.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, path.open("wb") as out:
                    shutil.copyfileobj(src, out)
        return refused
    with tarfile.open(archive) as tf:
        for member in tf:
            path = target(member.name)
            if path is None or not (member.isreg() or member.isdir()):
                refused += 1
                continue
            if member.isdir():
                path.mkdir(parents=True, exist_ok=True)
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            data = tf.extractfile(member)
            if data is None:
                refused += 1
                continue
            with data, path.open("wb") as out:
                shutil.copyfileobj(data, out)
    return refused


def chown_tree(root: Path, uid: int, gid: int) -> None:
    os.chown(root, uid, gid)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            os.chown(os.path.join(dirpath, name), uid, gid, follow_symlinks=False)


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


# ---------------------------------------------------------------------------- the runner


class Runner:
    """Runs the job's phases in order and reports each one."""

    def __init__(self, job: dict[str, Any], job_dir: Path, opts: argparse.Namespace) -> None:
        self.job = job
        self.job_dir = job_dir
        self.opts = opts
        self.out = Emitter(sys.stdout)
        self.project = str(job.get("project") or "")
        self.version = str(job.get("version") or "")
        self.files = [str(f) for f in job.get("files") or [] if "/" not in str(f)]
        self.uid: int | None = None
        self.gid: int | None = None
        self.home = Path(opts.home or os.path.expanduser("~"))
        if not opts.no_drop_privileges:
            entry = pwd.getpwnam(opts.user)
            self.uid, self.gid = entry.pw_uid, entry.pw_gid
            self.home = Path(opts.home or entry.pw_dir)
        self.venv = Path(opts.venv or self.home / "venv")
        self.vpython = str(self.venv / "bin" / "python")
        self.scratch = Path(tempfile.mkdtemp(prefix="pyti-job-", dir=opts.scratch_dir))
        self.statuses: dict[str, str] = {}
        self.src_root: Path | None = None
        self.src_extracted = False
        strace = shutil.which("strace") if not opts.no_strace else None
        self.exec = Executor(
            self.out,
            user=opts.user,
            uid=self.uid,
            gid=self.gid,
            strace=strace,
            nproc=int(job.get("nproc_limit") or DEFAULT_NPROC),
        )

    # -- setup ---------------------------------------------------------------------

    def env(self) -> dict[str, str]:
        """A clean environment for package code: only what a login of tester would see."""
        user = self.opts.user if self.uid is not None else os.environ.get("USER", "root")
        env = {
            "PATH": f"{self.venv}/bin:/usr/local/bin:/usr/bin:/bin",
            "HOME": str(self.home),
            "USER": user,
            "LOGNAME": user,
            "LANG": "C.UTF-8",
            "TMPDIR": str(self.scratch / "tmp"),
            "VIRTUAL_ENV": str(self.venv),
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
            "PIP_NO_INPUT": "1",
            "PYTHONFAULTHANDLER": "1",
        }
        token = read_env_file(Path(self.opts.env_file)).get("PYTI_BAIT_TOKEN")
        if token:
            env["PYTI_BAIT_TOKEN"] = token
        return env

    def guest_setup(self) -> None:
        """Credit the job's entropy and set the clock: every restored VM starts alike."""
        fields: dict[str, Any] = {"errors": []}
        entropy = self.job.get("entropy")
        if entropy and not self.opts.no_guest_setup:
            try:
                data = bytes.fromhex(str(entropy))
                fields["entropy_bytes"] = len(data)
                fields["entropy_credited"] = credit_entropy(data)
            except (ValueError, OSError) as exc:
                fields["errors"].append(f"entropy: {exc}")
        epoch = self.job.get("epoch")
        if epoch is not None and not self.opts.no_guest_setup:
            try:
                time.clock_settime(time.CLOCK_REALTIME, float(epoch))
                fields["clock_set"] = True
            except (ValueError, TypeError, OSError) as exc:
                fields["errors"].append(f"clock: {exc}")
        if not self.opts.no_guest_setup and self.uid is not None:
            set_oom_score(OOM_RUNNER)
            try:
                fields["memory_cap"] = memory_cgroup(CGROUP, MEMORY_RESERVE)
                self.exec.cgroup = CGROUP
            except (OSError, ValueError) as exc:
                fields["errors"].append(f"memory cgroup: {exc}")
        self.out.emit("guest_setup", "setup", **fields)
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
        for sub in ("tmp", "src", "run"):
            (self.scratch / sub).mkdir(exist_ok=True)
        os.chmod(self.scratch, 0o755)  # noqa: S103 - tester must traverse it, nothing secret
        if self.uid is not None and self.gid is not None:
            chown_tree(self.scratch, self.uid, self.gid)
            # pip runs as tester and must read the release files; job.json stays root's.
            os.chmod(self.job_dir, 0o755)  # noqa: S103
            for name in self.files:
                with contextlib.suppress(OSError):
                    os.chmod(self.job_dir / name, 0o644)

    # -- phases ----------------------------------------------------------------------

    def run(self) -> None:
        started = time.monotonic()
        try:
            self.out.emit(
                "runner_started",
                "runner",
                version=RUNNER_VERSION,
                job_id=self.job.get("job_id"),
                python=sys.version.split()[0],
                traced=self.exec.strace is not None,
                privileges_dropped=self.uid is not None,
            )
            self.guest_setup()
            self.check_strace()
            for phase in [str(p) for p in self.job.get("phases") or PHASES]:
                self.run_phase(phase)
        finally:
            self.exec.kill_all()
            shutil.rmtree(self.scratch, ignore_errors=True)
            self.out.emit(
                "runner_finished",
                "runner",
                statuses=self.statuses,
                duration_s=round(time.monotonic() - started, 3),
            )

    def check_strace(self) -> None:
        strace = self.exec.strace
        if strace is None:
            self.out.log("setup", "warning", "strace unavailable: phases run untraced")
            return
        ex = self.exec
        # strace 6.13 (trixie) fails `-u NAME` with --seccomp-bpf (setreuid: ENOSYS, the
        # filter is in place before the tracer asked for seccomp stops): the first
        # combination that works is used; without seccomp-bpf, tracing is slower.
        variants = [["--seccomp-bpf", "-u", ex.user]]
        if ex.uid is not None:
            variants += [["--seccomp-bpf", "-u", f"{ex.uid}:{ex.gid}"], ["-u", ex.user]]
        errors: list[str] = []
        for opts in variants:
            used = opts if ex.uid is not None else opts[:-2]
            # With the real trace set: with every syscall traced strace skips seccomp.
            argv = [strace, "-f", "-q", *used, "-e", f"trace={TRACE_SET}", "-o", "/dev/null"]
            probe = subprocess.run(
                [*argv, "--", "true"],
                capture_output=True,
                check=False,
                timeout=30,
            )
            if probe.returncode == 0:
                ex.strace_opts = opts
                if errors:
                    self.out.log("setup", "warning", f"strace runs with {' '.join(used)}",
                                 detail=" | ".join(errors)[-500:])  # fmt: skip
                return
            errors.append(f"{' '.join(used)}: {probe.stderr.decode(errors='replace')[-200:]}")
        err = " | ".join(errors)[-500:]
        self.out.log("setup", "error", "strace does not work: phases run untraced", detail=err)
        ex.strace = None

    def run_phase(self, phase: str) -> None:
        timeouts = self.job.get("timeouts") or {}
        timeout = float(timeouts.get(phase) or DEFAULT_TIMEOUTS.get(phase, 300.0))
        cap = int(self.job.get("output_cap") or DEFAULT_OUTPUT_CAP)
        budget = Budget(
            deadline=time.monotonic() + timeout,
            output_cap=cap,
            trace_cap=int(self.job.get("trace_cap") or DEFAULT_TRACE_CAP),
        )
        self.out.emit("phase_started", phase, timeout_s=timeout)
        started = time.monotonic()
        watch = PhaseWatch(self.scratch)
        try:
            outcome = self.dispatch(phase, budget)
        except Exception as exc:  # the runner's own bug: report it, go on with the next phase
            outcome = Outcome("error", {"reason": f"{type(exc).__name__}: {exc}"[:1000]})
        resources = watch.finish()
        self.clear_tmp()
        self.statuses[phase] = outcome.status
        self.out.emit(
            "phase_finished",
            phase,
            status=outcome.status,
            duration_s=round(time.monotonic() - started, 3),
            traced=self.exec.strace is not None,
            **outcome.fields,
            **budget.counters(),
            **resources,
        )

    def clear_tmp(self) -> None:
        """Empty the package's TMPDIR: what one phase left (a full disk) must not fail the next."""
        tmp = self.scratch / "tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        with contextlib.suppress(OSError):
            tmp.mkdir()
            if self.uid is not None and self.gid is not None:
                os.chown(tmp, self.uid, self.gid)

    def dispatch(self, phase: str, budget: Budget) -> Outcome:
        needs_install = {"import", "tests"}
        if phase in needs_install and self.statuses.get("install", "passed") != "passed":
            return Outcome("skipped", {"reason": "install did not pass"})
        match phase:
            case "install":
                return self.install(budget)
            case "import":
                return self.import_modules(budget)
            case "tests":
                return self.tests(budget)
            case "quality":
                return self.quality(budget)
        return Outcome("skipped", {"reason": f"unknown phase {phase!r}"})

    def run_as_tester(self, argv: list[str], budget: Budget, *, phase: str, **kw: Any) -> Result:
        return self.exec.run(phase, argv, budget, env=self.env(), **kw)

    def install(self, budget: Budget) -> Outcome:
        if (self.venv / VENV_TEMPLATE_MARKER).is_file():
            # The image's pristine job venv (pytest included): every job restores
            # the snapshot disk, so it is as fresh as one made now, ~100 s sooner.
            return self.install_into_venv(budget)
        if self.venv.exists():
            shutil.rmtree(self.venv)
        made = self.run_as_tester(
            [self.opts.python, "-m", "venv", str(self.venv)],
            budget,
            phase="install",
            cwd=str(self.scratch),
            traced=False,
        )
        if made.returncode != 0 or made.timed_out:
            outcome = outcome_of(made)
            outcome.fields["reason"] = "cannot create the venv"
            if outcome.status == "failed":
                outcome.status = "error"
            return outcome
        return self.install_into_venv(budget)

    def install_into_venv(self, budget: Budget) -> Outcome:
        target, kind = self.install_target()
        pth_before = pth_files(self.site_packages())
        built: list[str] = []

        def watch(line: str) -> None:
            found = re.match(r"\s*Created wheel for ([^:\s]+)", line)
            if found:
                built.append(normalize(found.group(1)))

        argv = [*self.pip_install(), "--find-links", str(self.job_dir)]
        argv += ["--find-links", self.opts.wheels_dir, target]
        result = self.run_as_tester(
            argv, budget, phase="install", cwd=str(self.scratch / "run"), on_line=watch
        )
        self.out.emit(
            "install_summary",
            "install",
            target=os.path.basename(target),
            kind=kind,
            built_wheel=normalize(self.project) in built,
            built=built[:50],
        )
        # site.py runs every "import" line of a .pth at each interpreter start: the
        # classic way to keep running code after install. The trace cannot see content.
        after = pth_files(self.site_packages())
        changed = [info for name, info in sorted(after.items()) if pth_before.get(name) != info]
        self.out.emit("pth_files", "install", files=changed[:50])
        return outcome_of(result)

    def pip_install(self) -> list[str]:
        pip = [self.vpython, "-m", "pip", "install", "--no-index", "--no-cache-dir"]
        return [*pip, "--progress-bar", "off"]

    def install_target(self) -> tuple[str, str]:
        wheels = [f for f in self.files if f.endswith(".whl")]
        if wheels:
            return str(self.job_dir / wheels[0]), "wheel"
        sdist = self.sdist()
        if sdist is not None:
            return str(sdist), "sdist"
        spec = f"{self.project}=={self.version}" if self.version else self.project
        return spec, "requirement"

    def sdist(self) -> Path | None:
        for name in self.files:
            if name.endswith(SDIST_SUFFIXES):
                return self.job_dir / name
        return None

    def site_packages(self) -> Path | None:
        found = sorted(self.venv.glob("lib/python3*/site-packages"))
        return found[0] if found else None

    def modules(self) -> list[str]:
        """Top-level modules of the installed release, read from its dist-info (no code runs)."""
        site = self.site_packages()
        if site is None:
            return []
        want = normalize(self.project)
        for info in sorted(site.glob("*.dist-info")):
            name, _, _rest = info.name[: -len(".dist-info")].partition("-")
            if normalize(name) == want:
                return top_level_modules(info)
        return []

    def import_modules(self, budget: Budget) -> Outcome:
        modules = self.modules()
        if not modules:
            return Outcome("skipped", {"reason": "no top-level modules found", "modules": []})
        code = "import importlib, sys; importlib.import_module(sys.argv[1])"
        worst = Outcome("passed", {})
        results = []
        for module in modules:
            result = self.run_as_tester(
                [self.vpython, "-X", "faulthandler", "-c", code, module],
                budget,
                phase="import",
                cwd=str(self.scratch / "run"),
            )
            outcome = outcome_of(result)
            lines = [ln for ln in result.stderr_tail.splitlines() if ln.strip()]
            error = lines[-1][:500] if outcome.status != "passed" and lines else None
            self.out.emit(
                "import_result",
                "import",
                module=module,
                status=outcome.status,
                error=error,
                **outcome.fields,
            )
            results.append({"module": module, "status": outcome.status})
            if SEVERITY[outcome.status] > SEVERITY[worst.status]:
                worst = outcome
            if outcome.status == "timed_out":
                break  # the phase's time is spent
        worst.fields = {**worst.fields, "modules": results}
        return worst

    def sources(self) -> Path | None:
        """The extracted sdist's root, extracted once for tests and quality."""
        if self.src_extracted:
            return self.src_root
        self.src_extracted = True
        sdist = self.sdist()
        if sdist is None:
            return None
        dest = self.scratch / "src"
        refused = safe_extract(sdist, dest)
        if refused:
            self.out.log("tests", "warning", f"refused {refused} sdist members (links, paths)")
        if self.uid is not None and self.gid is not None:
            chown_tree(dest, self.uid, self.gid)
        entries = [p for p in dest.iterdir() if not p.name.startswith(".")]
        self.src_root = entries[0] if len(entries) == 1 and entries[0].is_dir() else dest
        return self.src_root

    def tests(self, budget: Budget) -> Outcome:
        root = self.sources()
        if root is None:
            return Outcome("skipped", {"reason": "no sdist: no tests to run"})
        targets = find_tests(root)
        if not targets:
            return Outcome("skipped", {"reason": "no tests found in the sdist"})
        site = self.site_packages()
        if site is None or not (site / "pytest").is_dir():
            got = self.run_as_tester(
                [*self.pip_install(), "--find-links", self.opts.wheels_dir, "pytest"],
                budget,
                phase="tests",
                cwd=str(self.scratch / "run"),
            )
            if got.returncode != 0 or got.timed_out:
                outcome = outcome_of(got)
                outcome.fields["reason"] = "cannot install pytest"
                if outcome.status == "failed":
                    outcome.status = "error"
                return outcome
        junit = self.scratch / "tmp" / "junit.xml"
        timeouts = self.job.get("timeouts") or {}
        phase_timeout = float(timeouts.get("tests") or DEFAULT_TIMEOUTS["tests"])
        dump_after = max(1, int(phase_timeout * 0.8))
        argv = [self.vpython, "-X", "faulthandler", "-m", "pytest", "-p", "no:cacheprovider"]
        argv += [f"--junitxml={junit}", "-q", "-o", f"faulthandler_timeout={dump_after}"]
        argv += ["--rootdir", str(root), *[str(t) for t in targets]]
        result = self.run_as_tester(argv, budget, phase="tests", cwd=str(root))
        if result.returncode == 4 and not result.timed_out:
            # A usage error is nearly always the project's addopts naming a plugin we did
            # not install (--cov...): retry once without them.
            argv[-len(targets) : -len(targets)] = ["-o", "addopts="]
            result = self.run_as_tester(argv, budget, phase="tests", cwd=str(root))
        summary = parse_junit(junit)
        self.out.emit("tests_summary", "tests", **summary)
        outcome = outcome_of(result)
        if outcome.status == "failed" and result.returncode == 5:
            return Outcome("skipped", {"reason": "pytest collected no tests", "exit_code": 5})
        return outcome

    def quality(self, budget: Budget) -> Outcome:
        ruff = Path(self.opts.tools_dir) / "bin" / "ruff"
        report: dict[str, Any] = {"available": ruff.exists(), "counts": {}, "files": 0}
        report["error"] = None
        paths: list[str] = []
        src = self.sources()
        if src is not None:
            paths = [str(src)]
        else:
            site = self.site_packages()
            if site is not None and self.statuses.get("install") == "passed":
                paths = [str(site / m) for m in self.modules() if (site / m).exists()]
                paths += [str(site / f"{m}.py") for m in self.modules()]
                paths = [p for p in paths if os.path.exists(p)]
        if not report["available"]:
            report["error"] = "ruff not installed"
        elif not paths:
            report["error"] = "no sources to check"
        else:
            report.update(self.ruff(str(ruff), paths, budget))
        self.out.emit("quality", "quality", ruff=report)
        if report["error"] is not None:
            return Outcome("skipped", {"reason": report["error"]})
        return Outcome("passed", {})

    def ruff(self, ruff: str, paths: list[str], budget: Budget) -> dict[str, Any]:
        base = [ruff, "check", "--isolated", "--no-cache", "--select", "E,W,F,B,S"]
        run_as: dict[str, Any] = {}
        if self.uid is not None:
            run_as = {"user": self.uid, "group": self.gid, "extra_groups": []}
        with tempfile.TemporaryFile() as out:
            try:
                subprocess.run(
                    [*base, "--output-format=json", "--exit-zero", *paths],
                    stdout=out,
                    stderr=subprocess.DEVNULL,
                    timeout=budget.remaining(),
                    check=False,
                    cwd=str(self.scratch),
                    env={"PATH": "/usr/bin:/bin", "HOME": str(self.home)},
                    **run_as,
                )
                listed = subprocess.run(
                    [*base, "--show-files", *paths],
                    capture_output=True,
                    timeout=budget.remaining(),
                    check=False,
                    cwd=str(self.scratch),
                    env={"PATH": "/usr/bin:/bin", "HOME": str(self.home)},
                    **run_as,
                )
            except subprocess.TimeoutExpired:
                return {"error": "ruff timed out"}
            if out.tell() > RUFF_OUTPUT_LIMIT:
                return {"error": "ruff output too large"}
            out.seek(0)
            try:
                diagnostics = json.loads(out.read() or b"[]")
            except ValueError as exc:
                return {"error": f"ruff output is not JSON: {exc}"}
        counts: collections.Counter[str] = collections.Counter()
        for diag in diagnostics if isinstance(diagnostics, list) else []:
            code = diag.get("code") if isinstance(diag, dict) else None
            counts[str(code) if code else "syntax-error"] += 1
        files = sum(1 for ln in listed.stdout.splitlines() if ln.strip())
        return {"counts": dict(counts), "files": files}


# ---------------------------------------------------------------------------- helpers


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=value lines of /etc/environment (quotes stripped); missing file → {}."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return {}
    env = {}
    for line in text.splitlines():
        key, sep, value = line.strip().removeprefix("export ").partition("=")
        if sep and key and not key.startswith("#"):
            env[key.strip()] = value.strip().strip("'\"")
    return env


def credit_entropy(data: bytes) -> bool:
    """Add ``data`` to the kernel pool and credit it; False when only mixed in (no credit)."""
    with open("/dev/urandom", "wb") as rnd:
        try:
            info = struct.pack("ii", len(data) * 8, len(data)) + data
            fcntl.ioctl(rnd.fileno(), RNDADDENTROPY, info)
            return True
        except OSError:
            rnd.write(data)
            return False


def top_level_modules(info: Path) -> list[str]:
    """Importable top-level names from top_level.txt, else from RECORD."""
    names: set[str] = set()
    top = info / "top_level.txt"
    if top.is_file():
        for line in top.read_text(errors="replace").splitlines()[:200]:
            names.add(line.strip().replace("/", "."))
    elif (info / "RECORD").is_file():
        for line in (info / "RECORD").read_text(errors="replace").splitlines()[:100_000]:
            path = line.split(",", 1)[0]
            first = path.split("/", 1)[0]
            if first.endswith((".dist-info", ".data", ".pth")) or first in ("..", "__pycache__"):
                continue
            if "/" in path:
                names.add(first)
            elif first.endswith((".py", ".so", ".pyd")):
                names.add(first.split(".", 1)[0])
    return sorted(n for n in names if n.isidentifier() and not n.startswith("_"))[:100]


def pth_files(site: Path | None) -> dict[str, dict[str, Any]]:
    """.pth files of a site-packages: name → {name, size, imports, lines (the import lines)}."""
    found: dict[str, dict[str, Any]] = {}
    if site is None:
        return found
    for path in sorted(site.glob("*.pth"))[:200]:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
            with os.fdopen(fd, "rb") as f:
                data = f.read(64 * 1024)
        except OSError:
            continue
        lines = data.decode("utf-8", "replace").splitlines()
        code = [ln[:300] for ln in lines if ln.startswith(("import ", "import\t"))]
        found[path.name] = {
            "name": path.name,
            "size": len(data),
            "imports": bool(code),
            "lines": code[:5],
        }
    return found


def find_tests(root: Path) -> list[Path]:
    """Where pytest should look: tests/ or test/ when the sdist has them, else its root."""
    for name in ("tests", "test"):
        if (root / name).is_dir():
            return [root / name]
    for count, path in enumerate(root.rglob("*.py")):
        if count > 20_000:
            break
        if path.name.startswith("test_") or path.name.endswith("_test.py"):
            return [root]
    return []


def parse_junit(path: Path) -> dict[str, Any]:
    """Counts from pytest's JUnit XML (written by package code: size-capped, defensive)."""
    summary: dict[str, Any] = {
        "collected": None,
        "passed": None,
        "failed": None,
        "errors": None,
        "skipped": None,
        "duration_s": None,
        "offline": True,
        "network_errors": 0,
        "junit": False,
    }
    try:
        if path.is_symlink() or path.stat().st_size > JUNIT_LIMIT:
            return summary
        root = ElementTree.parse(path).getroot()  # noqa: S314 - capped; expat resists entity bombs
    except (OSError, ElementTree.ParseError):
        return summary
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    duration = 0.0
    for suite in suites:
        for key in totals:
            with contextlib.suppress(ValueError):
                totals[key] += int(suite.get(key, "0"))
        with contextlib.suppress(ValueError):
            duration += float(suite.get("time", "0"))
    network = 0
    for case in root.iter("testcase"):
        for bad in [*case.iter("failure"), *case.iter("error")]:
            if NETWORK_ERROR.search((bad.get("message") or "") + (bad.text or "")[:20_000]):
                network += 1
                break
    passed = totals["tests"] - totals["failures"] - totals["errors"] - totals["skipped"]
    summary.update(
        collected=totals["tests"],
        passed=max(0, passed),
        failed=totals["failures"],
        errors=totals["errors"],
        skipped=totals["skipped"],
        duration_s=round(duration, 3),
        network_errors=network,
        junit=True,
    )
    return summary


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--job", required=True, help="job.json; release files sit next to it")
    parser.add_argument("--user", default="tester", help="who runs package code")
    parser.add_argument("--no-drop-privileges", action="store_true", help="run as ourselves")
    parser.add_argument("--home", help="HOME for package code (default: the user's)")
    parser.add_argument("--venv", help="job venv (default: HOME/venv)")
    parser.add_argument("--python", default=sys.executable, help="python that makes the venv")
    parser.add_argument("--wheels-dir", default="/opt/pyti/wheels")
    parser.add_argument("--tools-dir", default="/opt/pyti/tools")
    parser.add_argument("--scratch-dir", help="where the job's temp dirs go (default: TMPDIR)")
    parser.add_argument("--env-file", default="/etc/environment", help="source of bait env")
    parser.add_argument("--no-strace", action="store_true", help="run phases untraced")
    parser.add_argument("--no-guest-setup", action="store_true", help="skip entropy and clock")
    opts = parser.parse_args(argv)
    for name in ("job", "home", "venv", "wheels_dir", "tools_dir", "scratch_dir", "env_file"):
        # Commands run in other directories: a relative path would point elsewhere there.
        if getattr(opts, name):
            setattr(opts, name, os.path.abspath(getattr(opts, name)))
    return opts


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    emitter = Emitter(sys.stdout)
    # A SIGTERM from the slave unwinds through the finally blocks: the package's
    # processes are killed and runner_finished still goes out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    job_path = Path(opts.job)
    try:
        job = json.loads(job_path.read_text())
        if not isinstance(job, dict):
            raise ValueError("job.json is not an object")
        runner = Runner(job, job_path.parent, opts)
    except (OSError, ValueError, KeyError) as exc:
        emitter.emit("runner_error", "runner", level="error", message=str(exc)[:1000])
        emitter.emit("runner_finished", "runner", statuses={}, duration_s=0.0)
        return 2
    runner.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
