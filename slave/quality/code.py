"""Code indicators computed on the host: `py.typed` and annotation coverage.

Sources are parsed with `ast.parse`, which reads them as data: nothing is compiled
to bytecode, imported or run. Parsing is bounded by the caps in `contents` and a
file that does not parse (newer syntax, garbage, too deeply nested) is counted,
not raised.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from slave.quality.contents import DistContents, Sources
from slave.quality.indicator import Indicator, Level, Value

# Share of fully annotated public functions that counts as "typed".
ANNOTATED_PASS: Final = 0.8
ANNOTATED_WARN: Final = 0.3
_SKIP_DIRS: Final = frozenset({"tests", "test", "testing", "docs", "doc", "examples", "benchmarks"})


def _indicator(ident: str, value: Value, level: Level, reason: str) -> Indicator:
    return Indicator(f"code.{ident}", "code", value, level, reason)


def py_typed(dists: Sequence[DistContents]) -> Indicator:
    """A PEP 561 `py.typed` marker in a package (wheel first, else the sdist)."""
    readable = [d for d in dists if d.readable and d.dist.kind != "other"]
    if not readable:
        return _indicator("py_typed", False, "warn", "no readable distribution")
    markers = [
        f"{d.dist.filename}:{e.path}"
        for d in readable
        for e in d.files()
        if e.path.endswith("/py.typed") and ".dist-info/" not in e.path
    ]
    if markers:
        return _indicator("py_typed", True, "pass", f"py.typed marker: {markers[0]}")
    return _indicator("py_typed", False, "warn", "no py.typed marker (PEP 561)")


def _is_source(path: str) -> bool:
    return path.endswith((".py", ".pyi"))


def _installed(path: str) -> bool:
    """True for wheel members that land in site-packages."""
    top, _, rest = path.partition("/")
    if top.endswith(".dist-info"):
        return False
    if top.endswith(".data"):
        return rest.split("/", 1)[0] in ("purelib", "platlib")
    return True


def _prefer_stubs(paths: Iterable[str]) -> list[str]:
    """Drop `x.py` when `x.pyi` exists: the stub is where its annotations live."""
    unique = set(paths)
    return sorted(p for p in unique if not (p.endswith(".py") and p + "i" in unique))


def source_paths(dists: Sequence[DistContents]) -> tuple[DistContents, list[str]] | None:
    """Which distribution to read sources from, and which files: what gets installed.

    A wheel's importable `.py`/`.pyi` files if there is a wheel, else the sdist's
    package files (in a package directory, not tests, docs or examples).
    """
    wheels = [d for d in dists if d.dist.kind == "wheel" and d.readable]
    if wheels:
        wheel = wheels[0]
        paths = [e.path for e in wheel.files() if _is_source(e.path) and _installed(e.path)]
        return wheel, _prefer_stubs(paths)
    sdists = [d for d in dists if d.dist.kind == "sdist" and d.readable]
    if not sdists:
        return None
    sdist = sdists[0]
    paths = [
        e.path
        for e in sdist.files()
        if _is_source(e.path)
        and "/" in e.path.removeprefix("src/")
        and not set(e.path.split("/")[:-1]) & _SKIP_DIRS
    ]
    return sdist, _prefer_stubs(paths)


@dataclass
class Coverage:
    """Counts behind the annotation indicator."""

    public: int = 0
    annotated: int = 0
    files: int = 0
    unparsable: int = 0


_Function = ast.FunctionDef | ast.AsyncFunctionDef


def _public_functions(body: Sequence[ast.stmt], depth: int = 0) -> Iterator[tuple[_Function, bool]]:
    """(function, is_method) for public module functions and public classes' methods."""
    for node in body:
        if isinstance(node, _Function):
            if not node.name.startswith("_"):
                yield node, depth > 0
        elif isinstance(node, ast.ClassDef) and not node.name.startswith("_") and depth < 3:
            # Methods of public classes count; nested functions are implementation.
            yield from _public_functions(node.body, depth + 1)


def _is_annotated(func: _Function, is_method: bool) -> bool:
    args = func.args
    positional = [*args.posonlyargs, *args.args]
    if (
        is_method
        and positional
        and not any(isinstance(d, ast.Name) and d.id == "staticmethod" for d in func.decorator_list)
    ):
        positional = positional[1:]  # self / cls
    params = [*positional, *args.kwonlyargs]
    params += [a for a in (args.vararg, args.kwarg) if a is not None]
    return func.returns is not None and all(p.annotation is not None for p in params)


def coverage(sources: Mapping[str, bytes]) -> Coverage:
    """Count public functions and the fully annotated ones across `sources`."""
    result = Coverage()
    for data in sources.values():
        try:
            tree = ast.parse(data, type_comments=False)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            # ValueError: NUL bytes; RecursionError/MemoryError: pathological nesting.
            result.unparsable += 1
            continue
        result.files += 1
        for func, is_method in _public_functions(tree.body):
            result.public += 1
            result.annotated += _is_annotated(func, is_method)
    return result


def annotation_coverage(sources: Sources | None) -> Indicator:
    """Share of public functions whose parameters and return are all annotated."""
    if sources is None:
        return _indicator("annotations", None, "warn", "no readable distribution with sources")
    if sources.error is not None:
        return _indicator("annotations", None, "fail", f"sources unreadable: {sources.error}")
    counts = coverage(sources.files)
    value: dict[str, Value] = {
        "public": counts.public,
        "annotated": counts.annotated,
        "files": counts.files,
        "unparsable": counts.unparsable,
        "skipped": sources.skipped,
    }
    note = ""
    if counts.unparsable:
        note += f"; {counts.unparsable} file(s) not parsable with Python 3.11 grammar"
    if sources.skipped:
        note += f"; {sources.skipped} file(s) not read (size and count caps)"
    if counts.public == 0:
        level: Level = "warn" if counts.unparsable else "pass"
        return _indicator("annotations", value, level, f"no public functions found{note}")
    share = counts.annotated / counts.public
    value["share"] = round(share, 3)
    level = "pass" if share >= ANNOTATED_PASS else "warn" if share >= ANNOTATED_WARN else "fail"
    return _indicator(
        "annotations",
        value,
        level,
        f"{counts.annotated}/{counts.public} public functions annotated ({share:.0%}){note}",
    )
