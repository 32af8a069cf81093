"""Read the release's code as well as run it: static findings from its files, on the host.

``static_findings(files)`` opens each sdist/wheel through ``slave.archive``'s safe
reader (via ``slave.quality.contents``), reads its ``.py`` and ``.pth`` members as
bytes, parses Python with ``ast.parse`` (which never runs anything) and applies
the rule table of ``static_rules.py`` to each scope. It never imports or
executes package code and never raises on hostile input: an unreadable archive
is skipped (the quality report already says so), an unparsable file gets the
few text rules that need no syntax tree.

Findings are ordinary `Finding`s with ``source="static"``, ``process="static"``,
``pid=None``, ``evidence="<archive>:<path>:<line>: <code>"`` (control characters
stripped, 200 characters at most) and ``target`` the file's path in the
release. Their phase is where the code would run::

    setup.py, and root modules it imports          install
    .pth files; a package module's body
    (and the functions that body calls)            import
    other functions, methods, __main__ blocks,
    docs/ examples/ benchmarks/                    run
    tests/, test_*.py, *_test.py, conftest.py      tests

Synchronous and CPU-bound: call it through ``asyncio.to_thread``.
"""

from __future__ import annotations

import ast
import posixpath
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import structlog

from slave.archive import ArchiveError, ArchiveLimits, SafeArchive
from slave.findings.model import Finding, Severity
from slave.findings.static_facts import RUN, module_scopes
from slave.findings.static_rules import (
    KNOWN_PTH,
    PTH_DANGER,
    PTH_RULES,
    REVERSE_SHELL_TEXT,
    STATIC_RULES,
    WEBHOOK,
    StaticRule,
)
from slave.quality.contents import DistContents, read_contents

log = structlog.get_logger(__name__)

MAX_FILE_BYTES = 1 << 20
MAX_TOTAL_BYTES = 32 << 20
MAX_FILES = 3000
SNIPPET_MAX = 200
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_TEST_DIRS = frozenset({"tests", "test", "testing"})
_NOT_INSTALLED = frozenset({"docs", "doc", "examples", "example", "benchmarks", "benchmark"})
_EXEC_DECODED_TEXT = re.compile(
    r"\b(exec|eval)\s*\(\s*(\w+\.)*(b64decode|decodestring|decompress|loads|unhexlify)\b"
)


def static_findings(files: Sequence[Path]) -> list[Finding]:
    """Static findings of a release's files (module docstring); never raises on bad input."""
    found: dict[tuple[str, str, str], Finding] = {}
    budget = [MAX_TOTAL_BYTES, MAX_FILES]
    for path in files:
        try:
            contents = read_contents(path)
            if contents.readable and contents.dist.kind in ("sdist", "wheel"):
                for finding in _scan_dist(contents, budget):
                    found.setdefault((finding.rule, finding.phase, finding.target), finding)
        except Exception as exc:  # hostile input must never fail the job
            log.warning("static_scan_error", file=path.name, error=repr(exc)[:500])
    return list(found.values())


def _members(contents: DistContents) -> list[str]:
    """The entries worth reading: setup.py and .pth first, then packages, then the rest."""
    wanted = [
        e
        for e in contents.files()
        if e.path.endswith((".py", ".pyw", ".pth"))
        and e.size <= MAX_FILE_BYTES
        and ".dist-info/" not in e.path
    ]

    def rank(path: str) -> int:
        if path in ("setup.py",) or path.endswith(".pth"):
            return 0
        if _file_phase(path, contents.dist.kind, frozenset()) == "import":
            return 1
        return 2

    return [e.path for e in sorted(wanted, key=lambda e: rank(e.path))]


def _scan_dist(contents: DistContents, budget: list[int]) -> Iterable[Finding]:
    chosen = _members(contents)
    order = {e.path: i for i, e in enumerate(contents.entries)}
    sizes = {e.path: e.size for e in contents.entries}
    data: dict[str, bytes] = {}
    with SafeArchive.open(contents.file, limits=ArchiveLimits()) as archive:
        picked: list[str] = []
        for rel in chosen:
            size = sizes.get(rel, 0)
            if budget[0] < size or budget[1] <= 0:
                break
            budget[0] -= size
            budget[1] -= 1
            picked.append(rel)
        # archive order: a tarball is one stream, and seeking back re-inflates it
        for rel in sorted(picked, key=lambda p: order.get(p, 0)):
            try:
                data[rel] = archive.read(contents.member_names[rel], max_bytes=MAX_FILE_BYTES)
            except ArchiveError as exc:
                log.info("static_scan_member_skipped", member=rel, error=str(exc)[:300])
    sdist = contents.dist.kind == "sdist"
    install_modules = _setup_imports(data.get("setup.py")) if sdist else set()
    for rel, raw in data.items():
        phase = _file_phase(rel, contents.dist.kind, install_modules)
        where = f"{contents.file.name}:{rel}"
        if rel.endswith(".pth"):
            yield from _pth(where, rel, raw)
        else:
            yield from _python(where, rel, raw, phase)


def _file_phase(rel: str, kind: str, install_modules: frozenset[str] | set[str]) -> str:
    parts = rel.split("/")
    name = parts[-1]
    if kind == "wheel" and ".data/" in rel and "/scripts/" in rel:
        return RUN
    if _TEST_DIRS & set(parts[:-1]) or name.startswith("test_") or name in ("conftest.py",):
        return "tests"
    if name.endswith("_test.py"):
        return "tests"
    if (
        kind == "sdist"
        and len(parts) == 1
        and (name == "setup.py" or name.removesuffix(".py") in install_modules)
    ):
        return "install"
    if kind == "sdist" and parts[0] in _NOT_INSTALLED:
        return RUN
    return "import"


def _setup_imports(raw: bytes | None) -> set[str]:
    """Top-level module names setup.py imports (versioneer.py, a local build helper...)."""
    if raw is None:
        return set()
    try:
        tree = ast.parse(raw)
    except Exception:
        return set()
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def _python(where: str, rel: str, raw: bytes, phase: str) -> Iterable[Finding]:
    lines = raw.decode("utf-8", "replace").splitlines()
    try:
        tree = ast.parse(raw, filename=rel)
        scopes = module_scopes(tree, phase)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        yield from _text_only(where, rel, lines, phase)
        return
    for scope in scopes:
        for rule in STATIC_RULES:
            severity = rule.severity(scope.phase)
            if severity is None:
                continue
            try:
                hits = list(rule.match(scope))
            except RecursionError:
                continue  # absurdly deep expressions: no verdict from this rule here
            for node, extra in hits[:1]:
                yield _finding(rule.id, severity, scope.phase, where, rel, lines, node, extra)


def _text_only(where: str, rel: str, lines: list[str], phase: str) -> Iterable[Finding]:
    """Files ast cannot parse (Python 2, broken on purpose): the rules that need only text."""
    text_rules: tuple[tuple[str, re.Pattern[str]], ...] = (
        ("static.reverse_shell", REVERSE_SHELL_TEXT),
        ("static.webhook", WEBHOOK),
        ("static.exec_encoded", _EXEC_DECODED_TEXT),
    )
    by_id = {r.id: r for r in STATIC_RULES}
    for rule_id, pattern in text_rules:
        rule: StaticRule = by_id[rule_id]
        severity = rule.severity(phase)
        if severity is None:
            continue
        for number, line in enumerate(lines[:50_000], 1):
            if pattern.search(line[:4096]):
                node = ast.Constant(value="", lineno=number)
                yield _finding(rule_id, severity, phase, where, rel, lines, node, "")
                break


def _pth(where: str, rel: str, raw: bytes) -> Iterable[Finding]:
    """The worst import line of a .pth file (only import lines run code: site.addpackage)."""
    name = posixpath.basename(rel)
    worst: tuple[int, str, str] | None = None
    for number, line in enumerate(raw.decode("utf-8", "replace").splitlines()[:10_000], 1):
        if line.startswith(("import ", "import\t")):
            rule = "static.pth_exec" if PTH_DANGER.search(line) else "static.pth_import"
            if worst is None or (rule == "static.pth_exec" and worst[1] != rule):
                worst = (number, rule, line)
    if worst is None:
        return
    number, rule, line = worst
    severity = PTH_RULES[rule][0]
    if rule == "static.pth_import" and KNOWN_PTH.match(name):
        severity = "info"
    node = ast.Constant(value="", lineno=number)
    yield _finding(rule, severity, "import", where, rel, [], node, "", line_text=line)


def _finding(
    rule: str,
    severity: Severity,
    phase: str,
    where: str,
    rel: str,
    lines: list[str],
    node: ast.AST,
    extra: str,
    *,
    line_text: str | None = None,
) -> Finding:
    number = getattr(node, "lineno", 0) or 0
    if line_text is None:
        line_text = lines[number - 1] if 0 < number <= len(lines) else ""
    snippet = _CONTROL.sub(" ", line_text.strip())[:SNIPPET_MAX]
    target = f"{rel} ({extra})" if extra else rel
    return Finding(
        rule=rule,
        severity=severity,
        phase=phase,
        pid=None,
        process="static",
        evidence=f"{where}:{number}: {snippet}"[:2000],
        target=_CONTROL.sub(" ", target)[:500],
        source="static",
    )


__all__ = ["static_findings"]
