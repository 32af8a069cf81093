"""Behaviour profiles: what a release does, comparable with what its previous release did.

A profile is a set of ``(phase, behaviour class, target)`` built from findings;
the master keeps one per tested release (as JSON: `profile_to_json`, read back
with `profile_from_json`, which trusts nothing) and shows `diff` against the
previous release of the same project::

    diff(profile_from_json(stored_1_4_1), profile(findings_1_4_2))
    # [BehaviourChange("started", "install", "socket", ("AF_INET",))]
    # str(): "started opening sockets at install time (AF_INET)"
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from protocol.vocabulary import BEHAVIOUR_TEXT, BehaviourClass
from slave.findings.model import Finding
from slave.findings.rules import EVENT_RULES, RULES
from slave.findings.static_rules import STATIC_KINDS

#: Entries kept when a profile is read back from JSON (a profile is small: deduped findings).
MAX_ENTRIES = 2000
_MAX_FIELD = 500

ProfileEntry = tuple[str, str, str]  # (phase, behaviour class, target)
_RULE_KIND: dict[str, str] = {r.id: r.kind for r in RULES}
_RULE_KIND |= {r.id: r.kind for r in EVENT_RULES}
_RULE_KIND |= {"cred.token": "credentials", "cred.token_name": "credentials"}
_RULE_KIND |= STATIC_KINDS
#: How a class reads in a sentence: the one table, ``protocol.vocabulary.BEHAVIOUR_TEXT``.
KIND_TEXT: dict[str, str] = {str(k): v for k, v in BEHAVIOUR_TEXT.items()}


_CLASSES = frozenset(str(c) for c in BehaviourClass)


def rule_kind(rule: str) -> str | None:
    """The behaviour class of a rule id (the rule tables' ``kind``), None if it has none.

    A test checks that every rule of every table has a class of the vocabulary.
    """
    kind = _RULE_KIND.get(rule)
    return kind if kind in _CLASSES else None


def profile(findings: Iterable[Finding]) -> frozenset[ProfileEntry]:
    """What a release does, as (phase, behaviour class, target), comparable across releases."""
    entries = ((f.phase, rule_kind(f.rule), f.target) for f in findings)
    return frozenset((phase, kind, target) for phase, kind, target in entries if kind is not None)


ChangeKind = Literal["started", "stopped", "new targets", "gone targets"]


@dataclass(frozen=True, slots=True)
class BehaviourChange:
    """A behaviour class a release started (stopped) showing in a phase, or new targets of one.

    ``str()`` reads like "started opening sockets at install time (AF_INET)".
    """

    change: ChangeKind
    phase: str
    kind: str
    targets: tuple[str, ...]

    def __str__(self) -> str:
        what = KIND_TEXT.get(self.kind, self.kind)
        shown = ", ".join(self.targets[:5]) + (", ..." if len(self.targets) > 5 else "")
        if self.change in ("started", "stopped"):
            return f"{self.change} {what} at {self.phase} time ({shown})"
        return f"{what} at {self.phase} time: {self.change} ({shown})"


def diff(
    previous: Iterable[ProfileEntry], current: Iterable[ProfileEntry]
) -> list[BehaviourChange]:
    """What is new (and what went away) from one release's profile to the next."""
    before, after = set(previous), set(current)
    classes_before = {(phase, kind) for phase, kind, _ in before}
    classes_after = {(phase, kind) for phase, kind, _ in after}
    changes: list[BehaviourChange] = []
    for entries, known, whole, part in (
        (after - before, classes_before, "started", "new targets"),
        (before - after, classes_after, "stopped", "gone targets"),
    ):
        groups: dict[tuple[str, str], list[str]] = {}
        for phase, kind, target in sorted(entries):
            groups.setdefault((phase, kind), []).append(target)
        for (phase, kind), targets in groups.items():
            change: ChangeKind = part if (phase, kind) in known else whole  # type: ignore[assignment]
            changes.append(BehaviourChange(change, phase, kind, tuple(targets)))
    return changes


def profile_to_json(entries: Iterable[ProfileEntry]) -> list[list[str]]:
    """A profile as JSON-able data: sorted ``[phase, class, target]`` lists."""
    return [list(entry) for entry in sorted(set(entries))]


def profile_from_json(data: object) -> frozenset[ProfileEntry]:
    """A profile back from `profile_to_json` output; malformed entries are skipped, never raised.

    The data came from a guest's run through a slave: only lists of three
    strings count, each cut to 500 characters, at most ``MAX_ENTRIES`` of them.
    """
    if not isinstance(data, list | tuple):  # tuples: arrays as the protocol decodes them
        return frozenset()
    entries: set[ProfileEntry] = set()
    for item in data[:MAX_ENTRIES]:
        if (
            isinstance(item, list | tuple)
            and len(item) == 3
            and all(isinstance(part, str) for part in item)
        ):
            phase, kind, target = (part[:_MAX_FIELD] for part in item)
            entries.add((phase, kind, target))
    return frozenset(entries)
