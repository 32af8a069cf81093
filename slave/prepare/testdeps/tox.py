"""tox settings: the ``[testenv]`` section of an ini text and its multi-line values."""

from __future__ import annotations

import configparser
import re

# ``py311,cov: dep`` — a tox factor condition in front of a line.
_TOX_FACTOR = re.compile(r"^([A-Za-z0-9_.{},!-]+):\s+(.*)$")
#: Factors that name the environment that runs the tests (pyparsing: ``unit: pytest``,
#: ``extras = unit: diagrams``; ``doctest: sphinx`` is another environment's).
TEST_FACTORS = frozenset({"unit", "units", "test", "tests", "testing", "pytest"})
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
    """Lines of a tox setting. A factor-conditional one (``py311: x``) is kept, without its
    condition, only when the condition names a test factor (``unit: pytest``,
    ``unit-!py315t: matplotlib``, ``py{310,311}-tests: x``): the other conditions select
    environments (docs, lint, one Python) that are not the test run's."""
    out: list[str] = []
    for raw in value.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        conditional = _TOX_FACTOR.match(line)
        if conditional is not None:
            factors = re.split(r"[,{}-]", conditional.group(1))
            if not TEST_FACTORS.intersection(f for f in factors if not f.startswith("!")):
                continue
            line = conditional.group(2).strip()
        if "{" in line.replace("{toxinidir}", ""):
            continue  # a substitution we do not evaluate
        out.append(line)
    return out


def split_list(values: list[str]) -> list[str]:
    return [part.strip() for v in values for part in v.split(",") if part.strip()]
