"""Traced command execution: package code as ``tester``, under strace, within the phase's caps.

Every command's process tree is killed when it ends or times out, so nothing a
package starts survives into the next command. A traced process still running when
the command's main process has exited (a detached or delayed payload: ``Popen(...,
start_new_session=True)``, a double fork, ``nohup``) is watched for ``LINGER_S``
more, so what it does a few seconds later is in the trace, then killed; each one is
reported in the phase's ``outlived`` list. Trace lines come from a FIFO in a
root-only directory that strace opens itself: package code can neither forge nor
stop the trace.
"""

from __future__ import annotations

import collections
import contextlib
import os
import re
import resource
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

from guest_runner.budget import Budget
from guest_runner.emit import Emitter
from guest_runner.limits import OOM_PACKAGE, set_oom_score
from guest_runner.outcome import Result
from guest_runner.streams import LINE_LIMIT, TAIL_BYTES, TRACE_LINE_LIMIT, drain, iter_lines

# Syscalls worth a finding, and the ones that show what a process is; no stat/read/write
# noise, which would multiply the trace volume of a plain pip install several times.
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
#: How long traced processes that outlive a command's main process are still watched
#: (traced, their actions recorded) before they are killed. A payload that sleeps a few
#: seconds after import or ``setup.py`` returned, under TCG (a new Python takes seconds
#: to start), acts within it; a command that leaves nothing behind never waits.
LINGER_S = 15.0
#: Processes per phase listed in ``outlived`` (a fork bomb leaves thousands).
OUTLIVED_MAX = 20
ARGV_MAX = 500


class Executor:
    """Runs package-touching commands: as ``tester``, under strace, with the phase's caps."""

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
        #: What ``Runner.check_strace`` found to work in this guest: strace's options (fast
        #: seccomp-bpf filtering), and how the traced command becomes tester: strace's own
        #: ``-u``, or a wrapper inside the trace (``setpriv``, `drop_wrapper`) where strace
        #: cannot combine ``-u`` with seccomp-bpf (6.13, trixie). The wrapper's own lines
        #: are left out of the trace (`WrapperLines`).
        self.strace_opts = ["--seccomp-bpf"]
        self.strace_user = ["-u", user] if uid is not None else []
        self.drop_wrapper: list[str] = []
        self.nproc = nproc
        self.cgroup = cgroup  # the package's memory-capped cgroup, when there is one
        self.linger_s = LINGER_S
        #: processes that outlived their command's main process, per phase (`take_outlived`)
        self.outlived: dict[str, list[dict[str, object]]] = {}

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
        stage: str | None = None,
        interrupt_grace: float = 0.0,
    ) -> Result:
        """Run argv to completion or the phase deadline; stream output and trace events.

        ``interrupt_grace`` > 0: that many seconds before the deadline the command's main
        process gets SIGINT, so that it can stop and say what it did so far (pytest writes
        its JUnit XML for the tests that ran); the result is timed out all the same.

        ``stage`` (e.g. ``"metadata"``) goes into every output and trace event as a
        field: a step inside the phase, the phase itself unchanged.
        """
        tag = {"stage": stage} if stage else {}
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
            prefix = [self.strace, "-f", "-q", *self.strace_opts, *self.strace_user]
            prefix += ["-s", "256", "-yy", "-e", "signal=none", "-e", f"trace={TRACE_SET}"]
            full = [*prefix, "-o", trace_path, "--", *self.drop_wrapper, *argv]
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
            threads.append(self._reader(phase, name, stream, tail, budget, on_line, tag))
        main = MainExit()
        if trace_fd >= 0:
            wrapper = WrapperLines(bool(self.drop_wrapper))
            stream = os.fdopen(trace_fd, "rb")
            threads.append(self._tracer(phase, stream, budget, main, wrapper, tag))
        timed_out = True

        def main_pid() -> int | None:
            return main.pid if use_strace else proc.pid

        try:
            timed_out = not wait_command(proc, budget, main, interrupt_grace, main_pid)
            if not timed_out and main.done.is_set() and proc.poll() is None:
                self._linger(phase, proc, budget)
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

    def take_outlived(self, phase: str) -> list[dict[str, object]]:
        """The processes of ``phase`` that outlived their command's main process; forgets them."""
        return self.outlived.pop(phase, [])

    def _linger(self, phase: str, proc: subprocess.Popen[bytes], budget: Budget) -> None:
        """The main process is gone but strace still has tracees: watch them a while.

        strace keeps tracing (and the tracer thread keeps emitting) what they do; the
        caller kills whatever is left afterwards. Each one is recorded with its argv and
        whether it ended by itself within the grace period (those started and ended
        inside it are only in the trace).
        """
        left = [pid for pid in self._victims() if pid != proc.pid]
        if not left:
            return
        argvs = {pid: _cmdline(pid) for pid in left[:OUTLIVED_MAX]}
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=max(0.0, min(self.linger_s, budget.remaining())))
        still = set(self._victims()) - {proc.pid}
        for pid in sorted(still - set(argvs))[: max(0, OUTLIVED_MAX - len(argvs))]:
            argvs[pid] = _cmdline(pid)  # started during the grace period, still running
        record = self.outlived.setdefault(phase, [])
        for pid, argv in argvs.items():
            if len(record) >= OUTLIVED_MAX:
                break
            record.append({"pid": pid, "argv": argv, "killed": pid in still})
        self.emitter.log(
            phase,
            "warning",
            f"{len(left)} process(es) outlived the command's main process",
            detail=" | ".join(" ".join(a) for a in argvs.values())[:1000],
        )

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
        tag: dict[str, str],
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
                    budget.drop_output(cut)
                    if budget.take_output(len(raw) + 1):
                        extra = {"truncated": cut} if cut else {}
                        self.emitter.emit("output", phase, stream=name, line=text, **extra, **tag)
                    else:
                        break
                drain(stream, tail, budget)

        thread = threading.Thread(target=pump, name=f"pump-{name}", daemon=True)
        thread.start()
        return thread

    def _tracer(
        self,
        phase: str,
        stream: IO[bytes],
        budget: Budget,
        main: MainExit,
        wrapper: WrapperLines,
        tag: dict[str, str],
    ) -> threading.Thread:
        def pump() -> None:
            with contextlib.suppress(OSError, ValueError), stream:
                for raw, cut in iter_lines(stream, TRACE_LINE_LIMIT):
                    main.watch(raw)  # before the cap: the main process's end always counts
                    if wrapper.hides(raw) or not budget.take_trace(raw):
                        continue
                    text = raw.decode("utf-8", "replace")
                    pid_text, _, _ = text.partition(" ")
                    pid = int(pid_text) if pid_text.isdigit() else None
                    extra = {"truncated": cut} if cut else {}
                    self.emitter.emit("trace", phase, pid=pid, line=text, **extra, **tag)

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
        # once, which a fork bomb cannot outrun.
        assert self.uid is not None and self.gid is not None
        run_as(self.uid, self.gid, lambda: os.kill(-1, signal.SIGKILL))

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


def setpriv_argv(setpriv: str, uid: int, gid: int) -> list[str]:
    """The wrapper that makes a traced command tester from inside the trace."""
    return [setpriv, f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--"]


class WrapperLines:
    """Hides the privilege-dropping wrapper's own trace lines (its library loads, its
    ``setresuid``/``setresgid``/``setgroups``, its ``PATH`` search): those of the first
    process until it has run its second program (the first is the wrapper itself), which
    is the command. What the command does is all there, as with strace's own ``-u``."""

    _EXECVE = re.compile(rb"^(\d+)\s+execve\(.*\)\s+= 0\b")

    def __init__(self, active: bool) -> None:
        self.active = active
        self.pid: bytes | None = None
        self.programs = 0

    def hides(self, raw: bytes) -> bool:
        if not self.active:
            return False
        head = raw.split(b" ", 1)[0]
        if self.pid is None:
            self.pid = head
        if head != self.pid:
            return False
        if self._EXECVE.match(raw):
            self.programs += 1
            if self.programs == 2:
                self.active = False
                return False
        return True


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


def wait_command(
    proc: subprocess.Popen[bytes],
    budget: Budget,
    main: MainExit,
    interrupt_grace: float = 0.0,
    main_pid: Callable[[], int | None] = lambda: None,
) -> bool:
    """Wait until strace exits or the traced main process ends; False at the phase deadline
    (and when it ended only because it was interrupted ``interrupt_grace`` s before it)."""
    interrupted = False
    while True:
        remaining = budget.remaining()
        if interrupt_grace > 0 and not interrupted and remaining <= interrupt_grace:
            pid = main_pid()
            if pid is not None:
                interrupted = True
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGINT)
        try:
            proc.wait(timeout=min(remaining, 0.25))
            return not interrupted
        except subprocess.TimeoutExpired:
            if main.done.is_set():
                # Nothing left behind: strace ends on its own in a moment.
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=1.0)
                return not interrupted
            if remaining <= 0.25:
                return False


def _cmdline(pid: int) -> list[str]:
    """A process's argv from /proc, cut to ``ARGV_MAX`` characters in all ([] once gone)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()[: ARGV_MAX * 2]
    except OSError:
        return []
    out: list[str] = []
    total = 0
    for part in raw.split(b"\0"):
        if not part or total >= ARGV_MAX:
            continue
        text = part.decode("utf-8", "replace")[: ARGV_MAX - total]
        out.append(text)
        total += len(text)
    return out


def reap_orphans() -> None:
    """Collect exited orphans we became the parent of (we are a child subreaper)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def run_as(uid: int | None, gid: int | None, work: Callable[[], object]) -> None:
    """``work()`` in a forked child that has become ``uid``/``gid`` (in this process when
    they are None: tests on a host).

    No exec, so no interpreter start-up and no RLIMIT_NPROC in the way; the child exits
    without running the runner's clean-up, whatever ``work`` raised.
    """
    if uid is None or gid is None:
        work()
        return
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            work()
        finally:
            os._exit(0)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)
