"""Where the guest's Debian packages come from: the mirror debootstrap is given.

The first of these that is set wins:

1. ``pyti image build --mirror URL``;
2. the environment variable ``PYTI_DEBIAN_MIRROR`` (a site-wide choice);
3. the recipe's ``mirror`` key;
4. the Debian archive this host's apt uses: ``/etc/apt/sources.list`` and
   ``/etc/apt/sources.list.d/*.list`` (one-line format), then
   ``/etc/apt/sources.list.d/*.sources`` (deb822), first usable entry wins;
5. :data:`DEFAULT_MIRROR`.

A usable apt entry is an enabled ``deb`` (not ``deb-src``) entry over http(s) or
``file:`` with the ``main`` component and a plain suite (not ``*-security``,
``*-updates``, ``*-backports``), signed by Debian's archive keyring or by no
``signed-by`` at all: an entry signed by another keyring is a third-party
repository (Docker's, a vendor's), never the Debian archive. So an air-gapped
site whose hosts use its own mirror builds images from it without a flag.

The mirror is *not* part of the recipe hash: the same suite and packages from
another copy of the archive make the same image, so moving to a new mirror does
not force a rebuild. It is recorded in the image's manifest (``mirror``) and keys
the debootstrap cache, so a cached tree is only reused from the same mirror.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from slave.image_builder.errors import BuildError

DEFAULT_MIRROR = "http://deb.debian.org/debian"
ENV_VAR = "PYTI_DEBIAN_MIRROR"
#: A mirror is a URL debootstrap can fetch from.
MIRROR_RE = re.compile(r"^(https?|file)://[^\s\"'<>]+$")
_POCKETS = ("-security", "-updates", "-backports", "-proposed-updates")
_DEBIAN_KEYRING = "debian-archive-keyring"


@dataclass(frozen=True, slots=True)
class AptEntry:
    """One ``deb`` source of apt, whichever format it was written in."""

    uri: str
    suites: tuple[str, ...]
    components: tuple[str, ...]
    signed_by: str = ""
    enabled: bool = True

    def is_debian_archive(self) -> bool:
        """Whether debootstrap can take this entry's URI as the Debian mirror."""
        return (
            self.enabled
            and MIRROR_RE.match(self.uri) is not None
            and "main" in self.components
            and any(not s.endswith(_POCKETS) for s in self.suites)
            and (not self.signed_by or _DEBIAN_KEYRING in self.signed_by)
        )


@dataclass(frozen=True, slots=True)
class MirrorChoice:
    """The mirror and what chose it (for the build's progress line and the manifest)."""

    url: str
    source: str


def parse_one_line(text: str) -> Iterator[AptEntry]:
    """The ``deb`` entries of a ``sources.list`` file: ``deb [opts] URI SUITE COMPONENT...``."""
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        options = ""
        if match := re.match(r"^deb\s+\[([^]]*)\]\s*(.*)$", line):
            options, rest = match.groups()
        elif line.startswith("deb ") or line.startswith("deb\t"):
            rest = line[4:]
        else:
            continue
        words = rest.split()
        if len(words) < 2:
            continue
        opts = dict(o.split("=", 1) for o in options.split() if "=" in o)
        yield AptEntry(words[0], (words[1],), tuple(words[2:]), opts.get("signed-by", ""))


def _stanzas(text: str) -> Iterator[dict[str, str]]:
    fields: dict[str, str] = {}
    key = ""
    for raw in [*text.splitlines(), ""]:
        if raw.startswith("#"):
            continue
        if not raw.strip():
            if fields:
                yield fields
            fields, key = {}, ""
        elif raw[0] in " \t" and key:  # a continuation line (e.g. an inline Signed-By key)
            fields[key] += "\n" + raw.strip()
        elif ":" in raw:
            key, value = raw.split(":", 1)
            key = key.strip().lower()
            fields[key] = value.strip()


def parse_deb822(text: str) -> Iterator[AptEntry]:
    """The ``deb`` entries of a deb822 ``.sources`` file (one per URI of each stanza)."""
    for fields in _stanzas(text):
        if "deb" not in fields.get("types", "").split():
            continue
        enabled = fields.get("enabled", "yes").lower() not in ("no", "false", "0")
        for uri in fields.get("uris", "").split():
            yield AptEntry(
                uri,
                tuple(fields.get("suites", "").split()),
                tuple(fields.get("components", "").split()),
                fields.get("signed-by", ""),
                enabled,
            )


def apt_entries(etc_apt: Path = Path("/etc/apt")) -> Iterator[tuple[Path, AptEntry]]:
    """Every ``deb`` entry of the host's apt sources, in the order apt lists them."""
    one_line = [etc_apt / "sources.list", *sorted((etc_apt / "sources.list.d").glob("*.list"))]
    deb822 = sorted((etc_apt / "sources.list.d").glob("*.sources"))
    for paths, parse in ((one_line, parse_one_line), (deb822, parse_deb822)):
        for path in paths:
            try:
                text = path.read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue
            for entry in parse(text):
                yield path, entry


def host_mirror(entries: Iterable[tuple[Path, AptEntry]]) -> MirrorChoice | None:
    """The first entry that is the Debian archive, or None."""
    for path, entry in entries:
        if entry.is_debian_archive():
            return MirrorChoice(entry.uri.rstrip("/"), f"host apt ({path})")
    return None


def resolve_mirror(
    name: str,
    flag: str | None,
    recipe_mirror: str | None,
    env: Mapping[str, str] | None = None,
    etc_apt: Path = Path("/etc/apt"),
) -> MirrorChoice:
    """The mirror to build image ``name`` from, by the order in this module's docstring.

    Raises :class:`BuildError` (step ``mirror``) when the chosen value is not a URL.
    """
    env = os.environ if env is None else env
    for url, source in ((flag, "--mirror"), (env.get(ENV_VAR), ENV_VAR), (recipe_mirror, "recipe")):
        if url:
            if not MIRROR_RE.match(url):
                raise BuildError(
                    name, "mirror", f"{source} {url!r}: not an http(s):// or file:// URL"
                )
            return MirrorChoice(url.rstrip("/"), source)
    return host_mirror(apt_entries(etc_apt)) or MirrorChoice(DEFAULT_MIRROR, "default")
