"""``build_image``: recipe -> image directory, idempotently.

The image is built in ``IMAGE_DIR/.<name>.new/`` and swapped into place only
when complete (manifest written last), so a failed or interrupted build never
replaces a good image and never leaves a usable-looking half one. The
debootstrap tree is cached as a tarball keyed by suite, packages and mirror,
because it is the slowest step and changes least often.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from slave.image_builder import rootfs
from slave.image_builder.errors import ImageError
from slave.image_builder.manifest import MANIFEST_FORMAT, Image, file_entries, write_manifest
from slave.image_builder.mirror import MirrorChoice, resolve_mirror
from slave.image_builder.progress import Progress, run_tool
from slave.image_builder.recipe import Recipe, recipe_hash

BUILD_STEPS = 9


@contextlib.asynccontextmanager
async def image_lock(image_dir: Path, name: str) -> AsyncIterator[None]:
    """Exclusive lock on one image (a build and a snapshot never run twice at once)."""
    await asyncio.to_thread(image_dir.mkdir, parents=True, exist_ok=True)
    with open(image_dir / f".{name}.lock", "w") as f:  # noqa: ASYNC230 (tiny, local)
        # flock blocks; another build may take minutes, so wait in a thread.
        await asyncio.to_thread(fcntl.flock, f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def is_current(image_dir: Path, recipe: Recipe) -> Image | None:
    """The built image when it loads and was made from this very recipe."""
    try:
        image = Image.load(image_dir, recipe.name)
    except ImageError:
        return None
    return image if image.recipe_hash == recipe_hash(recipe) else None


def _bootstrap_key(recipe: Recipe, mirror: str) -> str:
    doc = {"suite": recipe.suite, "packages": sorted(recipe.packages), "mirror": mirror}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


async def _bootstrap(
    recipe: Recipe, root: Path, cache_dir: Path, mirror: MirrorChoice, progress: Progress
) -> None:
    tarball = cache_dir / f"debootstrap-{recipe.suite}-{_bootstrap_key(recipe, mirror.url)}.tar"
    if tarball.is_file():
        progress.step(f"debootstrap {recipe.suite} (cached: {tarball.name})")
        await asyncio.to_thread(root.mkdir, parents=True)
        await run_tool(recipe.name, "debootstrap", ["tar", "-xpf", tarball, "-C", root])
        return
    where = f"{mirror.url} ({mirror.source})"
    progress.step(f"debootstrap --variant=minbase {recipe.suite} from {where}")
    await rootfs.debootstrap(recipe, root, mirror.url, progress)
    await asyncio.to_thread(cache_dir.mkdir, parents=True, exist_ok=True)
    tmp = tarball.with_suffix(".tmp")
    tar: list[str | Path] = ["tar", "--numeric-owner", "-cf", tmp, "-C", root, "."]
    await run_tool(recipe.name, "debootstrap", tar)
    tmp.replace(tarball)


async def build_image(
    recipe: Recipe,
    image_dir: Path,
    *,
    force: bool = False,
    progress: Progress | None = None,
    mirror: MirrorChoice | None = None,
) -> Image:
    """Build ``image_dir/<recipe.name>`` unless it is current; return the loaded image.

    ``mirror`` is where Debian's packages come from (default: ``resolve_mirror``
    without a flag: environment, recipe, host apt, deb.debian.org).

    Needs root (debootstrap, chroot). Raises :class:`BuildError` naming the step
    that failed; the previous image, if any, is left untouched. Cancellation
    kills the running tool; the scratch directories are removed either way.
    """
    progress = progress or Progress(BUILD_STEPS)
    async with image_lock(image_dir, recipe.name):
        if not force and (current := is_current(image_dir, recipe)) is not None:
            return current
        scratch = image_dir / f".{recipe.name}.build"
        out = image_dir / f".{recipe.name}.new"
        for d in (scratch, out):
            shutil.rmtree(d, ignore_errors=True)
        scratch.mkdir()
        out.mkdir()
        mirror = mirror or resolve_mirror(recipe.name, None, recipe.mirror)
        try:
            await _build_into(recipe, image_dir, scratch, out, mirror, progress)
            final = image_dir / recipe.name
            old = image_dir / f".{recipe.name}.old"
            shutil.rmtree(old, ignore_errors=True)
            if final.exists():
                final.rename(old)
            out.rename(final)
            shutil.rmtree(old, ignore_errors=True)
        finally:
            await asyncio.to_thread(shutil.rmtree, scratch, True)
            await asyncio.to_thread(shutil.rmtree, out, True)
        return Image.load(image_dir, recipe.name)


async def _build_into(
    recipe: Recipe,
    image_dir: Path,
    scratch: Path,
    out: Path,
    mirror: MirrorChoice,
    progress: Progress,
) -> None:
    root = scratch / "root"
    started = time.time()
    # Hashed before anything is copied: a recipe or guest file edited during the
    # build must make the result stale, not be recorded as built.
    hashed = recipe_hash(recipe)
    await _bootstrap(recipe, root, image_dir / ".cache", mirror, progress)

    progress.step("guest files, runner and wheels (pip download, binary only)")
    rootfs.install_guest_files(root)
    await rootfs.download_wheels(recipe, recipe.wheels, root / "opt/pyti/wheels", "wheels")
    venv_wheels = root / "tmp" / "pyti-venv-wheels"
    await rootfs.download_wheels(recipe, recipe.venv_tools, venv_wheels, "wheels")
    env_wheels = root / "tmp" / "pyti-build-env-wheels"
    for entry in recipe.build_envs:
        names = tuple(rootfs.build_env_names(entry))
        await rootfs.download_wheels(recipe, names, env_wheels, "wheels")

    progress.step("configure the guest (chroot guest_image/files/setup.sh)")
    await rootfs.chroot_setup(recipe, root, progress)

    tools = ", ".join(recipe.venv_tools) or "-"
    progress.step(f"tools venv /opt/pyti/tools: {tools}; {len(recipe.build_envs)} build envs")
    await rootfs.install_venv_tools(recipe, root, venv_wheels)
    await rootfs.install_build_envs(recipe, root, env_wheels)

    progress.step(f"job venv {rootfs.JOB_VENV}: {', '.join(recipe.wheels) or '-'}")
    await rootfs.install_job_venv(recipe, root)

    progress.step("SSH keys and bait credentials")
    await rootfs.make_keys(recipe, root, out)
    bait = await rootfs.plant_bait(recipe, root, scratch)

    progress.step("guest versions, kernel and initrd")
    python, kernel = await rootfs.guest_versions(recipe, root)
    rootfs.extract_boot_files(recipe, root, kernel, out)

    progress.step(f"disk: mke2fs -d, qemu-img convert (cap {recipe.vm.disk_gib} GiB)")
    await rootfs.make_disk(recipe, root, scratch, out)

    progress.step("manifest (sha256 of every file)")
    files = await asyncio.to_thread(file_entries, out)
    manifest: dict[str, Any] = {
        "format": MANIFEST_FORMAT,
        "name": recipe.name,
        "recipe_hash": hashed,
        "recipe": recipe.to_json(),
        "mirror": mirror.url,
        "built_at": started,
        "build_seconds": round(time.time() - started, 1),
        "python_version": python,
        "kernel_version": kernel,
        "vm": {
            "memory_mb": recipe.vm.memory_mb,
            "cpus": recipe.vm.cpus,
            "disk_gib": recipe.vm.disk_gib,
            "tester_max_procs": recipe.vm.tester_max_procs,
        },
        "sizes": {k: v["size"] for k, v in files.items()},
        "files": files,
        "bait": bait.to_json(),
        "snapshots": {},
    }
    write_manifest(out, manifest)
