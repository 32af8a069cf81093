"""The job state machine (``master.store.transitions``) and job records (``master.jobs``)."""

from __future__ import annotations

import itertools

import pytest

from master.jobs import FINAL_STATES, LIVE_STATES, Job, JobState
from master.store.errors import InvalidTransition
from master.store.transitions import TRANSITIONS, check_transition

ALLOWED = {
    ("queued", "assigned"),
    ("queued", "cancelled"),
    ("queued", "finished"),  # untestable: no image's Python fits (master/images.py)
    ("assigned", "running"),
    ("assigned", "queued"),
    ("assigned", "cancelled"),
    ("running", "finished"),
    ("running", "queued"),
    ("running", "cancelled"),
    ("finished", "queued"),
    ("cancelled", "queued"),
}


def test_transition_table_is_exactly_the_documented_one() -> None:
    """Every pair of states is allowed iff it is in the documented lifecycle."""
    for a, b in itertools.product(JobState, JobState):
        legal = (a.value, b.value) in ALLOWED
        assert (b in TRANSITIONS[a]) is legal, (a, b)
        if legal:
            check_transition(1, a, b)
        else:
            with pytest.raises(InvalidTransition) as info:
                check_transition(1, a, b)
            assert info.value.current is a and info.value.wanted is b
            assert a.value in str(info.value) and b.value in str(info.value)


def test_cancel_is_allowed_from_every_live_state_only() -> None:
    """``cancelled`` is reachable from each live state and from no final one."""
    for s in LIVE_STATES:
        assert JobState.CANCELLED in TRANSITIONS[s]
        assert s.live
    for s in FINAL_STATES:
        assert JobState.CANCELLED not in TRANSITIONS[s]
        assert not s.live


def _job(**kw: object) -> Job:
    base: dict[str, object] = dict(
        id=7,
        project="demo",
        version="1.0",
        image="bookworm",
        state=JobState.RUNNING,
        outcome=None,
        priority=0,
        attempt=2,
        lease=5,
        slave="s1",
        source="api",
        callback_url=None,
        files=[{"filename": "demo-1.0.tar.gz", "path": "/srv/up/x"}],
        phases={},
        summary={},
        findings=[],
        isolation=None,
        error=None,
        created_at=1.0,
        assigned_at=None,
        started_at=None,
        finished_at=None,
        quarantined=False,
    )
    base.update(kw)
    return Job(**base)  # type: ignore[arg-type]


def test_job_repr_shows_state_and_to_dict_hides_local_paths() -> None:
    """A job's repr names its state; its JSON form never leaks master-local file paths."""
    job = _job()
    assert "running" in repr(job) and "lease=5" in repr(job)
    d = job.to_dict()
    assert d["state"] == "running"
    assert d["files"] == [{"filename": "demo-1.0.tar.gz"}]
