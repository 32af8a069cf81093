"""Errors of guest image handling.

::

    SlaveError
     └── ImageError            an image cannot be built or used (carries ``name``)
          ├── RecipeError      the recipe file is missing or malformed
          ├── ImageMissing     no built image of that name in the image directory
          ├── ImageDamaged     files missing, wrong size or wrong sha256; never half-used
          └── BuildError       a build step failed (carries ``step`` and the tool's output tail)
"""

from __future__ import annotations

from slave.errors import SlaveError


class ImageError(SlaveError):
    """An image cannot be built or used."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"image {name!r}: {message}")
        self.name = name


class RecipeError(ImageError):
    """The recipe file is missing or malformed."""


class ImageMissing(ImageError):
    """No built image of that name exists in the image directory."""


class ImageDamaged(ImageError):
    """The image's files do not match its manifest; it must be rebuilt."""


class BuildError(ImageError):
    """A build step failed."""

    def __init__(self, name: str, step: str, message: str, output: str = "") -> None:
        detail = f"{message}\n{output}" if output else message
        super().__init__(name, f"build step {step!r} failed: {detail}")
        self.step = step
        self.output = output
