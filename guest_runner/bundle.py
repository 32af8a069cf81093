"""This package as one file for the guest: a zipapp, and the digest of its sources.

The image builder calls :func:`build_pyz` to make ``/opt/pyti/runner.pyz`` and puts
:func:`source_digests` into the image's recipe hash, so any change to a runner
source rebuilds the image.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import zipapp
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
# zipapp's own generated __main__ drops main()'s return value: the exit status matters.
_MAIN = "import sys\n\nfrom {package}.runner import main\n\nsys.exit(main())\n"


def sources(package_dir: Path = PACKAGE_DIR) -> list[Path]:
    """The files that make the runner (``*.py``), sorted; no caches, no docs."""
    return sorted(p for p in package_dir.rglob("*.py") if "__pycache__" not in p.parts)


def source_digests(package_dir: Path = PACKAGE_DIR) -> dict[str, str]:
    """Relative path → sha256 of every runner source."""
    return {
        str(p.relative_to(package_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sources(package_dir)
    }


def build_pyz(target: Path, package_dir: Path = PACKAGE_DIR) -> Path:
    """Write the runner zipapp to ``target`` (mode 0755); its entry is ``runner.main``."""
    with tempfile.TemporaryDirectory(prefix="pyti-runner-") as tmp:
        stage = Path(tmp) / "src"
        for path in sources(package_dir):
            dest = stage / package_dir.name / path.relative_to(package_dir)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, dest)
        (stage / "__main__.py").write_text(_MAIN.format(package=package_dir.name))
        zipapp.create_archive(stage, target, interpreter="/usr/bin/python3")
    target.chmod(0o755)
    return target
