"""``pyti job`` shows what changed since the previous release; ``pyti tail`` hides traces."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from master.context import MasterContext
from protocol.events import Event
from tests.integration.test_api_compare import SOCKET_AT_INSTALL
from tests.integration.test_api_harness import FakeProducer, queue_job
from tests.integration.test_client_commands import ctx, master_url, pypi, pyti

__all__ = ["ctx", "master_url", "pypi"]  # fixtures


def _quality(score: int, level: str) -> dict[str, Any]:
    indicator = {"id": "tests.present", "group": "tests", "value": 1, "level": level,
                 "reason": "\x1b[2Jno tests"}  # fmt: skip
    return {"format": 1, "score": score, "groups": {"tests": 0.0}, "indicators": [indicator]}


async def test_job_shows_quality_trend_and_new_behaviour(
    master_url: str, ctx: MasterContext, capsys: pytest.CaptureFixture[str]
) -> None:
    """pyti job prints the score change, regressed indicators and new behaviours, escaped."""
    first = await queue_job(ctx, "demo", "1.4.1")
    await (await FakeProducer.start(ctx, first)).finish("passed", quality=_quality(90, "pass"))
    second = await queue_job(ctx, "demo", "1.4.2")
    hostile = dict(SOCKET_AT_INSTALL, target="AF_INET\x1b]0;pwned\x07")
    await (await FakeProducer.start(ctx, second)).finish(
        "passed", findings=[hostile], quality=_quality(75, "fail")
    )
    assert await pyti("job", str(second.id), "--master", master_url) == 0
    out = capsys.readouterr().out
    assert f"trend     -15 since 1.4.1 (job {first.id}): 90 → 75" in out
    assert "regressed tests.present: pass → fail (\\x1b[2Jno tests)" in out
    assert f"behaviour compared with 1.4.1 (job {first.id}):" in out
    assert "new  1.4.2 started opening sockets at install time (AF_INET\\x1b]0;pwned\\x07)" in out
    assert "\x1b" not in out
    assert await pyti("job", str(first.id), "--master", master_url) == 0
    out = capsys.readouterr().out
    assert "behaviour no earlier release of this project tested" in out
    assert "trend     no earlier release of this project tested" in out


async def _traced_job(ctx: MasterContext) -> int:
    """A finished job whose log has an output line, two trace lines and a finding."""
    job = await queue_job(ctx)
    producer = await FakeProducer.start(ctx, job)
    now = time.time()
    events = [
        Event(seq=1, ts=now, level="info", event="output", phase="install",
              fields={"stream": "stdout", "line": "Building wheel"}),
        Event(seq=2, ts=now, level="debug", event="trace", phase="install",
              fields={"pid": 5, "line": "openat(AT_FDCWD, \"/etc/hosts\") = 3"}),
        Event(seq=3, ts=now, level="debug", event="trace", phase="install",
              fields={"pid": 5, "line": "connect(4, {sa_family=AF_INET, sin_addr=10.9.8.7}) = -1"}),
        Event(seq=4, ts=now, level="warning", event="finding", phase="install",
              fields=dict(SOCKET_AT_INSTALL)),
    ]  # fmt: skip
    producer.seq = 4
    await producer.send(events)
    await producer.finish("passed")
    return job.id


async def test_tail_hides_traces_unless_asked(
    master_url: str, ctx: MasterContext, capsys: pytest.CaptureFixture[str]
) -> None:
    """pyti tail skips trace events by default (and says how many); --trace prints them."""
    job_id = await _traced_job(ctx)
    assert await pyti("tail", str(job_id), "--master", master_url) == 0
    captured = capsys.readouterr()
    assert "Building wheel" in captured.out and "finding" in captured.out
    assert "/etc/hosts" not in captured.out and "10.9.8.7" not in captured.out
    assert "(2 trace lines not shown; --trace shows them)" in captured.err
    assert await pyti("tail", str(job_id), "--trace", "--master", master_url) == 0
    captured = capsys.readouterr()
    assert "/etc/hosts" in captured.out and "10.9.8.7" in captured.out
    assert "not shown" not in captured.err
    assert await pyti("tail", str(job_id), "--json", "--master", master_url) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
    assert [x.get("seq") for x in lines] == [1, 4, None]
