"""The alert rules and the Grafana dashboard in docs/deploy/ are valid and use exported metrics.

``promtool`` (Debian's prometheus package, unpacked into the venv by
scripts/setup.sh) checks the rules and runs their unit tests
(``test_alerting_rules.yml``); every metric name in the rules and in the
dashboard's expressions must be one the code registers.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "docs" / "deploy" / "pyti-alerts.yml"
RULE_TESTS = Path(__file__).with_name("test_alerting_rules.yml")
DASHBOARD = ROOT / "docs" / "deploy" / "pyti-dashboard.json"
#: Alerts the issue asks for: no slave, queue age, infra_error rate, feed stale, disk low.
REQUIRED_ALERTS = {
    "PytiNoSlaveConnected",
    "PytiQueueStuck",
    "PytiInfraErrorRate",
    "PytiFeedStale",
    "PytiDiskLow",
}


def _promtool() -> str:
    beside = Path(sys.executable).parent / "promtool"
    tool = str(beside) if beside.is_file() else shutil.which("promtool")
    if tool is None:
        if os.environ.get("CI"):
            pytest.fail("promtool is missing: scripts/setup.sh unpacks it into the venv")
        pytest.skip("promtool is not installed here (scripts/setup.sh installs it)")
    return tool


def registered_metrics() -> set[str]:
    """Every series name the master can export (histograms with their three suffixes)."""
    sources = "\n".join(p.read_text("utf-8") for p in (ROOT / "master").rglob("*.py"))
    names: set[str] = set()
    for kind, name in re.findall(r"\.(counter|gauge|histogram)\(\s*\"([a-z_]+)\"", sources):
        base = "pyti_" + name
        names |= (
            {base + s for s in ("_bucket", "_sum", "_count")} if kind == "histogram" else {base}
        )
    return names


def metric_names(expr: str) -> set[str]:
    """The ``pyti_*`` series names an expression (or any text) mentions."""
    return set(re.findall(r"\bpyti_[a-z0-9_]+", expr))


def dashboard_exprs(node: Any) -> Iterator[str]:
    """Every ``expr`` anywhere in the dashboard JSON."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "expr":
                yield value
            else:
                yield from dashboard_exprs(value)
    elif isinstance(node, list):
        for item in node:
            yield from dashboard_exprs(item)


def test_promtool_accepts_the_rules() -> None:
    """`promtool check rules` finds the rule file valid."""
    done = subprocess.run(
        [_promtool(), "check", "rules", str(RULES)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_alerts_fire_on_the_series_they_are_for() -> None:
    """`promtool test rules`: each alert fires on bad series and stays quiet on healthy ones."""
    done = subprocess.run(
        [_promtool(), "test", "rules", RULE_TESTS.name],
        cwd=RULE_TESTS.parent,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_rules_have_the_required_alerts_on_exported_metrics() -> None:
    """The five alerts exist, and every pyti_ name in the rules file is a registered metric."""
    text = RULES.read_text("utf-8")
    assert set(re.findall(r"^\s+- alert: (\w+)$", text, re.M)) >= REQUIRED_ALERTS
    exprs = re.findall(r"^\s+expr: (.+)$", text, re.M)
    assert exprs and all(metric_names(e) or e.strip() == "|" for e in exprs)
    unknown = metric_names(text) - registered_metrics()
    assert not unknown, f"not exported by the master: {sorted(unknown)}"


def test_dashboard_loads_and_queries_exported_metrics() -> None:
    """The dashboard is Grafana JSON whose every panel query names only registered metrics."""
    dashboard = json.loads(DASHBOARD.read_text("utf-8"))
    assert dashboard["uid"] and dashboard["title"] and dashboard["schemaVersion"] >= 30
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)) >= 10
    for panel in dashboard["panels"]:
        assert panel["title"] and panel["targets"], panel
        assert panel["datasource"]["uid"] == "${datasource}"
    exprs = list(dashboard_exprs(dashboard))
    assert all(metric_names(e) for e in exprs)
    used = set().union(*map(metric_names, exprs))
    assert not used - registered_metrics(), sorted(used - registered_metrics())
    # What the alerts watch is on the dashboard too.
    assert {"pyti_slaves_connected", "pyti_queue_oldest_age_seconds", "pyti_job_outcomes_total",
            "pyti_feed_lag_seconds", "pyti_data_dir_free_bytes"} <= used  # fmt: skip


def test_metric_name_check_catches_a_typo() -> None:
    """A misspelt metric in an expression is reported (the check is not vacuous)."""
    assert metric_names("rate(pyti_job_outcome_total[1h])") - registered_metrics() == {
        "pyti_job_outcome_total"
    }
