"""`Collector`: one requirement per project name, markers evaluated, own extras expanded."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from packaging.markers import InvalidMarker, UndefinedComparison, UndefinedEnvironmentName
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from slave.prepare.testdeps.pyproject import strings

#: Dropped when they come from a ``dev`` source: docs, linters, type checkers,
#: formatters, release and environment tooling. ``coverage``/``pytest-cov`` stay
#: (a ``--cov`` in the project's pytest options needs them).
DEV_TOOLING = re.compile(
    r"^(?:sphinx.*|furo|myst-parser|mkdocs.*|pydata-sphinx-theme|docutils|"
    r"mypy|mypy-extensions|types-.*|pyright|basedpyright|pyrefly|ty|pytype|"
    r"black|ruff|isort|flake8.*|pylint|pyflakes|pycodestyle|autopep8|yapf|bandit|"
    r"pre-commit.*|tox|tox-.*|nox|twine|build|check-manifest|pip-tools|"
    r"pip-compile-multi|towncrier|bump2version|bumpversion|bump-my-version|tbump|"
    r"ipython|ipdb|pdbpp|codespell|doc8|readme-renderer|gha-update|uv)$"
)
_EXTRA_MARKER = re.compile(r"""\bextra\s*==\s*['"]([^'"]+)['"]""")


class Collector:
    """Accumulates requirements from every source (see the package docstring)."""

    def __init__(
        self,
        project: str,
        environment: Mapping[str, str],
        extras: Callable[[str], list[str]],
        runtime: Iterable[str],
    ) -> None:
        self.own = canonicalize_name(project)
        self.environment = dict(environment)
        self.extras = extras
        self.taken = {self.own, *(canonicalize_name(n) for n in runtime)}
        self.expanded: set[str] = set()
        self.requirements: list[str] = []
        self.sources: list[str] = []

    def add(self, source: str, texts: Iterable[str], *, dev: bool = False) -> None:
        """Add ``texts`` (PEP 508 strings) found in ``source``; invalid ones are skipped.

        ``source`` is recorded when it names anything that applies to the guest, even a
        name an earlier source already gave (the first specifier wins).
        """
        if self._add_all(texts, dev) and source not in self.sources:
            self.sources.append(source)

    def own_extras(self, source: str, names: Iterable[str], *, dev: bool = False) -> None:
        """Add the project's own extras ``names`` (``.[test]``, ``pkg[test]``)."""
        if self._expand(names, dev) and source not in self.sources:
            self.sources.append(source)

    def _add_all(self, texts: Iterable[str], dev: bool) -> bool:
        added = False
        for text in texts:
            added |= self._add_one(text, dev)
        return added

    def _expand(self, names: Iterable[str], dev: bool) -> bool:
        added = False
        for name in names:
            key = canonicalize_name(name)
            if key not in self.expanded:
                self.expanded.add(key)
                added |= self._add_all(self.extras(name), dev)
        return added

    def _add_one(self, text: str, dev: bool) -> bool:
        try:
            req = Requirement(text)
            applies = req.marker is None or req.marker.evaluate({**self.environment, "extra": ""})
        except (InvalidRequirement, InvalidMarker, UndefinedComparison, UndefinedEnvironmentName):
            return False
        name = canonicalize_name(req.name)
        if not applies or req.url is not None:
            return False
        if name == self.own:
            return self._expand(sorted(req.extras), dev)
        if dev and DEV_TOOLING.match(name):
            return False
        if name not in self.taken:
            self.taken.add(name)
            req.marker = None
            self.requirements.append(str(req))
        return True


def extra_names(requires_dist: Iterable[str]) -> list[str]:
    names: list[str] = []
    for text in requires_dist:
        for name in _EXTRA_MARKER.findall(text):
            if name not in names:
                names.append(name)
    return names


def own_extras_reader(
    requires_dist: list[str], optional: dict[str, Any], environment: Mapping[str, str]
) -> Callable[[str], list[str]]:
    """``extra name -> requirements`` of the project's own extras (markers kept)."""

    def read(extra: str) -> list[str]:
        key = canonicalize_name(extra)
        found: list[str] = []
        for text in requires_dist:
            try:
                req = Requirement(text)
                if req.marker is None:
                    continue
                with_extra = req.marker.evaluate({**environment, "extra": key})
                without = req.marker.evaluate({**environment, "extra": ""})
            except (InvalidRequirement, UndefinedComparison, UndefinedEnvironmentName):
                continue
            if with_extra and not without:
                req.marker = None
                found.append(str(req))
        for name, reqs in optional.items():
            if canonicalize_name(name) == key:
                found.extend(strings(reqs))
        return found

    return read
