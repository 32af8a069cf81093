"""The manifest of a built image, and :class:`Image`, a verified handle on one.

``manifest.json`` is written last, atomically, so a directory without one is an
unfinished build. :meth:`Image.load` refuses an image whose files are missing or
have the wrong size (cheap); :meth:`Image.verify` also checks every sha256 (in
a thread: the disk is hundreds of MiB).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slave.image_builder.errors import ImageDamaged, ImageError, ImageMissing

MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1
#: Files every image has (snapshots are listed in the manifest when made).
BASE_FILES = (
    "disk.qcow2",
    "vmlinuz",
    "initrd.img",
    "id_ed25519",
    "id_ed25519.pub",
    "ssh_host_ed25519_key.pub",
)
_HASH_CHUNK = 1 << 20


def default_image_dir() -> Path:
    """``$PYTI_IMAGE_DIR``, else ``~/.cache/pyti/images``."""
    env = os.environ.get("PYTI_IMAGE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "pyti" / "images"


def sha256_file(path: Path) -> str:
    """sha256 of a file, read in chunks (blocking: call it in a thread)."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def file_entry(path: Path) -> dict[str, Any]:
    """The manifest's record of one file (blocking)."""
    return {"size": path.stat().st_size, "sha256": sha256_file(path)}


def file_entries(directory: Path) -> dict[str, dict[str, Any]]:
    """Records of every file directly in ``directory`` but the manifest (blocking)."""
    paths = sorted(p for p in directory.iterdir() if p.is_file() and p.name != MANIFEST)
    return {p.name: file_entry(p) for p in paths}


def write_manifest(image_dir: Path, manifest: dict[str, Any]) -> None:
    """Replace ``manifest.json`` atomically (write, fsync, rename)."""
    tmp = image_dir / (MANIFEST + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=2, sort_keys=True)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(image_dir / MANIFEST)


def read_manifest(image_dir: Path, name: str) -> dict[str, Any]:
    """Parse ``manifest.json``; :class:`ImageMissing` / :class:`ImageDamaged` otherwise."""
    path = image_dir / MANIFEST
    if not image_dir.is_dir():
        raise ImageMissing(name, f"not built (no {image_dir}); run `pyti image build {name}`")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ImageDamaged(name, f"{path} is missing: the build did not finish") from None
    except (OSError, ValueError) as exc:
        raise ImageDamaged(name, f"{path} is unreadable: {exc}") from exc
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
        raise ImageDamaged(name, f"{path} has an unknown format; rebuild the image")
    if data.get("name") != name:
        raise ImageDamaged(name, f"{path} is for image {data.get('name')!r}")
    return data


def snapshot_key(accel: str, cpu: str) -> str:
    """``tcg-max``: snapshots are only valid for the accelerator and CPU model they ran on."""
    return f"{accel}-{cpu}"


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A saved running guest: RAM state plus the disk state that goes with it."""

    key: str
    state: Path
    disk: Path
    memory_mb: int
    cpus: int
    qemu_version: str
    machine: str
    #: Kernel command line the guest was booted with (a different one means stale).
    cmdline: str


@dataclass(frozen=True, slots=True)
class Image:
    """A built, checked image. Get one with :meth:`load`."""

    name: str
    dir: Path
    manifest: dict[str, Any]

    @classmethod
    def load(cls, image_dir: Path, name: str) -> Image:
        """Load ``image_dir/name`` if every file is present with its recorded size.

        Raises :class:`ImageMissing` or :class:`ImageDamaged`; never returns a
        half-built image.
        """
        d = image_dir / name
        manifest = read_manifest(d, name)
        files = manifest.get("files")
        if not isinstance(files, dict) or not set(BASE_FILES) <= set(files):
            raise ImageDamaged(name, "manifest lists no complete file set; rebuild the image")
        for rel, entry in files.items():
            path = d / rel
            try:
                size = path.stat().st_size
            except OSError:
                raise ImageDamaged(name, f"{path} is missing; rebuild the image") from None
            if size != entry.get("size"):
                raise ImageDamaged(
                    name, f"{path} has {size} bytes, manifest says {entry.get('size')}"
                )
        return cls(name, d, manifest)

    async def verify(self) -> None:
        """Check every file's sha256 against the manifest (off the event loop).

        Raises :class:`ImageDamaged` naming the first bad file.
        """
        for rel, entry in sorted(self.manifest["files"].items()):
            path = self.dir / rel
            try:
                actual = await asyncio.to_thread(sha256_file, path)
            except OSError as exc:
                raise ImageDamaged(self.name, f"{path}: {exc}") from exc
            if actual != entry.get("sha256"):
                raise ImageDamaged(self.name, f"{path} does not match its sha256; rebuild")

    @property
    def digest(self) -> str:
        """Short stable id of what a job runs on: recipe hash and base files' sha256."""
        files = self.manifest["files"]
        parts = [self.manifest["recipe_hash"], *(files[f]["sha256"] for f in BASE_FILES)]
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]

    @property
    def recipe_hash(self) -> str:
        """The recipe hash the image was built from."""
        return str(self.manifest["recipe_hash"])

    @property
    def python_version(self) -> str:
        """The guest Python as ``major.minor`` (e.g. ``3.11``): what wheels are fetched for."""
        return ".".join(str(self.manifest["python_version"]).split(".")[:2])

    @property
    def python_full_version(self) -> str:
        """The guest Python's full version (e.g. ``3.11.2``)."""
        return str(self.manifest["python_version"])

    @property
    def kernel_version(self) -> str:
        """The guest kernel's release string."""
        return str(self.manifest["kernel_version"])

    @property
    def memory_mb(self) -> int:
        """Guest RAM the recipe asks for (and snapshots are taken with)."""
        return int(self.manifest["vm"]["memory_mb"])

    @property
    def cpus(self) -> int:
        """Guest CPUs the recipe asks for."""
        return int(self.manifest["vm"]["cpus"])

    @property
    def bait(self) -> dict[str, str]:
        """Planted credentials (see docs/contracts.md)."""
        return dict(self.manifest["bait"])

    @property
    def disk(self) -> Path:
        """Base qcow2 of every job overlay."""
        return self.dir / "disk.qcow2"

    @property
    def kernel(self) -> Path:
        """Kernel for direct boot."""
        return self.dir / "vmlinuz"

    @property
    def initrd(self) -> Path:
        """Initrd for direct boot."""
        return self.dir / "initrd.img"

    @property
    def client_key(self) -> Path:
        """Private key root in the guest accepts."""
        return self.dir / "id_ed25519"

    @property
    def host_key(self) -> str:
        """The guest's public host key (``ssh-ed25519 AAAA... comment``) to pin."""
        return (self.dir / "ssh_host_ed25519_key.pub").read_text().strip()

    def snapshot(self, accel: str, cpu: str) -> Snapshot | None:
        """The snapshot taken under ``accel``/``cpu``, when there is one."""
        key = snapshot_key(accel, cpu)
        entry = self.manifest.get("snapshots", {}).get(key)
        if entry is None:
            return None
        return Snapshot(
            key=key,
            state=self.dir / entry["state"],
            disk=self.dir / entry["disk"],
            memory_mb=int(entry["memory_mb"]),
            cpus=int(entry["cpus"]),
            qemu_version=str(entry["qemu_version"]),
            machine=str(entry["machine"]),
            cmdline=str(entry.get("cmdline", "")),
        )


def check_loadable(image_dir: Path, name: str) -> Image | None:
    """:meth:`Image.load`, or ``None`` when the image is missing or damaged."""
    try:
        return Image.load(image_dir, name)
    except ImageError:
        return None
