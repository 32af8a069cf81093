"""Packaging-metadata indicators, from a wheel's METADATA or an sdist's PKG-INFO.

The file is parsed with `email.parser` as data (it is the core-metadata format);
nothing from the package is imported or run.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from email.parser import Parser
from email.policy import compat32
from typing import Final

from slave.quality.indicator import Indicator, Level, Value
from slave.quality.naming import (
    DistName,
    canonical_version,
    filename_name,
    is_valid_name,
    normalise_name,
)
from slave.quality.rst import check_rst

METADATA_IDS: Final = (
    "metadata.required_fields",
    "metadata.requires_python",
    "metadata.license",
    "metadata.description",
    "metadata.project_urls",
    "metadata.version",
    "metadata.name",
    "metadata.classifiers",
)

# Top-level groups of https://pypi.org/classifiers/ ("Private" is valid but PyPI
# refuses uploads with it on purpose; it is reported separately).
CLASSIFIER_GROUPS: Final = frozenset(
    {
        "Development Status",
        "Environment",
        "Framework",
        "Intended Audience",
        "License",
        "Natural Language",
        "Operating System",
        "Programming Language",
        "Topic",
        "Typing",
    }
)
_MARKDOWN_VARIANTS: Final = frozenset({"gfm", "commonmark"})
_CONTENT_TYPES: Final = frozenset({"text/plain", "text/x-rst", "text/markdown"})
_SPECIFIER_RE: Final = re.compile(r"^\s*(~=|===|==|!=|<=|>=|<|>)\s*([^\s,;]+)\s*$")
_REQUIREMENT_NAME_RE: Final = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
_EXTRA_MARKER_RE: Final = re.compile(r"""\bextra\s*==""")
# Dependencies beyond this many make an install slow and fragile.
MAX_DEPENDENCIES: Final = 25


@dataclass(frozen=True, slots=True)
class Metadata:
    """Parsed core metadata: repeated headers in file order and the body."""

    origin: str
    headers: tuple[tuple[str, str], ...]
    body: str

    def get(self, field: str) -> str | None:
        """First value of `field` (case-insensitive), or None."""
        values = self.get_all(field)
        return values[0] if values else None

    def get_all(self, field: str) -> list[str]:
        """Every value of `field`, in file order."""
        wanted = field.lower()
        return [value for name, value in self.headers if name.lower() == wanted]

    @property
    def description(self) -> str | None:
        """The long description: the message body (Metadata 2.1+) or the header."""
        if self.body.strip():
            return self.body
        header = self.get("Description")
        if header is None or not header.strip():
            return None
        return _unfold_description(header)


def parse_metadata(raw: bytes, origin: str) -> Metadata:
    """Parse METADATA/PKG-INFO bytes; malformed input gives fewer fields, never an error."""
    text = raw.decode("utf-8", errors="replace")
    message = Parser(policy=compat32).parsestr(text)
    headers = tuple((name, str(value).strip()) for name, value in message.items())
    payload = message.get_payload()
    body = payload if isinstance(payload, str) else ""
    return Metadata(origin=origin, headers=headers, body=body)


def _unfold_description(value: str) -> str:
    # setuptools folds Description with "        " or "       |" on continuation lines.
    lines = value.splitlines()
    out = lines[:1]
    for line in lines[1:]:
        if line.startswith(("       |", "        ")):
            out.append(line[8:])
        else:
            out.append(line.lstrip())
    return "\n".join(out)


def _indicator(ident: str, value: Value, level: Level, reason: str) -> Indicator:
    return Indicator(f"metadata.{ident}", "metadata", value, level, reason)


def metadata_indicators(md: Metadata | None, names: Sequence[DistName]) -> list[Indicator]:
    """Every `metadata.*` indicator; all `fail` when no metadata could be read."""
    if md is None:
        return [
            Indicator(ident, "metadata", None, "fail", "no readable METADATA or PKG-INFO")
            for ident in METADATA_IDS
        ]
    return [
        required_fields(md),
        requires_python(md),
        license_info(md),
        description(md),
        project_urls(md),
        version(md, names),
        name(md, names),
        classifiers(md),
    ]


def required_fields(md: Metadata) -> Indicator:
    """Metadata-Version, Name and Version are present and non-empty."""
    missing = [f for f in ("Metadata-Version", "Name", "Version") if not md.get(f)]
    if missing:
        return _indicator(
            "required_fields", missing, "fail", f"{md.origin} lacks {', '.join(missing)}"
        )
    return _indicator(
        "required_fields",
        [],
        "pass",
        f"{md.origin}: Metadata-Version {md.get('Metadata-Version')}, Name and Version present",
    )


def is_valid_specifier_set(text: str) -> bool:
    """A PEP 440 specifier set such as `>=3.8, !=3.9.*`."""
    clauses = text.split(",")
    for clause in clauses:
        match = _SPECIFIER_RE.match(clause)
        if match is None:
            return False
        op, ver = match.groups()
        if op == "===":
            continue
        if ver.endswith(".*"):
            if op not in ("==", "!="):
                return False
            ver = ver[:-2]
        if canonical_version(ver) is None:
            return False
    return True


def requires_python(md: Metadata) -> Indicator:
    """Requires-Python is declared and is a valid specifier set."""
    value = md.get("Requires-Python")
    if not value:
        return _indicator(
            "requires_python", None, "warn", "no Requires-Python: pip cannot skip this release"
        )
    if not is_valid_specifier_set(value):
        return _indicator(
            "requires_python", value, "fail", f"Requires-Python {value!r} is not a specifier set"
        )
    return _indicator("requires_python", value, "pass", f"Requires-Python {value}")


def license_info(md: Metadata) -> Indicator:
    """A license expression or a license classifier (free text alone is only a warning)."""
    expression = md.get("License-Expression")
    if expression:
        return _indicator("license", expression, "pass", f"License-Expression {expression}")
    license_classifiers = [c for c in md.get_all("Classifier") if c.startswith("License ::")]
    if license_classifiers:
        return _indicator(
            "license", license_classifiers[0], "pass", f"classifier {license_classifiers[0]}"
        )
    text = md.get("License")
    if text and text.strip().upper() not in ("UNKNOWN", ""):
        first = text.strip().splitlines()[0][:60]
        return _indicator(
            "license", first, "warn", f"free-text License only ({first!r}), no expression"
        )
    return _indicator("license", None, "fail", "no License-Expression, classifier or License")


def description(md: Metadata) -> Indicator:
    """A long description is present and would render on PyPI."""
    text = md.get("Description-Content-Type") or ""
    content_type, _, params = text.partition(";")
    content_type = content_type.strip().lower()
    body = md.description
    if body is None:
        return _indicator("description", None, "warn", "no long description")
    value: dict[str, Value] = {"content_type": content_type or None, "length": len(body)}
    if content_type and content_type not in _CONTENT_TYPES:
        return _indicator(
            "description", value, "fail", f"unknown Description-Content-Type {content_type!r}"
        )
    if content_type == "text/markdown":
        variant = re.search(r"variant\s*=\s*([\w-]+)", params, re.IGNORECASE)
        if variant and variant.group(1).lower() not in _MARKDOWN_VARIANTS:
            return _indicator(
                "description", value, "fail", f"unknown markdown variant {variant.group(1)!r}"
            )
        return _indicator("description", value, "pass", "markdown description, type declared")
    if content_type == "text/plain":
        return _indicator("description", value, "pass", "plain-text description")
    problems = check_rst(body)
    if problems:
        return _indicator(
            "description",
            value | {"problems": problems},
            "fail",
            f"rst description would not render: {problems[0]}",
        )
    if not content_type:
        return _indicator(
            "description",
            value,
            "warn",
            "no Description-Content-Type (PyPI assumes rst; structural check passed)",
        )
    return _indicator("description", value, "pass", "rst description passes structural check")


def project_urls(md: Metadata) -> Indicator:
    """Project-URL entries (or the legacy Home-page) with http(s) URLs."""
    urls: dict[str, Value] = {}
    for entry in md.get_all("Project-URL"):
        label, _, url = entry.partition(",")
        urls[label.strip()[:32]] = url.strip()
    home = md.get("Home-page")
    if home and home.upper() != "UNKNOWN":
        urls.setdefault("Home-page", home)
    if not urls:
        return _indicator("project_urls", {}, "warn", "no Project-URL or Home-page")
    bad = [
        label
        for label, url in urls.items()
        if not isinstance(url, str) or not re.match(r"^https?://\S+$", url)
    ]
    if bad:
        return _indicator("project_urls", urls, "warn", f"not an http(s) URL: {', '.join(bad)}")
    return _indicator("project_urls", urls, "pass", f"{len(urls)} project URL(s)")


def version(md: Metadata, names: Sequence[DistName]) -> Indicator:
    """Version is PEP 440, normalised, and the file names carry the same version."""
    raw = md.get("Version") or ""
    canonical = canonical_version(raw)
    if canonical is None:
        return _indicator("version", raw, "fail", f"version {raw!r} is not PEP 440")
    mismatched = [
        n.filename
        for n in names
        if n.version is not None and canonical_version(n.version) != canonical
    ]
    if mismatched:
        return _indicator(
            "version", raw, "fail", f"file version differs from {raw}: {', '.join(mismatched)}"
        )
    if canonical != raw:
        return _indicator(
            "version", raw, "warn", f"version {raw!r} is not normalised ({canonical})"
        )
    return _indicator("version", raw, "pass", f"version {raw} is PEP 440 and normalised")


def name(md: Metadata, names: Sequence[DistName]) -> Indicator:
    """Name is valid; file names match it under PEP 503 and use the escaped spelling."""
    raw = md.get("Name") or ""
    if not is_valid_name(raw):
        return _indicator("name", raw, "fail", f"name {raw!r} is not a valid project name")
    wanted = normalise_name(raw)
    mismatched = [
        n.filename for n in names if n.name is not None and normalise_name(n.name) != wanted
    ]
    if mismatched:
        return _indicator(
            "name", raw, "fail", f"file name differs from {raw}: {', '.join(mismatched)}"
        )
    legacy = [n.filename for n in names if n.name is not None and n.name != filename_name(raw)]
    if legacy:
        return _indicator(
            "name",
            raw,
            "warn",
            f"file name not spelled {filename_name(raw)!r}: {', '.join(legacy)}",
        )
    return _indicator("name", raw, "pass", f"{raw} (normalised {wanted}) matches file names")


def classifiers(md: Metadata) -> Indicator:
    """Classifiers are well formed and under a known top-level group."""
    values = md.get_all("Classifier")
    if not values:
        return _indicator("classifiers", 0, "warn", "no classifiers")
    bad: list[str] = []
    private: list[str] = []
    for classifier in values:
        parts = classifier.split(" :: ")
        if any(not p or p != p.strip() or "::" in p for p in parts) or len(parts) < 2:
            bad.append(classifier)
        elif parts[0] == "Private":
            private.append(classifier)
        elif parts[0] not in CLASSIFIER_GROUPS:
            bad.append(classifier)
    if bad:
        return _indicator("classifiers", len(values), "fail", f"invalid classifier {bad[0][:80]!r}")
    if private:
        return _indicator(
            "classifiers", len(values), "fail", f"private classifier {private[0][:80]!r}"
        )
    return _indicator("classifiers", len(values), "pass", f"{len(values)} valid classifiers")


def dependency_count(md: Metadata | None) -> Indicator:
    """Distinct unconditional (non-extra) Requires-Dist entries."""
    if md is None:
        return Indicator(
            "install.dependencies", "install", None, "warn", "no metadata to count dependencies"
        )
    if any(field.lower() == "requires-dist" for field in md.get_all("Dynamic")):
        # Metadata 2.2: the sdist's build decides them, so PKG-INFO cannot be counted.
        return Indicator(
            "install.dependencies", "install", None, "warn", "Requires-Dist is Dynamic in PKG-INFO"
        )
    deps: set[str] = set()
    for requirement in md.get_all("Requires-Dist"):
        requirement_name = _REQUIREMENT_NAME_RE.match(requirement)
        _, _, marker = requirement.partition(";")
        if requirement_name and not _EXTRA_MARKER_RE.search(marker):
            deps.add(normalise_name(requirement_name.group(1)))
    count = len(deps)
    if count > MAX_DEPENDENCIES:
        return Indicator(
            "install.dependencies",
            "install",
            count,
            "warn",
            f"{count} dependencies (> {MAX_DEPENDENCIES})",
        )
    return Indicator(
        "install.dependencies", "install", count, "pass", f"{count} runtime dependencies"
    )
