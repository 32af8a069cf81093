"""Where the guest's Debian packages come from: flag, environment, recipe, host apt, default."""

from __future__ import annotations

from pathlib import Path

import pytest

from slave.image_builder.errors import BuildError, RecipeError
from slave.image_builder.mirror import (
    DEFAULT_MIRROR,
    ENV_VAR,
    apt_entries,
    host_mirror,
    parse_deb822,
    parse_one_line,
    resolve_mirror,
)
from slave.image_builder.recipe import parse_recipe, recipe_hash

DEBIAN_SOURCES = """\
Types: deb deb-src
URIs: http://mirror.site.internal/debian/
Suites: bookworm bookworm-updates
Components: main non-free-firmware
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.site.internal/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""


def _etc_apt(tmp_path: Path, sources_list: str = "", **sources: str) -> Path:
    etc = tmp_path / "apt"
    (etc / "sources.list.d").mkdir(parents=True, exist_ok=True)
    if sources_list:
        (etc / "sources.list").write_text(sources_list)
    for name, text in sources.items():
        (etc / "sources.list.d" / name.replace("_", ".")).write_text(text)
    return etc


def test_deb822_debian_sources_give_the_archive_not_security(tmp_path: Path) -> None:
    """Debian 12's debian.sources (deb822) gives its main archive URI, without the trailing /."""
    etc = _etc_apt(tmp_path, debian_sources=DEBIAN_SOURCES)
    choice = resolve_mirror("bookworm", None, None, env={}, etc_apt=etc)
    assert choice.url == "http://mirror.site.internal/debian"
    assert choice.source.startswith("host apt (") and "debian.sources" in choice.source


def test_one_line_sources_list_comes_first_and_skips_pockets_and_deb_src(tmp_path: Path) -> None:
    """sources.list wins over .sources; deb-src, -security, -updates and comments are skipped."""
    text = (
        "# deb http://commented.example/debian bookworm main\n"
        "deb-src http://src.example/debian bookworm main\n"
        "deb http://security.example/debian-security bookworm-security main\n"
        "deb [arch=amd64] http://local.example/debian bookworm-updates main\n"
        "deb [arch=amd64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] "
        "file:///srv/mirror/debian bookworm main contrib\n"
    )
    etc = _etc_apt(tmp_path, text, debian_sources=DEBIAN_SOURCES)
    assert resolve_mirror("x", None, None, env={}, etc_apt=etc).url == "file:///srv/mirror/debian"


def test_third_party_and_disabled_entries_are_not_the_debian_archive(tmp_path: Path) -> None:
    """An entry signed by another keyring, without main, or Enabled: no is never taken."""
    docker = (
        "Types: deb\nURIs: https://download.docker.example/linux/debian\nSuites: bookworm\n"
        "Components: stable\nSigned-By: /etc/apt/keyrings/docker.asc\n"
    )
    vendor = (
        "deb [signed-by=/etc/apt/keyrings/vendor.gpg] https://vendor.example/debian bookworm main\n"
    )
    disabled = "Types: deb\nURIs: http://off.example/debian\nSuites: bookworm\nComponents: main\n"
    disabled += "Enabled: no\n"
    etc = _etc_apt(
        tmp_path, vendor, a_docker_sources=docker, b_off_sources=disabled, z_sources=DEBIAN_SOURCES
    )
    assert resolve_mirror("x", None, None, env={}, etc_apt=etc).url == (
        "http://mirror.site.internal/debian"
    )


def test_no_usable_apt_source_falls_back_to_deb_debian_org(tmp_path: Path) -> None:
    """With no apt sources at all, the default is Debian's own redirector."""
    choice = resolve_mirror("x", None, None, env={}, etc_apt=_etc_apt(tmp_path))
    assert (choice.url, choice.source) == (DEFAULT_MIRROR, "default")


def test_flag_beats_environment_beats_recipe_beats_host(tmp_path: Path) -> None:
    """--mirror, then PYTI_DEBIAN_MIRROR, then the recipe's mirror, then the host's apt."""
    etc = _etc_apt(tmp_path, debian_sources=DEBIAN_SOURCES)
    env = {ENV_VAR: "http://env.example/debian"}
    recipe = "http://recipe.example/debian/"
    flag = "https://flag.example/debian"
    assert resolve_mirror("x", flag, recipe, env=env, etc_apt=etc).source == "--mirror"
    assert (
        resolve_mirror("x", None, recipe, env=env, etc_apt=etc).url == "http://env.example/debian"
    )
    chosen = resolve_mirror("x", None, recipe, env={}, etc_apt=etc)
    assert (chosen.url, chosen.source) == ("http://recipe.example/debian", "recipe")


def test_a_mirror_that_is_not_a_url_is_a_build_error(tmp_path: Path) -> None:
    """--mirror or the environment naming no http(s)/file URL fails the 'mirror' step."""
    with pytest.raises(BuildError, match="not an http"):
        resolve_mirror("x", "ftp.example/debian", None, env={}, etc_apt=_etc_apt(tmp_path))
    with pytest.raises(BuildError) as err:
        resolve_mirror("x", None, None, env={ENV_VAR: "-o foo"}, etc_apt=_etc_apt(tmp_path))
    assert err.value.step == "mirror"


def test_parsers_read_options_continuations_and_several_uris() -> None:
    """One-line options give signed-by; a deb822 stanza yields one entry per URI."""
    [entry] = parse_one_line("deb [ signed-by=/k.gpg arch=amd64 ] http://a.example/d sid main\n")
    assert (entry.uri, entry.suites, entry.signed_by) == ("http://a.example/d", ("sid",), "/k.gpg")
    stanza = (
        "Types: deb\nURIs: http://a.example/d http://b.example/d\nSuites: trixie\n"
        "Components: main\nSigned-By:\n -----BEGIN PGP PUBLIC KEY BLOCK-----\n .\n"
    )
    entries = list(parse_deb822(stanza))
    assert [e.uri for e in entries] == ["http://a.example/d", "http://b.example/d"]
    assert not entries[0].is_debian_archive()  # an inline key is not Debian's keyring


def test_this_hosts_apt_sources_parse() -> None:
    """The real /etc/apt of this machine parses without error (whatever it holds)."""
    host_mirror(apt_entries())


def test_recipe_mirror_is_validated_and_not_hashed() -> None:
    """A recipe's mirror must be a URL, and changing it leaves the recipe hash as it was."""
    doc = {"name": "demo", "suite": "bookworm", "python_version": "3.11"}
    plain = parse_recipe(doc, "demo")
    mirrored = parse_recipe({**doc, "mirror": "http://mirror.site.internal/debian"}, "demo")
    assert mirrored.mirror == "http://mirror.site.internal/debian"
    assert recipe_hash(plain) == recipe_hash(mirrored)
    with pytest.raises(RecipeError, match="mirror"):
        parse_recipe({**doc, "mirror": "not a url"}, "demo")
