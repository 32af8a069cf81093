"""Static findings about how a release builds: ``setup.py`` importing what it never declared.

`slave.prepare.build_imports` reads the imports from ``setup.py``'s syntax tree on
the host (only when the guest will build the sdist); each becomes one
``build.undeclared_import`` finding (low, phase install, ``source="static"``):
under pip's build isolation such an import kills the build before the rest of
``setup.py`` runs, which real droppers rely on without meaning to, and a build that
needs a module it does not declare is broken either way. Low, not more: many old
healthy ``setup.py`` files import ``numpy`` or ``Cython`` undeclared, and the verdict
comes from what the retried build then does (traced), not from the import itself.
"""

from __future__ import annotations

from collections.abc import Sequence

from slave.findings.model import Finding
from slave.prepare.build_imports import BuildImport

RULE = "build.undeclared_import"


def undeclared_import_findings(sdist: str, imports: Sequence[BuildImport]) -> list[Finding]:
    """One finding per undeclared import of ``sdist``'s ``setup.py``."""
    return [
        Finding(
            rule=RULE,
            severity="low",
            phase="install",
            pid=None,
            process="static",
            evidence=f"{sdist}:setup.py:{imp.line}: {imp.code}"[:2000],
            target=f"setup.py ({imp.module})"[:500],
            source="static",
        )
        for imp in imports
    ]


__all__ = ["RULE", "undeclared_import_findings"]
