"""Collection errors the release's own code raised: a broken release, not a missing tool.

pytest goes on past test modules it cannot import (``--continue-on-collection-errors``)
and those are counted apart (``collection_errors``): nearly always a test requirement
that could not be installed, or a helper the sdist does not ship. But when the
exception comes from the release's own code, the tests have found what they exist
to find: a module of the package that does not import. Such a module counts as a
failed test.

It is the release's fault when the test module's traceback (pytest's short form,
``path:line: in <module>`` frames then ``E   Error: ...``) shows either

- ``cannot import name 'X' from 'M'`` with ``M`` one of the release's top-level
  modules (the tests ask the package for something it does not have), or
- its deepest frame in a non-test file of the release (``site-packages/M/...``, or
  ``M/...`` / ``src/M/...`` in the sdist), the error one that says the code itself is
  wrong (`CODE_DEFECTS`: ``SyntaxError``, ``NameError``, ``AttributeError``,
  ``TypeError``, ``ImportError``...), and not a missing or incomplete *other* module
  (``No module named 'numpy'``: an optional dependency not installed stays a
  collection error, counted apart as before).

Any other exception from the release's code at import is its refusal of the test
environment, not a defect: Django's ``ImproperlyConfigured`` ("settings are not
configured": its suite runs through ``runtests.py``, which sets them), a
``RuntimeError`` asking for an environment variable. Those stay collection errors.
(The first version of this rule took any exception: Django 6.1 became ``failed``,
"1109 of 1109 tests failed", in the session 7 corpus.)

Files under a ``tests``/``test``/``testing`` folder and ``conftest.py`` are never the
package's code: their errors stay collection errors.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

#: a frame of pytest's short traceback, or the file a SyntaxError names (``E     File
#: "/x/mod.py", line 3``: compiling it failed, so it has no frame of its own)
_FRAME = re.compile(
    r'^(?:(\S[^\n]*?\.py):\d+: in |E\s+File "([^"\n]+\.py)", line \d+)', re.MULTILINE
)
#: where a frame of a failed test's report is, in pytest's long form (``path:3: `` after
#: each entry, ``path:3: ModuleNotFoundError`` after the last) or its short one
_LOCATION = re.compile(r"^(\S[^\n]*?\.py):\d+:", re.MULTILINE)
#: the failing line of a report's frame when it imports (``>       import attr``)
_FAILING_IMPORT = re.compile(r"^>\s+(?:import|from)\s+([A-Za-z_][\w.]*)")
#: the module a ``ModuleNotFoundError`` names
MISSING_MODULE = re.compile(r"ModuleNotFoundError: No module named '([^']+)'")
_CANNOT_IMPORT = re.compile(r"ImportError: cannot import name '[^']+' from '([^']+)'")
#: a name asked of a package Python found only as a namespace: a folder without its
#: ``__init__.py`` (``from tests import helper`` where the sdist left out tests/__init__.py)
_NAMESPACE_ONLY = re.compile(
    r"ImportError: cannot import name '[^']+' from '([A-Za-z_][\w.]*)' \(unknown location\)"
)
_TEST_DIRS = frozenset({"tests", "test", "testing"})
#: Exceptions at import that say the module's code is wrong, whatever the environment.
CODE_DEFECTS = frozenset(
    {
        "SyntaxError", "IndentationError", "TabError", "NameError", "UnboundLocalError",
        "AttributeError", "TypeError", "ImportError", "ModuleNotFoundError",
    }
)  # fmt: skip
_EXCEPTION = re.compile(r"^(?:[A-Za-z_]\w*\.)*([A-Za-z_]\w*):")
_ERROR_CHARS = 200


def _top(dotted: str) -> str:
    return dotted.split(".", 1)[0]


def release_file(path: str, tops: frozenset[str]) -> bool:
    """``path`` (absolute, or relative to the sdist's root) is a non-test file of the release."""
    if "/site-packages/" in path:
        parts = path.split("/site-packages/", 1)[1].split("/")
    else:
        parts = [p for p in path.split("/") if p not in ("", ".")]
        if parts and parts[0] == "src":
            parts = parts[1:]
    if not parts or parts[-1] == "conftest.py" or _TEST_DIRS.intersection(parts[:-1]):
        return False
    return parts[0].removesuffix(".py") in tops


def error_of(text: str, limit: int = _ERROR_CHARS) -> str:
    """The last ``E`` line of a pytest report (the exception), else its last line; at
    most ``limit`` characters."""
    lines = [ln[1:].strip() for ln in text.splitlines() if ln.startswith("E ")]
    lines = lines or [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1][:limit] if lines else ""


def raised_by_release(text: str, modules: Iterable[str], root: Path | None = None) -> str | None:
    """The error line when the collection error ``text`` is the release's fault, else None.
    ``root``: the sdist's tree, whose absolute paths (a SyntaxError's file) are read as
    relative to it."""
    tops = frozenset(_top(m) for m in modules)
    if not tops:
        return None
    error = error_of(text)
    cannot = _CANNOT_IMPORT.search(error)
    if cannot and _top(cannot.group(1)) in tops:
        return error
    frames = [a or b for a, b in _FRAME.findall(text)]
    if frames and root is not None and frames[-1].startswith("/"):
        frames[-1] = inside(root, frames[-1]) or frames[-1]
    if not frames or not release_file(frames[-1], tops):
        return None
    kind = _EXCEPTION.match(error)
    if kind is None or kind.group(1) not in CODE_DEFECTS:
        return None
    missing = MISSING_MODULE.search(error)
    if missing and _top(missing.group(1)) not in tops:
        return None
    if cannot:  # a name missing from another module: that module's version, not ours
        return None
    return error


def missing_module(text: str, modules: Iterable[str], root: Path | None = None) -> str | None:
    """The module a failed test's ``text`` only lacked, else None: its error is
    ``ModuleNotFoundError: No module named 'X'`` with ``X`` none of the release's
    (``modules``), raised outside the release's own code (its deepest frame in a test
    file, a conftest or another distribution). The test imports an optional module that
    is not installed (dill's ``test_attr`` does ``import attr``): the same as a test
    module not collected for want of it, at a test's grain. When the release's own code
    raises it, the package needs a module it did not get: not set apart. Where the
    report shows the frame whose line imports the module, that frame decides (dill's
    ``__import__`` wrapper is the deepest frame of its ``test_attr``)."""
    error = error_of(text)
    missing = MISSING_MODULE.search(error)
    if missing is None or not error.startswith("ModuleNotFoundError"):
        return None
    tops = frozenset(_top(m) for m in modules)
    name = missing.group(1)
    if _top(name) in tops:
        return None
    where = _importing_frame(text, name) or (_LOCATION.findall(text) or [None])[-1]
    if where is not None and root is not None and where.startswith("/"):
        where = inside(root, where) or where
    if where is not None and release_file(where, tops):
        return None
    return name


def _importing_frame(text: str, name: str) -> str | None:
    """The file of the report's frame whose failing line is the ``import``/``from`` of
    ``name`` (or of a package above it): the code that asked for the module, whatever
    import hook a package put in between (dill wraps ``__import__``)."""
    top = _top(name)
    pending: str | None = None
    for line in text.splitlines():
        failing = _FAILING_IMPORT.match(line)
        if failing:
            pending = failing.group(1)
            continue
        location = _LOCATION.match(line)
        if location:
            if pending is not None and _top(pending) == top:
                return location.group(1)
            pending = None
    return None


def missing_from(text: str, root: Path | None = None) -> str | None:
    """What a collection error says is missing: the module a ``ModuleNotFoundError``
    names, or the ``__init__.py`` of a folder of the sdist (``root``) that the tests
    import names from but that Python found only as a namespace package."""
    if missing := MISSING_MODULE.search(text):
        return missing.group(1)
    namespace = _NAMESPACE_ONLY.search(text)
    if namespace is None or root is None:
        return None
    folder = namespace.group(1).replace(".", "/")
    if (root / folder).is_dir() and not (root / folder / "__init__.py").exists():
        return f"{folder}/__init__.py"
    return None


def inside(root: Path, raw: str) -> str | None:
    """``raw`` as a path relative to ``root`` when it lies inside it, else None."""
    joined = os.path.normpath(os.path.join(str(root), raw))
    base = os.path.normpath(str(root))
    if joined == base or not joined.startswith(base + os.sep):
        return None
    return joined[len(base) + 1 :]
