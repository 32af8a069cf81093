"""The run: guest set-up, then the job's phases in order, each reported; always a last line.

Whatever the package does, the runner keeps emitting well-formed events and ends
with ``runner_finished``: package code only ever runs in child processes that are
traced, time-limited, output-capped and killed (the whole tree) at the end of
every command. A runner bug in a phase gives that phase status ``error``; the
next phase still runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from guest_runner.budget import Budget
from guest_runner.emit import Emitter
from guest_runner.executor import TRACE_SET, setpriv_argv
from guest_runner.guest_setup import set_up_guest
from guest_runner.jobdoc import JobDocument
from guest_runner.limits import PhaseWatch
from guest_runner.network import NetworkLog
from guest_runner.options import Options, parse_args
from guest_runner.outcome import Outcome
from guest_runner.phases import imports, install, quality, tests
from guest_runner.workspace import Workspace

RUNNER_VERSION = 1
Phase = Callable[[Workspace, Budget], Outcome]
PHASE_RUNNERS: dict[str, Phase] = {
    "install": install.run,
    "import": imports.run,
    "tests": tests.run,
    "quality": quality.run,
}
#: Phases that only make sense once the release is installed.
NEEDS_INSTALL = frozenset({"import", "tests"})


class Runner:
    """Runs the job's phases in order and reports each one."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self.out = ws.out
        # The sinkhole's evidence (network events); route changes only in a real guest.
        self.net = NetworkLog(ws.out, manage=ws.opts.guest_setup)

    def run(self) -> None:
        """Every phase of the job; ``runner_finished`` goes out even on SIGTERM."""
        ws = self.ws
        started = time.monotonic()
        try:
            self.out.emit(
                "runner_started",
                "runner",
                version=RUNNER_VERSION,
                job_id=ws.job.job_id,
                python=sys.version.split()[0],
                traced=ws.exec.strace is not None,
                privileges_dropped=ws.uid is not None,
            )
            set_up_guest(ws)
            self.check_strace()
            for phase in ws.job.phases:
                self.run_phase(phase)
        finally:
            ws.exec.kill_all()
            self.net.drain()
            shutil.rmtree(ws.scratch, ignore_errors=True)
            self.out.emit(
                "runner_finished",
                "runner",
                statuses=ws.statuses,
                duration_s=round(time.monotonic() - started, 3),
            )

    def check_strace(self) -> None:
        ex = self.ws.exec
        strace = ex.strace
        if strace is None:
            self.out.log("setup", "warning", "strace unavailable: phases run untraced")
            return
        # strace 6.13 (trixie) fails `-u NAME` with --seccomp-bpf (setreuid: ENOSYS, the
        # filter is in place before the tracer asked for seccomp stops). Then the command
        # becomes tester inside the trace instead (setpriv, its lines left out), which
        # keeps seccomp-bpf: pytest's start-up took 3.3 s that way against 8.3 s under
        # plain `-u` (2.9 s untraced), in a trixie guest under TCG. The first combination
        # that works, and that really runs the command as tester, is used.
        seccomp = ["--seccomp-bpf"]
        setpriv = shutil.which("setpriv")
        variants: list[tuple[list[str], list[str], list[str]]]  # options, -u, wrapper
        if ex.uid is None or ex.gid is None:  # tests on a host: no user to become
            variants = [(seccomp, [], [])]
        else:
            variants = [(seccomp, ["-u", ex.user], [])]
            if setpriv is not None:
                variants.append((seccomp, [], setpriv_argv(setpriv, ex.uid, ex.gid)))
            variants += [(seccomp, ["-u", f"{ex.uid}:{ex.gid}"], []), ([], ["-u", ex.user], [])]
        errors: list[str] = []
        for opts, user, wrapper in variants:
            # With the real trace set: with every syscall traced strace skips seccomp.
            argv = [strace, "-f", "-q", *opts, *user, "-e", f"trace={TRACE_SET}", "-o", "/dev/null"]
            probe = subprocess.run(
                [*argv, "--", *wrapper, "id", "-u"], capture_output=True, check=False, timeout=30
            )
            said = " ".join([*opts, *user, *wrapper[:1]])
            as_tester = ex.uid is None or probe.stdout.decode().strip() == str(ex.uid)
            if probe.returncode == 0 and as_tester:
                ex.strace_opts, ex.strace_user, ex.drop_wrapper = opts, user, wrapper
                if errors:
                    level = "info" if opts else "warning"  # without seccomp-bpf: slower
                    self.out.log("setup", level, f"strace runs with {said}",
                                 detail=" | ".join(errors)[-500:])  # fmt: skip
                return
            out = (probe.stderr or probe.stdout).decode(errors="replace")
            errors.append(f"{said}: {out[-200:]}")
        err = " | ".join(errors)[-500:]
        self.out.log("setup", "error", "strace does not work: phases run untraced", detail=err)
        ex.strace = None

    def run_phase(self, phase: str) -> None:
        ws = self.ws
        timeout = ws.job.timeout(phase)
        budget = Budget(
            deadline=time.monotonic() + timeout,
            output_cap=ws.job.output_cap,
            trace_cap=ws.job.trace_cap,
        )
        self.out.emit("phase_started", phase, timeout_s=timeout)
        started = time.monotonic()
        watch = PhaseWatch(ws.scratch)
        self.net.begin(phase)
        try:
            outcome = self.dispatch(phase, budget)
        except Exception as exc:  # the runner's own bug: report it, go on with the next phase
            outcome = Outcome("error", {"reason": f"{type(exc).__name__}: {exc}"[:1000]})
        finally:
            self.net.end()
        resources = watch.finish()
        outlived = ws.exec.take_outlived(phase)
        if outlived:
            outcome.fields["outlived"] = outlived
        self.clear_tmp()
        ws.statuses[phase] = outcome.status
        self.out.emit(
            "phase_finished",
            phase,
            status=outcome.status,
            duration_s=round(time.monotonic() - started, 3),
            traced=ws.exec.strace is not None,
            **outcome.fields,
            **budget.counters(),
            **resources,
        )

    def clear_tmp(self) -> None:
        """Empty the package's TMPDIR: what one phase left (a full disk) must not fail the next."""
        ws = self.ws
        tmp = ws.scratch / "tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        with contextlib.suppress(OSError):
            tmp.mkdir()
            if ws.uid is not None and ws.gid is not None:
                os.chown(tmp, ws.uid, ws.gid)

    def dispatch(self, phase: str, budget: Budget) -> Outcome:
        if phase in NEEDS_INSTALL and self.ws.statuses.get("install", "passed") != "passed":
            return Outcome("skipped", {"reason": "install did not pass"})
        return PHASE_RUNNERS[phase](self.ws, budget)


def load_job(path: Path) -> JobDocument:
    """The job document at ``path``; OSError or ValueError (JobDocumentError) when unusable."""
    return JobDocument.from_json(json.loads(path.read_text()))


def main(argv: list[str] | None = None) -> int:
    """Run the job named by ``--job``; 0 when the phases ran, 2 when the job was unusable."""
    opts: Options = parse_args(argv)
    emitter = Emitter(sys.stdout)
    # A SIGTERM from the slave unwinds through the finally blocks: the package's
    # processes are killed and runner_finished still goes out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    # A runner started with SIGINT ignored (nohup, or a background job of a
    # non-interactive shell) would pass that on to every command it starts, and pytest
    # would never stop at the SIGINT before its deadline to write its JUnit XML. A
    # handled signal is reset to its default by exec, an ignored one is not.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    job_path = Path(opts.job)
    try:
        job = load_job(job_path)
        ws = Workspace(job, job_path.parent, opts, emitter)
    except (OSError, ValueError, KeyError) as exc:
        emitter.emit("runner_error", "runner", level="error", message=str(exc)[:1000])
        emitter.emit("runner_finished", "runner", statuses={}, duration_s=0.0)
        return 2
    Runner(ws).run()
    return 0
