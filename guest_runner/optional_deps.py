"""The release's optional dependencies the job venv lacks, and failures that only lacked one.

A release's extras name what its optional features need (oauthlib's ``signals`` extra:
``blinker``). pyti installs an extra for the tests when its name says tests or when the
tests import what it provides; one that only the release's own code imports is left
out. A test of that feature then fails with the release's own words (oauthlib 4.0.1:
``RuntimeError: signalling support is unavailable because the blinker library is not
installed``) or with ``ModuleNotFoundError: No module named 'blinker'`` raised in the
release's code. Upstream CI installs the extra; the failure says nothing of the release.

`missing_optional` reads the installed release's ``METADATA`` (text, no code runs) for
the requirements its extras add and keeps those the venv has no distribution of;
`lacked_optional` tells whether a failure's error names one of them (by a name it is
imported as, `import_names`) beside words of absence ("not installed", "unavailable",
"is required", "No module named"...). Such failures count with the modules a test only
imported (``module_failures``), named by the distribution.
"""

from __future__ import annotations

import re
from pathlib import Path

from guest_runner.phases.metadata import normalize
from guest_runner.release_fault import MISSING_MODULE, error_of

#: ``Requires-Dist: blinker>=1.4.0; extra == "signals"``: the distribution's name
_REQUIRES = re.compile(r"^Requires-Dist:\s*([A-Za-z0-9][A-Za-z0-9._-]*)(.*)$", re.MULTILINE)
_EXTRA_MARKER = re.compile(r"""\bextra\s*==\s*['"]""")
#: words of an error that says something is not there
_ABSENT = re.compile(
    r"not installed|isn't installed|is not available|not available|unavailable|is required"
    r"|requires\b|please install|pip install|no module named|could not import"
    r"|cannot import|can't import|missing",
    re.IGNORECASE,
)
_WORD = re.compile(r"[a-z0-9_]+(?:[.-][a-z0-9_]+)*")
_METADATA_CHARS = 1024 * 1024


def import_names(distribution: str) -> set[str]:
    """The names a distribution is commonly imported by, from its name alone: the name
    with ``_`` for ``-`` and ``.``, and without a ``py``/``python-`` prefix or a ``-python``
    suffix (``pyjwt`` → ``jwt``, ``python-dateutil`` → ``dateutil``). A guess: used only for
    the release's own extras (the host's `slave.prepare.testdeps`, and here), never to
    pick an arbitrary distribution."""
    name = normalize(distribution)
    stems = {name, name.removeprefix("python-"), name.removesuffix("-python")}
    if name.startswith("py") and len(name) > 4:
        stems.add(name[2:].lstrip("-"))
    return {stem.replace("-", "_").replace(".", "_") for stem in stems if stem}


def missing_optional(site: Path, info: Path | None) -> dict[str, str]:
    """Import name (lower case) → distribution, for each requirement the release's extras
    add (``info``: its ``.dist-info``) that the venv (``site``) has no distribution of;
    the names its base requirements share are left out."""
    if info is None:
        return {}
    try:
        text = (info / "METADATA").read_text(errors="replace")[:_METADATA_CHARS]
    except OSError:
        return {}
    text = text.split("\n\n", 1)[0]  # the headers: the description may say anything
    base: set[str] = set()
    optional: dict[str, str] = {}
    for name, rest in _REQUIRES.findall(text):
        if _EXTRA_MARKER.search(rest):
            optional.setdefault(normalize(name), name)
        else:
            base.add(normalize(name))
    if not optional:
        return {}
    installed = {
        normalize(path.name.split("-", 1)[0])
        for path in site.glob("*.dist-info")
        if path.name.split("-", 1)[0]
    }
    found: dict[str, str] = {}
    for key, name in optional.items():
        if key in base or key in installed:
            continue
        for alias in import_names(name):
            found.setdefault(alias.lower(), name)
    return found


def lacked_optional(text: str, optional: dict[str, str]) -> str | None:
    """The distribution of ``optional`` (`missing_optional`) a failure's error says is not
    there, else None: ``No module named 'X'`` for one of its names, or one of its names as
    a word beside words of absence."""
    if not optional:
        return None
    error = error_of(text)
    missing = MISSING_MODULE.search(error)
    if missing is not None:
        return optional.get(missing.group(1).split(".", 1)[0].lower())
    if not _ABSENT.search(error):
        return None
    for word in _WORD.findall(error.lower()):
        name = optional.get(word.replace("-", "_").replace(".", "_"))
        if name is not None:
            return name
    return None
