"""Every source of test dependencies, in the package docstring's order, combined."""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from packaging.utils import canonicalize_name

from guest_runner.optional_deps import import_names
from slave.prepare.metadata import SdistContents
from slave.prepare.testdeps.collector import Collector, extra_names, own_extras_reader
from slave.prepare.testdeps.locks import locked_versions, pin_to_lock
from slave.prepare.testdeps.pyproject import (
    dependency_group,
    poetry_requirement,
    strings,
    table,
)
from slave.prepare.testdeps.requirement_files import (
    DEV_FILE,
    ROOT_FILE,
    SELF,
    TEST_FILE,
    RequirementFiles,
    installs_project,
    pdm_lines,
    requirement_name,
)
from slave.prepare.testdeps.test_imports import (
    imported_modules,
    imported_test_libraries,
    plugins_used,
    reached_modules,
)
from slave.prepare.testdeps.tox import split_list, tox_section, tox_values

TEST_NAMES = frozenset({"test", "tests", "testing"})
DEV_NAMES = frozenset({"dev"})
# ``tests37``, ``test-py38``, ``tests-3.7`` (the digits right before the suffix)
_PYTHON_TAG = re.compile(r"(?:py|[-_.]|[a-z])(3)\.?(\d{1,2})$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class TestDependencies:
    """What the tests need beyond the runtime requirements, for the guest.

    ``requirements`` are pip arguments (markers already evaluated, none left);
    ``sources`` name where they were found, in order.
    """

    __test__ = False  # not a pytest class, despite the name

    requirements: list[str]
    sources: list[str]
    #: requirements the project takes from outside any index (``[tool.uv.sources]``: git,
    #: a URL, a path): ``"hypercorn (git https://...)"``. Upstream tests with that build;
    #: the guest gets the index release of the same name.
    substituted: list[str] = field(default_factory=list)


#: Extras that are no feature of the package: its docs, linting, typing, release tooling.
_NOT_A_FEATURE = re.compile(
    r"^(?:docs?|documentation|lint|linting|typing|types|mypy|style|release|build|dev\w*)$",
    re.IGNORECASE,
)


def _is_test(name: str) -> bool:
    return canonicalize_name(name) in TEST_NAMES


def _is_dev(name: str) -> bool:
    return canonicalize_name(name) in DEV_NAMES


def _names_pytest(texts: Iterable[str]) -> bool:
    return any(requirement_name(t) == "pytest" for t in texts)


def find_test_dependencies(
    *,
    project: str,
    requires_dist: list[str] | None,
    sdist: SdistContents | None,
    environment: Mapping[str, str],
    runtime: Iterable[str] = (),
) -> TestDependencies:
    """The release's test dependencies for the guest (see the package docstring).

    ``requires_dist`` is the static metadata's (``None`` when unknown: PKG-INFO's is
    then used as a best guess); ``runtime`` are the runtime requirements, whose names
    are not repeated. Never raises on malformed sources: they are skipped.
    """
    pyproject = (sdist.pyproject if sdist else None) or {}
    files = sdist.files if sdist else {}
    if requires_dist is None and sdist is not None and sdist.pkg_info is not None:
        requires_dist = sdist.pkg_info.requires_dist
    requires_dist = requires_dist or []
    project_table = table(pyproject, "project")
    optional = (
        {}
        if "optional-dependencies" in strings(project_table.get("dynamic"))
        else table(project_table, "optional-dependencies")
    )
    sources = _Sources(
        project,
        pyproject,
        files,
        Collector(
            project,
            environment,
            own_extras_reader(requires_dist, optional, environment),
            [requirement_name(r) for r in runtime],
        ),
        [*extra_names(requires_dist), *optional],
        environment,
    )
    sources.collect(_is_test, dev=False)
    sources.collect(_is_dev, dev=True)
    collector = sources.collector
    if "pytest" not in collector.taken:
        sources.collect_by_runner()
    if "pytest" not in collector.taken:
        collector.requirements.append("pytest")
    test_modules = sdist.test_modules if sdist else {}
    imported = imported_test_libraries(test_modules)
    # last: well-known test tools the test modules import and no source declared (mccabe)
    undeclared = [d for d in imported if canonicalize_name(d) not in collector.taken]
    collector.add("imports:tests", undeclared)
    # the release's own optional features its tests import: the whole extra (oauthlib's
    # tests ``import jwt``: its ``signedtoken`` extra, pyjwt and the cryptography pyjwt
    # signs with), tooling dropped; never a docs or tooling extra
    names = imported_modules(test_modules)
    # and those a module of the release the tests import needs: oauthlib's tests do
    # ``from oauthlib import signals``, whose module imports blinker (its signals extra)
    names |= reached_modules(test_modules, sdist.module_imports if sdist else {})
    for extra in dict.fromkeys([*extra_names(requires_dist), *optional]):
        if _NOT_A_FEATURE.match(extra):
            continue
        if any(import_names(requirement_name(r)) & names for r in collector.extras(extra)):
            collector.own_extras(f"imports:extra:{extra}", [extra], dev=True)
    # and pytest plugins the tests use by marker, fixture or setting (async-timeout)
    used = plugins_used(test_modules, _pytest_configs(files, pyproject))
    collector.add("plugins:tests", [d for d in used if canonicalize_name(d) not in collector.taken])
    substituted = index_substitutes(pyproject, collector.requirements)
    # pytest and its plugins at the versions the project's lock file ran (Flask)
    requirements = collector.requirements
    lock = locked_versions(files, environment)
    if lock is not None:
        requirements, pinned = pin_to_lock(requirements, lock[1])
        if pinned:
            collector.sources.append(f"lock:{lock[0]}")
    return TestDependencies(requirements, collector.sources, substituted)


#: Files whose pytest settings name a plugin (`plugins_used`).
_PYTEST_CONFIGS = ("pytest.ini", ".pytest.ini", "setup.cfg", "tox.ini")


def _pytest_configs(files: Mapping[str, bytes], pyproject: Mapping[str, Any]) -> list[str]:
    """The texts pytest reads its settings from: the ini files, and pyproject's
    ``[tool.pytest.ini_options]`` keys as ``key =`` lines."""
    texts = [files[n].decode("utf-8", errors="replace") for n in _PYTEST_CONFIGS if n in files]
    options = table(pyproject, "tool", "pytest", "ini_options")
    return [*texts, "".join(f"{key} =\n" for key in options)]


#: What ``[tool.uv.sources]`` can point at instead of an index.
_NOT_INDEX = ("git", "url", "path", "workspace")
#: Substitutions listed at most.
_MAX_SUBSTITUTED = 20


def index_substitutes(pyproject: Mapping[str, Any], requirements: list[str]) -> list[str]:
    """``"name (git URL)"`` for each of ``requirements`` that ``[tool.uv.sources]`` takes
    from git, a URL, a path or the workspace rather than an index (urllib3 tests with its
    own hypercorn branch). The host cannot have those offline-safe; the index release is
    used, and a failure may be the difference."""
    wanted = {requirement_name(r) for r in requirements}
    found: list[str] = []
    for name, value in table(pyproject, "tool", "uv", "sources").items():
        if requirement_name(name) not in wanted:
            continue
        for spec in value if isinstance(value, list) else [value]:
            kind = next((k for k in _NOT_INDEX if isinstance(spec, dict) and k in spec), None)
            if kind is not None:
                where = spec[kind]
                said = f"{kind} {where}" if isinstance(where, str) else kind
                found.append(f"{name} ({said})"[:300])
                break
    return found[:_MAX_SUBSTITUTED]


class _Sources:
    """Reads every source kind of one release into a `Collector`."""

    def __init__(
        self,
        project: str,
        pyproject: dict[str, Any],
        files: Mapping[str, bytes],
        collector: Collector,
        extra_names: list[str],
        environment: Mapping[str, str],
    ) -> None:
        self.project = project
        self.pyproject = pyproject
        self.tool = table(pyproject, "tool")
        self.groups = table(pyproject, "dependency-groups")
        self.files = files
        self.requirement_files = RequirementFiles(files)
        self.collector = collector
        self.extra_names = extra_names
        self.python = tuple(environment.get("python_version", "").split(".")[:2])

    def collect(self, named: Callable[[str], bool], *, dev: bool) -> None:
        """Every source whose name ``named`` accepts; the dev pass filters `DEV_TOOLING`."""
        add = self.collector.add
        for name in self.extra_names:
            if named(name):
                self.collector.own_extras(f"extra:{name}", [name], dev=dev)
        for name in self.groups:
            if named(name):
                add(f"dependency-groups:{name}", dependency_group(self.groups, name), dev=dev)
        if not dev:
            self._tox()
        for env_name in ("default",) if dev else ("test", "tests", "hatch-test"):
            deps, features = self._hatch_env(env_name)
            add(f"hatch:{env_name}", deps, dev=dev)
            self.collector.own_extras(f"hatch:{env_name}", features, dev=dev)
        for name, texts in self._pdm_groups().items():
            if named(name):
                add(f"pdm:{name}", texts, dev=dev)
        for name, texts in self._poetry_groups().items():
            if named(name):
                add(f"poetry:{name}", texts, dev=dev)
        if self.requirement_files.included:
            return  # tox named the files its test environment uses: those are the ones
        pattern = DEV_FILE if dev else TEST_FILE
        if dev and any(TEST_FILE.match(p) for p in self.files):
            return  # dev requirement files are often lock files of every tool
        for path in sorted(p for p in self.files if pattern.match(p)):
            if self._for_this_python(path):
                add(path, self._own(self.requirement_files.read(path)), dev=dev)
        if dev and not any(DEV_FILE.match(p) for p in self.files):
            # No file named for tests or dev: a root requirements.txt that installs the
            # project itself (``-e .``) is its development environment (async-timeout).
            root = self.files.get(ROOT_FILE)
            if root is not None and installs_project(root):
                add(ROOT_FILE, self._own(self.requirement_files.read(ROOT_FILE)), dev=True)

    def collect_by_runner(self) -> None:
        """Extras, dependency groups, hatch environments and poetry/pdm groups of any other
        name that list pytest: where a project with no test-named source keeps its test
        dependencies (idna's ``all`` extra: pytest, hypothesis, coverage, ruff, mypy;
        soupsieve's hatch ``dev`` environment: pytest, beautifulsoup4, lxml, html5lib).
        Taken as a dev source (tooling dropped)."""
        for name in self.extra_names:
            if _names_pytest(self.collector.extras(name)):
                self.collector.own_extras(f"extra:{name}", [name], dev=True)
        for name in self.groups:
            requirements = dependency_group(self.groups, name)
            if _names_pytest(requirements):
                self.collector.add(f"dependency-groups:{name}", requirements, dev=True)
        for name in table(self.tool, "hatch", "envs"):
            deps, features = self._hatch_env(name)
            if _names_pytest(deps):
                self.collector.add(f"hatch:{name}", deps, dev=True)
                self.collector.own_extras(f"hatch:{name}", features, dev=True)
        for name, texts in self._poetry_groups().items():
            if _names_pytest(texts):
                self.collector.add(f"poetry:{name}", texts, dev=True)
        for name, texts in self._pdm_groups().items():
            if _names_pytest(texts):
                self.collector.add(f"pdm:{name}", texts, dev=True)

    def _hatch_env(self, name: str) -> tuple[list[str], list[str]]:
        """A hatch environment's requirements (``dependencies``, ``extra-dependencies``) and
        its ``features`` (the project's own extras)."""
        env = table(self.tool, "hatch", "envs", name)
        deps = [*strings(env.get("dependencies")), *strings(env.get("extra-dependencies"))]
        return deps, strings(env.get("features"))

    def _pdm_groups(self) -> dict[str, list[str]]:
        """``[tool.pdm.dev-dependencies]`` groups as requirement texts."""
        groups = table(self.tool, "pdm", "dev-dependencies")
        return {name: self._own(pdm_lines(strings(reqs))) for name, reqs in groups.items()}

    def _poetry_groups(self) -> dict[str, list[str]]:
        """poetry's ``[tool.poetry.group.<name>]`` groups (and the legacy
        ``dev-dependencies`` as ``dev``) as requirement texts."""
        poetry = table(self.tool, "poetry")
        groups = {n: table(g, "dependencies") for n, g in table(poetry, "group").items()}
        groups.setdefault("dev", table(poetry, "dev-dependencies"))
        return {
            name: [t for dep, spec in deps.items() if (t := poetry_requirement(dep, spec))]
            for name, deps in groups.items()
        }

    def _for_this_python(self, path: str) -> bool:
        """False for a file tagged for another Python (``tests37.txt``, ``test-py3.8.txt``)."""
        stem = posixpath.basename(path).rsplit(".", 1)[0]
        match = _PYTHON_TAG.search(stem)
        return match is None or (match.group(1), match.group(2)) == self.python

    def _own(self, texts: list[str]) -> list[str]:
        """The self-reference stand-in (``.[test]``) as the project's own name."""
        return [self.project + t[len(SELF) :] if t.startswith(SELF) else t for t in texts]

    def _tox(self) -> None:
        tox_ini = self.files.get("tox.ini")
        if tox_ini is not None:
            self._tox_env("tox.ini", tox_section(tox_ini.decode("utf-8", errors="replace")))
        tool_tox = table(self.tool, "tox")
        legacy = tool_tox.get("legacy_tox_ini")
        if isinstance(legacy, str):
            self._tox_env("pyproject:tool.tox", tox_section(legacy))
        base = table(tool_tox, "env_run_base")
        if base:
            self._tox_settings(
                "pyproject:tool.tox",
                strings(base.get("deps")),
                strings(base.get("extras")),
                strings(base.get("dependency_groups")),
            )

    def _tox_env(self, source: str, section: dict[str, str] | None) -> None:
        if section is not None:
            self._tox_settings(
                source,
                tox_values(section.get("deps", "")),
                split_list(tox_values(section.get("extras", ""))),
                split_list(tox_values(section.get("dependency_groups", ""))),
            )

    def _tox_settings(
        self, source: str, deps: list[str], extras: list[str], groups: list[str]
    ) -> None:
        before = set(self.requirement_files.included)
        lines = self.requirement_files.lines("\n".join(deps), "")
        self.collector.add(source, self._own(lines))
        if source in self.collector.sources:
            for path in sorted(self.requirement_files.included - before):
                self.collector.sources.append(path)
        self.collector.own_extras(source, extras)
        for group in groups:
            self.collector.add(source, dependency_group(self.groups, group))
