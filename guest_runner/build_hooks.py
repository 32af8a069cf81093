"""Build an sdist's wheel in one interpreter: the script `guest_runner.prepared_build` runs.

It runs as ``tester`` in the *job venv's* Python (``sys.prefix`` is the job venv, as
under pip), with ``PYTHONPATH`` set to a folder whose ``sitecustomize`` isolates it the
way pip's build environment does: the job venv's site-packages are dropped from
``sys.path`` and one of the image's prepared build environments is added. It imports
nothing of the runner: it is written next to the build as a file and run by path.

It calls the backend through pyproject-hooks' own ``_in_process`` module (the code pip
and ``build`` run for every hook), loaded from the image's tools venv, but both hooks
in the same process, so the backend is imported once:

1. the sdist's declared build requirements (``PYTI_BUILD_REQUIRES``, JSON) and then
   what ``get_requires_for_build_wheel`` asks for must be met by the prepared
   environment (name, version, extras, markers; checked with ``packaging``, which every
   prepared environment holds); when one is not, it exits ``UNMET`` and the runner
   builds the sdist with pip as before;
2. ``build_wheel`` writes the wheel into ``OUT_DIR``.

The outcome goes to ``REPORT`` as JSON: ``{"unmet": [...]}`` or ``{"wheel": name}``.

Usage: ``python build_hooks.py IN_PROCESS_PY OUT_DIR REPORT``
"""

import importlib.util
import json
import os
import sys
from importlib import metadata

from packaging.requirements import InvalidRequirement, Requirement

#: Exit status: a requirement the prepared environment does not meet; nothing was built.
UNMET = 3


def main(argv: list[str]) -> int:
    in_process, out_dir, report = argv[1:4]
    spec = importlib.util.spec_from_file_location("_pyti_in_process", in_process)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {in_process}")
    hooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hooks)
    declared = json.loads(os.environ.get("PYTI_BUILD_REQUIRES") or "[]")
    unmet = _unmet(declared)
    if not unmet:
        unmet = _unmet(hooks.get_requires_for_build_wheel({}) or [])
    if unmet:
        _write(report, {"unmet": unmet})
        return UNMET
    name = hooks.build_wheel(out_dir, {}, None)
    _write(report, {"wheel": name})
    return 0


def _unmet(requirements: list[str]) -> list[str]:
    unmet = []
    for text in requirements:
        try:
            requirement = Requirement(text)
        except InvalidRequirement:
            unmet.append(text)
            continue
        if not _met(requirement, "", 0):
            unmet.append(text)
    return unmet


def _met(requirement: Requirement, extra: str, depth: int) -> bool:
    """Installed here, in a version the specifier allows, with the extras' requirements."""
    marker = requirement.marker
    if marker is not None and not marker.evaluate({"extra": extra}):
        return True  # not wanted on this Python (or not for this extra)
    try:
        dist = metadata.distribution(requirement.name)
    except metadata.PackageNotFoundError:
        return False
    if not requirement.specifier.contains(dist.version, prereleases=True):
        return False
    if depth > 10:
        return True
    for wanted in sorted(requirement.extras):
        for text in dist.requires or []:
            child = Requirement(text)
            of_extra = child.marker is not None and "extra" in str(child.marker)
            if of_extra and not _met(child, wanted, depth + 1):
                return False
    return True


def _write(path: str, data: object) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
