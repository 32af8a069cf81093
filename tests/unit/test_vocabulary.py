"""One vocabulary (protocol/vocabulary.py): its users derive from it, or a test checks them."""

from __future__ import annotations

import re
from pathlib import Path
from typing import get_args

import master
from master.client.api import OUTCOME_EXIT
from protocol.events import PHASES
from protocol.messages import OUTCOMES
from protocol.vocabulary import (
    BEHAVIOUR_TEXT,
    OUTCOME_TEXT,
    VERDICT_TEXT,
    BehaviourClass,
    Outcome,
    Phase,
    Verdict,
    shown,
    values,
    vocabulary,
)

STYLE = (Path(master.__file__).parent / "http" / "static" / "style.css").read_text()


def test_words_are_their_wire_strings() -> None:
    """StrEnum members compare equal to the plain strings the wire, JSON and SQLite carry."""
    wire: str = Outcome.INCOMPLETE
    assert wire == "incomplete" and f"{Outcome.INFRA_ERROR}" == "infra_error"
    assert values(Outcome) == OUTCOMES and values(Phase) == PHASES


def test_every_word_has_its_meaning() -> None:
    """Outcomes, verdicts and behaviour classes each have a sentence (API, docs, tooltips)."""
    assert set(OUTCOME_TEXT) == set(Outcome)
    assert set(VERDICT_TEXT) == set(Verdict)
    assert set(BEHAVIOUR_TEXT) == set(BehaviourClass)
    assert list(vocabulary()["outcomes"]) == list(values(Outcome))  # type: ignore[call-overload]


def test_every_outcome_has_an_exit_code() -> None:
    """pyti tail / submit --follow know an exit code for every outcome (incomplete is 5)."""
    assert set(OUTCOME_EXIT) == set(values(Outcome))
    assert OUTCOME_EXIT[Outcome.INCOMPLETE] == 5


def test_the_page_has_a_badge_for_every_outcome_and_verdict() -> None:
    """The web page's JS cannot import Python: its stylesheet is checked against the enums."""
    classes = set(re.findall(r"\.((?:outcome|verdict)-[a-z_]+)", STYLE))
    assert {f"outcome-{o}" for o in Outcome} <= classes
    assert {f"verdict-{v}" for v in Verdict} <= classes


def test_rule_tables_use_behaviour_classes_of_the_vocabulary() -> None:
    """Every rule of the slave's tables has a class the master and the page know."""
    from slave.findings.profile import _RULE_KIND
    from slave.findings.rules import EVENT_RULES, RULES

    kinds = {r.kind for r in RULES} | {r.kind for r in EVENT_RULES} | set(_RULE_KIND.values())
    assert kinds <= set(values(BehaviourClass))


def test_slave_verdict_literal_matches_the_vocabulary() -> None:
    """The findings engine's Verdict type names exactly the vocabulary's verdicts."""
    from slave.findings.engine import Verdict as EngineVerdict

    assert get_args(EngineVerdict) == values(Verdict)


def test_lists_show_the_verdict_beside_a_non_harmful_outcome() -> None:
    """ "failed · suspicious"; clean or absent verdicts and harmful outcomes stand alone."""
    assert shown("failed", "suspicious") == "failed · suspicious"
    assert shown("passed", "clean") == "passed"
    assert shown("infra_error", None) == "infra_error"
    assert shown("harmful", "malicious") == "harmful"
    assert shown(None, None) == "-"
