"""A VM's QEMU dies with the slave, even when the slave is killed with SIGKILL."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from slave.vm.argv import die_with_parent

CHILD = """
import subprocess, sys
from slave.vm.argv import die_with_parent
proc = subprocess.Popen(die_with_parent(["sleep", "60"]))
print(proc.pid, flush=True)
proc.wait()
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as comm:
            return comm.read().strip()
    except FileNotFoundError:
        return ""


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="util-linux setpriv not installed")
def test_child_is_killed_when_the_parent_is_killed() -> None:
    """SIGKILL of the process that started it takes the VM process down too."""
    parent = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    child_pid = int(parent.stdout.readline())
    parent.stdout.close()
    # setpriv sets the parent-death signal, then execs: wait until it has.
    deadline = time.monotonic() + 10
    while _comm(child_pid) != "sleep" and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _alive(child_pid)
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 5
    while _alive(child_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child_pid), "the VM process outlived the slave"


def test_without_setpriv_argv_is_unchanged(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where setpriv is missing the command runs as it is."""
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert die_with_parent(["qemu-system-x86_64", "-nodefaults"]) == [
        "qemu-system-x86_64",
        "-nodefaults",
    ]
