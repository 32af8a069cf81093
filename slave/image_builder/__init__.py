"""Guest images: recipes (``guest_image/recipes/<name>.toml``), building, snapshots, manifests.

Typical use on the slave::

    image = Image.load(image_dir, "bookworm")   # refuses damaged/incomplete images
    image.python_version, image.digest, image.snapshot("tcg", "max")
"""

from slave.image_builder.errors import (
    BuildError,
    ImageDamaged,
    ImageError,
    ImageMissing,
    RecipeError,
)
from slave.image_builder.manifest import Image, Snapshot, default_image_dir

__all__ = [
    "BuildError",
    "Image",
    "ImageDamaged",
    "ImageError",
    "ImageMissing",
    "RecipeError",
    "Snapshot",
    "default_image_dir",
]
