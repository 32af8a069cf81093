"""What ``setup.py`` imports at its top without declaring it, read from its syntax tree.

Under build isolation pip builds in an environment holding only the declared build
requirements: a ``setup.py`` that starts with an undeclared ``import requests`` dies
there and the rest of it (often a payload) never runs. So the host reads
``setup.py`` with ``ast.parse`` (never running it) and lists the modules imported at
module level (also inside top-level ``if``/``try``/``with`` blocks) that are not:

- guarded by a ``try`` that catches ``ImportError`` (the build survives them);
- the standard library (the host's ``sys.stdlib_module_names`` plus
  `REMOVED_FROM_STDLIB`, modules newer guests lost: a guest may be older or newer);
- provided by the build environment (`BUILD_TOOLS`: setuptools and friends);
- declared (``[build-system] requires``, ``setup_requires`` in ``setup.py``'s
  ``setup()`` call or ``setup.cfg``), compared by distribution name;
- the project's own code (a top- or second-level directory or module of the sdist).

Each is a finding (``build.undeclared_import``, see `slave.findings.static_build`)
and a distribution whose wheels the host fetches, best effort, so the guest can
retry a failed build with them (``JobDocument.build_imports``). Import names map to
distributions through `DISTRIBUTIONS` (``yaml`` → ``PyYAML``), else the name itself.
"""

from __future__ import annotations

import ast
import configparser
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

#: Modules of the standard library that Python 3.12 and 3.13 removed (PEP 594,
#: distutils, imp...): still "stdlib" for a guest of 3.11, never a wheel to fetch.
REMOVED_FROM_STDLIB = frozenset(
    {
        "asynchat", "asyncore", "distutils", "imp", "smtpd",  # 3.12
        "aifc", "audioop", "cgi", "cgitb", "chunk", "crypt", "imghdr", "mailcap", "msilib",
        "nis", "nntplib", "ossaudiodev", "pipes", "sndhdr", "spwd", "sunau", "telnetlib",
        "uu", "xdrlib", "lib2to3",  # 3.13
    }
)  # fmt: skip
STDLIB = frozenset(sys.stdlib_module_names) | REMOVED_FROM_STDLIB
#: What any setuptools build environment has (pip's default build requirements).
BUILD_TOOLS = frozenset({"setuptools", "pkg_resources", "_distutils_hack", "wheel"})
#: Import name → distribution, where they differ (the common cases).
DISTRIBUTIONS: dict[str, str] = {
    "yaml": "PyYAML",
    "bs4": "beautifulsoup4",
    "Crypto": "pycryptodome",
    "Cryptodome": "pycryptodomex",
    "cv2": "opencv-python",
    "PIL": "pillow",
    "sklearn": "scikit-learn",
    "skimage": "scikit-image",
    "dateutil": "python-dateutil",
    "jwt": "PyJWT",
    "dotenv": "python-dotenv",
    "git": "GitPython",
    "serial": "pyserial",
    "usb": "pyusb",
    "magic": "python-magic",
    "docx": "python-docx",
    "pptx": "python-pptx",
    "OpenSSL": "pyOpenSSL",
    "nacl": "PyNaCl",
    "google": "protobuf",
    "win32api": "pywin32",
    "win32con": "pywin32",
    "Xlib": "python-xlib",
    "zmq": "pyzmq",
    "attr": "attrs",
    "pkg_config": "pkgconfig",
    "Cython": "Cython",
    "discord": "discord.py",
    "telegram": "python-telegram-bot",
    "websocket": "websocket-client",
    "psycopg2": "psycopg2-binary",
    "MySQLdb": "mysqlclient",
    "fitz": "PyMuPDF",
    "mpl_toolkits": "matplotlib",
}
_IMPORT_ERRORS = frozenset({"ImportError", "ModuleNotFoundError", "Exception", "BaseException"})
_CODE_CHARS = 200
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


@dataclass(frozen=True, slots=True)
class BuildImport:
    """An undeclared top-level import of ``setup.py``: module, distribution, where."""

    module: str
    distribution: str
    line: int
    code: str


def distribution_for(module: str) -> str:
    """The distribution that provides top-level module ``module`` (best guess)."""
    return DISTRIBUTIONS.get(module, module)


def undeclared_imports(
    setup_py: bytes,
    *,
    build_requires: Iterable[str] = (),
    setup_cfg: bytes | None = None,
    own_modules: Iterable[str] = (),
) -> list[BuildImport]:
    """The undeclared top-level imports of ``setup_py`` (module docstring), first of each."""
    try:
        tree = ast.parse(setup_py)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return []
    lines = setup_py.decode("utf-8", "replace").splitlines()
    declared = {_name(r) for r in build_requires}
    declared |= {_name(r) for r in _setup_requires(tree)}
    declared |= {_name(r) for r in _cfg_setup_requires(setup_cfg)}
    skip = STDLIB | BUILD_TOOLS | set(own_modules)
    found: dict[str, BuildImport] = {}
    for node, module in _top_level_imports(tree.body, guarded=False):
        if module in skip or module in found or module.startswith("_"):
            continue
        distribution = distribution_for(module)
        if canonicalize_name(distribution) in declared or canonicalize_name(module) in declared:
            continue
        number = node.lineno
        text = lines[number - 1] if 0 < number <= len(lines) else ""
        code = _CONTROL.sub(" ", text.strip())[:_CODE_CHARS]
        found[module] = BuildImport(module, distribution, number, code)
    return list(found.values())


def _top_level_imports(body: list[ast.stmt], *, guarded: bool) -> Iterator[tuple[ast.stmt, str]]:
    """(statement, top-level module) of unguarded imports run when the module body runs."""
    for node in body:
        if isinstance(node, ast.Import) and not guarded:
            for alias in node.names:
                yield node, alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and not guarded:
            if node.level == 0 and node.module:
                yield node, node.module.split(".")[0]
        elif isinstance(node, ast.If):
            yield from _top_level_imports(node.body, guarded=guarded)
            yield from _top_level_imports(node.orelse, guarded=guarded)
        elif isinstance(node, ast.With):
            yield from _top_level_imports(node.body, guarded=guarded)
        elif isinstance(node, ast.Try | ast.TryStar):
            catches = guarded or any(_catches_import_error(h) for h in node.handlers)
            yield from _top_level_imports(node.body, guarded=catches)
            for handler in node.handlers:
                yield from _top_level_imports(handler.body, guarded=guarded)
            yield from _top_level_imports(node.orelse, guarded=guarded)
            yield from _top_level_imports(node.finalbody, guarded=guarded)


def _catches_import_error(handler: ast.ExceptHandler) -> bool:
    if handler.type is None:
        return True
    kinds = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    return any(isinstance(k, ast.Name) and k.id in _IMPORT_ERRORS for k in kinds)


def _setup_requires(tree: ast.Module) -> list[str]:
    """Literal ``setup_requires=[...]`` strings of any ``setup(...)`` call in the file."""
    found: list[str] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        for keyword in node.keywords:
            if keyword.arg != "setup_requires":
                continue
            value = keyword.value
            items = value.elts if isinstance(value, ast.List | ast.Tuple) else [value]
            found += [
                i.value for i in items if isinstance(i, ast.Constant) and isinstance(i.value, str)
            ]
    return found


def _cfg_setup_requires(setup_cfg: bytes | None) -> list[str]:
    if setup_cfg is None:
        return []
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(setup_cfg.decode("utf-8", "replace"))
        text = parser.get("options", "setup_requires", fallback="")
    except configparser.Error:
        return []
    return [line.strip() for line in re.split(r"[\n;]", text) if line.strip()]


def _name(requirement: str) -> str:
    try:
        return canonicalize_name(Requirement(requirement).name)
    except InvalidRequirement:
        return canonicalize_name(re.split(r"[^A-Za-z0-9._-]", requirement.strip(), maxsplit=1)[0])
