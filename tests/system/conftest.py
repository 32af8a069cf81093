"""System-test fixtures: real guest images (bookworm; trixie: Python 3.13), built once, cached.

The images live in ``$PYTI_IMAGE_DIR`` (default ``~/.cache/pyti/images``) and are
reused across runs: building is idempotent (only a changed recipe, guest file
or runner rebuilds it), so only the first run pays for debootstrap.
Snapshots are taken under TCG: these machines have no working KVM.
``$PYTI_TEST_IMAGE`` names the image (default ``bookworm``). The one `image`
fixture serves every system test.
"""

from __future__ import annotations

import asyncio
import os

import pytest

from slave.image_builder.build import build_image
from slave.image_builder.errors import ImageError
from slave.image_builder.manifest import Image, default_image_dir
from slave.image_builder.progress import Progress
from slave.image_builder.recipe import load_recipe
from slave.image_builder.snapshot import make_snapshot, snapshot_fits
from slave.vm.accel import Accel

SYSTEM_IMAGE = os.environ.get("PYTI_TEST_IMAGE", "bookworm")
SYSTEM_ACCEL = Accel.TCG


async def _ensure_image(name: str = SYSTEM_IMAGE) -> Image:
    recipe = load_recipe(name)
    image = await build_image(recipe, default_image_dir(), progress=Progress(8, quiet=True))
    if not snapshot_fits(image, SYSTEM_ACCEL):
        image = await make_snapshot(image, SYSTEM_ACCEL, progress=Progress(1, quiet=True))
    return image


@pytest.fixture(scope="session")
def image() -> Image:
    """The system-test image: built or brought up to date with a TCG snapshot as root
    (debootstrap, chroot), else the one already built; the test is skipped without one."""
    if os.geteuid() == 0:
        return asyncio.run(_ensure_image())
    try:
        return Image.load(default_image_dir(), SYSTEM_IMAGE)
    except ImageError as exc:
        pytest.skip(f"no guest image, and building one needs root: {exc}")


@pytest.fixture(scope="session")
def trixie_image() -> Image:
    """The built ``trixie`` image (Python 3.13), with a TCG snapshot."""
    if os.geteuid() != 0:
        pytest.skip("building the guest image needs root (debootstrap, chroot)")
    return asyncio.run(_ensure_image("trixie"))
