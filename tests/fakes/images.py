"""Image directories whose manifest checks out, for tests that load images but never boot them."""

from __future__ import annotations

from pathlib import Path

from slave.image_builder.manifest import BASE_FILES, MANIFEST_FORMAT, file_entries, write_manifest


def fake_image(image_dir: Path, name: str, recipe_hash: str = "r" * 64) -> Path:
    """Write ``image_dir/name`` with every base file and a valid manifest; returns the dir."""
    d = image_dir / name
    d.mkdir(parents=True)
    for f in BASE_FILES:
        (d / f).write_bytes(f"content of {f}".encode())
    manifest = {
        "format": MANIFEST_FORMAT, "name": name, "recipe_hash": recipe_hash,
        "python_version": "3.11.2", "kernel_version": "6.1", "files": file_entries(d),
        "vm": {"memory_mb": 256, "cpus": 1}, "bait": {}, "snapshots": {},
    }  # fmt: skip
    write_manifest(d, manifest)
    return d
