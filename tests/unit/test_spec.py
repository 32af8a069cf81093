"""protocol/README.md (the spec) documents every message type and field in the code."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

import protocol
from protocol import results
from protocol.messages import REGISTRY

SPEC = (Path(protocol.__file__).parent / "README.md").read_text()


def _section(tag: str) -> str:
    match = re.search(rf"^### `{re.escape(tag)}`\n(.*?)(?=^### |\Z)", SPEC, re.M | re.S)
    assert match, f"message type {tag!r} has no '### `{tag}`' section in protocol/README.md"
    return match.group(1)


@pytest.mark.parametrize("tag", sorted(REGISTRY))
def test_every_message_type_and_field_is_in_the_spec(tag: str) -> None:
    """Each registered message has a spec section naming each of its fields."""
    section = _section(tag)
    for field in dataclasses.fields(REGISTRY[tag]):  # type: ignore[arg-type]
        assert f"`{field.name}:" in section or f"`{field.name}`" in section, (
            f"field {field.name!r} of {tag!r} is not documented in its spec section"
        )


@pytest.mark.parametrize("tag", sorted(REGISTRY))
def test_every_message_has_delivery_semantics(tag: str) -> None:
    """The delivery-semantics table has a row for every message type."""
    table = SPEC.split("## Delivery semantics", 1)[1]
    assert f"`{tag}`" in table, f"no delivery semantics for {tag!r}"


def test_spec_sections_name_only_real_messages() -> None:
    """Every message section in the spec exists in the code (no stale spec)."""
    documented = set(re.findall(r"^### `([a-z_]+)`", SPEC, re.M))
    assert documented == set(REGISTRY)


@pytest.mark.parametrize(
    "cls",
    [c for c in vars(results).values() if isinstance(c, type) and hasattr(c, "__pyti_record__")],
    ids=lambda c: c.__name__,
)
def test_every_result_record_field_is_in_the_spec(cls: type) -> None:
    """Each field of the typed result records is named in the spec's records section."""
    section = SPEC.split("Result and offer records", 1)[1].split("### Handshake", 1)[0]
    for field in dataclasses.fields(cls):
        wire = field.metadata.get("wire", field.name)
        assert f"`{wire}" in section or f"{wire}:" in section or f" {wire}," in section, (
            f"field {wire!r} of {cls.__name__} is not documented in protocol/README.md"
        )
