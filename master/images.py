"""Which guest image a release is tested in: the one whose Python its ``Requires-Python`` allows.

The master knows an image's Python from two sources, merged into one
``ImageCatalogue``: the ``[images]`` table of its config (``name = "3.13"``), and
what slaves advertise at handshake (``ImageInfo``: name, python), including
slaves seen before a restart (``store.slaves``). A slave's word wins over the
config for the same name (it runs the image).

``choose_image`` then decides, in this order:

1. A request that names an image gets that image (``UnknownImage`` if the master
   knows images but not that one); if its Python does not satisfy the release,
   the job cannot be tested there.
2. Else the default image, if its Python is known and satisfies the release (a
   release that says nothing is satisfied by any), or if the master knows no
   image at all (then nothing can be judged; the job waits for a slave with it).
3. Else the known image with the oldest Python that satisfies the release (ties:
   by name): the one closest to the default.
4. Else no image can run it: the default image with the reason, and the job ends
   ``incomplete`` without being dispatched ("requires Python >=3.14; images
   here: bookworm 3.11.2, trixie 3.13.5").

Before 2 and 3 (no image requested): when the release claims Python minors (its
classifiers' ``Programming Language :: Python :: 3.11``; if they name none, the newest
CPython out when its first file was uploaded, ``python_at``: ply 3.11, of February
2018, claims 3.6) and the default image's is not among them, the image that satisfies
the release and comes closest to them is taken: the newest whose minor they name, else
the one nearest their newest minor (ties: the newer). A release is tested on a Python
its maintainers say (or could have said) it supports, or the nearest one here:
humanfriendly 10.0 claims 3.5-3.9; on 3.13 its tests cannot import ``pipes`` (removed
in 3.13), on 3.11 they can.

A ``Requires-Python`` that is not a valid specifier set says nothing (pip warns
and ignores it too).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from protocol.messages import ImageInfo

log = structlog.get_logger("pyti.master.images")

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
#: Longest ``Requires-Python`` considered (PyPI's are a few dozen characters).
MAX_SPEC_LEN = 400


class UnknownImage(ValueError):
    """A request named an image the master does not know."""

    def __init__(self, name: str, known: Iterable[str]) -> None:
        self.name = name
        self.known = sorted(known)
        super().__init__(f"no image {name!r} here; known images: {', '.join(self.known) or 'none'}")


class ImagesConfigError(ValueError):
    """The ``[images]`` table of the master's config is wrong."""


@dataclass(frozen=True, slots=True)
class ImageChoice:
    """The image a job goes to, and why it cannot be tested there (None: it can)."""

    image: str
    untestable: str | None = None


def parse_images_table(table: Mapping[str, Any]) -> dict[str, str]:
    """``[images]``: image name → its Python version (``"3.13"`` or ``"3.13.5"``)."""
    images: dict[str, str] = {}
    for name, value in table.items():
        if not _NAME_RE.match(name):
            raise ImagesConfigError(f"[images]: {name!r} is not an image name")
        if not isinstance(value, str) or _version(value) is None:
            raise ImagesConfigError(f"[images] {name}: expected a Python version like '3.13'")
        images[name] = value
    return images


def requires_python(values: Iterable[object]) -> str | None:
    """The release's ``Requires-Python``: every distinct non-empty value, all of them apply.

    The JSON API gives one in ``info`` and one per file; a file installed in the
    guest must accept the guest's Python, so an image must satisfy them all.
    """
    seen: list[str] = []
    for value in values:
        if isinstance(value, str) and value.strip() and value.strip() not in seen:
            seen.append(value.strip())
    return ", ".join(seen)[:MAX_SPEC_LEN] or None


def _version(text: str) -> Version | None:
    try:
        return Version(text)
    except InvalidVersion:
        return None


def _specifier(text: str | None) -> SpecifierSet | None:
    if not text:
        return None
    try:
        return SpecifierSet(text)
    except InvalidSpecifier:
        log.info("requires_python_ignored", requires_python=text[:100], reason="not a specifier")
        return None


def fits(python: str, spec: str | None) -> bool:
    """True if a guest with this Python may install a release with this ``Requires-Python``."""
    wanted = _specifier(spec)
    version = _version(python)
    if wanted is None or version is None:
        return True
    return wanted.contains(version, prereleases=True)


#: When each CPython minor was released (python.org): a release whose classifiers name no
#: minor is judged to claim the newest one out when its first file was uploaded.
PYTHON_RELEASED = {
    "3.6": "2016-12-23",
    "3.7": "2018-06-27",
    "3.8": "2019-10-14",
    "3.9": "2020-10-05",
    "3.10": "2021-10-04",
    "3.11": "2022-10-24",
    "3.12": "2023-10-02",
    "3.13": "2024-10-07",
    "3.14": "2025-10-07",
}


def python_at(day: str | None) -> str | None:
    """The newest CPython minor released by ``day`` (``YYYY-MM-DD``); None when unknown
    or past the last release this table knows (then nothing is claimed)."""
    if not day or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", day):
        return None
    out = [minor for minor, released in PYTHON_RELEASED.items() if released <= day]
    newest = max(PYTHON_RELEASED.values())
    if not out or day >= _next_year(newest):
        return None
    return max(out, key=lambda m: int(m.split(".")[1]))


def _next_year(day: str) -> str:
    return f"{int(day[:4]) + 1}{day[4:]}"


def _minor(python: str) -> str | None:
    version = _version(python)
    return f"{version.major}.{version.minor}" if version is not None else None


def _closest(images: Mapping[str, str], fitting: list[str], claimed: tuple[str, ...]) -> str | None:
    """Of ``fitting``, the newest image whose minor ``claimed`` names, else the one nearest
    the newest claimed minor (ties: the newer); None without claimed 3.X minors."""
    minors = [v.minor for v in map(_version, claimed) if v is not None and v.major == 3]
    if not minors or not fitting:
        return None

    def newest(names: list[str]) -> str:
        return max(names, key=lambda n: (_version(images[n]), n))

    named = [n for n in fitting if _minor(images[n]) in claimed]
    if named:
        return newest(named)
    top = max(minors)
    distance = {n: abs(_version(images[n]).minor - top) for n in fitting}  # type: ignore[union-attr]
    nearest = min(distance.values())
    return newest([n for n in fitting if distance[n] == nearest])


def _shown(images: Mapping[str, str]) -> str:
    return ", ".join(f"{n} {images[n]}" for n in sorted(images)) or "none"


def choose_image(
    images: Mapping[str, str],
    default: str,
    spec: str | None,
    requested: str | None = None,
    claimed: tuple[str, ...] = (),
) -> ImageChoice:
    """The image for a release with ``Requires-Python`` ``spec`` (see the module doc).

    ``images``: image name → Python version, as the master knows them; ``claimed``:
    the ``3.X`` minors the release's classifiers name. Raises ``UnknownImage`` when
    ``requested`` is not among them (unless none is known).
    """
    if requested is not None:
        if images and requested not in images:
            raise UnknownImage(requested, images)
        python = images.get(requested)
        if python is None or fits(python, spec):
            return ImageChoice(requested)
        return ImageChoice(
            requested,
            f"requires Python {spec}; image {requested} has Python {python}",
        )
    python = images.get(default)
    fitting = [n for n, v in images.items() if fits(v, spec) and _version(v) is not None]
    closest = _closest(images, fitting, claimed)
    if closest is not None and _minor(images.get(default, "")) not in claimed:
        return ImageChoice(closest)
    if not images or (python is not None and fits(python, spec)):
        return ImageChoice(default)
    if fitting:
        return ImageChoice(min(fitting, key=lambda n: (_version(images[n]), n)))
    return ImageChoice(default, f"requires Python {spec}; images here: {_shown(images)}")


class ImageCatalogue:
    """The images the master knows of, with their Python (config, then slaves)."""

    def __init__(self, configured: Mapping[str, str], default: str) -> None:
        self.default = default
        self._images: dict[str, str] = dict(configured)

    def learn(self, name: str, python: str) -> None:
        """A slave advertised ``name`` with this Python; it wins over what was known."""
        if not _NAME_RE.match(name) or _version(python) is None:
            log.warning("image_ignored", image=name[:64], python=python[:32])
            return
        known = self._images.get(name)
        if known is not None and known != python and not python.startswith(known + "."):
            log.warning("image_python_changed", image=name, was=known, now=python)
        self._images[name] = python

    def learn_all(self, images: Iterable[ImageInfo]) -> None:
        """Learn every image a slave advertised at handshake."""
        for image in images:
            self.learn(image.name, image.python)

    def learn_capabilities(self, capabilities: Mapping[str, Any]) -> None:
        """Learn the images of a stored ``capabilities`` document (``store.slaves``)."""
        for image in capabilities.get("images") or ():
            if isinstance(image, dict):
                name, python = image.get("name"), image.get("python")
                if isinstance(name, str) and isinstance(python, str):
                    self.learn(name, python)

    def known(self) -> dict[str, str]:
        """Image name → Python version."""
        return dict(self._images)

    def choose(
        self, spec: str | None, requested: str | None = None, claimed: tuple[str, ...] = ()
    ) -> ImageChoice:
        """``choose_image`` over what is known now; ``UnknownImage``."""
        return choose_image(self._images, self.default, spec, requested, claimed)
