"""``pyti image list|verify`` against image directories made in tmp_path."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyti.cli import main
from slave.image_builder.manifest import BASE_FILES, MANIFEST_FORMAT, file_entries, write_manifest


def _image(image_dir: Path, name: str) -> Path:
    d = image_dir / name
    d.mkdir(parents=True)
    for f in BASE_FILES:
        (d / f).write_text(f"{f}\n")
    write_manifest(
        d,
        {
            "format": MANIFEST_FORMAT, "name": name, "recipe_hash": "0" * 64, "built_at": 0.0,
            "python_version": "3.11.2", "kernel_version": "t",
            "vm": {"memory_mb": 512, "cpus": 1, "disk_gib": 4},
            "sizes": {f: 1 for f in BASE_FILES}, "files": file_entries(d), "bait": {},
            "snapshots": {},
        },
    )  # fmt: skip
    return d


def test_list_shows_absent_stale_and_damaged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """list shows every recipe and built image with its state."""
    _image(tmp_path, "bookworm")  # recipe hash differs from the shipped recipe: stale
    broken = _image(tmp_path, "custom")
    (broken / "vmlinuz").unlink()
    assert main(["image", "list", "--image-dir", str(tmp_path)]) == 0
    rows = {line.split()[0]: line.split()[1] for line in capsys.readouterr().out.splitlines()[1:]}
    assert rows == {"bookworm": "stale", "custom": "damaged", "trixie": "absent"}


def test_verify_ok_and_damaged(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """verify exits 0 for an intact image and 1, naming the file, for a corrupted one."""
    d = _image(tmp_path, "demo")
    assert main(["image", "verify", "demo", "--image-dir", str(tmp_path)]) == 0
    assert "demo: ok" in capsys.readouterr().out
    (d / "initrd.img").write_text("INITRD.IMG\n")  # same size, other bytes
    assert main(["image", "verify", "demo", "--image-dir", str(tmp_path)]) == 1
    assert "initrd.img does not match" in capsys.readouterr().err


def test_verify_missing_image_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """verify of an image that was never built exits 1 and says how to build it."""
    assert main(["image", "verify", "nosuch", "--image-dir", str(tmp_path)]) == 1
    assert "pyti image build nosuch" in capsys.readouterr().err


def test_hash_prints_the_recipe_hash_and_where_its_inputs_are(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """hash prints the recipe hash alone on the first line, then the three input locations."""
    from slave.image_builder.recipe import load_recipe, recipe_hash

    assert main(["image", "hash", "trixie"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == recipe_hash(load_recipe("trixie"))
    assert lines[1].endswith("recipes/trixie.toml") and Path(lines[1].split()[-1]).is_file()
    assert [ln.split()[0] for ln in lines[1:]] == ["recipe", "guest", "runner"]
