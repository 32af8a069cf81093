"""A release wheel's ``Requires-Python`` checked on the host, as pip checks it in the guest.

The guest installs a release's wheel with uv, which does not check a local wheel's
``Requires-Python`` (it trusts an index's ``data-requires-python``; ``--find-links``
directories have none): a wheel refusing the guest's Python would install. So the host
checks it from the metadata it already read (``METADATA`` of the wheel the guest
installs; nothing runs), with pip's rule: the guest's full Python version must be in
the specifier set; a specifier that does not parse is ignored (pip warns and
installs). A refused wheel fails the install phase with pip's words, as pip's
refusal did when pip installed it (`slave.job.phases.refuse_install`).

An sdist is checked the same way, from its static metadata (PKG-INFO, else
``pyproject.toml``), unless its PKG-INFO leaves ``Requires-Python`` to the build
(``Dynamic``): the guest builds it in a prepared environment and uv installs the wheel,
and neither checks (an upload requiring ``==3.11.*``, which the master cannot route by
it, was built and installed on 3.13).
Dependencies need no check: ``pip download --python-version`` picked them for the
guest's Python (`slave.prepare.wheelhouse`).
"""

from __future__ import annotations

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version


def python_refusal(label: str, requires_python: str | None, python: str) -> str | None:
    """Why pip would refuse ``label`` (``name version``) on Python ``python`` (``3.11.2``), in
    pip's words; None when it would install it (no, or an unparsable, ``Requires-Python``)."""
    if not requires_python:
        return None
    try:
        wanted = SpecifierSet(requires_python)
        version = Version(python)
    except (InvalidSpecifier, InvalidVersion):
        return None
    if version in wanted:
        return None
    return f"{label} requires a different Python: {python} not in {requires_python!r}"[:300]
