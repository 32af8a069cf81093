"""Image manifests: loading refuses damaged or incomplete images."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from slave.image_builder.errors import ImageDamaged, ImageMissing
from slave.image_builder.manifest import (
    BASE_FILES,
    MANIFEST,
    MANIFEST_FORMAT,
    Image,
    file_entries,
    write_manifest,
)


def _fake_image(image_dir: Path, name: str = "demo") -> Path:
    d = image_dir / name
    d.mkdir(parents=True)
    for f in BASE_FILES:
        (d / f).write_bytes(f"contents of {f}\n".encode() * 10)
    (d / "snapshot-tcg-max.state").write_bytes(b"ram" * 100)
    (d / "snapshot-tcg-max.qcow2").write_bytes(b"disk" * 100)
    files = file_entries(d)
    write_manifest(
        d,
        {
            "format": MANIFEST_FORMAT,
            "name": name,
            "recipe_hash": "ab" * 32,
            "built_at": 0.0,
            "python_version": "3.11.2",
            "kernel_version": "6.1.0-test",
            "vm": {"memory_mb": 512, "cpus": 1, "disk_gib": 4},
            "sizes": {k: v["size"] for k, v in files.items()},
            "files": files,
            "bait": {"token": "pyti_bait_x"},
            "snapshots": {
                "tcg-max": {
                    "state": "snapshot-tcg-max.state",
                    "disk": "snapshot-tcg-max.qcow2",
                    "memory_mb": 512,
                    "cpus": 1,
                    "qemu_version": "7.2.22",
                    "machine": "pc",
                    "cmdline": "x",
                }
            },
        },
    )
    return d


def test_complete_image_loads_with_its_facts(tmp_path: Path) -> None:
    """A complete image loads; python/kernel versions, RAM and snapshot come from the manifest."""
    _fake_image(tmp_path)
    image = Image.load(tmp_path, "demo")
    assert image.python_version == "3.11"
    assert image.python_full_version == "3.11.2"
    assert image.kernel_version == "6.1.0-test"
    assert image.memory_mb == 512
    snap = image.snapshot("tcg", "max")
    assert snap is not None
    assert snap.state == tmp_path / "demo" / "snapshot-tcg-max.state"
    assert image.snapshot("kvm", "host") is None


async def test_verify_passes_on_intact_image(tmp_path: Path) -> None:
    """verify() accepts files that match their sha256."""
    _fake_image(tmp_path)
    await Image.load(tmp_path, "demo").verify()


def test_missing_image_dir_is_image_missing(tmp_path: Path) -> None:
    """No directory at all: ImageMissing telling how to build it."""
    with pytest.raises(ImageMissing, match="pyti image build demo"):
        Image.load(tmp_path, "demo")


def test_unfinished_build_without_manifest_is_refused(tmp_path: Path) -> None:
    """A directory without manifest.json (build interrupted) is refused."""
    d = _fake_image(tmp_path)
    (d / MANIFEST).unlink()
    with pytest.raises(ImageDamaged, match="did not finish"):
        Image.load(tmp_path, "demo")


def test_missing_file_is_refused(tmp_path: Path) -> None:
    """A file listed in the manifest but absent makes the image unusable."""
    d = _fake_image(tmp_path)
    (d / "initrd.img").unlink()
    with pytest.raises(ImageDamaged, match=r"initrd\.img is missing"):
        Image.load(tmp_path, "demo")


def test_truncated_file_is_refused_cheaply(tmp_path: Path) -> None:
    """A file with the wrong size is caught by load() without hashing."""
    d = _fake_image(tmp_path)
    with (d / "disk.qcow2").open("r+b") as f:
        f.truncate(5)
    with pytest.raises(ImageDamaged, match="5 bytes"):
        Image.load(tmp_path, "demo")


async def test_same_size_corruption_is_caught_by_verify(tmp_path: Path) -> None:
    """A flipped byte passes the cheap check but verify() names the file."""
    d = _fake_image(tmp_path)
    data = bytearray((d / "vmlinuz").read_bytes())
    data[3] ^= 0xFF
    (d / "vmlinuz").write_bytes(bytes(data))
    image = Image.load(tmp_path, "demo")
    with pytest.raises(ImageDamaged, match="vmlinuz does not match"):
        await image.verify()


def test_garbage_manifest_is_refused(tmp_path: Path) -> None:
    """An unparsable manifest is ImageDamaged, not a JSON traceback."""
    d = _fake_image(tmp_path)
    (d / MANIFEST).write_text("{not json")
    with pytest.raises(ImageDamaged, match="unreadable"):
        Image.load(tmp_path, "demo")


def test_manifest_of_another_image_is_refused(tmp_path: Path) -> None:
    """A manifest copied from another image does not make this one loadable."""
    _fake_image(tmp_path, "other")
    shutil.copytree(tmp_path / "other", tmp_path / "demo")
    with pytest.raises(ImageDamaged, match="for image 'other'"):
        Image.load(tmp_path, "demo")


def test_digest_is_stable_and_follows_the_disk(tmp_path: Path) -> None:
    """The digest is a short stable id that changes when the base disk changes."""
    d = _fake_image(tmp_path / "a")
    first = Image.load(tmp_path / "a", "demo").digest
    assert first == Image.load(tmp_path / "a", "demo").digest
    assert len(first) == 16
    (d / "disk.qcow2").write_bytes(b"x" * (d / "disk.qcow2").stat().st_size)
    manifest = Image.load(tmp_path / "a", "demo").manifest
    manifest["files"] = file_entries(d)
    write_manifest(d, manifest)
    assert Image.load(tmp_path / "a", "demo").digest != first
