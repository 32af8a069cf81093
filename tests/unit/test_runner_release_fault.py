"""A test module the release's own code broke is a failed test; a missing helper is not.

The JUnit XML is written by a real pytest run (``--continue-on-collection-errors``,
xunit1, as the guest's tests phase runs it) on a small tree: a package ``mypkg``
whose submodule ``broken`` raises AttributeError at import, ``syntax`` does not compile,
``refuses`` raises RuntimeError (an environment it wants: not a defect), and tests that
import them, import a name the package lacks, import a module nobody installed, or a
test helper that raises.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from guest_runner.junit import parse_junit
from guest_runner.release_fault import raised_by_release, release_file
from tests.fakes.dists import dedent
from tests.fakes.pytest_junit import junit_of

FILES = {
    "mypkg/__init__.py": "VALUE = 1\n",
    "mypkg/broken.py": "TABLE = {}\nFIRST = TABLE.first()\n",
    "mypkg/syntax.py": "def f(:\n    pass\n",
    "mypkg/refuses.py": "raise RuntimeError('set MYPKG_CONFIG first')\n",
    "mypkg/optional.py": "import numpy_not_installed_here\n",
    "mypkg/tests/__init__.py": "",
    "mypkg/tests/helper.py": "raise KeyError('fixture data not shipped')\n",
    "tests/test_ok.py": "def test_ok():\n    assert True\n",
    "tests/test_broken.py": "import mypkg.broken\n\ndef test_a():\n    pass\n",
    "tests/test_syntax.py": "import mypkg.syntax\n\ndef test_s():\n    pass\n",
    "tests/test_refuses.py": "import mypkg.refuses\n\ndef test_r():\n    pass\n",
    "tests/test_name.py": "from mypkg import missing_name\n\ndef test_b():\n    pass\n",
    "tests/test_optional.py": "import mypkg.optional\n\ndef test_c():\n    pass\n",
    "tests/test_trio.py": "import trio_not_installed_here\n\ndef test_d():\n    pass\n",
    "tests/test_helper.py": "import mypkg.tests.helper\n\ndef test_e():\n    pass\n",
}


@pytest.fixture(scope="module")
def junit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return junit_of(tmp_path_factory.mktemp("sdist"), FILES)


def test_modules_the_release_broke_are_failed_tests(junit: Path) -> None:
    """test_broken (AttributeError), test_syntax (SyntaxError) and test_name (mypkg has
    no such name) fail; the refusal of the environment (RuntimeError), the missing
    third-party modules and the test helper stay collection errors."""
    summary = parse_junit(junit, ["mypkg"], junit.parent)
    apart = sorted(e["module"] for e in summary["collection_errors"])
    assert apart == [
        "tests/test_helper.py",
        "tests/test_optional.py",
        "tests/test_refuses.py",
        "tests/test_trio.py",
    ]
    assert summary["collection_error_count"] == 4
    assert (summary["collected"], summary["passed"], summary["failed"], summary["errors"]) == (
        4,
        1,
        3,
        0,
    )
    first = summary["first_failure"]
    assert first["test"] in ("tests/test_broken.py", "tests/test_name.py", "tests/test_syntax.py")
    assert first["error"] in (
        "AttributeError: 'dict' object has no attribute 'first'",
        "SyntaxError: invalid syntax",
        "ImportError: cannot import name 'missing_name' from 'mypkg' (%s)"
        % (junit.parent / "mypkg" / "__init__.py"),
    )


def test_without_the_release_modules_nothing_is_blamed(junit: Path) -> None:
    """Not knowing the release's modules (no install), every error is set aside as before."""
    summary = parse_junit(junit)
    assert summary["collection_error_count"] == 7
    assert (summary["collected"], summary["passed"], summary["failed"]) == (1, 1, 0)
    assert summary["first_failure"] is None


@pytest.mark.parametrize(
    ("path", "ours"),
    [
        ("/home/tester/venv/lib/python3.13/site-packages/mypkg/core.py", True),
        ("/home/tester/venv/lib/python3.13/site-packages/mypkg.py", True),
        ("/home/tester/venv/lib/python3.13/site-packages/other/core.py", False),
        ("/home/tester/venv/lib/python3.13/site-packages/mypkg/tests/util.py", False),
        ("src/mypkg/core.py", True),
        ("mypkg/conftest.py", False),
        ("tests/test_x.py", False),
        ("/usr/lib/python3.13/importlib/__init__.py", False),
    ],
)
def test_release_file(path: str, ours: bool) -> None:
    assert release_file(path, frozenset({"mypkg"})) is ours


def test_a_missing_dependency_inside_the_package_is_not_blamed() -> None:
    """The package's own frame importing an uninstalled dependency: set aside."""
    text = (
        "collection failure\ntests/test_x.py:1: in <module>\n    import mypkg.extra\n"
        "/venv/lib/python3.13/site-packages/mypkg/extra.py:1: in <module>\n"
        "    import yaml\nE   ModuleNotFoundError: No module named 'yaml'"
    )
    assert raised_by_release(text, ["mypkg"]) is None
    assert raised_by_release(text.replace("'yaml'", "'mypkg._speedups'"), ["mypkg"]) == (
        "ModuleNotFoundError: No module named 'mypkg._speedups'"
    )


def test_an_environment_the_release_refuses_is_not_a_defect() -> None:
    """Django's settings not configured (its suite runs through runtests.py): every test
    module fails the same way from Django's own code; that is not a broken release."""
    text = (
        "collection failure\ntests/admin_changelist/test_date_hierarchy.py:3: in <module>\n"
        "    from django.contrib.admin.options import IncorrectLookupParameters\n"
        "/venv/lib/python3.13/site-packages/django/conf/__init__.py:75: in _setup\n"
        "    raise ImproperlyConfigured(\n"
        "E   django.core.exceptions.ImproperlyConfigured: Requested setting INSTALLED_APPS,"
        " but settings are not configured."
    )
    assert raised_by_release(text, ["django"]) is None
    defect = text.replace("django.core.exceptions.ImproperlyConfigured", "AttributeError")
    assert raised_by_release(defect, ["django"]) is not None


def test_a_test_package_the_sdist_ships_without_its_init_is_named(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Test modules doing ``from tests import helper`` where the sdist left out
    tests/__init__.py: Python finds ``tests`` only as a namespace ("unknown location"),
    and the collection error names the file that is missing. A package that is there
    but lacks the name is no such case."""
    files = {
        "mypkg/__init__.py": "",
        "tests/test_uses_helper.py": "from tests import unittest\n\ndef test_a():\n    pass\n",
        "tests/test_plain.py": "def test_b():\n    pass\n",
        "other/__init__.py": "",
        "tests/test_other.py": "from other import absent\n\ndef test_c():\n    pass\n",
    }
    junit = junit_of(tmp_path_factory.mktemp("sdist"), files)
    summary = parse_junit(junit, ["mypkg"], junit.parent)
    missing = {e["module"]: e["missing"] for e in summary["collection_errors"]}
    assert missing == {
        "tests/test_uses_helper.py": "tests/__init__.py",
        "tests/test_other.py": None,
    }
    assert (summary["collected"], summary["passed"], summary["failed"]) == (1, 1, 0)
    # Without the sdist's tree (a wheel-only release) nothing is inferred.
    assert {e["missing"] for e in parse_junit(junit, ["mypkg"])["collection_errors"]} == {None}


def test_a_test_importing_a_module_not_installed_counts_apart(tmp_path: Path) -> None:
    """A test whose body imports a module nobody installed (dill's ``test_attr`` does
    ``import attr``) failed only for want of it, as a module not collected would; a
    test helper doing so too. The release's own code raising it, or a submodule of the
    release that is not there, stay failures."""
    files = {
        "mypkg/__init__.py": "def lazy():\n    import yaml_not_installed_here\n",
        "tests/helpers.py": "def needs():\n    import hypothesis_not_installed_here\n",
        # dill-like: the release wraps __import__, so its frame is the deepest one
        "mypkg/hook.py": dedent(
            """
            import builtins

            _real = builtins.__import__


            def _imp(*args, **kwds):
                return _real(*args, **kwds)


            def install():
                builtins.__import__ = _imp


            def uninstall():
                builtins.__import__ = _real
            """
        ),
        "tests/test_body.py": dedent(
            """
            from tests import helpers


            def test_body():
                import attr_not_installed_here


            def test_through_the_releases_import_hook():
                import mypkg.hook
                mypkg.hook.install()
                try:
                    import dateutil_not_installed_here
                finally:
                    mypkg.hook.uninstall()


            def test_helper():
                helpers.needs()


            def test_release_code():
                import mypkg
                mypkg.lazy()


            def test_own_submodule():
                import mypkg.not_there
            """
        ),
        "tests/__init__.py": "",
    }
    summary = parse_junit(junit_of(tmp_path, files), ["mypkg"], tmp_path)
    assert summary["failed"] == 5, summary
    absent = summary["module_failures"]
    assert absent["count"] == 3, summary
    assert sorted(absent["tests"]) == [
        "tests/test_body.py::test_body",
        "tests/test_body.py::test_helper",
        "tests/test_body.py::test_through_the_releases_import_hook",
    ]
    assert sorted(absent["modules"]) == [
        "attr_not_installed_here",
        "dateutil_not_installed_here",
        "hypothesis_not_installed_here",
    ]
    assert summary["first_failure"]["test"] == "tests/test_body.py::test_release_code"
