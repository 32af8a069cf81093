"""Failures that only ran a program the guest lacks (a CI runner's tool), told from the rest."""

from __future__ import annotations

from pathlib import Path

import pytest

from guest_runner.junit import parse_junit
from guest_runner.missing_programs import missing_program

SUBPROCESS_HG = (
    "FileNotFoundError: [Errno 2] No such file or directory: 'hg'\n"
    "    def _execute_child(self, args, executable, preexec_fn, close_fds,\n"
    ">                   raise child_exception_type(errno_num, err_msg, err_filename)\n"
    "E                   FileNotFoundError: [Errno 2] No such file or directory: 'hg'\n"
    "/usr/lib/python3.11/subprocess.py:1901: FileNotFoundError"
)


def nowhere(name: str) -> str | None:
    return None


@pytest.mark.parametrize(
    ("text", "program"),
    [
        (SUBPROCESS_HG, "hg"),
        ("CalledProcessError: ... /bin/sh: 1: node: not found\nreturned non-zero exit status 127",
         "node"),
        ("bash: line 1: svn: command not found", "svn"),
        ("cmake: command not found", "cmake"),
        ("AssertionError: bash: man: command not found\r\n", "man"),
        ("pexpect.exceptions.ExceptionPexpect: The command was not found or was not"
         " executable: zsh.", "zsh"),
        # the release's own console script missing is the release's failure
        (SUBPROCESS_HG.replace("'hg'", "'mytool'"), None),
        # a data file the test opens is not a program
        ("FileNotFoundError: [Errno 2] No such file or directory: 'hg'\ntests/t.py:3", None),
        ("assert 1 == 2", None),
        # a database CI runs as a service, its loopback port refused
        ("pymongo.errors.ServerSelectionTimeoutError: localhost:27017: [Errno 111] Connection"
         " refused (configured timeouts: socketTimeoutMS: 20000.0ms)", "mongod"),
        ("redis.exceptions.ConnectionError: Error 111 connecting to localhost:6379. Connection"
         " refused.", "redis-server"),
        ('psycopg.OperationalError: connection failed: connection to server at "localhost"'
         " (127.0.0.1), port 5432 failed: Connection refused", "postgres"),
        ("ConnectionRefusedError: [Errno 111] Connect call failed ('127.0.0.1', 11211)",
         "memcached"),
        # a port the suite's own server should have opened, a service's port elsewhere, or
        # a refusal that names no port: not set apart
        ("ConnectionRefusedError: [Errno 111] Connection refused: localhost:8765", None),
        ("ConnectionRefusedError: [Errno 111] Connection refused: db.example:5432", None),
        ("ConnectionRefusedError: [Errno 111] Connection refused", None),
        ("TimeoutError: localhost:27017 timed out", None),
    ],
)  # fmt: skip
def test_missing_program_is_a_ci_tool_the_guest_lacks(text: str, program: str | None) -> None:
    assert missing_program(text, which=nowhere) == program


@pytest.mark.parametrize(
    ("text", "program"),
    [
        ("_tkinter.TclError: no display name and no $DISPLAY environment variable", "Xvfb"),
        ("Xlib.error.DisplayNameError: Bad display name \"\"", "Xvfb"),
        ("ImportError: this platform is not supported: ('failed to acquire X connection: Bad"
         " display name \"\"', DisplayNameError(''))", "Xvfb"),
        ("RuntimeError: Gtk couldn't be initialized. Use Gtk.init_check() if you want to"
         " handle this case.", "Xvfb"),
        ("ImportError: Cannot load backend 'TkAgg' which requires the 'tk' interactive"
         " framework, as 'headless' is currently running", "Xvfb"),
        ("pyperclip.PyperclipException:\n    Pyperclip could not find a copy/paste mechanism"
         " for your system.", "xclip"),
        ("AssertionError: assert 'display' == 'screen'", None),
    ],
)  # fmt: skip
def test_a_gui_test_without_a_display_lacks_the_display_server(
    text: str, program: str | None
) -> None:
    assert missing_program(text, which=nowhere, environ={}) == program


def test_with_a_display_a_gui_failure_is_a_real_one() -> None:
    text = '_tkinter.TclError: couldn\'t connect to display ":0"'
    assert missing_program(text, which=nowhere, environ={}) == "Xvfb"
    assert missing_program(text, which=nowhere, environ={"DISPLAY": ":0"}) is None


def test_a_program_the_guest_has_is_a_real_failure() -> None:
    assert missing_program(SUBPROCESS_HG, which=lambda name: f"/usr/bin/{name}") is None


def test_parse_junit_counts_missing_program_failures_apart(tmp_path: Path) -> None:
    """Counted apart with the programs named; the first real failure is another test's."""
    junit = tmp_path / "junit.xml"
    body = SUBPROCESS_HG.replace("\n", "&#10;").replace("'", "&apos;").replace(">", "&gt;")
    junit.write_text(
        '<testsuites><testsuite tests="2" failures="2" errors="0" skipped="0" time="1">'
        '<testcase classname="tests.test_vcs" name="test_hg_clone" file="tests/test_vcs.py">'
        f'<failure message="FileNotFoundError: no hg">{body}</failure></testcase>'
        '<testcase classname="tests.test_vcs" name="test_real" file="tests/test_vcs.py">'
        '<failure message="assert 1 == 2">x</failure></testcase>'
        "</testsuite></testsuites>"
    )
    summary = parse_junit(junit)
    if summary["program_failures"]["count"] == 0:  # the machine running this test has hg
        pytest.skip("hg is on this host's PATH")
    assert summary["program_failures"] == {
        "count": 1,
        "tests": ["tests/test_vcs.py::test_hg_clone"],
        "programs": ["hg"],
    }
    assert summary["first_failure"]["test"] == "tests/test_vcs.py::test_real"
