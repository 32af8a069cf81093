"""Guest lines become bounded, clean events; the guest cannot forge event attributes."""

from __future__ import annotations

import json

import msgpack

from slave.sanitize import Limits, clean_fields, clean_line, clean_text


def test_runner_json_line_keeps_name_phase_level_and_fields() -> None:
    """A well-formed runner line keeps its event name, phase, level and fields."""
    line = json.dumps({"event": "phase_finished", "phase": "install", "level": "warning",
                       "status": "passed", "duration_s": 1.5, "exit_code": 0})  # fmt: skip
    c = clean_line(line)
    assert (c.event, c.phase, c.level) == ("phase_finished", "install", "warning")
    assert c.fields == {"status": "passed", "duration_s": 1.5, "exit_code": 0}
    assert not c.truncated


def test_non_json_and_bad_names_become_output_events() -> None:
    """Plain text, JSON non-objects and invalid event names are carried as output text."""
    for line in ("Traceback (most recent call last):", "[1, 2]", '{"event": "Bad Name!"}'):
        c = clean_line(line)
        assert c.event == "output" and c.fields["line"] == line and c.phase is None


def test_control_characters_are_stripped_everywhere() -> None:
    """NUL, escape sequences and other control characters vanish from values and keys."""
    line = json.dumps({"event": "output", "phase": "tests", "line": "red\x1b[31m\x00text\tok\n",
                       "k\x07ey": "v\x9b"})  # fmt: skip
    c = clean_line(line)
    assert c.fields == {"line": "red[31mtext\tok\n", "key": "v"}
    assert clean_text("a\x7fb", 10) == ("ab", False)


def test_reserved_keys_cannot_be_forged() -> None:
    """seq, ts and the like in a guest line are renamed, never taken as event attributes."""
    c = clean_line(json.dumps({"event": "output", "seq": 1, "ts": 0, "fields": {}, "phase": "x"}))
    assert c.fields == {"guest_seq": 1, "guest_ts": 0, "guest_fields": {}}
    assert c.phase == "x"


def test_unknown_level_becomes_info() -> None:
    """A level outside the schema's is replaced by info."""
    assert clean_line(json.dumps({"event": "log", "level": "panic"})).level == "info"


def test_long_strings_many_items_and_deep_nesting_are_cut_and_flagged() -> None:
    """Strings, containers, depth and total size are all bounded, and the cut is recorded."""
    limits = Limits(max_str=100, max_items=10, max_depth=3, max_total=1000)
    deep: object = "bottom"
    for _ in range(10):
        deep = [deep]
    fields, cut = clean_fields(
        {"s": "x" * 500, "many": list(range(50)), "deep": deep, "big": 2**80}, limits
    )
    assert cut
    assert len(fields["s"]) == 100 and fields["s"].endswith("…")
    assert fields["many"] == list(range(10))
    assert "nested too deep" in json.dumps(fields["deep"])
    assert fields["big"] == str(2**80)
    huge, cut = clean_fields({f"k{i}": "y" * 90 for i in range(100)}, limits)
    assert cut and sum(len(v) for v in huge.values()) <= 1100


def test_hostile_json_is_harmless() -> None:
    """Deeply nested JSON and non-finite floats come out as msgpack-native, bounded data."""
    nested = '{"event": "x", "v": ' + "[" * 5000 + "]" * 5000 + "}"
    c = clean_line(nested)
    assert c.event in ("x", "output")
    c2 = clean_line('{"event": "x", "f": NaN, "g": Infinity}')
    assert c2.fields == {"f": "nan", "g": "inf"}
    msgpack.packb(c.fields)
    msgpack.packb(c2.fields)
