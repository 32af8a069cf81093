"""What one Python source says, read from its syntax tree: calls, strings, taint, scopes.

`module_scopes(tree, file_phase)` cuts a parsed module into `Scope`s — the
module body, each top-level function, each method — and gives each the phase
its code would run in: everything of ``setup.py`` at ``install``, tests at
``tests``; for a package module, its body (and the functions that body calls,
transitively) at ``import``, other functions and methods at ``run`` (only
when something calls them), an ``if __name__ == "__main__":`` block at ``run``.
Each scope lists its calls by resolved dotted name (``from os import system as
s; s(x)`` → ``os.system``) and its string constants, which is all the rules in
``static_rules.py`` look at. Nothing here executes anything: ``ast`` only parses.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

#: Phase of code that runs only when something calls it (not install, import or tests).
RUN = "run"


@dataclass(slots=True)
class Scope:
    """A run of statements that execute together, in the phase they would run in."""

    phase: str
    nodes: list[ast.AST]
    aliases: dict[str, str]
    calls: list[tuple[str, ast.Call]] = field(default_factory=list)
    strings: list[tuple[str, ast.AST]] = field(default_factory=list)

    def names(self) -> set[str]:
        return {name for name, _ in self.calls}

    def has(self, *prefixes: str) -> bool:
        """A call whose dotted name is one of ``prefixes`` or starts with one + ``.``."""
        return any(call_matches(name, prefixes) for name, _ in self.calls)

    def first(self, *prefixes: str) -> ast.Call | None:
        return next((c for name, c in self.calls if call_matches(name, prefixes)), None)


def call_matches(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def aliases_of(tree: ast.Module) -> dict[str, str]:
    """Local name → dotted name, from every import in the module (any depth)."""
    out: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.asname:
                    out[a.asname] = a.name
                else:
                    top = a.name.split(".")[0]
                    out[top] = top
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for a in node.names:
                if a.name != "*":
                    out[a.asname or a.name] = f"{node.module}.{a.name}"
    return out


def dotted(node: ast.AST, aliases: dict[str, str]) -> str | None:
    """The dotted name an expression stands for, or None when it is computed."""
    match node:
        case ast.Name(id=name):
            return aliases.get(name, name)
        case ast.Attribute(value=value, attr=attr):
            base = dotted(value, aliases)
            return f"{base}.{attr}" if base else f"?.{attr}"
        case ast.Call(func=ast.Name(id="__import__"), args=[ast.Constant(value=str() as mod), *_]):
            return mod
        case ast.Call(func=ast.Name(id="getattr"), args=[obj, ast.Constant(value=str() as a)]):
            base = dotted(obj, aliases)
            return f"{base}.{a}" if base else a
        case ast.Subscript(
            value=ast.Call(func=ast.Name(id="globals" | "vars" | "locals")),
            slice=ast.Constant(value=str() as key),
        ):
            return key
        case ast.Call(func=func):
            inner = dotted(func, aliases)
            return f"{inner}()" if inner else None
    return None


def _is_main_guard(node: ast.stmt) -> bool:
    if not isinstance(node, ast.If) or not isinstance(node.test, ast.Compare):
        return False
    parts = [node.test.left, *node.test.comparators]
    names = any(isinstance(p, ast.Name) and p.id == "__name__" for p in parts)
    main = any(isinstance(p, ast.Constant) and p.value == "__main__" for p in parts)
    return names and main


_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef)
FunctionNode = ast.FunctionDef | ast.AsyncFunctionDef


def _walk_flat(nodes: list[ast.AST], defs: list[FunctionNode] | None = None) -> Iterator[ast.AST]:
    """Every node under ``nodes`` except function bodies (collected into ``defs``).

    A def's decorators and default values run where it is defined; its body later.
    Lambdas stay in: they are usually called right where they are written.
    """
    stack = list(reversed(nodes))
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, _DEFS):
            if defs is not None:
                defs.append(node)
            stack.extend([*node.decorator_list, *node.args.defaults])
            stack.extend(d for d in node.args.kw_defaults if d is not None)
            continue
        stack.extend(reversed(list(ast.iter_child_nodes(node))))


def module_scopes(tree: ast.Module, file_phase: str) -> list[Scope]:
    """The scopes of a module, each with the phase it runs in (module docstring)."""
    aliases = aliases_of(tree)
    body: list[ast.AST] = []
    main: list[ast.AST] = []
    for stmt in tree.body:
        (main if _is_main_guard(stmt) else body).append(stmt)
    defs: list[FunctionNode] = []
    body_nodes = list(_walk_flat(body, defs))
    main_nodes = list(_walk_flat(main, defs))
    # Module-level defs the body may call by name (methods and nested defs are not).
    functions = {d.name: d for d in tree.body if isinstance(d, _DEFS)}
    reached = _reached(body_nodes, functions)
    late = file_phase if file_phase in ("install", "tests") else RUN
    scopes = [_scope(file_phase, body_nodes, aliases), _scope(late, main_nodes, aliases)]
    done: set[int] = set()
    while defs:
        fn = defs.pop()
        if id(fn) in done:
            continue
        done.add(id(fn))
        nodes = list(_walk_flat(list(fn.body), defs))
        phase = file_phase if fn.name in reached and functions.get(fn.name) is fn else late
        scopes.append(_scope(phase, nodes, aliases))
    return [s for s in scopes if s.nodes]


def _reached(body_nodes: list[ast.AST], functions: dict[str, FunctionNode]) -> set[str]:
    """Functions the module body calls by plain name, transitively."""
    reached: set[str] = set()
    todo = [body_nodes]
    while todo:
        for node in todo.pop():
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                name = node.func.id
                if name in functions and name not in reached:
                    reached.add(name)
                    todo.append(list(_walk_flat(list(functions[name].body))))
    return reached


def _scope(phase: str, nodes: list[ast.AST], aliases: dict[str, str]) -> Scope:
    """A scope over already-flattened nodes (every node listed once)."""
    scope = Scope(phase, nodes, aliases)
    # Docstrings (and other bare string statements) are prose, not data the code uses.
    prose = {id(n.value) for n in nodes if isinstance(n, ast.Expr) and _is_text(n.value)}
    for node in nodes:
        if id(node) in prose:
            continue
        if isinstance(node, ast.Call):
            name = dotted(node.func, aliases)
            if name:
                scope.calls.append((name, node))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str | bytes):
            text = node.value if isinstance(node.value, str) else node.value.decode("latin-1")
            scope.strings.append((text, node))
    return scope


def _is_text(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, str)


def constant_text(node: ast.AST) -> str:
    """The string constants inside an expression, joined by spaces (argv lists, concatenations)."""
    parts: list[str] = []
    for sub in ast.walk(node):
        if isinstance(sub, ast.Constant) and isinstance(sub.value, str):
            parts.append(sub.value)
    return " ".join(parts)


def contains_call(node: ast.AST, aliases: dict[str, str], prefixes: tuple[str, ...]) -> bool:
    for sub in ast.walk(node):
        if isinstance(sub, ast.Call):
            name = dotted(sub.func, aliases)
            if name and call_matches(name, prefixes):
                return True
    return False


def tainted_names(scope: Scope, is_source: Callable[[ast.AST], bool]) -> set[str]:
    """Names assigned (directly or through other tainted names) from a source expression."""
    assigns: list[tuple[list[str], ast.AST]] = []
    for node in scope.nodes:
        if isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign) and node.value:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names = [n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)]
            assigns.append((names, node.value))
        elif isinstance(node, ast.withitem) and node.optional_vars is not None:
            names = [n.id for n in ast.walk(node.optional_vars) if isinstance(n, ast.Name)]
            assigns.append((names, node.context_expr))
    tainted: set[str] = set()
    for _ in range(4):  # a few hops: x = b64decode(...); y = zlib.decompress(x); exec(y)
        grew = False
        for names, value in assigns:
            if set(names) <= tainted:
                continue
            if is_source(value) or any(
                isinstance(n, ast.Name) and n.id in tainted for n in ast.walk(value)
            ):
                tainted.update(names)
                grew = True
        if not grew:
            break
    return tainted
