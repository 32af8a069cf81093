"""pyti.settings: the one loader of settings files (types, ranges, choices, unknown keys)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from pyti.settings import (
    AnyTable,
    Bool,
    Int,
    Number,
    Setting,
    SettingsError,
    Table,
    Text,
    Texts,
    check,
    read_toml,
    resolve_paths,
)

SPEC: dict[str, Setting] = {
    "slots": Int(minimum=1, maximum=8),
    "interval": Number(above=0),
    "grace": Number(minimum=0),
    "verbose": Bool(),
    "accel": Text(choices=("kvm", "tcg")),
    "suite": Text(pattern=re.compile(r"^[a-z]+$"), means="a suite name"),
    "urls": Texts(pattern=re.compile(r"^https?://"), min_items=1),
    "vm": Table({"cpus": Int(minimum=1)}),
    "timeouts": Table({"tests": Number(above=0)}, noun="phase"),
    "feed": AnyTable(),
    "name": Text(required=True),
}


def refused(values: dict[str, Any]) -> SettingsError:
    """The error ``check`` raises for ``values`` (with the required name added)."""
    with pytest.raises(SettingsError) as info:
        check({"name": "n", **values}, SPEC, source="/etc/pyti/x.toml")
    return info.value


def test_valid_values_are_converted() -> None:
    """Numbers become floats, lists tuples, tables checked; absent keys stay absent."""
    values = check(
        {"name": "n", "slots": 2, "interval": 1, "urls": ["https://a"], "vm": {"cpus": 2}},
        SPEC,
        source="x.toml",
    )
    assert values == {
        "name": "n",
        "slots": 2,
        "interval": 1.0,
        "urls": ("https://a",),
        "vm": {"cpus": 2},
    }
    assert isinstance(values["interval"], float)


@pytest.mark.parametrize("key", ["slots", "interval", "grace"])
def test_a_bool_is_never_a_number(key: str) -> None:
    """``true`` where an integer or a number belongs is a wrong type (Python's bool is an int)."""
    error = refused({key: True})
    assert error.key == key
    assert str(error) == (
        f"/etc/pyti/x.toml: {key} has the wrong type "
        f"({'an integer' if key == 'slots' else 'a number'} expected, not true)"
    )


@pytest.mark.parametrize(
    ("values", "key", "fragment"),
    [
        ({"slots": 1.0}, "slots", "wrong type (an integer expected, not 1.0)"),
        ({"slots": "2"}, "slots", "wrong type"),
        ({"slots": 0}, "slots", "slots must be between 1 and 8, not 0"),
        ({"interval": 0}, "interval", "interval must be more than 0, not 0"),
        ({"interval": float("inf")}, "interval", "finite"),
        ({"grace": -1}, "grace", "grace must be at least 0, not -1"),
        ({"verbose": 1}, "verbose", "true or false expected, not 1"),
        ({"accel": "xen"}, "accel", "must be one of kvm, tcg, not 'xen'"),
        ({"accel": ""}, "accel", "must not be empty"),
        ({"suite": "Bad;"}, "suite", "must be a suite name, not 'Bad;'"),
        ({"urls": []}, "urls", "at least 1"),
        ({"urls": ["ftp://x"]}, "urls", "invalid entry 'ftp://x'"),
        ({"urls": "https://x"}, "urls", "wrong type"),
        ({"vm": {"cpus": True}}, "vm.cpus", "vm.cpus has the wrong type"),
        ({"vm": {"ram": 1}}, "vm.ram", "unknown setting 'ram' in [vm]"),
        ({"vm": 3}, "vm", "vm has the wrong type (a table expected, not 3)"),
        ({"timeouts": {"lunch": 5}}, "timeouts.lunch", "unknown phase 'lunch' in [timeouts]"),
        ({"feed": []}, "feed", "a table expected"),
        ({"colour": "blue"}, "colour", "unknown setting 'colour'"),
    ],
)
def test_bad_values_are_refused_naming_file_and_key(
    values: dict[str, Any], key: str, fragment: str
) -> None:
    """Each kind of bad value is a SettingsError whose message names the file and the key."""
    error = refused(values)
    assert error.key == key and error.source == "/etc/pyti/x.toml"
    assert str(error).startswith("/etc/pyti/x.toml: ")
    assert fragment in str(error)


def test_required_keys_must_be_present_and_any_table_passes_through() -> None:
    """A missing required key is named; an AnyTable's contents are left to its owner."""
    with pytest.raises(SettingsError, match="name is required"):
        check({}, SPEC, source="x.toml")
    assert check({"name": "n", "feed": {"anything": True}}, SPEC, source="x") == {
        "name": "n",
        "feed": {"anything": True},
    }


def test_checked_values_check_again() -> None:
    """What check returns passes check again (values are merged, then checked once more)."""
    values = check({"name": "n", "urls": ["https://a"], "interval": 2}, SPEC, source="x")
    assert check(values, SPEC, source="x") == values


def test_read_toml_names_the_file(tmp_path: Path) -> None:
    """A missing or broken file is a SettingsError naming it, not a traceback."""
    missing = tmp_path / "missing.toml"
    with pytest.raises(SettingsError, match=r"cannot read .*missing\.toml"):
        read_toml(missing)
    broken = tmp_path / "broken.toml"
    broken.write_text("slots = [\n")
    with pytest.raises(SettingsError, match="not valid TOML") as info:
        read_toml(broken)
    assert info.value.key is None and info.value.source == str(broken)


def test_paths_are_relative_to_the_file(tmp_path: Path) -> None:
    """Text(path=True) values are made absolute against the file's directory; others are not."""
    spec: dict[str, Setting] = {"data": Text(path=True), "name": Text()}
    values = resolve_paths({"data": "sub/dir", "name": "sub"}, spec, tmp_path)
    assert values == {"data": str(tmp_path / "sub" / "dir"), "name": "sub"}
