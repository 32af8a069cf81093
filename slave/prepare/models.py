"""Value types of host-side preparation: what is asked, for which guest, and what comes out."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from packaging.tags import Tag, compatible_tags, cpython_tags

from protocol.results import PrepareSummary
from slave.prepare.build_imports import BuildImport

MetadataSource = Literal["wheel", "pkg-info", "pyproject"]


@dataclass(frozen=True, slots=True)
class ReleaseRequest:
    """A release to prepare: from the index (``project``, ``version``) or an upload.

    ``version=None`` means the newest release. Yanked files are skipped unless
    ``allow_yanked``. For an upload, ``uploaded`` is the file on the slave's disk
    and ``uploaded_sha256`` the digest the submitter gave; ``project`` is then
    informative only (the file's own metadata names the release).
    """

    project: str
    version: str | None = None
    allow_yanked: bool = False
    uploaded: Path | None = None
    uploaded_sha256: str | None = None

    def __post_init__(self) -> None:
        if (self.uploaded is None) != (self.uploaded_sha256 is None):
            raise ValueError("an uploaded file needs its sha256, and only then")


@dataclass(frozen=True, slots=True)
class PipOptions:
    """How pip is run. Production uses the defaults (the machine's pip configuration).

    ``index_url`` overrides the configured index; ``args`` are appended to every pip
    command line; ``env`` is added to the inherited environment. Tests are hermetic
    with ``inherit_pip_env=False`` (drops inherited ``PIP_*`` and ``UV_*`` variables such
    as ``PIP_FIND_LINKS``; `slave.prepare.tools`) and
    ``env={"PIP_CONFIG_FILE": os.devnull}`` (no config files).
    ``resolution_ttl`` is how long a cached resolution of the same requirements is
    reused without asking the index.
    """

    python: str | None = None
    index_url: str | None = None
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    inherit_pip_env: bool = True
    timeout: float = 600.0
    resolution_ttl: float = 24 * 3600.0


@dataclass(frozen=True, slots=True)
class HttpTimeouts:
    """Timeouts of every request to the JSON API and file hosts (seconds)."""

    connect: float = 15.0
    #: longest silence while reading a response
    read: float = 30.0
    #: whole JSON API request
    api_total: float = 60.0
    #: whole file download
    file_total: float = 900.0


#: longest list `PreparedRelease.summary` keeps (the summary travels in every result)
_SUMMARY_ITEMS = 100
_MANYLINUX = re.compile(r"^manylinux_(\d+)_(\d+)_(\w+)$")
_LEGACY_MANYLINUX = {"manylinux2014": (2, 17), "manylinux2010": (2, 12), "manylinux1": (2, 5)}


@dataclass(frozen=True, slots=True)
class GuestTarget:
    """The guest's interpreter and platform, as wheels and markers see them."""

    python_version: str  # "3.11" or "3.11.2"
    platform: str  # "manylinux_2_36_x86_64"

    @property
    def major_minor(self) -> tuple[int, int]:
        parts = self.python_version.split(".")
        return int(parts[0]), int(parts[1])

    @property
    def abi(self) -> str:
        major, minor = self.major_minor
        return f"cp{major}{minor}"

    @property
    def machine(self) -> str:
        match = _MANYLINUX.match(self.platform)
        if match:
            return match.group(3)
        return self.platform.split("_", 1)[1] if "_" in self.platform else self.platform

    def platforms(self) -> list[str]:
        """The guest's platform tags, most specific first (``manylinux_2_36`` .. ``_2_5``).

        A glibc 2.36 guest also runs wheels built for older glibc, including the
        legacy ``manylinux2014/2010/1`` aliases.
        """
        match = _MANYLINUX.match(self.platform)
        if not match:
            return [self.platform]
        major, glibc, arch = int(match.group(1)), int(match.group(2)), match.group(3)
        tags = [f"manylinux_{major}_{minor}_{arch}" for minor in range(glibc, 4, -1)]
        for alias, (amajor, aminor) in _LEGACY_MANYLINUX.items():
            if (amajor, aminor) <= (major, glibc) and arch in ("x86_64", "i686", "aarch64"):
                tags.append(f"{alias}_{arch}")
        return tags

    def tags(self) -> list[Tag]:
        """Wheel tags the guest's pip accepts, best first."""
        version = self.major_minor
        platforms = self.platforms()
        return [
            *cpython_tags(version, abis=[self.abi], platforms=platforms),
            *compatible_tags(version, interpreter=self.abi, platforms=platforms),
        ]

    def marker_environment(self) -> dict[str, str]:
        """PEP 508 marker values of the guest (not the host), for dependency filtering."""
        full = (
            self.python_version
            if self.python_version.count(".") >= 2
            else (f"{self.python_version}.0")
        )
        major, minor = self.major_minor
        return {
            "implementation_name": "cpython",
            "implementation_version": full,
            "os_name": "posix",
            "platform_machine": self.machine,
            "platform_release": "",
            "platform_system": "Linux",
            "platform_version": "",
            "platform_python_implementation": "CPython",
            "python_full_version": full,
            "python_version": f"{major}.{minor}",
            "sys_platform": "linux",
        }


@dataclass(frozen=True, slots=True)
class PreparedRelease:
    """Everything the guest needs, on the host's disk.

    ``files``: the release's own files (sdist and guest-compatible wheels),
    sha256-checked, in ``work_dir/files``. ``wheelhouse``: binary wheels of the
    dependencies and, when the guest must build the sdist, of the build
    requirements. ``requirements``: the release's dependencies that apply to the
    guest (markers evaluated for it), as written in the metadata.
    ``metadata_source`` says where they were read; ``None`` with
    ``needs_guest_metadata=True`` when no static metadata exists (then the guest
    runner builds it, traced, and the slave fetches what it names with
    `requirements_from_guest` and `download_wheels`).
    ``test_requirements``: what the tests need beyond ``requirements``, as pip
    arguments (markers evaluated for the guest), read statically from
    ``test_sources`` (``"extra:test"``, ``"dependency-groups:tests"``, ``"tox.ini"``,
    ``"requirements/tests.txt"``... see `slave.prepare.testdeps`); fetched best
    effort: those that could not be had as wheels are in ``test_unavailable``;
    ``test_substituted`` those the project takes from git, a URL or a path
    (``[tool.uv.sources]``), for which the index release stands in.
    ``build_imports``: what ``setup.py`` imports at its top without declaring it
    (`slave.prepare.build_imports`; only when the guest builds the sdist), each a
    finding; ``build_import_wheels``: their distributions whose wheels were fetched.
    ``python_refused``: why the wheel the guest would install refuses the guest's
    Python, in pip's words (`slave.prepare.python_check`); then no dependency was
    fetched and the job's install fails with it, without the guest.
    """

    project: str
    version: str
    files: list[Path]
    sha256: dict[str, str]
    wheelhouse: Path
    requirements: list[str]
    build_requires: list[str]
    metadata_source: MetadataSource | None
    needs_guest_metadata: bool
    requires_python: str | None = None
    test_requirements: list[str] = field(default_factory=list)
    test_sources: list[str] = field(default_factory=list)
    test_unavailable: list[str] = field(default_factory=list)
    test_substituted: list[str] = field(default_factory=list)
    build_imports: list[BuildImport] = field(default_factory=list)
    build_import_wheels: list[str] = field(default_factory=list)
    python_refused: str | None = None

    def summary(self) -> PrepareSummary:
        """What the job summary records of preparation (``summary.prepare``), capped."""
        return PrepareSummary(
            metadata_source=self.metadata_source,
            requirements=tuple(self.requirements[:_SUMMARY_ITEMS]),
            test_sources=tuple(self.test_sources[:_SUMMARY_ITEMS]),
            test_requirements=tuple(self.test_requirements[:_SUMMARY_ITEMS]),
            test_unavailable=tuple(self.test_unavailable[:_SUMMARY_ITEMS]),
            test_substituted=tuple(self.test_substituted[:_SUMMARY_ITEMS]),
            build_imports=tuple(b.module for b in self.build_imports[:_SUMMARY_ITEMS]),
            build_import_wheels=tuple(self.build_import_wheels[:_SUMMARY_ITEMS]),
        )

    @property
    def sdist(self) -> Path | None:
        """The release's sdist, if it has one (the guest runs the tests from it)."""
        return next((p for p in self.files if not p.name.endswith(".whl")), None)

    @property
    def wheels(self) -> list[Path]:
        """The release's wheels usable by the guest, best first."""
        return [p for p in self.files if p.name.endswith(".whl")]
