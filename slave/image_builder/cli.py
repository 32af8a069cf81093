"""``pyti image build|list|verify|hash``.

``build`` is idempotent: it rebuilds the disk only when the recipe hash
changed (or with ``--force``) and makes a snapshot for the accelerator when
that one is missing. For a build, ``--accel auto`` means KVM when a probe VM
runs under it and TCG otherwise: taking a snapshot runs no untrusted code, so
no security decision is made here (the slave makes it, see slave/vm/accel.py).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import sys
from pathlib import Path

from slave.image_builder.build import BUILD_STEPS, build_image, is_current
from slave.image_builder.errors import ImageError
from slave.image_builder.manifest import Image, default_image_dir, read_manifest, snapshot_key
from slave.image_builder.mirror import DEFAULT_MIRROR, ENV_VAR, resolve_mirror
from slave.image_builder.progress import Progress
from slave.image_builder.recipe import list_recipes, load_recipe, recipe_hash
from slave.image_builder.resources import GUEST_FILES_DIR, RECIPES_DIR, RUNNER_DIR
from slave.image_builder.snapshot import make_snapshot, snapshot_fits
from slave.vm.accel import Accel, probe_kvm

DEFAULT_IMAGE = "trixie"


def configure(parser: argparse.ArgumentParser) -> None:
    """Add ``build``, ``list`` and ``verify`` sub-subcommands."""
    sub = parser.add_subparsers(dest="image_command", metavar="ACTION", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--image-dir",
            type=Path,
            default=None,
            help="where images are kept (default $PYTI_IMAGE_DIR or ~/.cache/pyti/images)",
        )

    build = sub.add_parser("build", help="build an image (and its snapshot) unless current")
    build.add_argument("name", nargs="?", default=DEFAULT_IMAGE, help="recipe name")
    common(build)
    build.add_argument(
        "--accel",
        choices=[a.value for a in Accel],
        default="auto",
        help="accelerator to take the snapshot under (auto: kvm if it works, else tcg)",
    )
    build.add_argument(
        "--mirror",
        metavar="URL",
        help=f"Debian mirror to build from (default ${ENV_VAR}, the recipe's 'mirror', "
        f"the Debian archive this host's apt uses, else {DEFAULT_MIRROR}); "
        "not part of the recipe hash",
    )
    build.add_argument("--force", action="store_true", help="rebuild even if current")
    build.add_argument("--no-snapshot", action="store_true", help="build the disk only")
    build.add_argument("--quiet", action="store_true", help="no progress output")

    lst = sub.add_parser("list", help="list recipes and built images")
    common(lst)

    verify = sub.add_parser("verify", help="check every file of an image against its manifest")
    verify.add_argument("name", help="image name")
    common(verify)

    digest = sub.add_parser(
        "hash",
        help="print a recipe's hash and where its recipe, guest files and runner are read from",
    )
    digest.add_argument("name", nargs="?", default=DEFAULT_IMAGE, help="recipe name")


def run(args: argparse.Namespace) -> int:
    """Run the chosen action; 0 on success, 1 on an image error."""
    image_dir: Path = getattr(args, "image_dir", None) or default_image_dir()
    try:
        match args.image_command:
            case "build":
                return asyncio.run(_build(args, image_dir))
            case "list":
                return _list(image_dir)
            case "verify":
                return asyncio.run(_verify(args.name, image_dir))
            case "hash":
                return _hash(args.name)
    except ImageError as exc:
        print(f"pyti image: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    raise AssertionError(args.image_command)


async def _build(args: argparse.Namespace, image_dir: Path) -> int:
    recipe = load_recipe(args.name)
    mirror = resolve_mirror(recipe.name, args.mirror, recipe.mirror)
    if os.geteuid() != 0 and is_current(image_dir, recipe) is None:
        print(
            "pyti image build: building needs root (debootstrap, chroot); run it as root",
            file=sys.stderr,
        )
        return 1
    accel = Accel(args.accel)
    if accel is Accel.AUTO and not args.no_snapshot:
        accel = Accel.KVM if await probe_kvm() else Accel.TCG
    current = is_current(image_dir, recipe)
    need_disk = args.force or current is None
    key = snapshot_key(accel.value, accel.cpu_model) if accel is not Accel.AUTO else ""
    need_snap = not args.no_snapshot and (
        need_disk or current is None or not snapshot_fits(current, accel)
    )
    progress = Progress(BUILD_STEPS * need_disk + need_snap, quiet=args.quiet)
    image = (
        await build_image(recipe, image_dir, force=args.force, progress=progress, mirror=mirror)
        if need_disk
        else current
    )
    assert image is not None
    if need_snap:
        image = await make_snapshot(image, accel, progress=progress)
    what = []
    what.append("built" if need_disk else "disk up to date")
    if not args.no_snapshot:
        what.append(f"snapshot {key} {'made' if need_snap else 'up to date'}")
    progress.done(f"{image.name} ({image.dir}): {', '.join(what)}; digest {image.digest}")
    if args.quiet:
        print(image.dir)
    return 0


def _list(image_dir: Path) -> int:
    names = sorted(set(list_recipes()) | _built_names(image_dir))
    print(f"{'NAME':<12} {'STATE':<9} {'PYTHON':<8} {'SIZE':>8}  {'BUILT':<16} SNAPSHOTS")
    for name in names:
        state, python, size, built, snaps = "absent", "-", "-", "-", "-"
        try:
            image = Image.load(image_dir, name)
            state = "ok"
            try:
                if image.recipe_hash != recipe_hash(load_recipe(name)):
                    state = "stale"
            except ImageError:
                state = "no-recipe"
            python = image.python_full_version
            size = f"{sum(image.manifest['sizes'].values()) // (1 << 20)}M"
            stamp = datetime.datetime.fromtimestamp(image.manifest["built_at"], datetime.UTC)
            built = stamp.strftime("%Y-%m-%d %H:%M")
            snaps = ",".join(sorted(image.manifest.get("snapshots", {}))) or "-"
        except ImageError:
            if (image_dir / name).exists():
                state = "damaged"
        print(f"{name:<12} {state:<9} {python:<8} {size:>8}  {built:<16} {snaps}")
    return 0


def _hash(name: str) -> int:
    recipe = load_recipe(name)
    # The hash first, alone on its line: scripts compare it (wheel vs source tree).
    print(recipe_hash(recipe))
    print(f"recipe       {RECIPES_DIR / (name + '.toml')}")
    print(f"guest files  {GUEST_FILES_DIR}")
    print(f"runner       {RUNNER_DIR}")
    return 0


def _built_names(image_dir: Path) -> set[str]:
    if not image_dir.is_dir():
        return set()
    return {p.name for p in image_dir.iterdir() if p.is_dir() and not p.name.startswith(".")}


async def _verify(name: str, image_dir: Path) -> int:
    read_manifest(image_dir / name, name)
    image = Image.load(image_dir, name)
    await image.verify()
    print(f"{name}: ok ({len(image.manifest['files'])} files, digest {image.digest})")
    return 0
