"""Message encoding and validation."""

from __future__ import annotations

from typing import Any

import pytest

from protocol.errors import InvalidMessage
from protocol.framing import HEADER_SIZE, pack, unpack_body
from protocol.messages import REGISTRY, Heartbeat, JobOffer, JobResult, decode, encode
from protocol.results import JobSummary
from tests.unit.protocol_samples import SAMPLES


def test_samples_cover_every_message_type() -> None:
    """Every registered message type has a sample (so every type is round-tripped)."""
    assert set(SAMPLES) == set(REGISTRY)


@pytest.mark.parametrize("tag", sorted(SAMPLES))
def test_round_trip_through_a_frame(tag: str) -> None:
    """Each message survives encode → frame → decode unchanged."""
    msg = SAMPLES[tag]
    frame = pack(encode(msg))
    assert decode(unpack_body(frame[HEADER_SIZE:])) == msg


def _wire(tag: str) -> dict[str, Any]:
    return unpack_body(pack(encode(SAMPLES[tag]))[HEADER_SIZE:])


def test_unknown_tag_is_named() -> None:
    """An unknown type tag is an InvalidMessage that names the tag."""
    with pytest.raises(InvalidMessage, match="unknown message type 'launch_missiles'"):
        decode({"type": "launch_missiles"})


def test_missing_tag() -> None:
    """A map without a string type tag is rejected."""
    with pytest.raises(InvalidMessage, match="type"):
        decode({"job_id": 1})
    with pytest.raises(InvalidMessage, match="type"):
        decode({"type": 7})


def test_missing_field_is_named() -> None:
    """A missing required field is named, with the message type."""
    wire = _wire("job_accept")
    del wire["lease"]
    with pytest.raises(InvalidMessage, match=r"job_accept: missing field 'lease'") as info:
        decode(wire)
    assert info.value.msg_type == "job_accept"


def test_wrong_type_is_named() -> None:
    """A field of the wrong type is named with what it should have been."""
    wire = _wire("job_accept")
    wire["job_id"] = "1"
    with pytest.raises(InvalidMessage, match=r"'job_id' must be an integer, got str"):
        decode(wire)


def test_bool_is_not_an_integer() -> None:
    """True is not accepted where an integer is expected."""
    wire = _wire("job_accept")
    wire["lease"] = True
    with pytest.raises(InvalidMessage, match="lease"):
        decode(wire)


def test_nested_field_path_is_named() -> None:
    """An error inside a nested record names the path to it."""
    wire = _wire("auth")
    wire["capabilities"] = {"slots": 1, "accel": "tcg", "images": ({"name": 1},)}
    with pytest.raises(InvalidMessage, match=r"capabilities"):
        decode(wire)


def test_literal_values_are_enforced() -> None:
    """An outcome outside the documented set is rejected."""
    wire = _wire("job_result")
    wire["outcome"] = "probably_fine"
    with pytest.raises(InvalidMessage, match="outcome"):
        decode(wire)


def test_unknown_extra_fields_are_ignored() -> None:
    """Extra fields (from a newer peer) are ignored: forward compatibility."""
    wire = _wire("job_offer")
    wire["shiny_new_field"] = {"x": 1}
    msg = decode(wire)
    assert isinstance(msg, JobOffer)
    assert msg == SAMPLES["job_offer"]


def test_defaults_fill_missing_optional_fields() -> None:
    """Optional fields may be absent and get their defaults."""
    wire = _wire("job_result")
    del wire["phases"], wire["summary"]
    msg = decode(wire)
    assert isinstance(msg, JobResult)
    assert msg.phases == {} and msg.summary == JobSummary()


def test_float_field_accepts_an_integer() -> None:
    """A float field accepts an integer on the wire and yields a float."""
    wire = _wire("heartbeat")
    wire["ts"] = 5
    msg = decode(wire)
    assert isinstance(msg, Heartbeat)
    assert msg.ts == 5.0 and isinstance(msg.ts, float)
