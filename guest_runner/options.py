"""The runner's command line, as a typed value (the guest uses the defaults)."""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Options:
    """Where things are and what to skip; every path absolute (commands run elsewhere)."""

    job: str
    user: str = "tester"
    drop_privileges: bool = True
    home: str | None = None
    venv: str | None = None
    python: str = sys.executable
    wheels_dir: str = "/opt/pyti/wheels"
    tools_dir: str = "/opt/pyti/tools"
    build_envs_dir: str = "/opt/pyti/build-envs"
    scratch_dir: str | None = None
    env_file: str = "/etc/environment"
    strace: bool = True
    guest_setup: bool = True


def parse_args(argv: list[str] | None) -> Options:
    """Options from ``argv`` (``sys.argv[1:]`` when None); exits 2 on a usage error."""
    parser = argparse.ArgumentParser(
        prog="runner.pyz",
        description="pyti guest runner: install, import, test and lint one release, traced.",
    )
    parser.add_argument("--job", required=True, help="job.json; release files sit next to it")
    parser.add_argument("--user", default="tester", help="who runs package code")
    parser.add_argument("--no-drop-privileges", action="store_true", help="run as ourselves")
    parser.add_argument("--home", help="HOME for package code (default: the user's)")
    parser.add_argument("--venv", help="job venv (default: HOME/venv)")
    parser.add_argument("--python", default=sys.executable, help="python that makes the venv")
    parser.add_argument("--wheels-dir", default="/opt/pyti/wheels")
    parser.add_argument("--tools-dir", default="/opt/pyti/tools")
    parser.add_argument(
        "--build-envs-dir", default="/opt/pyti/build-envs", help="prepared build environments"
    )
    parser.add_argument("--scratch-dir", help="where the job's temp dirs go (default: TMPDIR)")
    parser.add_argument("--env-file", default="/etc/environment", help="source of bait env")
    parser.add_argument("--no-strace", action="store_true", help="run phases untraced")
    parser.add_argument("--no-guest-setup", action="store_true", help="skip entropy and clock")
    ns = parser.parse_args(argv)

    def absolute(path: str | None) -> str | None:
        # Commands run in other directories: a relative path would point elsewhere there.
        return os.path.abspath(path) if path else path

    return Options(
        job=os.path.abspath(ns.job),
        user=ns.user,
        drop_privileges=not ns.no_drop_privileges,
        home=absolute(ns.home),
        venv=absolute(ns.venv),
        python=ns.python,
        wheels_dir=os.path.abspath(ns.wheels_dir),
        tools_dir=os.path.abspath(ns.tools_dir),
        build_envs_dir=os.path.abspath(ns.build_envs_dir),
        scratch_dir=absolute(ns.scratch_dir),
        env_file=os.path.abspath(ns.env_file),
        strace=not ns.no_strace,
        guest_setup=not ns.no_guest_setup,
    )
