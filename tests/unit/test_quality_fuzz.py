"""Hostile input never makes the quality engine raise (hypothesis-driven)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from slave.quality import runtime_indicators, static_indicators
from slave.quality.metadata import metadata_indicators, parse_metadata
from slave.quality.rst import check_rst
from tests.fakes.dists import make_project

_RST_ALPHABET = st.sampled_from([*"abc `*_:|<>[]#.-=~+\\\n ", "::", ".. ", "__ ", "``"])


@given(st.lists(_RST_ALPHABET, max_size=300).map("".join))
def test_rst_check_never_raises(text: str) -> None:
    """Any mix of rst punctuation gives a (bounded) list of problems, never an exception."""
    assert len(check_rst(text)) <= 10


@given(st.binary(max_size=2000))
def test_metadata_from_any_bytes_never_raises(raw: bytes) -> None:
    """Arbitrary METADATA bytes give the eight metadata indicators."""
    md = parse_metadata(b"Metadata-Version: 2.1\nName: x\nVersion: 1\n" + raw, "METADATA")
    assert len(metadata_indicators(md, [])) == 8


_JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=10,
)
_EVENT_KEYS = st.sampled_from(
    ["event", "phase", "status", "duration_s", "collected", "failed", "ruff", "line", "offline"]
)


@given(
    st.lists(
        st.dictionaries(
            _EVENT_KEYS,
            _JSONISH
            | st.sampled_from(
                ["tests_summary", "quality", "phase_finished", "output", "install", "tests"]
            ),
        ),
        max_size=8,
    )
)
def test_runtime_indicators_from_any_events_never_raise(events: list[dict[str, Any]]) -> None:
    """Arbitrary decoded guest events give the eight runtime indicators."""
    assert len(runtime_indicators(events)) == 8


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mangled_archives_never_raise(tmp_path: Path, data: st.DataObject) -> None:
    """Flipped, truncated or spliced bytes in a wheel or sdist give indicators, not exceptions."""
    # Deterministic archives: rebuilding per example gives the same bytes, cheaply.
    project = make_project(tmp_path / "src", "demo", "1.0")
    source = data.draw(st.sampled_from(project.files))
    blob = bytearray(source.read_bytes())
    for _ in range(data.draw(st.integers(1, 8))):
        pos = data.draw(st.integers(0, len(blob) - 1))
        blob[pos] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        blob = blob[: data.draw(st.integers(0, len(blob)))]
    mangled = tmp_path / source.name
    mangled.write_bytes(bytes(blob))
    indicators = static_indicators([mangled])
    assert {i.id for i in indicators} >= {"distribution.archives_readable", "code.annotations"}
