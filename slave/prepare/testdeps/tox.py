"""tox settings: the ``[testenv]`` section of an ini text and its multi-line values."""

from __future__ import annotations

import configparser
import re

# ``py311,cov: dep`` — a tox factor condition in front of a line.
_TOX_FACTOR = re.compile(r"^[A-Za-z0-9_.{},!-]+:\s+(.*)$")
_TOX_SECTION_REF = re.compile(r"\{\[([^\]]+)\]([A-Za-z0-9_-]+)\}")


def tox_section(text: str) -> dict[str, str] | None:
    """``[testenv]`` of tox ini ``text`` with ``{[section]key}`` references resolved."""
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read_string(text)
    except configparser.Error:
        return None
    if not parser.has_section("testenv"):
        return None
    section = dict(parser.items("testenv"))

    def resolve(value: str) -> str:
        def ref(match: re.Match[str]) -> str:
            sect, key = match.group(1), match.group(2)
            if sect == "testenv" or not parser.has_option(sect, key):
                return ""
            return _TOX_SECTION_REF.sub("", parser.get(sect, key))

        return _TOX_SECTION_REF.sub(ref, value)

    return {k: resolve(v) for k, v in section.items()}


def tox_values(value: str) -> list[str]:
    """Lines of a tox setting, factor-conditional ones (``py311: x``) left out."""
    out: list[str] = []
    for raw in value.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or _TOX_FACTOR.match(line):
            continue
        if "{" in line.replace("{toxinidir}", ""):
            continue  # a substitution we do not evaluate
        out.append(line)
    return out


def split_list(values: list[str]) -> list[str]:
    return [part.strip() for v in values for part in v.split(",") if part.strip()]
