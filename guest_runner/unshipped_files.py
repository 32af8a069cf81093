"""Did a test fail only because the sdist does not ship a file it reads?

Suites read data the project keeps in its repository but leaves out of its sdist: a git
submodule (toml's ``toml-test/``), fixtures under ``tests/data`` a ``MANIFEST.in``
forgot. Upstream CI runs from a checkout and is green; from the sdist such a test fails
with ``FileNotFoundError``, which says nothing about the release's code. It is counted
apart when the failure's text says ``No such file or directory: 'PATH'`` and

- ``PATH`` is inside the sdist's tree (relative: from its root, where pytest runs;
  absolute: under that root, as ``os.path.dirname(__file__)`` paths are), no ``..``
  out of it, and it does not exist there now;
- it is not a file of the release's own package (``mypkg/data.json``, ``src/mypkg/...``
  outside a tests folder): package data missing from the sdist is the release's fault,
  its wheel would lack it too.

Only sdist trees are judged: the tests of a wheel-only release run from the installed
package, where a missing file is the wheel's.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

from guest_runner.release_fault import inside, release_file

_NO_SUCH_FILE = re.compile(
    r"FileNotFoundError: \[Errno 2\] No such file or directory: '([^']{1,400})'"
)


def unshipped_file(text: str, root: Path | None, modules: Iterable[str]) -> str | None:
    """The sdist-relative path whose absence alone made this failure, or None."""
    if root is None:
        return None
    tops = frozenset(m.split(".", 1)[0] for m in modules)
    for raw in _NO_SUCH_FILE.findall(text):
        relative = inside(root, raw)
        if relative is None or release_file(relative, tops):
            continue
        if not os.path.lexists(root / relative):
            return relative
    return None
