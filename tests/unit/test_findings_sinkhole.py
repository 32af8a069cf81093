"""The sinkhole's ``network`` events as findings: targets, severities by phase, the verdict."""

from __future__ import annotations

import json
from typing import Any

import pytest

from slave.findings import Analyser, Context, Finding, verdict

V = "/home/tester/venv"
SITE = f"{V}/lib/python3.11/site-packages"
BACKEND = (
    f'100 execve("{V}/bin/python", ["{V}/bin/python", "{SITE}/pip/_vendor/pyproject_hooks/'
    '_in_process/_in_process.py", "build_wheel", "/tmp/x"], 0x1 /* 9 vars */) = 0'
)
DNS = {"kind": "dns", "qname": "Exfil.Example.com", "qtype": "A", "answer": "198.18.3.4"}
TCP_NAMED = {"kind": "tcp", "dst": "198.18.3.4:80", "qname": "exfil.example.com"}
TCP_IP = {"kind": "tcp", "dst": "198.51.100.7:4444"}
HTTP = {
    "kind": "http",
    "dst": "198.18.3.4:80",
    "qname": "exfil.example.com",
    "method": "POST",
    "host": "exfil.example.com",
    "path": "/upload?id=7",
    "body_size": 5000,
    "head": "POST /upload?id=7 HTTP/1.1\\r\\n",
}
TLS = {"kind": "tls", "dst": "198.18.3.4:443", "sni": "c2.example"}
DATA = {"kind": "data", "dst": "198.51.100.7:4444", "size": 11, "head": "stolen"}


def network(phase: str, **fields: Any) -> dict[str, Any]:
    return {"event": "network", "phase": phase, **fields}


def findings(phase: str, *records: dict[str, Any]) -> list[Finding]:
    analyser = Analyser(Context())
    found: list[Finding] = []
    for record in records:
        found += analyser.feed_event(network(phase, **record))
    return found


@pytest.mark.parametrize(
    ("record", "rule", "target"),
    [
        (DNS, "net.sinkhole_dns", "exfil.example.com"),
        (TCP_NAMED, "net.sinkhole_connect", "exfil.example.com:80"),
        (TCP_IP, "net.sinkhole_connect", "198.51.100.7:4444"),
        (HTTP, "net.sinkhole_http", "exfil.example.com/upload"),
        (TLS, "net.sinkhole_tls", "c2.example:443"),
        (DATA, "net.sinkhole_data", "198.51.100.7:4444"),
    ],
)
def test_each_kind_is_a_finding_with_its_target(
    record: dict[str, Any], rule: str, target: str
) -> None:
    """Names rather than sinkhole addresses; HTTP by host and path (query left to evidence)."""
    (found,) = findings("install", record)
    assert (found.rule, found.target, found.severity) == (rule, target, "high")
    evidence = json.loads(found.evidence)
    assert evidence["kind"] == record["kind"]
    if record is HTTP:
        assert (evidence["method"], evidence["body_size"]) == ("POST", 5000)
        assert evidence["path"] == "/upload?id=7"


def test_tests_phase_is_low_and_a_healthy_suite_stays_clean() -> None:
    """A test suite's lookups and connects are low: its release's verdict stays clean."""
    found = findings("tests", DNS, {**DNS, "qtype": "AAAA"}, TCP_NAMED, HTTP)
    assert {f.severity for f in found} == {"low"}
    assert len([f for f in found if f.rule == "net.sinkhole_dns"]) == 1  # A and AAAA: one name
    assert verdict(found) == "clean"


@pytest.mark.parametrize("phase", ["install", "import"])
def test_early_network_is_malicious(phase: str) -> None:
    """A lookup or a request at install or import is a network threat: malicious (row 2)."""
    assert verdict(findings(phase, DNS)) == "malicious"
    assert verdict(findings(phase, HTTP)) == "malicious"


def test_process_is_the_traced_label_of_the_pid() -> None:
    """The event's pid gets the trace's label (build-backend), else the guest's comm."""
    analyser = Analyser(Context())
    analyser.feed("install", BACKEND)
    (labelled,) = analyser.feed_event(network("install", **TCP_IP, pid=100, process="python3"))
    assert (labelled.pid, labelled.process) == (100, "build-backend")
    (unknown,) = analyser.feed_event(network("install", **DNS, pid=7, process="curl"))
    assert (unknown.pid, unknown.process) == (7, "curl")
    analyser.feed("install", "100 +++ exited with 0 +++")
    late_dns = {**DNS, "qname": "late.example"}
    (late,) = analyser.feed_event(network("install", **late_dns, pid=100))  # after its exit
    assert late.process == "build-backend"
    (anon,) = analyser.feed_event(network("install", **DATA))
    assert (anon.pid, anon.process) == (None, "sinkhole")


def test_loopback_dropped_and_malformed_records_are_no_findings() -> None:
    """Direct loopback connections, overflow markers and missing fields give nothing."""
    assert findings("install", {"kind": "tcp", "dst": "127.0.0.1:1"}) == []
    assert findings("install", {"kind": "tcp", "dropped": True}) == []
    assert findings("install", {"kind": "dns"}, {"kind": "http"}, {"kind": "weird"}) == []
