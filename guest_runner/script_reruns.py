"""Failing test modules run again as the scripts their authors run them as.

Some suites are written to run as scripts, ``python test_x.py`` from their folder:
dill's ``dill/tests/__main__.py`` runs each ``test_*.py`` so, ply's ``test/README``
says ``cd test; python testlex.py``. pytest collects their tests too, but some fail
under it only: they expect their classes in ``__main__``, or run helper scripts by a
path relative to the module's folder. Upstream CI runs them as scripts, and passes.

So when pytest's run leaves failures that no other kind sets apart
(:mod:`guest_runner.apart`), each module holding some is read as text with
:mod:`ast` (nothing of it runs here) and, when its script part runs those very
tests (`script_part`, `runs`), the module is run as a script from its folder, as
the tester, traced like every test. If it exits 0, those failures count apart
(``script_failures``): the way the module's authors run them passes. If it fails,
times out or dies, nothing changes.

"Runs those very tests" is read conservatively:

- the script part is the body of the module's top-level ``if __name__ == "__main__":``
  blocks, and a top-level ``unittest.main()`` call (ply calls it at import);
- a failing method of a class that derives from a ``TestCase`` (by the module's text)
  is run by a ``unittest.main()`` call there that picks nothing (no ``module``,
  ``defaultTest``, ``argv``, ``testLoader``; not ``exit=False``);
- a failing test function is run when the script part names it (dill calls each one);
- a script part that calls ``pytest.main`` (whose status a script easily drops) or
  catches ``AssertionError``, ``Exception``, ``BaseException`` or everything runs
  nothing that can be trusted.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from guest_runner.budget import Budget
from guest_runner.workspace import Workspace

#: Modules run as scripts per job, those with the most failures first.
MAX_MODULES = 10
#: Seconds one script may take (and the phase's budget must still hold this many).
SCRIPT_SECONDS = 300.0
MIN_SECONDS = 10.0
#: Modules larger than this are not read.
MAX_SOURCE_BYTES = 2 * 1024 * 1024
_CATCH_ALL = frozenset({"AssertionError", "Exception", "BaseException"})


@dataclass(frozen=True, slots=True)
class ScriptPart:
    """What a module does when run as a script: ``unittest_main`` (its ``TestCase``
    classes, ``test_cases``, all run) and the ``names`` its script part refers to."""

    unittest_main: bool
    names: frozenset[str]
    functions: frozenset[str]
    test_cases: frozenset[str]


def script_part(source: str) -> ScriptPart | None:
    """The module's script part, None when it has none, does not parse, or cannot be
    trusted to fail when its tests do."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    statements: list[ast.stmt] = []
    for stmt in tree.body:
        if isinstance(stmt, ast.If) and _is_main_test(stmt.test):
            statements.extend(stmt.body)
        elif isinstance(stmt, ast.Expr) and _is_unittest_main(stmt.value):
            statements.append(stmt)
    if not statements:
        return None
    names: set[str] = set()
    unittest_main = False
    for stmt in statements:
        for node in ast.walk(stmt):
            if isinstance(node, ast.Call):
                if _dotted(node.func) == "pytest.main":
                    return None
                if _is_unittest_main(node):
                    unittest_main = True
            elif isinstance(node, ast.ExceptHandler) and _catches_failures(node.type):
                return None
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
                names.add(node.id)
    functions = {s.name for s in tree.body if isinstance(s, ast.FunctionDef | ast.AsyncFunctionDef)}
    return ScriptPart(unittest_main, frozenset(names), frozenset(functions), _test_cases(tree))


def runs(part: ScriptPart, node: str) -> bool:
    """Whether running the module as a script runs the test ``node`` (pytest's id,
    ``file::name[params]`` or ``file::Class::name[params]``)."""
    parts = node.split("::")
    if len(parts) == 2:
        name = parts[1].split("[", 1)[0]
        return name in part.functions and name in part.names
    if len(parts) == 3:
        return part.unittest_main and parts[1] in part.test_cases
    return False


def rerun(
    ws: Workspace, budget: Budget, root: Path, failures: Sequence[str]
) -> tuple[list[str], list[str]]:
    """Run the modules of ``failures`` (node ids, in the sdist at ``root``) whose script
    part runs them; returns (the failures their script passed, those modules)."""
    by_module: dict[str, list[str]] = {}
    for node in failures:
        if "::" in node:
            by_module.setdefault(node.split("::", 1)[0], []).append(node)
    ordered = sorted(by_module.items(), key=lambda item: -len(item[1]))
    passed: list[str] = []
    modules: list[str] = []
    for module, nodes in ordered[:MAX_MODULES]:
        path = _module_path(root, module)
        part = script_part(_read(path)) if path is not None else None
        covered = [n for n in nodes if part is not None and runs(part, n)]
        if path is None or not covered:
            continue
        if budget.remaining() < MIN_SECONDS:
            break
        with budget.capped(SCRIPT_SECONDS):
            result = ws.run_as_tester(
                [ws.vpython, "-X", "faulthandler", path.name],
                budget,
                phase="tests",
                cwd=str(path.parent),
                stage="script",
            )
        ok = result.returncode == 0 and not result.timed_out
        how = "timed out" if result.timed_out else f"exit status {result.returncode}"
        said = f"{module} run as a script from its folder, for {len(covered)} failed tests: {how}"
        ws.out.log("tests", "info", said, module=module, tests=len(covered), passed=ok)
        if ok:
            passed.extend(covered)
            modules.append(module)
    return passed, modules


def _module_path(root: Path, module: str) -> Path | None:
    """The sdist's module file ``module`` (relative to ``root``), None outside it or odd."""
    if not module.endswith(".py"):
        return None
    path = root / module
    try:
        if path.is_symlink() or not path.is_file() or path.stat().st_size > MAX_SOURCE_BYTES:
            return None
        if not path.resolve().is_relative_to(root.resolve()):
            return None
    except OSError:
        return None
    return path


def _read(path: Path | None) -> str:
    if path is None:
        return ""
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _is_main_test(test: ast.expr) -> bool:
    """``__name__ == "__main__"`` (either way round), and nothing more."""
    if not isinstance(test, ast.Compare) or len(test.ops) != 1:
        return False
    if not isinstance(test.ops[0], ast.Eq):
        return False
    sides = (test.left, test.comparators[0])
    named = any(isinstance(s, ast.Name) and s.id == "__name__" for s in sides)
    main = any(isinstance(s, ast.Constant) and s.value == "__main__" for s in sides)
    return named and main


#: ``unittest.main`` arguments that pick what runs (then not every TestCase does).
_SELECTING = frozenset({"module", "defaultTest", "argv", "testLoader", None})


def _is_unittest_main(node: ast.expr) -> bool:
    """``unittest.main(...)`` that runs every TestCase of the module and exits with their
    status: no positional argument, no ``module``/``defaultTest``/``argv``/``testLoader``,
    not ``exit=False``."""
    if not isinstance(node, ast.Call) or _dotted(node.func) != "unittest.main":
        return False
    if node.args or any(k.arg in _SELECTING for k in node.keywords):
        return False
    return not any(
        k.arg == "exit" and not (isinstance(k.value, ast.Constant) and k.value.value is True)
        for k in node.keywords
    )


def _catches_failures(kind: ast.expr | None) -> bool:
    """A handler that would swallow a failing test: bare, or AssertionError/Exception/
    BaseException (alone or in a tuple)."""
    if kind is None:
        return True
    kinds = kind.elts if isinstance(kind, ast.Tuple) else [kind]
    return any(_dotted(k).rsplit(".", 1)[-1] in _CATCH_ALL for k in kinds)


def _test_cases(tree: ast.Module) -> frozenset[str]:
    """Top-level classes deriving from a ``*TestCase`` (directly or through the module's
    own classes)."""
    classes = [s for s in tree.body if isinstance(s, ast.ClassDef)]
    found: set[str] = set()
    changed = True
    while changed:
        changed = False
        for cls in classes:
            if cls.name in found:
                continue
            bases = [_dotted(b) for b in cls.bases]
            if any(b.rsplit(".", 1)[-1].endswith("TestCase") or b in found for b in bases):
                found.add(cls.name)
                changed = True
    return frozenset(found)


def _dotted(node: ast.expr) -> str:
    """``a.b.c`` for a name or attribute chain, else ""."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return ""
    parts.append(node.id)
    return ".".join(reversed(parts))
