"""Test dependencies of a release, read statically from where projects declare them.

Nothing here runs project code (no ``noxfile.py``, no ``setup.py``, no build
backend): the sources are data in the release files, read through `SafeArchive` by
`read_sdist_metadata` (``also=wanted_file``) in one pass over the sdist. In order:

1. extras named ``test``/``tests``/``testing``/``dev`` (wheel METADATA, PKG-INFO,
   pyproject ``[project.optional-dependencies]``) -> ``extra:<name>``;
2. PEP 735 ``[dependency-groups]`` of the same names, ``{include-group = ...}``
   followed, cycles cut -> ``dependency-groups:<name>``;
3. tox: ``tox.ini`` ``[testenv]`` ``deps``/``extras``/``dependency_groups`` ->
   ``tox.ini``; pyproject ``[tool.tox]`` (``legacy_tox_ini`` or the native
   ``env_run_base``) -> ``pyproject:tool.tox``;
4. hatch: ``[tool.hatch.envs.test|tests|hatch-test|default]`` ``dependencies``,
   ``extra-dependencies``, ``features`` -> ``hatch:<env>``;
5. ``[tool.pdm.dev-dependencies]`` and poetry's ``[tool.poetry.group.<name>]`` /
   ``[tool.poetry.dev-dependencies]`` -> ``pdm:<group>``, ``poetry:<group>``;
6. requirement files named for tests (``test-requirements.txt``,
   ``requirements-test*.txt``, ``requirements*/test*.txt``, ``tests/requirements.txt``
   ...) -> their path; files named for dev (``requirements-dev.txt``,
   ``dev-requirements.txt``, ``requirements/dev*.txt``) only when no test-named
   file exists (they are often pinned lock files of every tool). ``-r``/``-c``
   includes are followed inside the sdist only (depth `_MAX_DEPTH`); ``-e``, URLs,
   local paths and options are skipped (``.[extra]`` means the project's own extra).

Markers are evaluated for the guest. The project itself is dropped and its own
extras (``pkg[test]``, ``.[test]``) expanded. Each project name appears once, with
the first source's specifier (sources in the order above), so sources never
conflict with each other; names the release needs at runtime are left to the
runtime requirement. ``pytest`` is added when nothing names it.

Sources named ``dev`` are broad: tooling that never affects test results is dropped
from them (`DEV_TOOLING`); test-named sources are taken whole (a sphinx extension's
tests need sphinx).
"""

from __future__ import annotations

import configparser
import posixpath
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from packaging.markers import InvalidMarker, UndefinedComparison, UndefinedEnvironmentName
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from slave.prepare.metadata import SdistContents

TEST_NAMES = frozenset({"test", "tests", "testing"})
DEV_NAMES = frozenset({"dev"})
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
_MAX_DEPTH = 5
_EXTRA_MARKER = re.compile(r"""\bextra\s*==\s*['"]([^'"]+)['"]""")
# ``py311,cov: dep`` — a tox factor condition in front of a line.
_TOX_FACTOR = re.compile(r"^[A-Za-z0-9_.{},!-]+:\s+(.*)$")
_TOX_SECTION_REF = re.compile(r"\{\[([^\]]+)\]([A-Za-z0-9_-]+)\}")
# ``tests37``, ``test-py38``, ``tests-3.7`` (the digits right before the suffix)
_PYTHON_TAG = re.compile(r"(?:py|[-_.]|[a-z])(3)\.?(\d{1,2})$", re.IGNORECASE)
_REQ_DIRS = r"(?:requirements|reqs?)[^/]*"
_TEST_WORDS = r"(?:tests?|testing)"
_DEV_WORDS = r"(?:dev|develop|development)"


def _file_pattern(words: str) -> re.Pattern[str]:
    return re.compile(
        rf"^(?:{_REQ_DIRS}/{words}[^/]*"
        rf"|{words}[-_.]?requirements[^/]*"
        rf"|requirements[-_.]{words}[^/]*"
        rf"|{_TEST_WORDS}/requirements[^/]*)\.txt$",
        re.IGNORECASE,
    )


_TEST_FILE = _file_pattern(_TEST_WORDS)
_DEV_FILE = _file_pattern(_DEV_WORDS)


def wanted_file(relative: str) -> bool:
    """Members (relative to the sdist root) this module may read: tox.ini and the
    small requirement/constraint files an include could name."""
    if relative == "tox.ini":
        return True
    lowered = relative.lower()
    return (
        relative.count("/") <= 2
        and lowered.endswith((".txt", ".in"))
        and ("req" in lowered or "constraint" in lowered)
    )


@dataclass(frozen=True, slots=True)
class TestDependencies:
    """What the tests need beyond the runtime requirements, for the guest.

    ``requirements`` are pip arguments (markers already evaluated, none left);
    ``sources`` name where they were found, in order.
    """

    __test__ = False  # not a pytest class, despite the name

    requirements: list[str]
    sources: list[str]


def _is_test(name: str) -> bool:
    return canonicalize_name(name) in TEST_NAMES


def _is_dev(name: str) -> bool:
    return canonicalize_name(name) in DEV_NAMES


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


def _table(value: object, *keys: str) -> dict[str, Any]:
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    return value if isinstance(value, dict) else {}


class _Collector:
    """Accumulates requirements from every source (see the module docstring)."""

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


def _extra_names(requires_dist: Iterable[str]) -> list[str]:
    names: list[str] = []
    for text in requires_dist:
        for name in _EXTRA_MARKER.findall(text):
            if name not in names:
                names.append(name)
    return names


def _own_extras_reader(
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
                found.extend(_strings(reqs))
        return found

    return read


def _dependency_group(groups: dict[str, Any], name: str, stack: tuple[str, ...] = ()) -> list[str]:
    """PEP 735 group ``name`` with its includes expanded; a cycle is cut, not followed."""
    key = canonicalize_name(name)
    if key in stack or len(stack) > 16:
        return []
    entries = next(
        (v for k, v in groups.items() if canonicalize_name(k) == key and isinstance(v, list)), []
    )
    found: list[str] = []
    for entry in entries:
        if isinstance(entry, str):
            found.append(entry)
        elif isinstance(entry, dict) and isinstance(entry.get("include-group"), str):
            found.extend(_dependency_group(groups, entry["include-group"], (*stack, key)))
    return found


class _RequirementFiles:
    """pip requirement files inside the sdist, with includes resolved inside it only."""

    def __init__(self, files: Mapping[str, bytes]) -> None:
        self.files = files
        #: files read through an include (``-r``/``-c``)
        self.included: set[str] = set()

    def read(self, path: str, depth: int = 0, seen: frozenset[str] = frozenset()) -> list[str]:
        """Requirement lines of ``path`` (relative to the sdist root) and its includes."""
        if path in seen or depth > _MAX_DEPTH or path not in self.files:
            return []
        if depth > 0:
            self.included.add(path)
        text = self.files[path].decode("utf-8", errors="replace")
        return self.lines(text, posixpath.dirname(path), depth, seen | {path})

    def lines(
        self, text: str, base: str, depth: int = 0, seen: frozenset[str] = frozenset()
    ) -> list[str]:
        """Requirements in requirement-file ``text`` whose includes are relative to ``base``."""
        found: list[str] = []
        constraints: list[str] = []
        for line in _logical_lines(text):
            include = _include(line)
            if include is not None:
                kind, target = include
                path = self._inside(base, target)
                lines = self.read(path, depth + 1, seen) if path else []
                (found if kind == "r" else constraints).extend(lines)
            elif line.startswith(("-e ", "--editable ", "--editable=")):
                found.extend(_self_reference(re.split(r"[\s=]", line, maxsplit=1)[1].strip()))
            elif not line.startswith("-"):
                found.extend(_requirement_line(line))
        # A constraint is a requirement only for a name something else requires.
        names = {_name(r) for r in found}
        return found + [c for c in constraints if _name(c) in names]

    def _inside(self, base: str, target: str) -> str | None:
        target = target.replace("{toxinidir}/", "").replace("{toxinidir}", "")
        if not target or "://" in target or target.startswith(("/", "~", "$")):
            return None
        joined = posixpath.normpath(posixpath.join(base, target))
        return None if joined == ".." or joined.startswith("../") else joined


def _include(line: str) -> tuple[str, str] | None:
    """``("r" | "c", target)`` of an include line (``-r x``, ``-rx``, ``--requirement=x``)."""
    match = re.fullmatch(r"(?:-([rc])\s*|--(requirement|constraint)(?:\s+|=))(\S+)", line)
    if match is None:
        return None
    kind = match.group(1) or match.group(2)[0]
    return kind, match.group(3)


def _logical_lines(text: str) -> list[str]:
    """Lines without comments, with ``\\`` continuations joined, blank ones dropped."""
    out: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = re.sub(r"(^|\s)#.*$", "", raw).rstrip()
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = (pending + line).strip()
        pending = ""
        if line:
            out.append(line)
    if pending.strip():
        out.append(pending.strip())
    return out


def _self_reference(target: str) -> list[str]:
    """``.[test,dev]`` (the project itself, in a tox deps line or ``-e``) as a marker."""
    match = re.fullmatch(r"\.?/?\.?\[([A-Za-z0-9_.,\s-]+)\]", target)
    if match is None:
        return []
    return [f"{_SELF}[{match.group(1)}]"]


# Stand-in name for the project itself in requirement lines; never a real name.
_SELF = "pyti-self-reference"


def _requirement_line(line: str) -> list[str]:
    # Per-requirement options (``--hash=...``) follow the requirement.
    line = re.split(r"\s--?[A-Za-z]", " " + line, maxsplit=1)[0].strip()
    if line.startswith((".", "/", "~")) or "://" in line or "${" in line:
        return _self_reference(line)
    return [line]


def _name(text: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", text)
    return canonicalize_name(match.group(1)) if match else ""


def _tox_section(text: str) -> dict[str, str] | None:
    """``[testenv]`` of tox ini ``text`` with ``{[section]key}`` references resolved."""
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read_string(text)
    except configparser.Error:
        return None
    if not parser.has_section("testenv"):
        return None
    section = dict(parser.items("testenv"))

    def resolve(value: str) -> str:
        def ref(match: re.Match[str]) -> str:
            sect, key = match.group(1), match.group(2)
            if sect == "testenv" or not parser.has_option(sect, key):
                return ""
            return _TOX_SECTION_REF.sub("", parser.get(sect, key))

        return _TOX_SECTION_REF.sub(ref, value)

    return {k: resolve(v) for k, v in section.items()}


def _tox_values(value: str) -> list[str]:
    """Lines of a tox setting, factor-conditional ones (``py311: x``) left out."""
    out: list[str] = []
    for raw in value.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or _TOX_FACTOR.match(line):
            continue
        if "{" in line.replace("{toxinidir}", ""):
            continue  # a substitution we do not evaluate
        out.append(line)
    return out


def _split_list(values: list[str]) -> list[str]:
    return [part.strip() for v in values for part in v.split(",") if part.strip()]


def _poetry_requirement(name: str, spec: object) -> str | None:
    """A PEP 508 string for a poetry dependency entry; ``None`` for paths, URLs, git."""
    if canonicalize_name(name) == "python":
        return None
    version: object = spec
    if isinstance(spec, dict):
        if any(k in spec for k in ("path", "git", "url", "file")):
            return None
        version = spec.get("version", "*")
    if not isinstance(version, str):
        return name
    return name + _poetry_specifier(version)


def _poetry_specifier(version: str) -> str:
    version = version.strip()
    caret = re.fullmatch(r"\^(\d+(?:\.\d+){0,2})", version)
    tilde = re.fullmatch(r"~(\d+)(?:\.(\d+))?(?:\.\d+)?", version)
    if version in ("", "*"):
        return ""
    if caret:
        parts = [int(p) for p in caret.group(1).split(".")]
        first = next((i for i, p in enumerate(parts) if p), len(parts) - 1)
        upper = [*parts[:first], parts[first] + 1]
        return f">={caret.group(1)},<{'.'.join(map(str, upper))}"
    if tilde:
        major, minor = int(tilde.group(1)), tilde.group(2)
        bound = f"{major}.{int(minor) + 1}" if minor is not None else f"{major + 1}"
        return f">={version[1:]},<{bound}"
    if re.fullmatch(r"\d+(\.\d+)*", version):
        return f"=={version}"
    return version if re.match(r"^[<>=!~]", version) else ""


def find_test_dependencies(
    *,
    project: str,
    requires_dist: list[str] | None,
    sdist: SdistContents | None,
    environment: Mapping[str, str],
    runtime: Iterable[str] = (),
) -> TestDependencies:
    """The release's test dependencies for the guest (see the module docstring).

    ``requires_dist`` is the static metadata's (``None`` when unknown: PKG-INFO's is
    then used as a best guess); ``runtime`` are the runtime requirements, whose names
    are not repeated. Never raises on malformed sources: they are skipped.
    """
    pyproject = (sdist.pyproject if sdist else None) or {}
    files = sdist.files if sdist else {}
    if requires_dist is None and sdist is not None and sdist.pkg_info is not None:
        requires_dist = sdist.pkg_info.requires_dist
    requires_dist = requires_dist or []
    project_table = _table(pyproject, "project")
    optional = (
        {}
        if "optional-dependencies" in _strings(project_table.get("dynamic"))
        else _table(project_table, "optional-dependencies")
    )
    sources = _Sources(
        project,
        pyproject,
        files,
        _Collector(
            project,
            environment,
            _own_extras_reader(requires_dist, optional, environment),
            [_name(r) for r in runtime],
        ),
        [*_extra_names(requires_dist), *optional],
        environment,
    )
    sources.collect(_is_test, dev=False)
    sources.collect(_is_dev, dev=True)
    collector = sources.collector
    if "pytest" not in collector.taken:
        collector.requirements.append("pytest")
    return TestDependencies(collector.requirements, collector.sources)


class _Sources:
    """Reads every source kind of one release into a `_Collector`."""

    def __init__(
        self,
        project: str,
        pyproject: dict[str, Any],
        files: Mapping[str, bytes],
        collector: _Collector,
        extra_names: list[str],
        environment: Mapping[str, str],
    ) -> None:
        self.project = project
        self.pyproject = pyproject
        self.tool = _table(pyproject, "tool")
        self.groups = _table(pyproject, "dependency-groups")
        self.files = files
        self.requirement_files = _RequirementFiles(files)
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
                add(f"dependency-groups:{name}", _dependency_group(self.groups, name), dev=dev)
        if not dev:
            self._tox()
        hatch_envs = _table(self.tool, "hatch", "envs")
        for env_name in ("default",) if dev else ("test", "tests", "hatch-test"):
            env = _table(hatch_envs, env_name)
            deps = [*_strings(env.get("dependencies")), *_strings(env.get("extra-dependencies"))]
            add(f"hatch:{env_name}", deps, dev=dev)
            self.collector.own_extras(f"hatch:{env_name}", _strings(env.get("features")), dev=dev)
        for name, reqs in _table(self.tool, "pdm", "dev-dependencies").items():
            if named(name):
                add(f"pdm:{name}", self._own(_pdm_lines(_strings(reqs))), dev=dev)
        poetry = _table(self.tool, "poetry")
        poetry_groups = {n: _table(g, "dependencies") for n, g in _table(poetry, "group").items()}
        poetry_groups.setdefault("dev", _table(poetry, "dev-dependencies"))
        for name, table in poetry_groups.items():
            if named(name):
                texts = [t for n, spec in table.items() if (t := _poetry_requirement(n, spec))]
                add(f"poetry:{name}", texts, dev=dev)
        if self.requirement_files.included:
            return  # tox named the files its test environment uses: those are the ones
        pattern = _DEV_FILE if dev else _TEST_FILE
        if dev and any(_TEST_FILE.match(p) for p in self.files):
            return  # dev requirement files are often lock files of every tool
        for path in sorted(p for p in self.files if pattern.match(p)):
            if self._for_this_python(path):
                add(path, self._own(self.requirement_files.read(path)), dev=dev)

    def _for_this_python(self, path: str) -> bool:
        """False for a file tagged for another Python (``tests37.txt``, ``test-py3.8.txt``)."""
        stem = posixpath.basename(path).rsplit(".", 1)[0]
        match = _PYTHON_TAG.search(stem)
        return match is None or (match.group(1), match.group(2)) == self.python

    def _own(self, texts: list[str]) -> list[str]:
        """The self-reference stand-in (``.[test]``) as the project's own name."""
        return [self.project + t[len(_SELF) :] if t.startswith(_SELF) else t for t in texts]

    def _tox(self) -> None:
        tox_ini = self.files.get("tox.ini")
        if tox_ini is not None:
            self._tox_env("tox.ini", _tox_section(tox_ini.decode("utf-8", errors="replace")))
        tool_tox = _table(self.tool, "tox")
        legacy = tool_tox.get("legacy_tox_ini")
        if isinstance(legacy, str):
            self._tox_env("pyproject:tool.tox", _tox_section(legacy))
        base = _table(tool_tox, "env_run_base")
        if base:
            self._tox_settings(
                "pyproject:tool.tox",
                _strings(base.get("deps")),
                _strings(base.get("extras")),
                _strings(base.get("dependency_groups")),
            )

    def _tox_env(self, source: str, section: dict[str, str] | None) -> None:
        if section is not None:
            self._tox_settings(
                source,
                _tox_values(section.get("deps", "")),
                _split_list(_tox_values(section.get("extras", ""))),
                _split_list(_tox_values(section.get("dependency_groups", ""))),
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
            self.collector.add(source, _dependency_group(self.groups, group))


def _pdm_lines(entries: list[str]) -> list[str]:
    """pdm dev-dependency entries: requirement strings, or ``-e`` paths (skipped)."""
    out: list[str] = []
    for entry in entries:
        if entry.startswith("-e"):
            out.extend(_self_reference(entry[2:].strip()))
        else:
            out.extend(_requirement_line(entry))
    return out
