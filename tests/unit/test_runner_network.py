"""The runner's side of the sinkhole: its log lines become ``network`` events of their phase."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any

from guest_runner.emit import Emitter
from guest_runner.network import MAX_EVENTS_PER_PHASE, NetworkLog, clean


def events(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def append(log: Path, **record: Any) -> None:
    with log.open("a") as f:
        f.write(json.dumps({"mono": time.monotonic(), **record}) + "\n")


def test_lines_become_network_events_of_the_phase_they_happened_in(tmp_path: Path) -> None:
    """Boot-time lines are skipped; each later line goes out once, with its phase."""
    log = tmp_path / "events.jsonl"
    append(log, kind="dns", qname="boot.example")  # before the job: not the package's
    out = io.StringIO()
    net = NetworkLog(Emitter(out), tmp_path, manage=False)
    net.begin("install")
    append(log, kind="dns", qname="exfil.example.com", qtype="A", uid=1000, pid=42)
    net.end()
    time.sleep(0.01)  # the install window is longer than the 1 ms the late line goes back
    late = time.monotonic()
    net.begin("import")
    with log.open("a") as f:  # written late, stamped while install still ran
        f.write(json.dumps({"mono": late - 0.001, "kind": "tcp", "dst": "198.51.100.7:4444"}))
        f.write("\n" + json.dumps({"kind": "http", "method": "POST", "host": "h"}) + "\n")
        f.write('{"kind": "tcp", "partial')  # not complete yet: waits for its newline
    net.end()
    got = [(e["phase"], e["kind"]) for e in events(out)]
    assert got == [("install", "dns"), ("install", "tcp"), ("import", "http")]
    assert events(out)[0]["qname"] == "exfil.example.com" and events(out)[0]["pid"] == 42


def test_records_are_cleaned_and_capped(tmp_path: Path) -> None:
    """Unknown keys, wrong types and error lines are dropped; one phase emits at most the cap."""
    assert clean({"kind": "dns", "pid": True, "uid": "0", "qname": "x" * 5000, "evil": 1}) == {
        "kind": "dns",
        "qname": "x" * 1000,
    }
    out = io.StringIO()
    net = NetworkLog(Emitter(out), tmp_path, manage=False)
    net.begin("install")
    for n in range(MAX_EVENTS_PER_PHASE + 10):
        append(tmp_path / "events.jsonl", kind="dns", qname=f"n{n}.example")
    append(tmp_path / "events.jsonl", kind="error", error="x")
    net.end()
    kinds = [e["event"] for e in events(out)]
    assert kinds.count("network") == MAX_EVENTS_PER_PHASE
    assert kinds.count("log") == 1


def test_without_a_sinkhole_nothing_happens(tmp_path: Path) -> None:
    """On a host (no /run/pyti-sinkhole) the runner follows nothing and changes no route."""
    out = io.StringIO()
    net = NetworkLog(Emitter(out), tmp_path / "absent")
    net.begin("tests")
    net.end()
    assert not net.manage and net.mode == "sinkhole" and out.getvalue() == ""
