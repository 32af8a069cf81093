"""Project names, versions and distribution file names, checked as plain strings.

`packaging` is not a dependency of pyti, so PEP 440 and PEP 503 live here: the
version regex is the one PEP 440 publishes in its appendix B, and
`canonical_version` renders it the way PEP 440's normalisation section says
(tests cross-check both against `packaging`, which the test tools bring in).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal, TypeAlias

# PEP 440, appendix B ("Parsing version strings with regular expressions").
_VERSION_PATTERN: Final = r"""
    v?
    (?:
        (?:(?P<epoch>[0-9]+)!)?
        (?P<release>[0-9]+(?:\.[0-9]+)*)
        (?P<pre>
            [-_\.]?
            (?P<pre_l>alpha|beta|preview|pre|rc|a|b|c)
            [-_\.]?
            (?P<pre_n>[0-9]+)?
        )?
        (?P<post>
            (?:-(?P<post_n1>[0-9]+))
            |
            (?:
                [-_\.]?
                (?P<post_l>post|rev|r)
                [-_\.]?
                (?P<post_n2>[0-9]+)?
            )
        )?
        (?P<dev>
            [-_\.]?
            (?P<dev_l>dev)
            [-_\.]?
            (?P<dev_n>[0-9]+)?
        )?
    )
    (?:\+(?P<local>[a-z0-9]+(?:[-_\.][a-z0-9]+)*))?
"""
_VERSION_RE: Final = re.compile(r"^\s*" + _VERSION_PATTERN + r"\s*$", re.VERBOSE | re.IGNORECASE)
_PRE_SPELLINGS: Final = {"alpha": "a", "beta": "b", "c": "rc", "pre": "rc", "preview": "rc"}
# Metadata fields are attacker-chosen; a 4,300-digit segment would also trip int().
_MAX_VERSION_LEN: Final = 256

# Core metadata "Name" (same as PEP 508 identifiers).
_NAME_RE: Final = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$", re.IGNORECASE)

SDIST_SUFFIXES: Final = (".tar.gz", ".zip", ".tar.bz2", ".tar.xz", ".tgz")

Kind: TypeAlias = Literal["sdist", "wheel", "other"]


def canonical_version(text: str) -> str | None:
    """The PEP 440 normalised form of `text`, or None if it is not a valid version."""
    if len(text) > _MAX_VERSION_LEN:
        return None
    match = _VERSION_RE.match(text)
    if match is None:
        return None
    parts: list[str] = []
    epoch = int(match["epoch"] or 0)
    if epoch:
        parts.append(f"{epoch}!")
    parts.append(".".join(str(int(seg)) for seg in match["release"].split(".")))
    if match["pre_l"]:
        letter = match["pre_l"].lower()
        parts.append(_PRE_SPELLINGS.get(letter, letter) + str(int(match["pre_n"] or 0)))
    if match["post"]:
        parts.append(f".post{int(match['post_n1'] or match['post_n2'] or 0)}")
    if match["dev"]:
        parts.append(f".dev{int(match['dev_n'] or 0)}")
    if match["local"]:
        segments = re.split(r"[-_.]", match["local"].lower())
        parts.append("+" + ".".join(str(int(s)) if s.isdigit() else s for s in segments))
    return "".join(parts)


def is_valid_name(name: str) -> bool:
    """True if `name` is a valid core-metadata project name."""
    return _NAME_RE.match(name) is not None


def normalise_name(name: str) -> str:
    """PEP 503 normalised name: runs of `-_.` become one `-`, lower case."""
    return re.sub(r"[-_.]+", "-", name).lower()


def filename_name(name: str) -> str:
    """How the binary-distribution and sdist specs spell a name inside a file name."""
    return re.sub(r"[-_.]+", "_", name).lower()


@dataclass(frozen=True, slots=True)
class DistName:
    """What a distribution's file name says about it."""

    filename: str
    kind: Kind
    name: str | None = None
    version: str | None = None
    python_tags: tuple[str, ...] = ()
    abi_tags: tuple[str, ...] = ()
    platform_tags: tuple[str, ...] = ()

    @property
    def is_pure(self) -> bool:
        """A wheel for any platform and ABI (`none-any`)."""
        return (
            self.kind == "wheel" and self.abi_tags == ("none",) and self.platform_tags == ("any",)
        )


def parse_filename(filename: str, expected_name: str | None = None) -> DistName:
    """Split a distribution file name into name, version and tags.

    Old sdists spell the name with hyphens (`my-pkg-1.0.tar.gz`), so the split
    point is ambiguous; `expected_name` (from the metadata) picks the split that
    matches it, else the first hyphen followed by a digit wins.
    """
    lower = filename.lower()
    if lower.endswith(".whl"):
        parts = filename[: -len(".whl")].split("-")
        if len(parts) not in (5, 6):
            return DistName(filename, "wheel")
        return DistName(
            filename,
            "wheel",
            name=parts[0],
            version=parts[1],
            python_tags=tuple(parts[-3].split(".")),
            abi_tags=tuple(parts[-2].split(".")),
            platform_tags=tuple(parts[-1].split(".")),
        )
    suffix = next((s for s in SDIST_SUFFIXES if lower.endswith(s)), None)
    if suffix is None:
        return DistName(filename, "other")
    stem = filename[: -len(suffix)]
    splits = [i for i, char in enumerate(stem) if char == "-"]
    if expected_name is not None:
        wanted = normalise_name(expected_name)
        for i in splits:
            if normalise_name(stem[:i]) == wanted:
                return DistName(filename, "sdist", name=stem[:i], version=stem[i + 1 :])
    for i in splits:
        if stem[i + 1 : i + 2].isdigit():
            return DistName(filename, "sdist", name=stem[:i], version=stem[i + 1 :])
    return DistName(filename, "sdist")
