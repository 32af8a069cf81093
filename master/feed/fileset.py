"""A release's file set as the feed remembers it: sha256 digests, and which files matter.

A release is queued with the files the JSON API lists at that moment; files uploaded
later (wheels after the sdist, or the sdist after the wheels) are found by
``master.feed.late``. Only some of them are worth another run in a Linux guest: the
sdist (the tests come from it; pip builds from it when no wheel fits) and wheels a
Linux guest may install (platform tag ``any``, or ``linux_x86_64`` / ``manylinux*_x86_64``:
every guest image is x86_64). A new macOS, Windows, musl, aarch64 or i686 wheel is
remembered but queues nothing: a guest would never install it (the slave picks by its
own tags, ``slave/prepare/fetch.py``).
"""

from __future__ import annotations

from collections.abc import Iterable

from packaging.utils import InvalidWheelFilename, parse_wheel_filename

from master.pypi import ReleaseFile

_LINUX = ("linux_", "manylinux")
#: The guests' architecture (qemu-system-x86_64 images; see guest_image/recipes).
_ARCH = "_x86_64"


def digests(files: Iterable[ReleaseFile]) -> frozenset[str]:
    """The sha256 digests of ``files`` (the identity of a file set)."""
    return frozenset(f.sha256 for f in files)


def job_digests(files: Iterable[dict[str, object]]) -> frozenset[str]:
    """The sha256 digests of a job's ``files`` entries."""
    return frozenset(str(f["sha256"]) for f in files if isinstance(f.get("sha256"), str))


def worth_a_run(file: ReleaseFile) -> bool:
    """Whether a guest could use ``file``: an sdist, or a wheel for x86_64 Linux or any platform."""
    if file.packagetype == "sdist":
        return True
    try:
        _, _, _, tags = parse_wheel_filename(file.filename)
    except InvalidWheelFilename:
        return False
    return any(
        t.platform == "any" or (t.platform.startswith(_LINUX) and t.platform.endswith(_ARCH))
        for t in tags
    )


def new_files(files: Iterable[ReleaseFile], known: frozenset[str]) -> list[ReleaseFile]:
    """The files of ``files`` not in ``known`` that are worth a run, in the given order."""
    return [f for f in files if f.sha256 not in known and worth_a_run(f)]
