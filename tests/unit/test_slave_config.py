"""Slave settings: flags over TOML over defaults, clear errors, the pyti slave flags."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from slave.cli import config_from_args, configure, load_images
from slave.config import ConfigError, build_config, parse_address
from slave.image_builder.recipe import load_recipe, recipe_hash
from tests.fakes.images import fake_image


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "secret"
    path.write_text("0123456789abcdef0123\n")
    return path


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    configure(parser)
    return parser.parse_args(argv)


def test_flags_override_the_toml_file(tmp_path: Path, secret_file: Path) -> None:
    """A flag wins over the file, the file over the defaults; timeouts merge per phase."""
    toml = tmp_path / "slave.toml"
    toml.write_text(
        f'master = "10.0.0.1:7000"\nsecret_file = "{secret_file}"\nimage_dir = "/img"\n'
        'slots = 3\naccel = "kvm"\n[timeouts]\ninstall = 100\ntests = 200\n'
    )
    args = parse(["--config", str(toml), "--slots", "2", "--timeout", "tests=50",
                  "--accel", "tcg", "--pypi-url", "http://127.0.0.1:9/"])  # fmt: skip
    config = config_from_args(args)
    assert (config.master_host, config.master_port) == ("10.0.0.1", 7000)
    assert config.secret == b"0123456789abcdef0123"
    assert config.slots == 2 and config.accel == "tcg"
    assert config.timeout("install") == 100 and config.timeout("tests") == 50
    assert config.timeout("boot") == 120
    assert config.pypi_url == "http://127.0.0.1:9/"
    assert config.image_dir == Path("/img")


def test_missing_and_invalid_settings_are_named(tmp_path: Path, secret_file: Path) -> None:
    """Errors say which setting is wrong."""
    base = {"master": "h:1", "secret_file": str(secret_file), "image_dir": "/i"}
    with pytest.raises(ConfigError, match="--master is required"):
        build_config({**base, "master": None}, {})
    with pytest.raises(ConfigError, match="slots"):
        build_config({**base, "slots": 0}, {})
    with pytest.raises(ConfigError, match="unknown setting"):
        build_config(base, {"colour": "blue"})
    with pytest.raises(ConfigError, match="unknown phase"):
        build_config(base, {"timeouts": {"lunch": 5}})
    with pytest.raises(ConfigError, match="too short"):
        short = tmp_path / "short"
        short.write_text("abc")
        build_config({**base, "secret_file": str(short)}, {})
    with pytest.raises(ConfigError, match="PHASE=SECONDS"):
        config_from_args(parse(["--master", "h:1", "--timeout", "tests"]))


def test_reconnect_backoff_must_back_off(secret_file: Path) -> None:
    """``reconnect_min`` 0 (every slave retrying in a tight loop) and ``reconnect_max`` below
    ``reconnect_min`` are refused; equal bounds (a fixed, jittered delay) are fine."""
    base = {"master": "h:1", "secret_file": str(secret_file), "image_dir": "/i"}
    with pytest.raises(ConfigError, match="reconnect_min"):
        build_config(base, {"reconnect_min": 0})
    with pytest.raises(ConfigError, match="reconnect_max"):
        build_config(base, {"reconnect_max": 0})
    with pytest.raises(ConfigError, match=r"reconnect_max .* below reconnect_min"):
        build_config(base, {"reconnect_min": 5, "reconnect_max": 2})
    config = build_config({**base, "reconnect_min": 2}, {"reconnect_max": 2})
    assert (config.reconnect_min, config.reconnect_max) == (2.0, 2.0)


@pytest.mark.parametrize(
    ("line", "key"),
    [
        ("slots = true", "slots"),
        ("shutdown_grace = false", "shutdown_grace"),
        ("[timeouts]\ntests = true", "timeouts.tests"),
    ],
)
def test_true_where_a_number_belongs_is_refused(
    tmp_path: Path, secret_file: Path, line: str, key: str
) -> None:
    """``slots = true`` is not 1 slot: a TOML boolean is refused, naming the file and key."""
    toml = tmp_path / "slave.toml"
    toml.write_text(f'master = "h:1"\nsecret_file = "{secret_file}"\nimage_dir = "/i"\n{line}\n')
    with pytest.raises(ConfigError) as info:
        config_from_args(parse(["--config", str(toml)]))
    assert f"{toml}: {key} has the wrong type" in str(info.value)


def test_parse_address() -> None:
    """HOST:PORT, a bare host (default port) and [v6]:PORT parse; junk does not."""
    assert parse_address("example.org:7601") == ("example.org", 7601)
    assert parse_address("example.org") == ("example.org", 7600)
    assert parse_address("[::1]:7000") == ("::1", 7000)
    with pytest.raises(ConfigError):
        parse_address("host:http")
    with pytest.raises(ConfigError):
        parse_address("host:70000")


def test_damaged_images_are_refused_with_a_reason(tmp_path: Path) -> None:
    """An unfinished or damaged image is refused by name; an empty directory is just skipped."""
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "disk.qcow2").write_bytes(b"x")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "manifest.json").write_text('{"format": 1, "name": "bad", "files": {}}')
    (tmp_path / "empty").mkdir()
    images, problems = load_images(tmp_path)
    assert images == {}
    assert len(problems) == 2
    assert any("'half'" in p and "did not finish" in p for p in problems)
    assert any("'bad'" in p for p in problems)
    assert load_images(tmp_path / "nope")[1] == [
        f"image directory {tmp_path / 'nope'} does not exist"
    ]


def test_a_stale_image_is_refused_and_one_without_a_recipe_is_kept(tmp_path: Path) -> None:
    """An image built from another version of its recipe is refused by name; no recipe: kept."""
    images, recipes = tmp_path / "images", tmp_path / "recipes"
    recipes.mkdir()
    for name in ("current", "stale"):
        (recipes / f"{name}.toml").write_text(
            f'name = "{name}"\nsuite = "bookworm"\npython_version = "3.11"\n'
        )
    fake_image(images, "current", recipe_hash(load_recipe("current", recipes)))
    fake_image(images, "stale")
    fake_image(images, "custom")
    loaded, problems = load_images(images, recipes)
    assert sorted(loaded) == ["current", "custom"]
    assert len(problems) == 1 and "'stale' is stale" in problems[0]
