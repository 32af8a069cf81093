"""One quality indicator: an id, its group, a value, a level and a one-line reason.

Indicators leave the slave inside events and results, so an `Indicator` turns into
plain JSON/msgpack data (`to_dict`) and back (`from_dict`, which validates: the dict
may come from storage or from another process).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, TypeAlias, cast

from slave.errors import SlaveError

Level: TypeAlias = Literal["pass", "warn", "fail"]
Group: TypeAlias = Literal["metadata", "distribution", "tests", "code", "install"]

LEVELS: Final[tuple[Level, ...]] = ("pass", "warn", "fail")
GROUPS: Final[tuple[Group, ...]] = ("metadata", "distribution", "tests", "code", "install")

# JSON/msgpack-friendly value: what `to_dict` may carry. Checked recursively by
# `from_dict` so a stored report cannot smuggle in arbitrary objects.
Value: TypeAlias = bool | int | float | str | Sequence["Value"] | Mapping[str, "Value"] | None

_MAX_REASON = 300
_MAX_VALUE_DEPTH = 4


class IndicatorFormatError(SlaveError, ValueError):
    """A dict handed to `from_dict` is not a well-formed indicator or report."""


@dataclass(frozen=True, slots=True)
class Indicator:
    """A single measured property of a release.

    `id` is stable across releases (`group.name`), which is what `trend` compares.
    `reason` is one line, shown as is to people.
    """

    id: str
    group: Group
    value: Value
    level: Level
    reason: str

    def __post_init__(self) -> None:
        if self.group not in GROUPS:
            raise IndicatorFormatError(f"unknown group {self.group!r}")
        if self.level not in LEVELS:
            raise IndicatorFormatError(f"unknown level {self.level!r}")
        # One printable line, bounded: reasons quote names and fields from hostile
        # archives, and end up in terminals (escape sequences) as well as web pages.
        one_line = " ".join(self.reason.split())
        one_line = "".join(c if c.isprintable() else "\ufffd" for c in one_line)
        if len(one_line) > _MAX_REASON:
            one_line = one_line[: _MAX_REASON - 1] + "…"
        object.__setattr__(self, "reason", one_line)

    def to_dict(self) -> dict[str, Value]:
        """The indicator as plain data (JSON and msgpack friendly)."""
        return {
            "id": self.id,
            "group": self.group,
            "value": plain(self.value),
            "level": self.level,
            "reason": self.reason,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Indicator:
        """Rebuild an indicator; raises `IndicatorFormatError` on any malformed field."""
        try:
            ident, group, level, reason = (
                data["id"],
                data["group"],
                data["level"],
                data["reason"],
            )
            value = data["value"]
        except (KeyError, TypeError) as exc:
            raise IndicatorFormatError(f"missing field: {exc}") from None
        if not isinstance(ident, str) or not ident:
            raise IndicatorFormatError("id must be a non-empty string")
        if not isinstance(reason, str):
            raise IndicatorFormatError("reason must be a string")
        if group not in GROUPS:
            raise IndicatorFormatError(f"unknown group {group!r}")
        if level not in LEVELS:
            raise IndicatorFormatError(f"unknown level {level!r}")
        return cls(ident, cast(Group, group), check_value(value), cast(Level, level), reason)


def plain(value: Value) -> Value:
    """`value` with every sequence a list and every mapping a dict (what JSON gives back)."""
    if isinstance(value, str) or value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, Mapping):
        return {key: plain(item) for key, item in value.items()}
    return [plain(item) for item in value]


def check_value(value: object, depth: int = 0) -> Value:
    """Return `value` if it is plain data of bounded depth, else raise `IndicatorFormatError`."""
    if depth > _MAX_VALUE_DEPTH:
        raise IndicatorFormatError("value nested too deeply")
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise IndicatorFormatError("value is not a finite number")
        return value
    if isinstance(value, list):
        return [check_value(item, depth + 1) for item in value]
    if isinstance(value, dict):
        checked: dict[str, Value] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise IndicatorFormatError("value keys must be strings")
            checked[key] = check_value(item, depth + 1)
        return checked
    raise IndicatorFormatError(f"value of type {type(value).__name__} is not plain data")
