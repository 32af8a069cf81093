"""python_refusal: a release wheel's Requires-Python against the guest's Python, pip's rule."""

from __future__ import annotations

import pytest

from slave.prepare.python_check import python_refusal


@pytest.mark.parametrize(
    ("requires_python", "python"),
    [
        ("<3", "3.11.2"),
        (">=3.12", "3.11.2"),
        (">=3.11.4", "3.11.2"),  # the full version counts, not only 3.11
        ("!=3.11.2", "3.11.2"),
        (">=3.8, <3.11", "3.11.2"),
        ("~=3.12.0", "3.13.5"),
    ],
)
def test_a_python_outside_the_specifier_is_refused_in_pips_words(
    requires_python: str, python: str
) -> None:
    reason = python_refusal("oldpkg 1.0", requires_python, python)
    assert reason == (
        f"oldpkg 1.0 requires a different Python: {python} not in {requires_python!r}"
    )


@pytest.mark.parametrize(
    ("requires_python", "python"),
    [
        (None, "3.11.2"),
        ("", "3.11.2"),
        (">=3.8", "3.11.2"),
        (">=3.11", "3.11.2"),
        (">=3.8,<4", "3.13.5"),
        ("==3.11.*", "3.11.2"),
        ("not a specifier", "3.11.2"),  # pip warns and installs
        (">=3.9", "not a version"),
    ],
)
def test_a_python_inside_or_an_unreadable_specifier_installs(
    requires_python: str | None, python: str
) -> None:
    assert python_refusal("pkg 1.0", requires_python, python) is None
