"""Test modules written as scripts, run as their authors run them (``guest_runner.script_reruns``).

What a module's script part runs is read from its text (first part); then the real
runner zipapp, as in ``test_runner.py``, runs sdists whose tests fail under pytest
only, and others whose failures are real, and says which count apart.
"""

from __future__ import annotations

from pathlib import Path

from guest_runner.script_reruns import runs, script_part
from tests.fakes.dists import build_sdist, dedent
from tests.unit import test_runner as harness
from tests.unit.test_runner import BACKEND, PYPROJECT, RunJob, finished, one

wheelhouse = harness.wheelhouse
runner_pyz = harness.runner_pyz
run_job = harness.run_job
pytestmark = harness.pytestmark

CALLS = dedent(
    """
    def test_a():
        pass


    def test_b(x=1):
        pass


    def test_not_called():
        pass


    if __name__ == "__main__":
        test_a()
        for check in (test_b,):
            check()
    """
)


def test_a_script_part_runs_the_functions_it_names() -> None:
    part = script_part(CALLS)
    assert part is not None
    assert runs(part, "tests/test_x.py::test_a")
    assert runs(part, "tests/test_x.py::test_b[3]")
    assert not runs(part, "tests/test_x.py::test_not_called")
    assert not runs(part, "tests/test_x.py::Cls::test_a")  # no unittest.main: no class runs
    assert not runs(part, "tests/test_x.py")


def test_unittest_main_runs_the_test_case_classes_only() -> None:
    source = dedent(
        """
        import unittest


        class Base(unittest.TestCase):
            pass


        class Derived(Base):
            def test_x(self):
                pass


        class Plain:
            def test_y(self):
                pass


        unittest.main()
        """
    )
    part = script_part(source)
    assert part is not None
    assert runs(part, "test/testlex.py::Derived::test_x")
    assert runs(part, "test/testlex.py::Base::test_z")
    assert not runs(part, "test/testlex.py::Plain::test_y")  # pytest's, not unittest's
    quiet = script_part(source.replace("unittest.main()", "unittest.main(exit=False)"))
    assert quiet is None  # its status is dropped: not a script part to trust
    verbose = script_part(source.replace("unittest.main()", "unittest.main(verbosity=2)"))
    assert verbose is not None and runs(verbose, "test/testlex.py::Derived::test_x")
    for picking in ('defaultTest="Base"', 'argv=["x", "Base"]', '"__main__"'):
        part = script_part(source.replace("unittest.main()", f"unittest.main({picking})"))
        assert part is None or not runs(part, "test/testlex.py::Derived::test_x"), picking


def test_script_parts_that_cannot_fail_are_not_trusted() -> None:
    """A main block that swallows a failing test, or hands over to ``pytest.main`` (whose
    status a script easily drops), proves nothing; nor does a guard with more in it."""
    swallow = CALLS.replace(
        "    test_a()\n", "    try:\n        test_a()\n    except Exception:\n        pass\n"
    )
    assert script_part(swallow) is None
    bare = CALLS.replace(
        "    test_a()\n", "    try:\n        test_a()\n    except:\n        pass\n"
    )
    assert script_part(bare) is None
    assert script_part(CALLS.replace("    test_a()\n", "    pytest.main([__file__])\n")) is None
    guarded = CALLS.replace('__name__ == "__main__"', '__name__ == "__main__" and len(argv) > 2')
    assert script_part(guarded) is None
    assert script_part("def test_a():\n    pass\n") is None
    assert script_part("def broken(:\n") is None
    narrow = CALLS.replace(
        "    test_a()\n", "    try:\n        import numpy\n    except ImportError:\n        pass\n"
    )
    part = script_part(narrow)
    assert part is not None
    assert runs(part, "tests/test_x.py::test_b")


def sdist(tmp_path: Path, tests: dict[str, str]) -> Path:
    tree = {
        "demo/__init__.py": "class Thing:\n    pass\n",
        "backend.py": BACKEND.format(module="demo", version="0.1"),
        "pyproject.toml": PYPROJECT.format(module="demo", version="0.1"),
        **tests,
    }
    return build_sdist(tmp_path / "src", "demo", "0.1", tree)


#: Passes as ``python test_main.py`` only: its class must be ``__main__``'s, as dill's
#: tests expect (pickling by reference to ``__main__``).
MAIN_ONLY = dedent(
    """
    import sys


    class Local:
        pass


    def test_class_is_mains():
        assert sys.modules["__main__"].__dict__.get("Local") is Local


    def test_plain():
        assert 1 + 1 == 2


    if __name__ == "__main__":
        test_class_is_mains()
        test_plain()
    """
)
#: Passes only from its own folder, as ply's do (``cd test; python testlex.py``): it runs
#: a helper script by a path relative to it.
FOLDER_ONLY = dedent(
    """
    import subprocess
    import sys
    import unittest


    class Runs(unittest.TestCase):
        def test_runs_its_helper(self):
            done = subprocess.run([sys.executable, "helper.py"], capture_output=True)
            self.assertEqual(done.returncode, 0)


    if __name__ == "__main__":
        unittest.main()
    """
)


def test_failures_of_modules_that_pass_as_scripts_count_apart(
    tmp_path: Path, run_job: RunJob
) -> None:
    tests = {
        "tests/test_main.py": MAIN_ONLY,
        "tests/test_folder.py": FOLDER_ONLY,
        "tests/helper.py": "print('ok')\n",
    }
    events = run_job([sdist(tmp_path, tests)], phases=("install", "tests"))
    summary = one(events, "tests_summary")
    assert (summary["passed"], summary["failed"]) == (1, 2), summary
    scripts = summary["script_failures"]
    assert scripts["count"] == 2, summary
    assert sorted(scripts["tests"]) == [
        "tests/test_folder.py::Runs::test_runs_its_helper",
        "tests/test_main.py::test_class_is_mains",
    ]
    assert sorted(scripts["modules"]) == ["tests/test_folder.py", "tests/test_main.py"]
    assert summary["first_failure"] is None
    said = [e for e in events if e["event"] == "log" and "run as a script" in e.get("message", "")]
    assert len(said) == 2 and all(e["passed"] for e in said), said
    # the script ran as package code does: traced, in its own folder
    execs = [e for e in events if e["event"] == "trace" and e.get("stage") == "script"]
    assert execs, "the script runs were not traced"


def test_real_failures_stay_failures(tmp_path: Path, run_job: RunJob) -> None:
    """A test that fails as a script too, one its script part never runs, and one whose
    module swallows the failure all stay failed: nothing counts apart."""
    fails_anyway = MAIN_ONLY.replace("assert 1 + 1 == 2", "assert 1 + 1 == 3")
    call = "    test_class_is_mains()\n"
    not_run = MAIN_ONLY.replace(call, "")
    swallowed = MAIN_ONLY.replace(
        call, "    try:\n        test_class_is_mains()\n    except AssertionError:\n        pass\n"
    )
    assert MAIN_ONLY != not_run != swallowed != MAIN_ONLY
    tests = {
        "tests/test_anyway.py": fails_anyway,
        "tests/test_not_run.py": not_run,
        "tests/test_swallowed.py": swallowed,
    }
    events = run_job([sdist(tmp_path, tests)], phases=("install", "tests"))
    summary = one(events, "tests_summary")
    assert summary["failed"] == 4, summary  # 3 x test_class_is_mains, 1 x test_plain
    assert summary["script_failures"]["count"] == 0, summary
    assert summary["first_failure"] is not None
    assert finished(events, "tests")["status"] == "failed"
    said = [e for e in events if e["event"] == "log" and "run as a script" in e.get("message", "")]
    # only test_anyway.py's script part runs its failures; it failed as a script too
    assert [e["module"] for e in said] == ["tests/test_anyway.py"], said
    assert not said[0]["passed"]
