"""pip requirement files inside the sdist: which are read, and their lines with includes.

``-r``/``-c`` includes are followed inside the sdist only (depth `MAX_DEPTH`);
``-e``, URLs, local paths and options are skipped, except ``.[extra]``, the
project's own extra, which is returned with the stand-in name `SELF`.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping

from packaging.utils import canonicalize_name

MAX_DEPTH = 5
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


TEST_FILE = _file_pattern(_TEST_WORDS)
DEV_FILE = _file_pattern(_DEV_WORDS)
#: The root requirement file: a dev source only when it installs the project (``-e .``).
ROOT_FILE = "requirements.txt"


def wanted_file(relative: str) -> bool:
    """Members (relative to the sdist root) this package may read: tox.ini, pytest.ini
    (pytest settings that name a plugin) and the small requirement/constraint files an
    include could name."""
    if relative in ("tox.ini", "pytest.ini", ".pytest.ini"):
        return True
    lowered = relative.lower()
    return (
        relative.count("/") <= 2
        and lowered.endswith((".txt", ".in"))
        and ("req" in lowered or "constraint" in lowered)
    )


class RequirementFiles:
    """pip requirement files inside the sdist, with includes resolved inside it only."""

    def __init__(self, files: Mapping[str, bytes]) -> None:
        self.files = files
        #: files read through an include (``-r``/``-c``)
        self.included: set[str] = set()

    def read(self, path: str, depth: int = 0, seen: frozenset[str] = frozenset()) -> list[str]:
        """Requirement lines of ``path`` (relative to the sdist root) and its includes."""
        if path in seen or depth > MAX_DEPTH or path not in self.files:
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
                found.extend(self_reference(re.split(r"[\s=]", line, maxsplit=1)[1].strip()))
            elif not line.startswith("-"):
                found.extend(requirement_line(line))
        # A constraint is a requirement only for a name something else requires.
        names = {requirement_name(r) for r in found}
        return found + [c for c in constraints if requirement_name(c) in names]

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


_INSTALLS_PROJECT = re.compile(r"(?:(?:-e|--editable)[\s=]+)?\.(?:\[[^\]]*\])?/?")


def installs_project(text: bytes) -> bool:
    """Whether requirement-file ``text`` installs the project itself (``-e .``, ``.``,
    ``-e .[test]``): a development environment's file, not an application's pins."""
    lines = _logical_lines(text.decode("utf-8", errors="replace"))
    return any(_INSTALLS_PROJECT.fullmatch(line) for line in lines)


def self_reference(target: str) -> list[str]:
    """``.[test,dev]`` (the project itself, in a tox deps line or ``-e``) as a marker."""
    match = re.fullmatch(r"\.?/?\.?\[([A-Za-z0-9_.,\s-]+)\]", target)
    if match is None:
        return []
    return [f"{SELF}[{match.group(1)}]"]


# Stand-in name for the project itself in requirement lines; never a real name.
SELF = "pyti-self-reference"


def requirement_line(line: str) -> list[str]:
    # Per-requirement options (``--hash=...``) follow the requirement.
    line = re.split(r"\s--?[A-Za-z]", " " + line, maxsplit=1)[0].strip()
    if line.startswith((".", "/", "~")) or "://" in line or "${" in line:
        return self_reference(line)
    return [line]


def requirement_name(text: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", text)
    return canonicalize_name(match.group(1)) if match else ""


def pdm_lines(entries: list[str]) -> list[str]:
    """pdm dev-dependency entries: requirement strings, or ``-e`` paths (skipped)."""
    out: list[str] = []
    for entry in entries:
        if entry.startswith("-e"):
            out.extend(self_reference(entry[2:].strip()))
        else:
            out.extend(requirement_line(entry))
    return out
