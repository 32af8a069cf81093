"""One loader for every settings file: master, slave, ``[feed]`` and image recipes.

A spec maps each key a table may hold to a :class:`Setting` that says what the
value must be::

    SPEC = {
        "slots": Int(minimum=1),
        "heartbeat_interval": Number(above=0),      # seconds; an int is fine, true is not
        "accel": Text(choices=("auto", "kvm", "tcg")),
        "timeouts": Table({"tests": Number(above=0)}, noun="phase"),
    }
    values = check(read_toml(path), SPEC, source=str(path))

:func:`check` refuses a key the spec does not know, a value of the wrong type
(a TOML ``true`` is never a number: Python's ``bool`` is an ``int``, ours is
not), a value out of range or not among the choices, and a missing required
key. The error, :class:`SettingsError`, names the file (``source``) and the key;
each daemon re-raises it as its own ``ConfigError`` (exit 2). What one setting
means for another (``heartbeat_timeout`` longer than ``heartbeat_interval``) is
the caller's to check after.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class SettingsError(Exception):
    """A settings file or one of its values cannot be used.

    ``source`` is the file (or table) the value came from, ``key`` the dotted key
    (None when the file itself is the problem); the message names both.
    """

    def __init__(self, source: str, key: str | None, sentence: str) -> None:
        super().__init__(f"{source}: {sentence}")
        self.source = source
        self.key = key
        self.sentence = sentence


class Invalid(ValueError):
    """Raised by a :class:`Setting` for a bad value; :func:`check` adds file and key."""

    def __init__(self, problem: str, *, wrong_type: bool = False) -> None:
        super().__init__(problem)
        self.problem = problem
        self.wrong_type = wrong_type


def shown(value: object) -> str:
    """A value as the TOML file spells it (``true``, ``'three'``, ``1.5``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a table"
    return repr(value)


@dataclass(frozen=True, slots=True)
class Setting:
    """What one key may hold. Subclasses say which type; ``required`` keys must be present."""

    required: bool = field(default=False, kw_only=True)
    #: what the value is, for error messages: "an integer", "a list of strings"
    expected = "a value"

    def check(self, value: object) -> Any:
        """The value, converted where the type says so; ``Invalid`` if it is not acceptable."""
        raise NotImplementedError

    def wrong_type(self, value: object) -> Invalid:
        """The error for a value of another type."""
        return Invalid(f"has the wrong type ({self.expected} expected, not {shown(value)})",
                       wrong_type=True)  # fmt: skip


def _bounds(value: float, minimum: float | None, maximum: float | None, above: float | None) -> str:
    """What is wrong with ``value`` against the bounds, or "" when it is inside."""
    if above is not None and not value > above:
        return f"must be more than {above:g}"
    if minimum is not None and maximum is not None and not minimum <= value <= maximum:
        return f"must be between {minimum:g} and {maximum:g}"
    if minimum is not None and value < minimum:
        return f"must be at least {minimum:g}"
    if maximum is not None and value > maximum:
        return f"must be at most {maximum:g}"
    return ""


@dataclass(frozen=True, slots=True)
class Int(Setting):
    """A TOML integer (never a boolean, never a float), within the bounds."""

    minimum: int | None = None
    maximum: int | None = None
    expected = "an integer"

    def check(self, value: object) -> int:
        """The integer; ``Invalid`` for a bool, a float, a string or a value out of bounds."""
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.wrong_type(value)
        if problem := _bounds(value, self.minimum, self.maximum, None):
            raise Invalid(f"{problem}, not {value}")
        return value


@dataclass(frozen=True, slots=True)
class Number(Setting):
    """A TOML integer or float (never a boolean), finite, within the bounds; given as float."""

    minimum: float | None = None
    maximum: float | None = None
    #: exclusive lower bound: ``above=0`` is "positive"
    above: float | None = None
    expected = "a number"

    def check(self, value: object) -> float:
        """The number as a float; ``Invalid`` for a bool, a string, inf/nan, out of bounds."""
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.wrong_type(value)
        if not math.isfinite(value):
            raise Invalid(f"must be a finite number, not {value}")
        if problem := _bounds(value, self.minimum, self.maximum, self.above):
            raise Invalid(f"{problem}, not {value:g}")
        return float(value)


@dataclass(frozen=True, slots=True)
class Bool(Setting):
    """A TOML boolean (``true``/``false``; not 0 or 1, not "yes")."""

    expected = "true or false"

    def check(self, value: object) -> bool:
        """The boolean; ``Invalid`` for anything else."""
        if not isinstance(value, bool):
            raise self.wrong_type(value)
        return value


@dataclass(frozen=True, slots=True)
class Text(Setting):
    """A non-empty string; one of ``choices`` or matching ``pattern`` when they are given.

    ``path`` marks a file or directory: a relative one is relative to the file
    that sets it (see :func:`resolve_paths`). ``means`` describes what the pattern
    stands for ("a Debian suite name").
    """

    choices: tuple[str, ...] = ()
    pattern: re.Pattern[str] | None = None
    means: str = ""
    path: bool = False
    expected = "a string"

    def check(self, value: object) -> str:
        """The string; ``Invalid`` if it is empty, not a choice or does not match."""
        if not isinstance(value, str):
            raise self.wrong_type(value)
        if not value:
            raise Invalid("must not be empty")
        if self.choices and value not in self.choices:
            raise Invalid(f"must be one of {', '.join(self.choices)}, not {value!r}")
        if self.pattern is not None and not self.pattern.match(value):
            raise Invalid(f"must be {self.means or 'like ' + self.pattern.pattern}, not {value!r}")
        return value


@dataclass(frozen=True, slots=True)
class Texts(Setting):
    """A list of non-empty strings (each matching ``pattern`` when given); given as a tuple.

    A tuple is accepted too, so checked values can be checked again after a merge.
    """

    pattern: re.Pattern[str] | None = None
    min_items: int = 0
    #: each entry is a path: ``resolve_paths`` makes it absolute
    path: bool = False
    expected = "a list of strings"

    def check(self, value: object) -> tuple[str, ...]:
        """The strings as a tuple; ``Invalid`` naming the first bad entry."""
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise self.wrong_type(value)
        for item in value:
            if not item or (self.pattern is not None and not self.pattern.match(item)):
                raise Invalid(f"has an invalid entry {item!r}")
        if len(value) < self.min_items:
            raise Invalid(f"needs at least {self.min_items} entries")
        return tuple(value)


@dataclass(frozen=True, slots=True)
class Table(Setting):
    """A TOML table checked against its own spec; unknown keys are "unknown ``noun``s"."""

    spec: Mapping[str, Setting] = field(default_factory=dict)
    noun: str = "setting"
    expected = "a table"

    def check(self, value: object) -> dict[str, Any]:
        """The checked table (keys named without the table's own name; :func:`check` adds it)."""
        if not isinstance(value, Mapping):
            raise self.wrong_type(value)
        try:
            return check(value, self.spec, source="", noun=self.noun)
        except SettingsError as exc:
            raise Invalid(exc.sentence) from None


@dataclass(frozen=True, slots=True)
class AnyTable(Setting):
    """A table passed through unchecked: another part of the program has its spec."""

    expected = "a table"

    def check(self, value: object) -> dict[str, Any]:
        """A copy of the table; ``Invalid`` if the value is not a table."""
        if not isinstance(value, dict):
            raise self.wrong_type(value)
        return dict(value)


Spec = Mapping[str, Setting]


def check(
    values: Mapping[str, Any], spec: Spec, *, source: str, noun: str = "setting", prefix: str = ""
) -> dict[str, Any]:
    """The values the spec allows, checked and converted; ``SettingsError`` for the first fault.

    Keys the spec knows but ``values`` lacks are left out (the caller's defaults
    apply), except ``required`` ones, which are an error. Nested ``Table`` keys
    are named with dots (``vm.cpus``).
    """
    for key in values:
        if key not in spec:
            where = f" in [{prefix.rstrip('.')}]" if prefix else ""
            raise SettingsError(source, prefix + key, f"unknown {noun} {key!r}{where}")
    out: dict[str, Any] = {}
    for key, setting in spec.items():
        name = prefix + key
        if key not in values:
            if setting.required:
                raise SettingsError(source, name, f"{name} is required")
            continue
        value = values[key]
        if isinstance(setting, Table) and isinstance(value, Mapping):
            out[key] = check(value, setting.spec, source=source, noun=setting.noun,
                             prefix=f"{name}.")  # fmt: skip
            continue
        try:
            out[key] = setting.check(value)
        except Invalid as exc:
            raise SettingsError(source, name, f"{name} {exc.problem}") from None
    return out


def read_toml(path: Path) -> dict[str, Any]:
    """The document in a TOML file; ``SettingsError`` naming the file if it cannot be read."""
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except OSError as exc:
        raise SettingsError(str(path), None, f"cannot read {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(str(path), None, f"cannot read {path}: not valid TOML: {exc}") from None


def resolve_paths(values: Mapping[str, Any], spec: Spec, base: Path) -> dict[str, Any]:
    """``values`` with every ``Text(path=True)`` and ``Texts(path=True)`` entry made absolute,
    relative to ``base``."""
    out = dict(values)
    for key, setting in spec.items():
        if isinstance(setting, Text) and setting.path and isinstance(out.get(key), str):
            out[key] = str((base / Path(out[key]).expanduser()).resolve())
        if isinstance(setting, Texts) and setting.path and isinstance(out.get(key), tuple):
            out[key] = tuple(str((base / Path(p).expanduser()).resolve()) for p in out[key])
    return out
