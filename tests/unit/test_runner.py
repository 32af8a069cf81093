"""The guest runner, run on the host as a subprocess against small packages built here.

The runner is meant for the guest (root, user ``tester``, ``/opt/pyti``); on the host
it runs with ``--no-drop-privileges`` and tmp paths, so these tests never touch the
host's users or clock. It runs as the guest runs it: the zipapp the image builder
makes (``python3 -I -S runner.pyz``). Build dependencies come from an in-tree PEP 517
backend and pytest from wheels repacked out of our own venv: nothing is downloaded.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from guest_runner.bundle import build_pyz
from guest_runner.jobdoc import JobDocument
from slave.findings import Analyser, Context, Finding, verdict
from tests.fakes.dists import build_sdist, build_wheel, dedent, make_project

VENV = Path(sys.prefix)


def _strace_works() -> bool:
    strace = shutil.which("strace")
    if strace is None:
        return False
    probe = [strace, "-f", "-q", "--seccomp-bpf", "-o", "/dev/null", "--", "true"]
    return subprocess.run(probe, capture_output=True, check=False, timeout=30).returncode == 0


pytestmark = pytest.mark.skipif(not _strace_works(), reason="needs a working strace (ptrace)")

# A build backend small enough to ship in the sdist (PEP 517 backend-path): building
# the sdist then needs nothing from the wheelhouse, and pip still "builds a wheel".
BACKEND = dedent(
    """
    import base64, hashlib, os, zipfile

    NAME, VERSION = "{module}", "{version}"


    def get_requires_for_build_wheel(config_settings=None):
        return []


    def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
        dist_info = f"{{NAME}}-{{VERSION}}.dist-info"
        files = {{}}
        for dirpath, _, names in os.walk(NAME):
            for name in names:
                if name.endswith(".py"):
                    path = os.path.join(dirpath, name)
                    with open(path, "rb") as f:
                        files[path] = f.read()
        files[dist_info + "/METADATA"] = (
            f"Metadata-Version: 2.1\\nName: {{NAME}}\\nVersion: {{VERSION}}\\n".encode()
        )
        files[dist_info + "/WHEEL"] = (
            b"Wheel-Version: 1.0\\nGenerator: t\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n"
        )
        record = []
        for path, data in files.items():
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            record.append(f"{{path}},sha256={{digest.decode()}},{{len(data)}}")
        record.append(dist_info + "/RECORD,,")
        files[dist_info + "/RECORD"] = ("\\n".join(record) + "\\n").encode()
        filename = f"{{NAME}}-{{VERSION}}-py3-none-any.whl"
        with zipfile.ZipFile(os.path.join(wheel_directory, filename), "w") as zf:
            for path, data in files.items():
                zf.writestr(path, data)
        return filename
    """
)
PYPROJECT = dedent(
    """
    [build-system]
    requires = []
    build-backend = "backend"
    backend-path = ["."]

    [project]
    name = "{module}"
    version = "{version}"
    """
)

Events = list[dict[str, Any]]
BAIT = "bait-1234567890"


def host_context(tmp_path: Path) -> Context:
    """What is normal for a runner run on this host: HOME, venv and scratch under tmp_path."""
    return Context(
        home=str(tmp_path),
        venv=str(tmp_path / "venv"),
        temp_dirs=(str(tmp_path / "scratch"),),
        trusted_dirs=(sys.base_prefix,),
        bait_token=BAIT,
    )


def findings_of(events: Events, context: Context) -> list[Finding]:
    analyser = Analyser(context)
    for event in events:
        analyser.feed_event(event)
    return analyser.findings


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """pytest and its dependencies as wheels, repacked from the installed distributions."""
    dest = tmp_path_factory.mktemp("wheels")
    skip = {"RECORD", "METADATA", "WHEEL", "INSTALLER", "REQUESTED", "direct_url.json"}
    for name in (
        "pytest",
        "iniconfig",
        "packaging",
        "pluggy",
        "pygments",
        "hypothesis",
        "sortedcontainers",
    ):
        dist = importlib.metadata.distribution(name)
        files: dict[str, str | bytes] = {}
        for item in dist.files or []:
            path = str(item)
            if path.startswith("..") or "__pycache__" in path or Path(path).name in skip:
                continue
            files[path] = Path(str(dist.locate_file(item))).read_bytes()
        build_wheel(
            dest, dist.metadata["Name"], dist.version, files, requires_dist=dist.requires or []
        )
    return dest


@pytest.fixture(scope="module")
def runner_pyz(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """The command that runs the runner, as the guest does: the zipapp, isolated, no site."""
    pyz = build_pyz(tmp_path_factory.mktemp("runner") / "runner.pyz")
    return [sys.executable, "-I", "-S", str(pyz)]


RunJob = Callable[..., Events]


@pytest.fixture
def run_job(tmp_path: Path, wheelhouse: Path, runner_pyz: list[str]) -> RunJob:
    """Write job.json next to the given files, run the runner, return its events."""

    def run(
        files: list[Path],
        *,
        project: str = "demo",
        phases: tuple[str, ...] = ("install", "import", "tests"),
        timeouts: dict[str, float] | None = None,
        output_cap: int = 1_000_000,
        tools_dir: Path = VENV,
        runner_timeout: float = 240.0,
        extra: dict[str, Any] | None = None,
        test_requirements: tuple[str, ...] = (),
        job_wheels: tuple[Path, ...] = (),
        build_envs_dir: Path | None = None,
        sigint_ignored: bool = False,
    ) -> Events:
        job_dir = tmp_path / "job"
        job_dir.mkdir(exist_ok=True)
        for f in [*files, *job_wheels]:  # job_wheels: the job's wheelhouse, not release files
            if f.parent != job_dir:
                shutil.copy(f, job_dir / f.name)
        job = JobDocument(
            job_id="t1",
            project=project,
            version="0.1",
            files=tuple(f.name for f in files),
            phases=phases,
            timeouts=timeouts or {"install": 120, "import": 60, "tests": 120, "quality": 60},
            output_cap=output_cap,
            test_requirements=test_requirements,
        )
        (job_dir / "job.json").write_text(json.dumps({**job.to_json(), **(extra or {})}))
        env_file = tmp_path / "environment"
        env_file.write_text(f'PYTI_BAIT_TOKEN="{BAIT}"\n')
        argv = [*runner_pyz, "--job", str(job_dir / "job.json")]
        argv += ["--no-drop-privileges", "--venv", str(tmp_path / "venv")]
        argv += ["--home", str(tmp_path), "--wheels-dir", str(wheelhouse)]
        (tmp_path / "scratch").mkdir(exist_ok=True)
        argv += ["--tools-dir", str(tools_dir), "--scratch-dir", str(tmp_path / "scratch")]
        argv += ["--env-file", str(env_file)]
        # No prepared build environments unless a test makes some (the image's are absent).
        argv += ["--build-envs-dir", str(build_envs_dir or tmp_path / "no-build-envs")]
        proc = subprocess.run(
            argv,
            capture_output=True,
            timeout=runner_timeout,
            check=False,
            cwd=tmp_path,
            # as under nohup or a non-interactive shell's background job
            preexec_fn=_ignore_sigint if sigint_ignored else None,
        )
        assert proc.returncode == 0, proc.stderr.decode()[-2000:]
        events = [json.loads(line) for line in proc.stdout.decode().splitlines()]
        assert all("event" in e and "phase" in e for e in events)
        assert events[-1]["event"] == "runner_finished"
        return events

    return run


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def project(tmp_path: Path, **kw: Any) -> Path:
    """An sdist built by the in-tree backend, with the given package/test bodies."""
    extra = {"backend.py": BACKEND.format(module="demo", version="0.1")}
    extra["pyproject.toml"] = PYPROJECT.format(module="demo", version="0.1")
    extra.update(kw.pop("extra_files", {}))
    proj = make_project(tmp_path / "dist", "demo", "0.1", wheel=False, extra_files=extra, **kw)
    assert proj.sdist is not None
    return proj.sdist


def import_job(run_job: RunJob, tmp_path: Path, body: str, **kw: Any) -> Events:
    """Install and import (only) an sdist whose package is ``body``."""
    return run_job([project(tmp_path, package_body=body)], phases=("install", "import"), **kw)


def finished(events: Events, phase: str) -> dict[str, Any]:
    return next(e for e in events if e["event"] == "phase_finished" and e["phase"] == phase)


def one(events: Events, name: str) -> dict[str, Any]:
    found = [e for e in events if e["event"] == name]
    assert len(found) == 1, found
    return found[0]


def test_wheels_install_with_uv_sdists_build_with_pip(tmp_path: Path, run_job: RunJob) -> None:
    """The image's uv installs a release's wheel (traced: uv's own exec is in the trace); an
    sdist is built by pip, its build backend traced, and the tests phase's pytest comes
    with uv; without uv, pip installs the wheel and refuses one whose Requires-Python
    excludes this Python (with uv the host refuses it before the guest starts)."""
    sdist = project(tmp_path)
    wheel = build_wheel(tmp_path / "whl", "demo", "0.1", {"demo/__init__.py": "X = 1\n"})
    refuses = build_wheel(tmp_path / "old", "demo", "0.1", {"demo/__init__.py": "X = 1\n"},
                          requires_python="<3")  # fmt: skip
    no_tools = tmp_path / "no-tools"
    no_tools.mkdir()
    pip_runs, uv_runs = '"-m", "pip", "install"', '/bin/uv", "pip", "install"'
    cases = [
        (wheel, ("install",), VENV, uv_runs),
        (sdist, ("install", "tests"), VENV, pip_runs),
        (wheel, ("install",), no_tools, pip_runs),
    ]
    for target, phases, tools, first in cases:
        events = run_job([target], phases=phases, tools_dir=tools)
        assert finished(events, "install")["status"] == "passed"
        assert one(events, "install_summary")["built_wheel"] is (target == sdist)
        execs = [e["line"] for e in events if e["event"] == "trace" and "execve(" in e["line"]]
        installs = [line for line in execs if pip_runs in line or uv_runs in line]
        assert first in installs[0], (first, installs[:2])
        if target == sdist:
            assert any("_in_process.py" in line for line in execs), "build backend untraced"
            assert any(uv_runs in line for line in installs), installs
        shutil.rmtree(tmp_path / "venv")
        shutil.rmtree(tmp_path / "job")
    events = run_job([refuses], phases=("install",), tools_dir=no_tools)
    assert finished(events, "install")["status"] == "failed"


def test_clean_package_passes_every_phase(tmp_path: Path, run_job: RunJob) -> None:
    """A clean sdist builds, installs, imports, passes its tests and gets linted, traced."""
    body = "import demo\n\n\ndef test_a():\n    assert demo.__version__ == '0.1'\n\n\n"
    body += "def test_b():\n    assert True\n"
    events = run_job(
        [project(tmp_path, test_body=body)], phases=("install", "import", "tests", "quality")
    )
    statuses = {p: finished(events, p)["status"] for p in ("install", "import", "tests")}
    assert statuses == {"install": "passed", "import": "passed", "tests": "passed"}
    install = one(events, "install_summary")
    assert install["kind"] == "sdist"
    assert install["built_wheel"] is True
    assert one(events, "import_result")["module"] == "demo"
    summary = one(events, "tests_summary")
    assert summary["collected"] == 2
    assert summary["passed"] == 2
    assert (summary["failed"], summary["errors"], summary["skipped"]) == (0, 0, 0)
    assert summary["offline"] is True
    quality = one(events, "quality")
    assert quality["ruff"]["available"] is True
    assert quality["ruff"]["error"] is None
    assert quality["ruff"]["files"] >= 3
    traces = [e for e in events if e["event"] == "trace"]
    assert any("execve(" in e["line"] for e in traces if e["phase"] == "install")
    assert any("execve(" in e["line"] for e in traces if e["phase"] == "tests")
    assert all(isinstance(e["pid"], int) for e in traces)
    assert one(events, "runner_finished")["statuses"]["tests"] == "passed"
    found = findings_of(events, host_context(tmp_path))
    assert [f for f in found if f.severity != "info"] == []


def test_failing_test_is_counted(tmp_path: Path, run_job: RunJob) -> None:
    """A failing test makes the tests phase fail, with pass/fail/skip counts from JUnit."""
    body = dedent(
        """
        import pytest


        def test_ok():
            pass


        def test_bad():
            assert 1 == 2


        @pytest.mark.skip(reason="no")
        def test_skipped():
            pass


        def test_net():
            import socket
            # what a lookup gives in the guest, without trying one here
            raise socket.gaierror(-3, "Temporary failure in name resolution")
        """
    )
    events = run_job([project(tmp_path, test_body=body)])
    tests = finished(events, "tests")
    assert tests["status"] == "failed"
    assert tests["exit_code"] == 1
    summary = one(events, "tests_summary")
    assert summary["collected"] == 4
    assert (summary["passed"], summary["failed"], summary["skipped"]) == (1, 2, 1)
    assert summary["network_errors"] == 1


def test_suite_past_its_budget_is_interrupted_and_says_what_ran(
    tmp_path: Path, run_job: RunJob
) -> None:
    """pytest gets SIGINT shortly before the deadline: timed out, with the counts of the tests
    that ran (its JUnit XML), and nothing of the suite left running."""
    body = dedent(
        """
        import time


        def test_a():
            pass


        def test_b():
            pass


        def test_c_hangs():
            time.sleep(300)


        def test_d():
            pass
        """
    )
    started = time.monotonic()
    # Started with SIGINT ignored, as by nohup or a background job of a non-interactive
    # shell (how a CI run started this way failed here): the runner must not pass that on.
    events = run_job(
        [project(tmp_path, test_body=body)],
        timeouts={"install": 120, "tests": 40},
        sigint_ignored=True,
    )
    tests = finished(events, "tests")
    assert tests["status"] == "timed_out"
    summary = one(events, "tests_summary")
    assert (summary["passed"], summary["failed"]) == (2, 0), summary
    assert summary["junit"] is True
    assert summary["running"].endswith("::test_c_hangs"), summary
    assert time.monotonic() - started < 120


def test_suite_stopped_for_good_is_counted_from_its_progress(
    tmp_path: Path, run_job: RunJob
) -> None:
    """A test that ignores SIGINT keeps pytest from writing its JUnit XML: the counts come
    from the plugin's progress file, the test it was in is named, and a failure that is
    only a speed check is told apart from its text there; the first real failure is named."""
    body = dedent(
        """
        import signal
        import time


        def test_a():
            pass


        def test_b_fails():
            raise AssertionError("parse took 1.99s, expected sub-second")


        def test_b_fails_for_real():
            raise KeyError("missing")


        def test_c_ignores_sigint():
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            time.sleep(300)


        def test_d():
            pass
        """
    )
    events = run_job([project(tmp_path, test_body=body)], timeouts={"install": 120, "tests": 40})
    assert finished(events, "tests")["status"] == "timed_out"
    summary = one(events, "tests_summary")
    assert summary["junit"] is False
    counts = [summary[k] for k in ("collected", "passed", "failed", "errors", "skipped")]
    assert counts == [3, 1, 2, 0, 0], summary
    assert summary["running"].endswith("::test_c_ignores_sigint"), summary
    assert summary["speed_failures"]["count"] == 1, summary
    assert summary["speed_failures"]["tests"][0].endswith("::test_b_fails"), summary
    assert summary["offline_failures"]["count"] == 0, summary
    # the real failure is named with its exception's message (the plugin's M line)
    first = summary["first_failure"]
    assert first["test"].endswith("::test_b_fails_for_real"), summary
    assert first["error"] == "KeyError: 'missing'", summary


def test_hypothesis_deadlines_are_off_and_plugins_have_the_cache(
    tmp_path: Path, run_job: RunJob
) -> None:
    """A project profile with a deadline (attrs: 400 ms) fails examples that are only slow
    in an emulated guest: the tests phase's plugin lifts the deadline after collection.
    Plugins that read ``config.cache`` (pytest-memray) find it."""
    conftest = dedent(
        """
        from datetime import timedelta

        from hypothesis import settings


        def pytest_configure(config):
            settings.register_profile("strict", deadline=timedelta(milliseconds=1))
            settings.load_profile("strict")


        def pytest_runtest_makereport(item, call):
            assert item.config.cache.get("pyti/probe", None) is None  # as pytest-memray does
        """
    )
    body = dedent(
        """
        import time

        from hypothesis import given, strategies as st


        @given(st.integers())
        def test_slow_example(x):
            time.sleep(0.02)
        """
    )
    sdist = project(tmp_path, test_body=body, extra_files={"tests/conftest.py": conftest})
    events = run_job([sdist], test_requirements=("hypothesis",))
    summary = one(events, "tests_summary")
    output = [e["line"] for e in events if e["event"] == "output" and e["phase"] == "tests"]
    assert (summary["passed"], summary["failed"]) == (1, 0), output
    assert finished(events, "tests")["status"] == "passed"


def test_install_failure_skips_later_phases(tmp_path: Path, run_job: RunJob) -> None:
    """A release whose dependency cannot be found fails install; import and tests are skipped."""
    whl = build_wheel(
        tmp_path / "dist", "demo", "0.1", {"demo/__init__.py": ""}, requires_dist=["nosuchdep"]
    )
    events = run_job([whl])
    assert finished(events, "install")["status"] == "failed"
    assert finished(events, "import")["status"] == "skipped"
    assert finished(events, "tests")["status"] == "skipped"
    assert one(events, "install_summary")["kind"] == "wheel"


def test_segfault_in_a_test_is_a_crash(tmp_path: Path, run_job: RunJob) -> None:
    """A test that segfaults via ctypes: tests phase crashed, SIGSEGV, faulthandler traceback;
    the summary counts the test before it and names the one pytest died in."""
    body = "import ctypes\n\n\ndef test_a():\n    pass\n\n\n"
    body += "def test_boom():\n    ctypes.string_at(0)\n"
    events = run_job([project(tmp_path, test_body=body)])
    tests = finished(events, "tests")
    assert tests["status"] == "crashed"
    assert tests["signal"] == 11
    assert tests["signal_name"] == "SIGSEGV"
    assert "Fatal Python error: Segmentation fault" in tests["traceback"]
    assert "test_boom" in tests["traceback"]
    summary = one(events, "tests_summary")
    assert (summary["junit"], summary["passed"], summary["failed"]) == (False, 1, 0), summary
    assert summary["running"].endswith("::test_boom"), summary


def test_timeout_kills_every_process(tmp_path: Path, run_job: RunJob) -> None:
    """An import that hangs (and starts an escaped child) times out; no process survives."""
    pidfile = tmp_path / "child.pid"
    body = dedent(
        f"""
        import subprocess, time
        child = subprocess.Popen(["sleep", "300"], start_new_session=True)
        open({str(pidfile)!r}, "w").write(str(child.pid))
        time.sleep(300)
        """
    )
    events = import_job(run_job, tmp_path, body, timeouts={"install": 120, "import": 4})
    imp = finished(events, "import")
    assert imp["status"] == "timed_out"
    assert one(events, "import_result")["status"] == "timed_out"
    child = int(pidfile.read_text())
    assert not Path(f"/proc/{child}").exists() or _is_zombie(child)


def test_leftover_process_does_not_hold_the_phase(tmp_path: Path, run_job: RunJob) -> None:
    """An import that returns but leaves a child behind ends with it; the child is killed."""
    pidfile = tmp_path / "child.pid"
    body = dedent(
        f"""
        import subprocess
        child = subprocess.Popen(["sleep", "300"], start_new_session=True)
        open({str(pidfile)!r}, "w").write(str(child.pid))
        """
    )
    events = import_job(run_job, tmp_path, body, timeouts={"install": 120, "import": 60})
    imp = finished(events, "import")
    assert imp["status"] == "passed", imp
    assert imp["duration_s"] < 30  # not held until the 60 s timeout by strace's leftover tracee
    assert one(events, "import_result")["exit_code"] == 0
    child = int(pidfile.read_text())
    assert not Path(f"/proc/{child}").exists() or _is_zombie(child)
    assert imp["outlived"] == [{"pid": child, "argv": ["sleep", "300"], "killed": True}]
    found = findings_of(events, host_context(tmp_path))
    assert [
        (f.rule, f.phase, f.severity, f.target) for f in found if f.rule.startswith("proc.o")
    ] == [("proc.outlived_phase", "import", "medium", "sleep 300")]


def test_detached_delayed_payload_is_watched(tmp_path: Path, run_job: RunJob) -> None:
    """A detached child that steals seconds after the import returned is traced, then reported."""
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "id_rsa").write_text("bait key\n")
    payload = (
        "import os, socket, time; time.sleep(3); "
        "open(os.path.expanduser('~/.ssh/id_rsa')).read(); "
        "s = socket.socket(); s.settimeout(2); s.connect_ex(('127.0.0.1', 9))"
    )
    body = dedent(
        f"""
        import os, subprocess, sys
        if os.fork() == 0:  # double fork: the grandchild is nobody's child
            subprocess.Popen([sys.executable, "-c", {payload!r}], start_new_session=True)
            os._exit(0)
        """
    )
    events = import_job(run_job, tmp_path, body, timeouts={"install": 120, "import": 60})
    imp = finished(events, "import")
    assert imp["status"] == "passed", imp
    assert [o["killed"] for o in imp["outlived"]] == [False]  # done within the grace period
    assert imp["outlived"][0]["argv"][1:3] == ["-c", payload]
    found = findings_of(events, host_context(tmp_path))
    got = {(f.rule, f.phase, f.severity) for f in found}
    assert {
        ("cred.bait", "import", "critical"),
        ("net.connect_loopback", "import", "low"),
        ("proc.outlived_phase", "import", "medium"),
    } <= got
    assert verdict(found) == "malicious"


def test_daemon_thread_payload_runs_before_the_import_ends(tmp_path: Path, run_job: RunJob) -> None:
    """A daemon thread the import starts gets its seconds: what it reads later is traced."""
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "id_rsa").write_text("bait key\n")
    body = dedent(
        """
        import os, threading, time

        def later():
            time.sleep(2)
            open(os.path.expanduser("~/.ssh/id_rsa")).read()

        threading.Thread(target=later, daemon=True).start()
        """
    )
    events = import_job(run_job, tmp_path, body)
    imp = finished(events, "import")
    assert imp["status"] == "passed", imp
    assert imp["duration_s"] < 20  # the wait ends with the thread, not after 10 s
    assert "outlived" not in imp  # a thread lives in its process: nothing outlived
    found = findings_of(events, host_context(tmp_path))
    assert ("cred.bait", "import", "critical") in {(f.rule, f.phase, f.severity) for f in found}
    assert {f.process for f in found if f.rule == "cred.bait"} == {"import demo"}


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rfind(")") + 2] == "Z"


def test_output_flood_is_capped(tmp_path: Path, run_job: RunJob) -> None:
    """An import printing far more than the cap: output stops at the cap, the rest is counted."""
    body = "import sys\nfor _ in range(20000):\n    print('x' * 99)\nprint('y' * 100000)\n"
    events = import_job(run_job, tmp_path, body, output_cap=50_000)
    imp = finished(events, "import")
    assert imp["status"] == "passed"
    assert imp["output_cap"] == 50_000
    assert imp["output_bytes"] <= 50_000
    assert imp["output_dropped"] >= 2_000_000 - 50_000
    # the runner's watch over the guest as a whole rides along
    assert 0 < imp["disk_free_min"] <= imp["disk_total"]
    assert isinstance(imp["oom_kills"], int)
    lines = [e for e in events if e["event"] == "output" and e["phase"] == "import"]
    assert sum(len(e["line"]) + 1 for e in lines) <= 50_000


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{nope", "Expecting property name"),
        ('{"job_id": 1, "project": "demo", "version": "1", "epoch": "soon"}', "'epoch'"),
    ],
)
def test_bad_job_file_still_ends_with_runner_finished(
    tmp_path: Path, runner_pyz: list[str], content: str, message: str
) -> None:
    """A job.json that is not JSON, or not a job document, gives runner_error, exit status 2."""
    job = tmp_path / "job.json"
    job.write_text(content)
    proc = subprocess.run(
        [*runner_pyz, "--job", str(job), "--no-drop-privileges"],
        capture_output=True,
        timeout=30,
        check=False,
    )
    events = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    assert [e["event"] for e in events] == ["runner_error", "runner_finished"]
    assert message in events[0]["message"]
    assert proc.returncode == 2


def test_package_env_is_clean_and_has_the_bait(tmp_path: Path, run_job: RunJob) -> None:
    """Package code sees HOME, the bait token and none of the runner's own environment."""
    dump = tmp_path / "env.json"
    body = f"import json, os\njson.dump(dict(os.environ), open({str(dump)!r}, 'w'))\n"
    os.environ["PYTI_TEST_LEAK"] = "1"
    try:
        events = import_job(run_job, tmp_path, body)
    finally:
        del os.environ["PYTI_TEST_LEAK"]
    assert finished(events, "import")["status"] == "passed"
    env = json.loads(dump.read_text())
    assert env["PYTI_BAIT_TOKEN"] == BAIT
    assert env["HOME"] == str(tmp_path)
    assert "PYTI_TEST_LEAK" not in env


def test_misbehaving_package_is_caught_in_its_trace(tmp_path: Path, run_job: RunJob) -> None:
    """Real strace output of an import that steals, spawns and persists gives those findings."""
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "id_rsa").write_text("bait key\n")
    body = dedent(
        """
        import os, socket, subprocess
        open(os.path.expanduser("~/.ssh/id_rsa")).read()
        subprocess.run(["sh", "-c", "true"])
        subprocess.run(["true", os.environ["PYTI_BAIT_TOKEN"]])
        with open(os.path.expanduser("~/.bashrc"), "a") as rc:
            rc.write("# hello\\n")
        open("/proc/self/environ", "rb").read()
        try:
            socket.create_connection(("127.0.0.1", 9), timeout=2)
        except OSError:
            pass
        """
    )
    events = import_job(run_job, tmp_path, body)
    assert finished(events, "import")["status"] == "passed"
    found = findings_of(events, host_context(tmp_path))
    got = {(f.rule, f.phase, f.severity) for f in found}
    assert {
        ("cred.bait", "import", "critical"),
        ("cred.token", "import", "critical"),
        ("proc.shell", "import", "medium"),
        ("persist.shell_rc", "import", "high"),
        ("cred.environ", "import", "medium"),
        ("net.connect_loopback", "import", "low"),
    } <= got
    assert {f.process for f in found if f.rule == "cred.bait"} == {"import demo"}
    assert not [f for f in found if f.phase == "install" and f.severity != "info"]
    assert verdict(found) == "malicious"


def test_installed_pth_files_are_reported(tmp_path: Path, run_job: RunJob) -> None:
    """A wheel shipping a .pth with an import line shows in pth_files; plain .pth files too."""
    whl = build_wheel(
        tmp_path / "dist",
        "demo",
        "0.1",
        {
            "demo/__init__.py": "",
            "demo_hook.pth": "import os; os.environ.setdefault('X', '1')\n",
            "demo_paths.pth": "/opt/somewhere\n",
        },
    )
    events = run_job([whl], phases=("install",))
    assert finished(events, "install")["status"] == "passed"
    files = {f["name"]: f for f in one(events, "pth_files")["files"]}
    assert files["demo_hook.pth"]["imports"] is True
    assert files["demo_hook.pth"]["lines"] == ["import os; os.environ.setdefault('X', '1')"]
    assert files["demo_paths.pth"]["imports"] is False
    assert "distutils-precedence.pth" not in files  # there before the install
    found = findings_of(events, host_context(tmp_path))
    assert [(f.rule, f.target, f.severity) for f in found if f.rule == "persist.pth_import"] == [
        ("persist.pth_import", "demo_hook.pth", "medium")
    ]


def test_bad_guest_setup_values_are_reported_not_applied(tmp_path: Path, run_job: RunJob) -> None:
    """Unusable entropy/epoch values become guest_setup errors; the phases still run."""
    whl = build_wheel(tmp_path / "dist", "demo", "0.1", {"demo/__init__.py": ""})
    # Well-typed (the job document checks types) but unusable: not hex, past any clock.
    events = run_job([whl], phases=("install",), extra={"entropy": "zz", "epoch": 1e300})
    setup = one(events, "guest_setup")
    assert [e.split(":")[0] for e in setup["errors"]] == ["entropy", "clock"]
    assert "clock_set" not in setup
    assert finished(events, "install")["status"] == "passed"


def test_tests_run_past_missing_deps_and_offline_failures_count_apart(
    tmp_path: Path, run_job: RunJob
) -> None:
    """Test requirements go in one by one when together they cannot; uncollectable modules,
    offline-only failures and real failures are each reported for what they are."""
    helper = build_wheel(tmp_path / "wheels", "helperdep", "1.0", {"helperdep.py": "X = 1\n"})
    body = dedent(
        """
        import socket
        import helperdep


        def test_helper():
            assert helperdep.X == 1


        def test_dns():
            # what a lookup gives in the guest, without trying one here
            raise socket.gaierror(-3, "Temporary failure in name resolution")


        def test_unreachable():
            raise OSError(101, "Network is unreachable")


        def test_local_server_down():
            # refused on loopback: the test's own server is not there, a real failure
            raise ConnectionRefusedError(111, "Connection refused: ('127.0.0.1', 9)")
        """
    )
    needs_trio = "import trio\n\n\ndef test_trio():\n    pass\n"
    events = run_job(
        [project(tmp_path, test_body=body, extra_files={"tests/test_trio.py": needs_trio})],
        test_requirements=("helperdep", "nosuchdep>=1"),
        job_wheels=(helper,),
    )
    summary = one(events, "tests_summary")
    reqs = summary["test_requirements"]
    assert reqs["requested"] == ["helperdep", "nosuchdep>=1"]
    assert reqs["installed"] == ["helperdep"]
    assert [f["requirement"] for f in reqs["failed"]] == ["nosuchdep>=1"]
    assert "nosuchdep" in reqs["failed"][0]["error"]
    assert summary["collection_errors"] == [
        {
            "module": "tests/test_trio.py",
            "missing": "trio",
            "error": "ModuleNotFoundError: No module named 'trio'",
        }
    ]
    assert summary["collection_error_count"] == 1
    assert (summary["collected"], summary["passed"], summary["failed"]) == (4, 1, 3)
    assert summary["errors"] == 0
    assert summary["offline_failures"] == {
        "count": 2,
        "tests": ["tests/test_x.py::test_dns", "tests/test_x.py::test_unreachable"],
    }
    assert summary["reason"] is None
    assert finished(events, "tests")["status"] == "failed"


def test_import_needing_an_undeclared_module_is_tried_with_the_test_requirements(
    tmp_path: Path, run_job: RunJob
) -> None:
    """The package imports a module it does not declare (soupsieve's ``bs4``): its import is
    tried again once the test requirements are in, passes, and says what it needed; the
    tests phase reuses that install."""
    helper = build_wheel(tmp_path / "wheels", "helperdep", "1.0", {"helperdep.py": "X = 1\n"})
    events = run_job(
        [project(tmp_path, package_body="import helperdep\n\n__version__ = str(helperdep.X)\n")],
        test_requirements=("helperdep",),
        job_wheels=(helper,),
    )
    result = one(events, "import_result")
    assert (result["module"], result["status"], result["undeclared"]) == (
        "demo",
        "passed",
        "helperdep",
    )
    assert result["first_error"] == "ModuleNotFoundError: No module named 'helperdep'"
    assert finished(events, "import")["status"] == "passed"
    summary = one(events, "tests_summary")
    assert summary["test_requirements"]["installed"] == ["helperdep"]
    assert finished(events, "tests")["status"] == "passed"
    # installed once, in the import phase (the installer names what it installed)
    said = [e["phase"] for e in events if e["event"] == "output" and "helperdep" in e["line"]]
    assert said and set(said) == {"import"}, said


def test_tests_summary_says_when_no_tests_ran(tmp_path: Path, run_job: RunJob) -> None:
    """A wheel-only release has no tests shipped; tests that cannot be imported, none collected."""
    whl = build_wheel(tmp_path / "dist", "demo", "0.1", {"demo/__init__.py": ""})
    events = run_job([whl], phases=("install", "tests"))
    assert one(events, "tests_summary")["reason"] == "no sdist: no tests shipped"
    assert finished(events, "tests")["status"] == "skipped"

    events = run_job([project(tmp_path, test_body="import trio\n")], phases=("install", "tests"))
    summary = one(events, "tests_summary")
    assert summary["reason"] == "no test module could be collected"
    assert summary["collected"] == 0
    assert summary["collection_errors"][0]["missing"] == "trio"
    assert finished(events, "tests")["reason"] == "no test module could be collected"


def test_unittest_main_at_import_hands_its_tests_to_pytest(tmp_path: Path, run_job: RunJob) -> None:
    """Test modules written as scripts: one calls ``unittest.main()`` after its TestCase
    with no ``__main__`` guard, another hands over to a module of the package
    (``unittest.main(module=demo.checks)``). Under pytest that call used to exit during
    collection, and the SystemExit stopped the whole run (exit status 3, no test ran).
    Both modules' tests run; a test that runs a unittest program itself gets the real one."""
    own = dedent(
        """
        import unittest


        class Own(unittest.TestCase):
            def test_one(self):
                self.assertEqual(1, 1)

            def test_real_program(self):
                program = unittest.main(module=None, argv=["x"], exit=False, defaultTest=[])
                self.assertIsInstance(program, unittest.TestProgram)


        unittest.main()
        """
    )
    checks = dedent(
        """
        import unittest


        class Checks(unittest.TestCase):
            def test_two(self):
                self.assertTrue(True)

            def test_three(self):
                self.assertFalse(False)
        """
    )
    handover = "import unittest\n\nimport demo.checks\n\nunittest.main(module=demo.checks)\n"
    sdist = project(
        tmp_path,
        test_body=own,
        extra_files={"demo/checks.py": checks, "tests/test_handover.py": handover},
    )
    events = run_job([sdist], phases=("install", "tests"))
    summary = one(events, "tests_summary")
    assert finished(events, "tests")["status"] == "passed", summary
    assert (summary["collected"], summary["passed"], summary["failed"]) == (4, 4, 0)
    assert summary["collection_error_count"] == 0


def test_test_named_modules_are_taken_before_every_module_of_a_tests_folder(
    tmp_path: Path, run_job: RunJob
) -> None:
    """ply's ``test/`` holds ``testlex.py`` (its tests) beside ``lex_*.py`` grammars that
    are broken on purpose and read as input. pytest's names match none of them: the next
    look takes the test-named module only, so no input module is run as a test. A folder
    with no test-named module at all still gets its modules collected (``basic.py``)."""
    testlex = dedent(
        """
        import unittest


        class LexTests(unittest.TestCase):
            def test_bad_grammar_is_refused(self):
                with self.assertRaises(SyntaxError):
                    import lex_broken  # noqa: F401
        """
    )
    broken = 'raise SyntaxError("Can\'t build lexer")\n'

    def sdist_with(folder: str, files: dict[str, str]) -> Path:
        tree = {
            "demo/__init__.py": "",
            "backend.py": BACKEND.format(module="demo", version="0.1"),
            "pyproject.toml": PYPROJECT.format(module="demo", version="0.1"),
            **files,
        }
        return build_sdist(tmp_path / folder, "demo", "0.1", tree)

    sdist = sdist_with("ply", {"test/testlex.py": testlex, "test/lex_broken.py": broken})
    events = run_job([sdist], phases=("install", "tests"))
    summary = one(events, "tests_summary")
    assert finished(events, "tests")["status"] == "passed", summary
    assert (summary["collected"], summary["passed"], summary["failed"]) == (1, 1, 0)
    assert summary["collection_error_count"] == 0

    basic = "import unittest\n\n\nclass B(unittest.TestCase):\n    def test_b(self):\n        pass"
    sdist = sdist_with("other", {"test/basic.py": basic})
    shutil.rmtree(tmp_path / "job")
    events = run_job([sdist], phases=("install", "tests"))
    summary = one(events, "tests_summary")
    assert finished(events, "tests")["status"] == "passed", summary
    assert (summary["collected"], summary["passed"]) == (1, 1)
