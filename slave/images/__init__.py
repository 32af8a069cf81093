"""Guest images: recipes (``images/<name>.toml``), building, snapshots, manifests.

Typical use on the slave::

    image = Image.load(image_dir, "bookworm")   # refuses damaged/incomplete images
    image.python_version, image.digest, image.snapshot("tcg", "max")
"""

from slave.images.errors import BuildError, ImageDamaged, ImageError, ImageMissing, RecipeError
from slave.images.manifest import Image, Snapshot, default_image_dir

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
