"""The pytest plugin the tests phase loads into the package's pytest (``-p``).

It is not imported by the runner: its source is copied into the job venv as
``_pyti_pytest_plugin.py`` (:func:`install`) and runs in the package's pytest, with
only what that venv has (pytest; Hypothesis when the suite uses it).

**Hypothesis deadlines off.** Hypothesis fails an example that takes longer than its
``deadline`` (200 ms, or what the project's own profile says: attrs sets 400 ms). That
is a speed check, and a guest under emulation (TCG: ~10x slower) fails it for reasons
that are not in the package (attrs 26.1.0: ``DeadlineExceeded`` after 513 ms). Once
collection is over, each collected Hypothesis test gets its settings (the profile it
was decorated under, or its own ``@settings``) with ``deadline=None``, as Hypothesis's
own ``ci`` profile has it. The rest of the settings stay the project's.
"""

from __future__ import annotations

import contextlib
import sys
from importlib import resources
from pathlib import Path
from typing import Any

MODULE = "_pyti_pytest_plugin"


def pytest_collection_modifyitems(items: list[Any]) -> None:
    """Every collected Hypothesis test without its deadline (see the module docstring)."""
    hypothesis = sys.modules.get("hypothesis")
    if hypothesis is None:
        return
    for item in items:
        obj = getattr(item, "obj", None)
        test: Any = getattr(obj, "__func__", obj)  # a method's function
        current = getattr(test, "_hypothesis_internal_use_settings", None)
        if current is None or getattr(current, "deadline", None) is None:
            continue
        # @given reads its settings from this attribute when the test runs; an old or
        # unusual Hypothesis that refuses is left as it is
        with contextlib.suppress(Exception):
            test._hypothesis_internal_use_settings = hypothesis.settings(current, deadline=None)


def install(site_packages: Path) -> str:
    """Copy this plugin into ``site_packages``; returns the module name for ``-p``."""
    source = resources.files(__package__ or "guest_runner").joinpath("pytest_plugin.py")
    (site_packages / f"{MODULE}.py").write_text(source.read_text(encoding="utf-8"))
    return MODULE
