"""One job's state inside the guest: its document, paths, executor and phase statuses.

The phase modules (``guest_runner.phases``) each take a :class:`Workspace` and a
:class:`~guest_runner.budget.Budget` and return an
:class:`~guest_runner.outcome.Outcome`.
"""

from __future__ import annotations

import os
import pwd
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from guest_runner.archive import SDIST_SUFFIXES, chown_tree, safe_extract
from guest_runner.budget import Budget
from guest_runner.emit import Emitter
from guest_runner.executor import Executor
from guest_runner.jobdoc import JobDocument
from guest_runner.options import Options
from guest_runner.outcome import Result


class Workspace:
    """Paths and helpers every phase shares; ``statuses`` fills in as phases finish."""

    def __init__(self, job: JobDocument, job_dir: Path, opts: Options, out: Emitter) -> None:
        self.job = job
        self.job_dir = job_dir
        self.opts = opts
        self.out = out
        self.uid: int | None = None  # None: run as ourselves (tests on a host)
        self.gid: int | None = None
        self.home = Path(opts.home or os.path.expanduser("~"))
        if opts.drop_privileges:
            entry = pwd.getpwnam(opts.user)
            self.uid, self.gid = entry.pw_uid, entry.pw_gid
            self.home = Path(opts.home or entry.pw_dir)
        self.venv = Path(opts.venv or self.home / "venv")
        self.vpython = str(self.venv / "bin" / "python")
        self.scratch = Path(tempfile.mkdtemp(prefix="pyti-job-", dir=opts.scratch_dir))
        self.statuses: dict[str, str] = {}
        #: set once a build needed the retry without isolation (guest_runner.phases.build)
        self.build_retry: dict[str, object] | None = None
        #: the job's test requirements once installed (guest_runner.test_requirements)
        self.test_requirements: dict[str, Any] | None = None
        self._src_root: Path | None = None
        self._src_extracted = False
        self.exec = Executor(
            out,
            user=opts.user,
            uid=self.uid,
            gid=self.gid,
            strace=shutil.which("strace") if opts.strace else None,
            nproc=job.nproc_limit,
        )

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

    def run_as_tester(
        self,
        argv: list[str],
        budget: Budget,
        *,
        phase: str,
        cwd: str | None = None,
        traced: bool = True,
        on_line: Callable[[str], None] | None = None,
        stage: str | None = None,
        interrupt_grace: float = 0.0,
        extra_env: dict[str, str] | None = None,
    ) -> Result:
        """Run package-touching ``argv`` (see :meth:`Executor.run`); cwd defaults to run/;
        ``extra_env`` is added to :meth:`env`."""
        return self.exec.run(
            phase,
            argv,
            budget,
            cwd=cwd or str(self.scratch / "run"),
            env={**self.env(), **(extra_env or {})},
            traced=traced,
            on_line=on_line,
            stage=stage,
            interrupt_grace=interrupt_grace,
        )

    def pip_install(self) -> list[str]:
        """An offline install of wheels into the job venv: callers add ``--find-links``.

        ``uv pip install --only-binary :all:`` when the image has uv (`uv_install`),
        else pip's (`pip_build_install`); both install only the files in the
        ``--find-links`` directories, never from an index. Anything that may build an
        sdist (run a package's build code) goes through `pip_build_install` instead.
        """
        return self.uv_install() or self.pip_build_install()

    def uv(self) -> str | None:
        """The image's uv binary (``TOOLS_DIR/bin/uv``), None when there is none."""
        uv = Path(self.opts.tools_dir) / "bin" / "uv"
        return str(uv) if uv.is_file() and os.access(uv, os.X_OK) else None

    def uv_install(self) -> list[str] | None:
        """``uv pip install`` of wheels into the job venv, offline, or None without uv.

        uv is a native binary: no interpreter start-up and pip import per install
        (≈ 10 s each under TCG). ``--only-binary :all:``: it never builds, so no
        package code runs under it (builds stay on pip, whose build isolation runs the
        backend with the job venv as ``sys.prefix``, as users' pip does; uv's builds run
        in a throw-away environment). Its cache is ``$HOME/.cache/uv`` (the image put
        the job venv's interpreter facts there), fresh in every job like the rest of the
        disk. ``--no-config``: no ``uv.toml`` a package may have written is read.
        """
        uv = self.uv()
        if uv is None:
            return None
        argv = [uv, "pip", "install", "--python", self.vpython, "--offline", "--no-index"]
        return [*argv, "--only-binary", ":all:", "--no-config", "--no-progress", "--color", "never"]

    def pip_build_install(self) -> list[str]:
        """``pip install`` in the job venv, offline: for installs that may build an sdist
        (and for pip's ``--report``); callers add ``--find-links``."""
        pip = [self.vpython, "-m", "pip", "install", "--no-index", "--no-cache-dir"]
        return [*pip, "--progress-bar", "off"]

    def sdist(self) -> Path | None:
        for name in self.job.files:
            if name.endswith(SDIST_SUFFIXES):
                return self.job_dir / name
        return None

    def site_packages(self) -> Path | None:
        found = sorted(self.venv.glob("lib/python3*/site-packages"))
        return found[0] if found else None

    def sources(self) -> Path | None:
        """The extracted sdist's root, extracted once for tests and quality."""
        if self._src_extracted:
            return self._src_root
        self._src_extracted = True
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
        self._src_root = entries[0] if len(entries) == 1 and entries[0].is_dir() else dest
        return self._src_root


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
