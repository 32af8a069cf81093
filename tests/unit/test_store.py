"""The job store on a real SQLite database: submit, claim, fencing, results, cancel, retry."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from master.jobs import FinishDisposition, JobRequest, JobState
from master.store import InvalidTransition, JobNotFound, StaleLease, Store
from protocol.messages import JobResult
from protocol.results import JobSummary, phases_from_json


def req(project: str = "demo", version: str = "1.0", **kw: Any) -> JobRequest:
    files = [
        {
            "filename": f"{project}-{version}.tar.gz",
            "sha256": "0" * 64,
            "size": 1,
            "packagetype": "sdist",
            "url": "http://127.0.0.1/x",
        }
    ]
    return JobRequest(
        project=project, version=version, files=files, image=kw.pop("image", "bookworm"), **kw
    )


NET = {"rule": "net", "severity": "high", "phase": "install", "pid": 7, "process": "python",
       "evidence": "connect", "target": "1.2.3.4:443", "source": "dynamic"}  # fmt: skip


def result(job_id: int, lease: int, outcome: str = "passed", **kw: Any) -> JobResult:
    return JobResult(
        job_id=job_id,
        lease=lease,
        outcome=outcome,  # type: ignore[arg-type]
        isolation="tcg",
        last_seq=0,
        phases=phases_from_json(kw.pop("phases", {})),
        summary=JobSummary.from_json(kw.pop("summary", {})),
        **kw,
    )


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = await Store.open(tmp_path / "pyti.sqlite3", retry_limit=1, quarantine_after=2)
    yield s
    await s.close()


async def test_submit_dedupes_by_release_and_image_unless_rerun(store: Store) -> None:
    """The same (project, version, image) is queued once; rerun or another image queues again."""
    first = await store.jobs.submit(req())
    again = await store.jobs.submit(req())
    assert first.created and not again.created and again.job.id == first.job.id
    other_image = await store.jobs.submit(req(image="trixie"))
    rerun = await store.jobs.submit(req(rerun=True))
    assert other_image.created and rerun.created
    assert len({first.job.id, other_image.job.id, rerun.job.id}) == 3
    assert first.job.state is JobState.QUEUED and first.job.attempt == 1


async def test_cancelled_job_does_not_block_a_new_submission(store: Store) -> None:
    """A cancelled job is not 'the existing job': submitting again queues a new one."""
    job = (await store.jobs.submit(req())).job
    await store.jobs.cancel(job.id, "changed my mind")
    again = await store.jobs.submit(req())
    assert again.created and again.job.id != job.id


async def test_claims_go_by_priority_then_fifo_and_match_images(store: Store) -> None:
    """claim_next takes the highest priority first, oldest first within it, only wanted images."""
    low1 = (await store.jobs.submit(req("a", priority=0))).job
    high1 = (await store.jobs.submit(req("b", priority=10))).job
    low2 = (await store.jobs.submit(req("c", priority=0))).job
    high2 = (await store.jobs.submit(req("d", priority=10))).job
    other = (await store.jobs.submit(req("e", priority=99, image="trixie"))).job
    order = []
    while (job := await store.jobs.claim_next("s1", ["bookworm"])) is not None:
        assert job.state is JobState.ASSIGNED and job.slave == "s1" and job.lease == 1
        order.append(job.id)
    assert order == [high1.id, high2.id, low1.id, low2.id]
    assert await store.jobs.claim_next("s1", []) is None
    got = await store.jobs.claim_next("s2", ["trixie", "bookworm"])
    assert got is not None and got.id == other.id


async def test_concurrent_claims_take_each_job_exactly_once(tmp_path: Path) -> None:
    """Many tasks on two store instances (two schedulers) claiming at once never share a job."""
    path = tmp_path / "db.sqlite3"
    a = await Store.open(path)
    b = await Store.open(path)
    try:
        for i in range(40):
            await a.jobs.submit(req(f"p{i}"))

        async def claimer(store: Store, name: str) -> list[int]:
            got = []
            while (job := await store.jobs.claim_next(name, ["bookworm"])) is not None:
                got.append(job.id)
            return got

        results = await asyncio.gather(
            *(claimer(a if i % 2 else b, f"slave{i}") for i in range(20))
        )
        claimed = [j for r in results for j in r]
        assert sorted(claimed) == sorted(set(claimed)) and len(claimed) == 40
        counts = await a.jobs.counts()
        assert counts["state"]["assigned"] == 40 and counts["state"]["queued"] == 0
    finally:
        await a.close()
        await b.close()


async def test_lease_fencing_rejects_an_older_claim(store: Store) -> None:
    """After a re-queue and a new claim, the old lease can neither start, log nor finish the job."""
    job = (await store.jobs.submit(req())).job
    first = await store.jobs.claim_next("s1", ["bookworm"])
    assert first is not None
    await store.jobs.start(job.id, first.lease)
    requeued = await store.jobs.requeue(job.id, first.lease, "slave lost", infra=True)
    assert requeued.state is JobState.QUEUED and requeued.attempt == 2
    with pytest.raises(StaleLease):  # a queued job has no holder at all
        await store.jobs.start(job.id, requeued.lease)
    second = await store.jobs.claim_next("s2", ["bookworm"])
    assert second is not None and second.lease > first.lease and second.attempt == 2
    with pytest.raises(StaleLease):
        await store.jobs.start(job.id, first.lease)
    with pytest.raises(StaleLease):
        await store.jobs.requeue(job.id, first.lease, "again", infra=True)
    await store.jobs.start(job.id, second.lease)
    # The old attempt's result is recorded in its history, the job is untouched.
    assert await store.jobs.finish(job.id, first.lease, result(job.id, first.lease, "failed")) is (
        FinishDisposition.STALE
    )
    current = await store.jobs.get(job.id)
    assert current is not None and current.state is JobState.RUNNING and current.outcome is None
    history = await store.jobs.attempts(job.id)
    assert [(a.lease, a.status, a.outcome) for a in history] == [
        (first.lease, "stale_result", "failed"),
        (second.lease, "running", None),
    ]


async def test_result_is_stored_once_and_duplicates_change_nothing(store: Store) -> None:
    """A result delivered twice is stored once; the second is reported as a duplicate."""
    job = (await store.jobs.submit(req(callback_url="http://127.0.0.1:9/cb"))).job
    claimed = await store.jobs.claim_next("s1", ["bookworm"])
    assert claimed is not None
    await store.jobs.start(job.id, claimed.lease)
    res = result(
        job.id,
        claimed.lease,
        "harmful",
        phases={"install": {"status": "passed"}},
        summary={"findings": [NET], "verdict": "malicious"},
    )
    assert await store.jobs.finish(job.id, claimed.lease, res) is FinishDisposition.STORED
    done = await store.jobs.get(job.id)
    assert done is not None and done.state is JobState.FINISHED and done.outcome == "harmful"
    assert done.findings == [NET] and done.phases["install"]["status"] == "passed"
    finished_at = done.finished_at
    again = result(job.id, claimed.lease, "passed")
    assert await store.jobs.finish(job.id, claimed.lease, again) is FinishDisposition.DUPLICATE
    same = await store.jobs.get(job.id)
    assert same is not None and same.outcome == "harmful" and same.finished_at == finished_at
    # The completion webhook was queued in the same transaction, exactly once.
    due = await store.callbacks.due(now=finished_at + 1 if finished_at else 0)
    assert [(c.job_id, c.url, c.payload["outcome"]) for c in due] == [
        (job.id, "http://127.0.0.1:9/cb", "harmful")
    ]
    await store.callbacks.failed(due[0].id, next_at=1e12)
    assert await store.callbacks.due(now=1e11) == []
    assert (await store.callbacks.due(now=2e12))[0].attempts == 1
    await store.callbacks.done(due[0].id)
    assert await store.callbacks.due(now=2e12) == []


async def test_infra_errors_are_retried_up_to_the_limit(store: Store) -> None:
    """An infra_error result re-queues (attempt + 1) until retry_limit, then it is final."""
    job = (await store.jobs.submit(req())).job
    c1 = await store.jobs.claim_next("s1", ["bookworm"])
    assert c1 is not None
    disp = await store.jobs.finish(job.id, c1.lease, result(job.id, c1.lease, "infra_error"))
    assert disp is FinishDisposition.REQUEUED
    c2 = await store.jobs.claim_next("s1", ["bookworm"])
    assert c2 is not None and c2.attempt == 2
    disp = await store.jobs.finish(job.id, c2.lease, result(job.id, c2.lease, "infra_error"))
    assert disp is FinishDisposition.STORED
    final = await store.jobs.get(job.id)
    assert final is not None and final.outcome == "infra_error" and not final.quarantined
    assert [a.status for a in await store.jobs.attempts(job.id)] == ["retried", "finished"]


async def test_package_failures_are_never_retried(store: Store) -> None:
    """A failed or crashed package is final at once."""
    for outcome in ("failed", "crashed", "timed_out"):
        job = (await store.jobs.submit(req(outcome))).job
        c = await store.jobs.claim_next("s1", ["bookworm"])
        assert c is not None and c.id == job.id
        assert await store.jobs.finish(job.id, c.lease, result(job.id, c.lease, outcome)) is (
            FinishDisposition.STORED
        )
        assert (await store.jobs.counts())["outcome"][outcome] == 1


async def test_repeated_slave_losses_quarantine_the_job(store: Store) -> None:
    """Losing the slave quarantine_after times in a row finishes the job as quarantined."""
    job = (await store.jobs.submit(req())).job
    c1 = await store.jobs.claim_next("s1", ["bookworm"])
    assert c1 is not None
    await store.jobs.start(job.id, c1.lease)
    after = await store.jobs.requeue(job.id, c1.lease, "slave died", infra=True)
    assert after.state is JobState.QUEUED and after.slave_losses == 1
    c2 = await store.jobs.claim_next("s2", ["bookworm"])
    assert c2 is not None
    await store.jobs.start(job.id, c2.lease)
    q = await store.jobs.requeue(job.id, c2.lease, "slave died", infra=True)
    assert q.state is JobState.FINISHED and q.outcome == "infra_error" and q.quarantined
    assert "quarantined" in (q.error or "")
    assert [a.status for a in await store.jobs.attempts(job.id)] == ["lost", "quarantined"]
    # A quarantined job can be re-run on purpose, with a clean slate.
    again = await store.jobs.retry(job.id)
    assert again.state is JobState.QUEUED and not again.quarantined and again.slave_losses == 0


async def test_refused_offer_goes_back_without_counting_an_attempt(store: Store) -> None:
    """release() puts an assigned job back with the same attempt number and a new lease."""
    job = (await store.jobs.submit(req())).job
    c = await store.jobs.claim_next("s1", ["bookworm"])
    assert c is not None
    back = await store.jobs.release(job.id, c.lease, "no slot")
    assert back.state is JobState.QUEUED and back.attempt == 1 and back.lease > c.lease
    assert (await store.jobs.attempts(job.id))[0].status == "refused"
    c2 = await store.jobs.claim_next("s1", ["bookworm"])
    assert c2 is not None
    await store.jobs.start(job.id, c2.lease)
    with pytest.raises(InvalidTransition):  # running: not an offer any more
        await store.jobs.release(job.id, c2.lease, "too late")


async def test_aborted_result_of_a_live_job_requeues_it(store: Store) -> None:
    """A 'cancelled' result nobody asked for (slave drained) re-queues the job."""
    job = (await store.jobs.submit(req())).job
    c = await store.jobs.claim_next("s1", ["bookworm"])
    assert c is not None
    await store.jobs.start(job.id, c.lease)
    disp = await store.jobs.finish(job.id, c.lease, result(job.id, c.lease, "cancelled"))
    assert disp is FinishDisposition.REQUEUED
    after = await store.jobs.get(job.id)
    assert after is not None and after.state is JobState.QUEUED and after.attempt == 2


async def test_cancel_from_live_states_and_not_from_final(store: Store) -> None:
    """Cancelling works from queued/assigned/running, keeps the holder, and not twice."""
    queued = (await store.jobs.submit(req("q"))).job
    cancelled = await store.jobs.cancel(queued.id, "nope")
    assert cancelled.state is JobState.CANCELLED and cancelled.outcome == "cancelled"
    with pytest.raises(InvalidTransition):
        await store.jobs.cancel(queued.id, "again")
    running = (await store.jobs.submit(req("r"))).job
    c = await store.jobs.claim_next("s1", ["bookworm"])
    assert c is not None
    await store.jobs.start(running.id, c.lease)
    cj = await store.jobs.cancel(running.id, "stop")
    assert cj.slave == "s1" and cj.lease == c.lease
    # The slave's cancelled report is recorded on the attempt; the job stays cancelled.
    disp = await store.jobs.finish(running.id, c.lease, result(running.id, c.lease, "cancelled"))
    assert disp is FinishDisposition.DUPLICATE
    assert (await store.jobs.attempts(running.id))[0].outcome == "cancelled"
    with pytest.raises(JobNotFound):
        await store.jobs.cancel(999, "x")
    with pytest.raises(InvalidTransition):
        await store.jobs.retry((await store.jobs.submit(req("live"))).job.id)


async def test_every_way_back_to_the_queue_frees_the_claim_alike(tmp_path: Path) -> None:
    """Refusal, lost offer/slave, drop, aborted or retried result, re-run: one clean queued job."""
    s = await Store.open(tmp_path / "db.sqlite3", retry_limit=5, quarantine_after=9)
    try:
        job = (await s.jobs.submit(req())).job

        async def claimed(*, running: bool) -> int:
            c = await s.jobs.claim_next("s1", ["bookworm"])
            assert c is not None and c.id == job.id
            if running:
                await s.jobs.start(job.id, c.lease)
            return c.lease

        ways: dict[str, tuple[bool, Callable[[int], Awaitable[object]] | None]] = {
            "refused": (False, lambda lease: s.jobs.release(job.id, lease, "no slot")),
            "lost offer": (False, lambda lease: s.jobs.release(job.id, lease, "x", lost=True)),
            "lost": (True, lambda lease: s.jobs.requeue(job.id, lease, "gone", infra=True)),
            "dropped": (True, lambda lease: s.jobs.requeue(job.id, lease, "bye", infra=False)),
            "aborted": (
                True,
                lambda lease: s.jobs.finish(job.id, lease, result(job.id, lease, "cancelled")),
            ),
            "infra": (
                True,
                lambda lease: s.jobs.finish(job.id, lease, result(job.id, lease, "infra_error")),
            ),
            "re-run": (True, None),
        }
        for way, (running, back) in ways.items():
            before = await s.jobs.get(job.id)
            assert before is not None
            lease = await claimed(running=running)
            if back is None:
                await s.jobs.finish(job.id, lease, result(job.id, lease, "passed"))
                await s.jobs.retry(job.id)
            else:
                await back(lease)
            after = await s.jobs.get(job.id)
            assert after is not None and after.state is JobState.QUEUED, way
            assert after.slave is None and after.assigned_at is None, way
            assert after.started_at is None and after.lease == lease + 1, way
            assert after.outcome is None and after.finished_at is None, way
            counted = way not in ("refused", "lost offer")
            assert after.attempt == before.attempt + (1 if counted else 0), way
    finally:
        await s.close()


async def test_retry_refuses_a_claimed_job(store: Store) -> None:
    """A re-run is for final jobs: an assigned or running one stays with its slave (409)."""
    job = (await store.jobs.submit(req())).job
    c = await store.jobs.claim_next("s1", ["bookworm"])
    assert c is not None
    with pytest.raises(InvalidTransition):
        await store.jobs.retry(job.id)
    await store.jobs.start(job.id, c.lease)
    with pytest.raises(InvalidTransition) as info:
        await store.jobs.retry(job.id)
    assert info.value.current is JobState.RUNNING
    after = await store.jobs.get(job.id)
    assert after is not None and after.state is JobState.RUNNING and after.lease == c.lease


async def test_state_survives_reopening_the_database(tmp_path: Path) -> None:
    """Jobs in every state read back the same after close and reopen."""
    path = tmp_path / "db.sqlite3"
    s = await Store.open(path)
    ids = {}
    ids["queued"] = (await s.jobs.submit(req("q"))).job.id
    for name in ("assigned", "running", "finished"):
        jid = (await s.jobs.submit(req(name, priority=5))).job.id
        c = await s.jobs.claim_next("s1", ["bookworm"])
        assert c is not None and c.id == jid
        if name != "assigned":
            await s.jobs.start(jid, c.lease)
        if name == "finished":
            await s.jobs.finish(jid, c.lease, result(jid, c.lease))
        ids[name] = jid
    ids["cancelled"] = (await s.jobs.submit(req("c"))).job.id
    await s.jobs.cancel(ids["cancelled"], "x")
    before = {k: await s.jobs.get(v) for k, v in ids.items()}
    await s.close()
    s2 = await Store.open(path)
    try:
        for state, jid in ids.items():
            job = await s2.jobs.get(jid)
            assert job is not None and job.state.value == state
            assert job == before[state]
        assert await s2.integrity_ok()
        assert [j.id for j in await s2.jobs.live("s1")] == [ids["assigned"], ids["running"]]
        listed = await s2.jobs.find(state="finished")
        assert [j.id for j in listed] == [ids["finished"]]
        page = await s2.jobs.find(limit=2)
        older = await s2.jobs.find(limit=10, before_id=page[-1].id)
        assert [j.id for j in page + older] == sorted(ids.values(), reverse=True)
    finally:
        await s2.close()
