"""Failures that only read a file the sdist does not ship are counted apart.

A real pytest run (xunit1, as the guest's tests phase runs it) from a small sdist tree,
whose tests read: a git submodule's folder, test data next to the test module, a data
file of the package itself, and a file outside the tree.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from guest_runner.junit import parse_junit
from guest_runner.release_fault import inside
from guest_runner.unshipped_files import unshipped_file
from tests.fakes.pytest_junit import junit_of

TESTS = """
import os

HERE = os.path.dirname(__file__)


def test_submodule():
    os.listdir("toml-test/tests/valid/")


def test_data_next_to_the_test():
    open(os.path.join(HERE, "data", "case.json")).read()


def test_package_data():
    open("mypkg/table.json").read()


def test_outside_the_tree():
    open("/nonexistent-pyti/table.json").read()


def test_ok():
    assert os.path.exists(os.path.join(HERE, "test_files.py"))
"""


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sdist")
    junit_of(root, {"mypkg/__init__.py": "", "tests/test_files.py": TESTS})
    return root


def test_only_files_of_the_tree_outside_the_package_count_apart(tree: Path) -> None:
    summary = parse_junit(tree / "junit.xml", ["mypkg"], tree)
    apart = summary["unshipped_failures"]
    assert apart["count"] == 2
    assert apart["files"] == ["toml-test/tests/valid", "tests/data/case.json"]
    assert (summary["collected"], summary["passed"], summary["failed"]) == (5, 1, 4)
    assert summary["first_failure"]["test"] == "tests/test_files.py::test_package_data"


def test_a_wheel_only_release_counts_nothing_apart(tree: Path) -> None:
    """Without an sdist tree (tests run from the installed package) nothing is set apart."""
    summary = parse_junit(tree / "junit.xml", ["mypkg"], None)
    assert summary["unshipped_failures"]["count"] == 0


def test_a_file_that_is_there_is_not_unshipped(tmp_path: Path) -> None:
    """The file exists now (the test failed for another reason): not counted apart."""
    (tmp_path / "data.txt").write_text("x")
    text = "E   FileNotFoundError: [Errno 2] No such file or directory: 'data.txt'"
    assert unshipped_file(text, tmp_path, ["mypkg"]) is None
    assert unshipped_file(text.replace("data.txt", "gone.txt"), tmp_path, []) == "gone.txt"


@pytest.mark.parametrize(
    ("raw", "relative"),
    [("a/b", "a/b"), ("./a/", "a"), ("../x", None), ("/etc/passwd", None), (".", None)],
)
def test_inside(tmp_path: Path, raw: str, relative: str | None) -> None:
    assert inside(tmp_path, raw) == relative
    assert inside(tmp_path, str(tmp_path / "deep" / "f")) == "deep/f"
