"""System-test fixtures: a real guest image, built once and cached.

The image lives in ``$PYTI_IMAGE_DIR`` (default ``~/.cache/pyti/images``) and is
reused across runs: building is idempotent (only a changed recipe, guest file
or runner rebuilds it), so only the first run pays for debootstrap.
Snapshots are taken under TCG: these machines have no working KVM.
"""

from __future__ import annotations

import asyncio
import os

import pytest

from slave.images.build import build_image
from slave.images.manifest import Image, default_image_dir
from slave.images.progress import Progress
from slave.images.recipe import load_recipe
from slave.images.snapshot import make_snapshot, snapshot_fits
from slave.vm.accel import Accel

SYSTEM_IMAGE = os.environ.get("PYTI_TEST_IMAGE", "bookworm")
SYSTEM_ACCEL = Accel.TCG


async def _ensure_image() -> Image:
    recipe = load_recipe(SYSTEM_IMAGE)
    image = await build_image(recipe, default_image_dir(), progress=Progress(8, quiet=True))
    if not snapshot_fits(image, SYSTEM_ACCEL):
        image = await make_snapshot(image, SYSTEM_ACCEL, progress=Progress(1, quiet=True))
    return image


@pytest.fixture(scope="session")
def image() -> Image:
    """The built and loaded system-test image, with a TCG snapshot."""
    if os.geteuid() != 0:
        pytest.skip("building the guest image needs root (debootstrap, chroot)")
    return asyncio.run(_ensure_image())
