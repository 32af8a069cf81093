"""The guest runner's pure helpers: hostile archives, line cutting, JUnit and RECORD parsing."""

from __future__ import annotations

import collections
import io
import tarfile
import zipfile
from pathlib import Path

import pytest

from guest_runner.apart import error_line, lint_tool
from guest_runner.archive import safe_extract
from guest_runner.budget import Budget
from guest_runner.build import IMPORT_FAILURE
from guest_runner.executor import MainExit, WrapperLines
from guest_runner.junit import parse_junit
from guest_runner.limits import PhaseWatch, oom_kills
from guest_runner.offline import is_offline_failure
from guest_runner.outcome import Result
from guest_runner.phases.imports import release_modules, top_level_modules
from guest_runner.phases.install import BUILT_WHEEL
from guest_runner.phases.tests import find_tests, loose_patterns, shipped_tests
from guest_runner.speed_checks import is_speed_failure
from guest_runner.streams import TAIL_BYTES, drain, iter_lines
from guest_runner.test_requirements import pip_error
from guest_runner.workspace import read_env_file
from tests.fakes.dists import dedent
from tests.fakes.pytest_junit import junit_of


def make_tar(path: Path, members: list[tarfile.TarInfo], data: bytes = b"x") -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for info in members:
            if info.isreg():
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
            else:
                tf.addfile(info)
    return path


def member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    return info


def test_safe_extract_refuses_escapes_and_links(tmp_path: Path) -> None:
    """Traversal, absolute names, symlinks, hardlinks and devices are refused; files land inside."""
    archive = make_tar(
        tmp_path / "evil.tar.gz",
        [
            member("pkg-1.0/ok.py"),
            member("pkg-1.0/../../escape.txt"),
            member("/abs.txt"),
            member("pkg-1.0/link", tarfile.SYMTYPE, "/etc"),
            member("pkg-1.0/hard", tarfile.LNKTYPE, "pkg-1.0/ok.py"),
            member("pkg-1.0/dev", tarfile.CHRTYPE),
        ],
    )
    dest = tmp_path / "out"
    dest.mkdir()
    assert safe_extract(archive, dest) == 5
    assert (dest / "pkg-1.0" / "ok.py").read_bytes() == b"x"
    assert sorted(p.name for p in dest.rglob("*")) == ["ok.py", "pkg-1.0"]
    assert not (tmp_path / "escape.txt").exists()


def test_safe_extract_keeps_exec_bits_and_in_tree_links(tmp_path: Path) -> None:
    """A script the sdist marks executable stays executable; a link to a file of the tree
    is made; a link that leads out, directly or through another link made later
    (``p -> q/../x`` with ``q -> .``), or that sits under a link, is not."""
    script = member("pkg-1.0/tests/bin/lsb_release")
    script.mode = 0o775
    archive = make_tar(
        tmp_path / "pkg.tar.gz",
        [
            member("pkg-1.0/README"),
            script,
            member("pkg-1.0/docs/README", tarfile.SYMTYPE, "../README"),
            member("pkg-1.0/p", tarfile.SYMTYPE, "q/../../escape.txt"),
            member("pkg-1.0/q", tarfile.SYMTYPE, "."),
            member("pkg-1.0/out", tarfile.SYMTYPE, "../../escape.txt"),
            member("pkg-1.0/docs/README/x", tarfile.SYMTYPE, "../../README"),
            member("pkg-1.0/q/y", tarfile.SYMTYPE, "README"),
        ],
    )
    (tmp_path / "escape.txt").write_text("outside")
    dest = tmp_path / "out"
    dest.mkdir()
    assert safe_extract(archive, dest) == 4  # p (through q), out, docs/README/x, q/y
    root = dest / "pkg-1.0"
    assert (root / "tests/bin/lsb_release").stat().st_mode & 0o777 == 0o755
    assert (root / "README").stat().st_mode & 0o777 == 0o644
    assert (root / "docs/README").read_bytes() == b"x"
    assert (root / "q").resolve() == root.resolve()
    assert sorted(p.name for p in root.iterdir()) == ["README", "docs", "q", "tests"]


def test_safe_extract_zip(tmp_path: Path) -> None:
    """Zip sdists extract the same way, with the same refusals."""
    archive = tmp_path / "pkg.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("pkg-1.0/a.py", "a = 1\n")
        zf.writestr("../b.py", "b\n")
        link = zipfile.ZipInfo("pkg-1.0/l")
        link.external_attr = 0o120777 << 16
        zf.writestr(link, "/etc/passwd")
    dest = tmp_path / "out"
    dest.mkdir()
    assert safe_extract(archive, dest) == 2
    assert (dest / "pkg-1.0" / "a.py").read_text() == "a = 1\n"


def test_iter_lines_cuts_long_lines() -> None:
    """A line past the limit is cut and the rest counted; the next line is intact."""
    stream = io.BufferedReader(io.BytesIO(b"a" * 10_000 + b"\nshort\ntail"))
    got = list(iter_lines(stream, 4096))
    assert [(len(line), cut) for line, cut in got] == [(4096, 10_000 - 4096), (5, 0), (4, 0)]


def test_parse_junit_counts_and_network_errors(tmp_path: Path) -> None:
    """Suite counts are summed; failures mentioning DNS errors count as network errors."""
    junit = tmp_path / "junit.xml"
    junit.write_text(
        '<testsuites><testsuite tests="5" failures="2" errors="1" skipped="1" time="1.5">'
        '<testcase name="a"><failure message="socket.gaierror: [Errno -3] Temporary failure'
        ' in name resolution"/></testcase><testcase name="b"><failure message="1 != 2"/>'
        "</testcase></testsuite></testsuites>"
    )
    summary = parse_junit(junit)
    assert summary["junit"] is True
    assert (summary["collected"], summary["passed"], summary["failed"]) == (5, 1, 2)
    assert (summary["errors"], summary["skipped"], summary["duration_s"]) == (1, 1, 1.5)
    assert summary["network_errors"] == 1


@pytest.mark.parametrize("content", ["<not xml", '<testsuite tests="x" failures="-"/>'])
def test_parse_junit_survives_garbage(tmp_path: Path, content: str) -> None:
    """Broken or odd JUnit files give a summary instead of an exception."""
    junit = tmp_path / "junit.xml"
    junit.write_text(content)
    summary = parse_junit(junit)
    assert summary["offline"] is True
    assert summary["collected"] in (None, 0)


def test_parse_junit_ignores_symlinks(tmp_path: Path) -> None:
    """A junit.xml planted as a symlink (to a root file) is not read."""
    (tmp_path / "real.xml").write_text('<testsuite tests="3"/>')
    (tmp_path / "junit.xml").symlink_to(tmp_path / "real.xml")
    assert parse_junit(tmp_path / "junit.xml")["junit"] is False


def test_top_level_modules_from_record(tmp_path: Path) -> None:
    """Without top_level.txt, packages and modules come from RECORD; private and junk are out."""
    info = tmp_path / "demo-1.0.dist-info"
    info.mkdir()
    (info / "RECORD").write_text(
        "demo/__init__.py,,\ndemo/x.py,,\nsolo.py,,\n_private.py,,\nfast.cpython-311.so,,\n"
        "demo-1.0.dist-info/METADATA,,\n../../bin/demo,,\nhook.pth,,\nnot-a-name/x.py,,\n"
    )
    assert top_level_modules(info) == ["demo", "fast", "solo"]
    (info / "top_level.txt").write_text("other\n")
    assert top_level_modules(info) == ["other"]


def test_release_modules_from_a_legacy_egg_info(tmp_path: Path) -> None:
    """An sdist installed the legacy way (egg-info, installed-files.txt) still names its modules."""
    info = tmp_path / "docopt-0.6.2-py3.11.egg-info"
    info.mkdir()
    (info / "installed-files.txt").write_text(
        "../docopt.py\n../__pycache__/docopt.cpython-311.pyc\nPKG-INFO\nSOURCES.txt\n"
    )
    (tmp_path / "other-1.0.dist-info").mkdir()
    assert release_modules(tmp_path, "DocOpt") == ["docopt"]
    assert release_modules(tmp_path, "absent") == []


def test_read_env_file(tmp_path: Path) -> None:
    """/etc/environment lines with quotes, export and comments are read as pam_env would."""
    env = tmp_path / "environment"
    env.write_text("# c\nPYTI_BAIT_TOKEN=\"abc\"\nexport A='b'\nbroken\n")
    assert read_env_file(env) == {"PYTI_BAIT_TOKEN": "abc", "A": "b"}
    assert read_env_file(tmp_path / "missing") == {}


def test_drain_counts_a_flood_and_keeps_its_tail() -> None:
    """Past the cap the rest of a stream is only counted; the tail keeps its last bytes."""
    budget = Budget(deadline=0.0, output_cap=10, trace_cap=10)
    flood = b"A" * 1023 + b"\n"
    stream = io.BufferedReader(io.BytesIO(flood * 3000 + b"Fatal Python error: bye\n"))
    tail: collections.deque[str] = collections.deque(["old line\n"])
    drain(stream, tail, budget)
    assert budget.output_dropped == 3000 * 1024 + 24
    (kept,) = tail
    assert kept.endswith("Fatal Python error: bye\n")
    assert len(kept) == TAIL_BYTES


def test_oom_kills_reads_the_kernel_counter() -> None:
    """The OOM kill counter comes from /proc/vmstat (Linux since 4.13)."""
    count = oom_kills()
    assert isinstance(count, int) and count >= 0


def test_phase_watch_reports_free_disk_space(tmp_path: Path) -> None:
    """A phase's watch gives the lowest free space it saw, the disk size and OOM kills."""
    watch = PhaseWatch(tmp_path)
    fields = watch.finish()
    assert 0 < fields["disk_free_min"] <= fields["disk_total"]
    assert fields["oom_kills"] >= 0


@pytest.mark.parametrize(
    ("lines", "returncode"),
    [
        ([b"41  execve(...) = 0", b"42 +++ exited with 0 +++", b"41  +++ exited with 3 +++"], 3),
        ([b"41  execve(...) = 0", b"41  +++ killed by SIGSEGV (core dumped) +++"], -11),
        ([b"41  execve(...) = 0", b"41  exit_group(0) = ?"], None),
        ([b"garbage", b"41  execve(...) = 0", b"41  +++ exited with 0 +++"], 0),
        ([b"41  execve(...) = 0", b"42  execve(...) = 0", b"42 +++ exited with 0 +++"], None),
    ],
)
def test_main_exit_follows_the_first_pid(lines: list[bytes], returncode: int | None) -> None:
    """Only the first pid strace names ends the command; other pids' exits do not."""
    main = MainExit()
    for line in lines:
        main.watch(line)
    assert main.returncode == returncode
    assert main.done.is_set() == (returncode is not None)


@pytest.mark.parametrize(
    ("text", "offline"),
    [
        ("socket.gaierror: [Errno -3] Temporary failure in name resolution", True),
        ("urllib3...NameResolutionError: Failed to resolve 'pypi.org'", True),
        ("OSError: [Errno 101] Network is unreachable", True),
        ("HTTPSConnectionPool(host='pypi.org', port=443): [Errno 111] Connection refused", True),
        ("ConnectTimeout: https://example.com/x timed out", True),
        ("ConnectionRefusedError: [Errno 111] Connection refused ('127.0.0.1', 8080)", False),
        ("HTTPConnectionPool(host='localhost', port=80): Connection refused", False),
        ("ConnectionRefusedError: [Errno 111] Connection refused", False),
        ("AssertionError: assert 1 == 2", False),
        (
            "subprocess.CalledProcessError: Command '['git', 'clone', '--depth=1', "
            "'https://github.com/chardet/test-data.git', '/tmp/x']' returned non-zero exit "
            "status 128.",
            True,
        ),
        (
            "CalledProcessError: Command 'curl -fsSL https://example.com/data.tgz' returned "
            "non-zero exit status 6.",
            True,
        ),
        (
            "CalledProcessError: Command '['git', 'clone', 'http://127.0.0.1:8000/r.git', 'x']' "
            "returned non-zero exit status 128.",
            False,
        ),
        (
            "CalledProcessError: Command '['git', 'commit', '-m', 'x']' returned non-zero exit "
            "status 1.",
            False,
        ),
        (
            "CalledProcessError: Command '['make', 'https://example.com']' returned non-zero "
            "exit status 2.",
            False,
        ),
    ],
)
def test_offline_failures_are_network_absence_only(text: str, offline: bool) -> None:
    """Resolver and unreachable errors are offline; refused/timeouts only to non-loopback hosts."""
    assert is_offline_failure(text) is offline


def test_parse_junit_reports_collection_errors_apart(tmp_path: Path) -> None:
    """Modules pytest could not collect are listed with the missing module, not counted as tests."""
    junit = tmp_path / "junit.xml"
    junit.write_text(
        '<testsuites><testsuite tests="3" failures="1" errors="1" skipped="0" time="1">'
        '<testcase classname="" name="tests.test_x" file="tests/test_x.py">'
        '<error message="collection failure">tests/test_x.py:1: in &lt;module&gt;\n'
        "    import trio\nE   ModuleNotFoundError: No module named 'trio'</error></testcase>"
        '<testcase classname="tests.test_y.TestC" name="test_c" file="tests/test_y.py">'
        '<failure message="socket.gaierror: [Errno -3]">x</failure></testcase>'
        '<testcase classname="tests.test_y" name="test_ok" file="tests/test_y.py"/>'
        "</testsuite></testsuites>"
    )
    summary = parse_junit(junit)
    assert summary["collection_errors"] == [
        {
            "module": "tests/test_x.py",
            "missing": "trio",
            "error": "ModuleNotFoundError: No module named 'trio'",
        }
    ]
    assert (summary["collected"], summary["passed"], summary["failed"], summary["errors"]) == (
        2,
        1,
        1,
        0,
    )
    assert summary["offline_failures"] == {"count": 1, "tests": ["tests/test_y.py::TestC::test_c"]}


@pytest.mark.parametrize(
    ("node", "text", "speed"),
    [
        ("tests/test_dos.py::T::test_cap", "AssertionError: parse took 1.99s, expected sub-second",
         True),
        ("tests/test_benchmark.py::test_ratio[UTF-16]",
         "AssertionError: UTF-16 not fast enough vs statistical: 1.7x (need 2.5x)\n"
         "assert 1.651320789812251 >= 2.5", True),
        ("tests/perf/test_x.py::test_y", "assert 0.42 < 0.2", True),
        ("tests/test_h.py::test_p", "hypothesis.errors.DeadlineExceeded: Test took 513.2ms", True),
        ("tests/test_a.py::test_b", "request elapsed 3.5 s, more than 1 s", True),
        ("tests/test_l.py::test_t", "Failed: Timeout (>20.0s) from pytest-timeout.", True),
        ("t/test_rlock.py::test_o", "subprocess.TimeoutExpired: Command '['/v/bin/python', '-O',"
         " '-c', 'import x']' timed out after 15 seconds", True),
        ("t/test_p.py::test_q", "TimeoutError: the lock was not released", False),
        # a failure of a duration-parsing library, or a number off outside a speed module
        ("tests/test_iso.py::test_parse", "AssertionError: assert '5 seconds' == '4 seconds'",
         False),
        ("tests/test_math.py::test_round", "assert 0.42 < 0.2", False),
        ("tests/test_benchmark.py::test_names", "AssertionError: assert 'a' == 'b'", False),
        ("tests/test_api.py::test_args", "TypeError: f() took 3 arguments", False),
        # a bounded wait that came back false (portalocker's Redis self-check)
        ("t/test_redis.py::test_self_check",
         ">           assert _wait_for(lambda: len(outcomes) >= 2)\nE           assert False\n"
         "E            +  where False = _wait_for(<function <lambda>>)", True),
        ("t/test_q.py::test_q",
         ">       assert queue.wait_until(done, timeout=1)\nE       assert None", True),
        # a wait whose result is compared, or a false from something else: not a wait timing out
        ("t/test_q.py::test_r", ">       assert wait_for(job) == 'done'\nE       AssertionError: "
         "assert 'failed' == 'done'", False),
        ("t/test_q.py::test_s", ">       assert is_valid(x)\nE       assert False", False),
    ],
)  # fmt: skip
def test_speed_failures_are_speed_checks_only(node: str, text: str, speed: bool) -> None:
    """A time taken with its unit, "not fast enough"..., or a numeric assertion in a benchmark
    or performance test: a speed check; any other failure is not."""
    assert is_speed_failure(node, text) is speed


def test_parse_junit_counts_speed_checks_apart(tmp_path: Path) -> None:
    """A failed speed check is listed in ``speed_failures`` (and still counted as failed)."""
    junit = tmp_path / "junit.xml"
    junit.write_text(
        '<testsuites><testsuite tests="2" failures="2" errors="0" skipped="0" time="1">'
        '<testcase classname="tests.test_dos.T" name="test_cap" file="tests/test_dos.py">'
        '<failure message="AssertionError: parse took 1.99s, expected sub-second">x</failure>'
        "</testcase>"
        '<testcase classname="tests.test_dos.T" name="test_real" file="tests/test_dos.py">'
        '<failure message="assert 1 == 2">x</failure></testcase>'
        "</testsuite></testsuites>"
    )
    summary = parse_junit(junit)
    assert summary["failed"] == 2
    assert summary["speed_failures"] == {"count": 1, "tests": ["tests/test_dos.py::T::test_cap"]}
    assert summary["offline_failures"] == {"count": 0, "tests": []}
    # the first failure set apart by neither, with its message
    assert summary["first_failure"] == {
        "test": "tests/test_dos.py::T::test_real",
        "error": "assert 1 == 2",
    }


@pytest.mark.parametrize(
    ("text", "line"),
    [
        (
            "FileNotFoundError: [Errno 2] No such file\nself = <x>\nE  FileNotFoundError: ...",
            "FileNotFoundError: [Errno 2] No such file",
        ),
        (
            "\n    def test_x():\n>       assert f() == 2\nE       assert 1 == 2\nE  + where",
            "assert 1 == 2",
        ),
        ("\n" + "x" * 300 + " tests/t.py:9: KeyError", "x" * 177 + " tests/t.py:9: KeyError"),
        ("", ""),
    ],
)
def test_error_line_is_what_a_failure_says(text: str, line: str) -> None:
    assert error_line(text) == line


def test_loose_patterns_never_take_setup_py_at_the_root(tmp_path: Path) -> None:
    """The next looks take test-named modules, then any module of a tests folder (never at
    the root, where setup.py is)."""
    in_folder = loose_patterns(tmp_path, [tmp_path / "tests"])
    assert [p.split() for p in in_folder] == [["test*.py", "*_test.py", "*_tests.py"], ["*.py"]]
    at_root = loose_patterns(tmp_path, [tmp_path])
    assert len(at_root) == 1
    assert "*.py" not in at_root[0].split() and "test*.py" in at_root[0].split()


def test_shipped_tests_are_the_installed_packages_test_folders(tmp_path: Path) -> None:
    """A wheel-only release's tests are the tests/test folders inside its own packages."""
    (tmp_path / "pkg" / "tests").mkdir(parents=True)
    (tmp_path / "other" / "tests").mkdir(parents=True)
    (tmp_path / "solo.py").write_text("")
    assert shipped_tests(tmp_path, ["pkg", "solo"]) == [tmp_path / "pkg" / "tests"]
    assert shipped_tests(tmp_path, ["solo"]) == []


def test_find_tests_takes_a_tests_folder_inside_the_package(tmp_path: Path) -> None:
    """mock keeps ``mock/tests/testmock.py``: no test-named module, but a tests folder."""
    (tmp_path / "mock" / "tests").mkdir(parents=True)
    (tmp_path / "mock" / "__init__.py").write_text("")
    (tmp_path / "mock" / "tests" / "testmock.py").write_text("")
    assert find_tests(tmp_path) == [tmp_path / "mock" / "tests"]
    assert loose_patterns(tmp_path, find_tests(tmp_path))[-1] == "*.py"


def test_find_tests_takes_the_projects_testpaths_first(tmp_path: Path) -> None:
    """voluptuous: ``testpaths = "voluptuous/tests"`` beside ``--doctest-glob=*.md``; upstream
    runs pytest with no paths, so its README is no test. The configured paths win over the
    guess, globs expanded; paths the sdist lacks, or outside it, are dropped."""
    (tmp_path / "voluptuous" / "tests").mkdir(parents=True)
    (tmp_path / "voluptuous" / "tests" / "tests.py").write_text("")
    (tmp_path / "README.md").write_text(">>> 1\n")
    (tmp_path / "pyproject.toml").write_text(
        '[tool.pytest.ini_options]\ntestpaths = "voluptuous/tests"\n'
        'addopts = "--doctest-glob=*.md"\n'
    )
    assert find_tests(tmp_path) == [tmp_path / "voluptuous/tests"]
    (tmp_path / "pyproject.toml").write_text(
        '[tool.pytest]\ntestpaths = ["voluptuous/*", "docs", "../elsewhere"]\n'
    )
    assert find_tests(tmp_path) == [tmp_path / "voluptuous/tests"]
    # the first configuration file pytest would take decides: pytest.ini, even without testpaths
    (tmp_path / "pytest.ini").write_text("[pytest]\naddopts = -q\n")
    assert find_tests(tmp_path) == [tmp_path]  # the guess: a test-named module somewhere
    (tmp_path / "pytest.ini").unlink()
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'v'\n")  # not pytest's
    (tmp_path / "tox.ini").write_text("[tox]\nenvlist = py3\n")  # not pytest's either
    (tmp_path / "setup.cfg").write_text("[tool:pytest]\ntestpaths =\n    voluptuous\n")
    assert find_tests(tmp_path) == [tmp_path / "voluptuous"]
    (tmp_path / "tox.ini").write_text("[pytest]\ntestpaths = missing\n")
    assert find_tests(tmp_path) == [tmp_path]  # named paths absent: the guess


def test_find_tests_sees_a_root_tests_module(tmp_path: Path) -> None:
    """An sdist whose only tests are a root ``tests.py`` has tests; one with none has none."""
    (tmp_path / "setup.py").write_text("")
    assert find_tests(tmp_path) == []
    (tmp_path / "tests.py").write_text("")
    assert find_tests(tmp_path) == [tmp_path]


@pytest.mark.parametrize(
    ("line", "name"),
    [
        ("  Created wheel for demo: filename=demo-1.0-py3-none-any.whl size=1", "demo"),
        ("      Built demo-pkg @ file:///var/lib/pyti/job/demo_pkg-1.0.tar.gz", "demo-pkg"),
        ("      Built demo==1.0", "demo"),
        ("Prepared 1 package in 2.60s", None),
        ("   Building demo @ file:///var/lib/pyti/job/demo-1.0.tar.gz", None),
    ],
)
def test_built_wheel_lines_of_pip_and_uv(line: str, name: str | None) -> None:
    """install_summary's "built" list reads both installers' words for a wheel built from an
    sdist."""
    found = BUILT_WHEEL.match(line)
    assert (found and (found.group(1) or found.group(2))) == name


@pytest.mark.parametrize(
    ("stderr", "expected"),
    [
        (
            "Looking in links\nERROR: No matching distribution found for trio\n",
            "ERROR: No matching",
        ),
        (
            "  × No solution found when resolving dependencies:\n"
            "  ╰─▶ Because trio was not found in the provided package locations\n",
            "× No solution found when resolving dependencies: ╰─▶ Because trio",
        ),
        ("error: Failed to parse: `trio>>1`\n", "error: Failed to parse"),
        (
            "error: No solution found when resolving dependencies\n"
            "  cause: Because trio was not found in the provided package locations\n",
            "error: No solution found when resolving dependencies cause: Because trio",
        ),
        ("something odd\n", "something odd"),
    ],
)
def test_pip_error_reads_pip_and_uv(stderr: str, expected: str) -> None:
    """The summary's "why not installable" is the installer's error line, pip's or uv's."""
    result = Result(returncode=1, timed_out=False, stderr_tail=stderr, stdout_tail="")
    assert pip_error(result).startswith(expected)


def test_wrapper_lines_hide_only_the_privilege_drop() -> None:
    """The setpriv wrapper's own lines (its library loads, setresuid, a failed PATH
    attempt) are hidden up to the command's execve; from there on, all is kept."""
    lines = [
        b'493   execve("/usr/bin/setpriv", ["setpriv", "--reuid=1000"], 0x7ffd /* 10 vars */) = 0',
        b'493   openat(AT_FDCWD, "/lib/x86_64-linux-gnu/libcap-ng.so.0", O_RDONLY) = 3',
        b"493   setresuid(1000, 1000, 1000)       = 0",
        b"493   setgroups(0, NULL)                = 0",
        b'493   execve("/usr/local/bin/python", ["python"], 0x1 /* 10 vars */) = -1 ENOENT',
        b'493   execve("/home/tester/venv/bin/python", ["python", "-c", "x"], 0x1) = 0',
        b"493   setresuid(0, 0, 0)                = -1 EPERM (Operation not permitted)",
        b'494   execve("/bin/sh", ["sh"], 0x1) = 0',
    ]
    wrapper = WrapperLines(active=True)
    shown = [line for line in lines if not wrapper.hides(line)]
    assert shown == lines[5:]
    idle = WrapperLines(active=False)
    assert [line for line in lines if not idle.hides(line)] == lines


@pytest.mark.parametrize(
    ("line", "found"),
    [
        ("ModuleNotFoundError: No module named 'fakehelper'", True),
        ("ImportError: cannot import name 'x' from 'y'", True),
        # the trixie image's pip hides the cause when an in-tree backend does not import
        ("pip._vendor.pyproject_hooks._impl.BackendUnavailable: Cannot import 'setup'", True),
        ("ERROR: No matching distribution found for wheel", False),
    ],
)
def test_build_failures_worth_a_retry_without_isolation(line: str, found: bool) -> None:
    assert bool(IMPORT_FAILURE.search(line)) is found


def test_a_clocked_upper_bound_is_a_speed_check(tmp_path: Path) -> None:
    """Real pytest failures: a time read from a clock over its upper bound (unittest's
    assertLess, a plain assert on a difference), or a count under its lower bound in code
    that sleeps and reads no clock, is a speed check; a time under its lower bound, or a
    number off its bound with neither clock nor sleep, is not."""
    junit = junit_of(
        tmp_path,
        {
            "tests/test_clock.py": (
                "import time, unittest\n\n"
                "def current_time_ms():\n    return 8\n\n"
                "class T(unittest.TestCase):\n"
                "    def test_sleeps(self):\n"
                "        start = 0\n"
                "        t = current_time_ms() - start\n"
                "        self.assertLess(t, 1.1)\n\n"
                "def test_diff():\n"
                "    start = time.monotonic() - 5\n"
                "    assert (time.monotonic() - start) < 1\n\n"
                "def test_waited():\n"
                "    start = time.monotonic()\n"
                "    time.sleep(0.01)\n"
                "    assert time.monotonic() - start >= 1.0\n\n"
                "def test_count():\n"
                "    items = [1, 2, 3]\n"
                "    assert len(items) < 2\n\n"
                "def test_round_trips():\n"
                "    counter = 0\n"
                "    for _ in range(3):\n"
                "        time.sleep(0.01)\n"
                "        counter += 1\n"
                "    assert counter > 30\n\n"
                "def test_enough():\n"
                "    items = [1, 2]\n"
                "    assert len(items) >= 3\n"
            ),
        },
    )
    summary = parse_junit(junit)
    assert summary["failed"] == 6
    assert sorted(summary["speed_failures"]["tests"]) == [
        "tests/test_clock.py::T::test_sleeps",
        "tests/test_clock.py::test_diff",
        "tests/test_clock.py::test_round_trips",
    ]


def test_async_tests_no_plugin_ran_are_counted_apart(tmp_path: Path) -> None:
    """A real pytest run: an ``async def`` test that no installed plugin takes fails with
    "async def functions are not natively supported": counted in ``plugin_failures``, not
    as the release's failure; a real failure beside it stays the first failure."""
    junit = junit_of(
        tmp_path,
        {
            "tests/test_io.py": (
                "async def test_read():\n    pass\n\n"
                "def test_sync():\n    pass\n\n"
                "def test_wrong():\n    assert 1 == 2\n"
            ),
        },
    )
    summary = parse_junit(junit)
    assert (summary["passed"], summary["failed"]) == (1, 2)
    assert summary["plugin_failures"] == {"count": 1, "tests": ["tests/test_io.py::test_read"]}
    assert summary["first_failure"]["test"] == "tests/test_io.py::test_wrong"


def test_lint_plugin_checks_are_counted_apart(tmp_path: Path) -> None:
    """A real pytest run with a lint plugin made the way pytest-ruff makes one (a ``File``
    per module with an item named ``ruff``, failing on a rule): its checks are counted in
    ``lint_failures``, not as the release's failures; a test named like a linter is not."""
    conftest = dedent(
        """
        import pytest


        class RuffItem(pytest.Item):
            def runtest(self):
                raise AssertionError("RUF023 `BSlots.__slots__` is not sorted")


        class RuffFile(pytest.File):
            def collect(self):
                yield RuffItem.from_parent(self, name="ruff")


        def pytest_collect_file(parent, file_path):
            if file_path.name.startswith("test_"):
                return RuffFile.from_parent(parent, path=file_path)
        """
    )
    files = {
        "tests/conftest.py": conftest,
        "tests/test_io.py": "def test_ok():\n    pass\n\ndef test_black():\n    assert 0\n",
    }
    summary = parse_junit(junit_of(tmp_path, files))
    assert (summary["passed"], summary["failed"]) == (1, 2), summary
    assert summary["lint_failures"] == {
        "count": 1,
        "tests": ["tests/test_io.py::ruff"],
        "tools": ["ruff"],
    }
    assert summary["first_failure"]["test"] == "tests/test_io.py::test_black"
    assert lint_tool("src/m.py::flake-8::FLAKE8") == "flake8"
    assert lint_tool("src/m.py::mypy") == "mypy"
    assert lint_tool("mypy-status") == "mypy"
    assert lint_tool("tests/test_io.py::test_black") is None


def test_a_base_class_whose_subclasses_pass_its_tests_is_counted_apart(tmp_path: Path) -> None:
    """A real pytest run of a unittest suite written for its own runner: pytest also runs
    the abstract ``BaseTests``, whose methods call what only subclasses define. Its
    failures count in ``base_failures``; a base whose test passes nowhere else, another
    class's missing attribute and a real failure stay the release's."""
    module = dedent(
        """
        import unittest


        class BaseTests(unittest.TestCase):
            def test_parse(self):
                self.assertEqual(self.parse("1"), 1)

            def test_only_here(self):
                self.assertEqual(self.parse("2"), 2)


        class TestInt(BaseTests):
            parse = staticmethod(int)
            test_only_here = None


        class TestFloat(BaseTests):
            parse = staticmethod(float)
            test_only_here = None


        class Helper:
            pass


        class TestOther(unittest.TestCase):
            def test_helper(self):
                Helper().parse

            def test_wrong(self):
                self.assertEqual(1, 2)
        """
    )
    summary = parse_junit(junit_of(tmp_path, {"tests/test_base.py": module}))
    assert (summary["passed"], summary["failed"]) == (2, 4), summary
    assert summary["base_failures"] == {
        "count": 1,
        "tests": ["tests/test_base.py::BaseTests::test_parse"],
        "classes": ["tests/test_base.py::BaseTests"],
    }
    assert summary["first_failure"]["test"] == "tests/test_base.py::BaseTests::test_only_here"


def test_tests_asking_for_a_plugins_fixture_none_installed_did_not_run(tmp_path: Path) -> None:
    """A real pytest run: benchmarks asking for pytest-benchmark's ``benchmark`` fixture,
    which nothing installed provides, count in ``plugin_failures``; a fixture no plugin is
    known for (the suite's own, gone missing) stays the release's failure."""
    module = (
        "def test_speed(benchmark):\n    benchmark(sum, [1, 2])\n\n"
        "def test_own(data_file):\n    pass\n\n"
        "def test_ok():\n    pass\n"
    )
    summary = parse_junit(junit_of(tmp_path, {"tests/test_bench.py": module}))
    assert summary["passed"] == 1, summary
    assert summary["plugin_failures"] == {
        "count": 1,
        "tests": ["tests/test_bench.py::test_speed"],
    }
    assert summary["first_failure"]["test"] == "tests/test_bench.py::test_own"
