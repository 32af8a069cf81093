"""Turn what the guest says into event fields that are safe to store and show.

Everything the guest runner prints is untrusted: the package under test runs in
the same VM and may have found a way to influence it. Before a guest line
becomes a protocol event it is bounded and cleaned here:

- control characters are stripped from every string (keys too), except tab and
  newline; a NUL or an ANSI escape never reaches a log or a terminal;
- strings are cut at ``max_str`` characters (the cut is marked with ``…`` and
  recorded in ``truncated``);
- containers are cut at ``max_items`` entries and ``max_depth`` levels; deeper
  values become a short string;
- the whole field map is kept under ``max_total`` characters of text, by
  dropping the values that come last;
- only msgpack-native values survive (``str``, ``int``, ``float``, ``bool``,
  ``None``, lists, maps with string keys); anything else becomes its ``repr``.

Keys reserved by the event schema (``seq``, ``ts``, ``level``, ``event``,
``phase`` ...) are renamed with a ``guest_`` prefix so the guest cannot forge
them.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from protocol.events import LEVELS

#: Control characters except ``\t`` and ``\n``; also DEL and the C1 range.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
#: Names the event schema gives a meaning to: the guest may not set them as fields.
RESERVED = frozenset({"seq", "ts", "level", "event", "phase", "fields", "timestamp", "log_level"})
_EVENT_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_ELLIPSIS = "…"
#: Largest magnitude of an int that is kept as an int (msgpack's range).
_INT_LIMIT = 1 << 63


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds of one sanitised event."""

    max_str: int = 8192
    max_items: int = 200
    max_depth: int = 6
    max_total: int = 32768
    max_key: int = 64


@dataclass(slots=True)
class Cleaned:
    """A sanitised guest line: event name, level, phase and fields."""

    event: str
    level: str
    phase: str | None
    fields: dict[str, Any]
    truncated: bool


def clean_text(text: str, limit: int) -> tuple[str, bool]:
    """``text`` without control characters, cut at ``limit``; and whether it was cut."""
    text = _CONTROL.sub("", text)
    if len(text) <= limit:
        return text, False
    return text[: max(0, limit - 1)] + _ELLIPSIS, True


class _Budget:
    """Characters of text still allowed in one event's fields."""

    __slots__ = ("left", "truncated")

    def __init__(self, total: int) -> None:
        self.left = total
        self.truncated = False


def _value(value: Any, depth: int, limits: Limits, budget: _Budget) -> Any:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        if -_INT_LIMIT <= value < _INT_LIMIT:
            return value
        budget.truncated = True
        return str(value)[:64]
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        text, cut = clean_text(value, min(limits.max_str, max(budget.left, 0)))
        budget.left -= len(text)
        budget.truncated |= cut
        return text
    if depth >= limits.max_depth:
        budget.truncated = True
        return f"<{type(value).__name__} nested too deep>"
    if isinstance(value, dict):
        return _mapping(value, depth + 1, limits, budget)
    if isinstance(value, list | tuple):
        out: list[Any] = []
        for i, item in enumerate(value):
            if i >= limits.max_items or budget.left <= 0:
                budget.truncated = True
                break
            out.append(_value(item, depth + 1, limits, budget))
        return out
    return _value(repr(value), depth, limits, budget)


def _key(key: Any, limits: Limits) -> str:
    text, _ = clean_text(str(key), limits.max_key)
    return text or "_"


def _mapping(value: dict[Any, Any], depth: int, limits: Limits, budget: _Budget) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for i, (k, v) in enumerate(value.items()):
        if i >= limits.max_items or budget.left <= 0:
            budget.truncated = True
            break
        key = _key(k, limits)
        budget.left -= len(key)
        out[key] = _value(v, depth, limits, budget)
    return out


def clean_fields(raw: dict[Any, Any], limits: Limits = Limits()) -> tuple[dict[str, Any], bool]:
    """Sanitised copy of ``raw``, reserved keys renamed; and whether anything was cut."""
    budget = _Budget(limits.max_total)
    out: dict[str, Any] = {}
    for i, (k, v) in enumerate(raw.items()):
        if i >= limits.max_items or budget.left <= 0:
            budget.truncated = True
            break
        key = _key(k, limits)
        if key in RESERVED:
            key = f"guest_{key}"
        budget.left -= len(key)
        out[key] = _value(v, 1, limits, budget)
    return out, budget.truncated


def clean_line(line: str, *, limits: Limits = Limits()) -> Cleaned:
    """One line of guest runner output as a sanitised event.

    A JSON object with a valid ``event`` name keeps its name, ``phase`` and
    ``level`` (unknown levels become ``info``); anything else (not JSON, not an
    object, a bad name) becomes an ``output`` event carrying the line as text.
    """
    try:
        obj = json.loads(line)
    except (ValueError, RecursionError):
        obj = None
    if not isinstance(obj, dict) or not isinstance(obj.get("event"), str):
        text, cut = clean_text(line, limits.max_str)
        return Cleaned("output", "info", None, {"stream": "runner", "line": text}, cut)
    name = obj.pop("event")
    if not _EVENT_NAME.match(name):
        text, cut = clean_text(line, limits.max_str)
        return Cleaned("output", "info", None, {"stream": "runner", "line": text}, cut)
    level = obj.pop("level", "info")
    level = level if isinstance(level, str) and level in LEVELS else "info"
    phase = obj.pop("phase", None)
    phase = clean_text(phase, 32)[0] if isinstance(phase, str) else None
    fields, cut = clean_fields(obj, limits)
    return Cleaned(name, level, phase or None, fields, cut)
