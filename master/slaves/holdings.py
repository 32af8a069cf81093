"""The claims one slave holds, and the one place they go back to the store.

A claim is a job's current lease held by this slave: *offered* (the slave has
not accepted it yet) or *running*. The session adopts a claim when it offers
the job; the handlers mark it running on ``job_accept`` and forget it on a
result, a refusal or a stale-lease rejection; ``reconcile`` matches the
slave's first heartbeat against the store.

``surrender`` (and ``hand_back`` for one claim) is the only path by which a
slave's claims return to the queue: an offered claim is released (it never
ran), a running one re-queued without counting against the job. A slave that
merely disconnects surrenders its offered claims only: its running claims wait
for the watchdog's reconnect grace, since the slave may come back with them.

Forgotten claims are remembered for a while (``RECENT``), so a heartbeat that
still lists a job whose result was just stored is not taken for a stranger.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog

from master.jobs import JobState
from master.store.errors import InvalidTransition, JobNotFound, StaleLease, StoreError

if TYPE_CHECKING:
    from master.scheduler import Scheduler
    from master.store import Store

#: Forgotten claims remembered, so a late heartbeat listing one is not "unknown".
RECENT = 1024


@dataclass(slots=True)
class Claim:
    """One job's lease held by this slave."""

    lease: int
    running: bool


@dataclass(frozen=True, slots=True)
class Reconciliation:
    """What the slave must be told after its first heartbeat: ``(job id, lease)`` pairs."""

    #: Listed by the slave but not its claim (another lease, another slave, no such job).
    stale: list[tuple[int, int]]
    #: Adopted, but the job was cancelled while the slave was away.
    cancelled: list[tuple[int, int]]


class Holdings:
    """The claims of one connected slave (owned by its session)."""

    def __init__(self, slave: str, store: Store, scheduler: Scheduler) -> None:
        self.slave = slave
        self._store = store
        self._scheduler = scheduler
        self._claims: dict[int, Claim] = {}
        self._recent: OrderedDict[tuple[int, int], None] = OrderedDict()
        #: Set while the slave holds no claim (a draining master waits for it).
        self.idle = asyncio.Event()
        self.idle.set()
        self._log = structlog.get_logger("master.slave").bind(slave=slave)

    def __repr__(self) -> str:
        return f"<Holdings {self.slave} {sorted(self._claims)}>"

    def __len__(self) -> int:
        return len(self._claims)

    def job_ids(self) -> list[int]:
        return sorted(self._claims)

    def holds(self, job_id: int, lease: int) -> bool:
        """True if this slave holds this lease of the job (offered or running)."""
        claim = self._claims.get(job_id)
        return claim is not None and claim.lease == lease

    def knows(self, job_id: int, lease: int) -> bool:
        """Held now, or forgotten recently (a result stored, a drop sent)."""
        return self.holds(job_id, lease) or (job_id, lease) in self._recent

    # ------------------------------------------------------------ changes ----

    def adopt(self, job_id: int, lease: int, *, running: bool) -> None:
        """Hold a claim: offered (``running=False``) or found running on the slave."""
        self._claims[job_id] = Claim(lease, running)
        self.idle.clear()

    def mark_running(self, job_id: int, lease: int) -> None:
        """The slave accepted the offer (a claim forgotten meanwhile stays forgotten)."""
        claim = self._claims.get(job_id)
        if claim is not None and claim.lease == lease:
            claim.running = True

    def forget(self, job_id: int, lease: int) -> None:
        """Drop a claim (if held) and remember it as recently known."""
        if self.holds(job_id, lease):
            del self._claims[job_id]
        self._recent[(job_id, lease)] = None
        while len(self._recent) > RECENT:
            self._recent.popitem(last=False)
        if not self._claims:
            self.idle.set()

    # ------------------------------------------------------- to the store ----

    async def hand_back(self, job_id: int, lease: int, reason: str) -> None:
        """Forget one claim and return its job to the queue.

        Offered: released (the attempt never ran). Running: re-queued, not
        counted against the job. A job the store has moved on from (another
        lease, final, gone) is only forgotten. Raises ``StoreError``; the claim
        is forgotten either way (and on cancellation).
        """
        claim = self._claims.get(job_id)
        if claim is None or claim.lease != lease:
            return
        self.forget(job_id, lease)
        with contextlib.suppress(StaleLease, InvalidTransition, JobNotFound):
            if claim.running:
                await self._store.jobs.requeue(job_id, lease, reason, infra=False)
            else:
                await self._store.jobs.release(job_id, lease, reason)

    async def surrender(self, reason: str, *, running: bool) -> None:
        """Hand back every offered claim, and the running ones too if ``running``.

        A store error is logged and the next claim tried (the watchdog catches
        what is left); the dispatcher is kicked after.
        """
        for job_id, claim in list(self._claims.items()):
            if claim.running and not running:
                continue
            try:
                await self.hand_back(job_id, claim.lease, reason)
            except StoreError as exc:
                self._log.warning("hand_back_failed", job_id=job_id, error=str(exc))
        self._scheduler.kick()

    async def reconcile(self, listed: Mapping[int, int]) -> Reconciliation:
        """Match what the slave says it runs (``job id -> lease``) against the store.

        Adopts, as running, every listed claim the store gives this slave with
        that lease and a live or cancelled job; a listed claim whose job is
        already finished with that lease is left alone (its result is on the
        way). Live jobs the store gives this slave that it did not list are
        lost: re-queued by the scheduler. Raises ``StoreError``.
        """
        stale: list[tuple[int, int]] = []
        cancelled: list[tuple[int, int]] = []
        for job_id, lease in listed.items():
            job = await self._store.jobs.get(job_id)
            if job is None or job.slave != self.slave or job.lease != lease:
                stale.append((job_id, lease))
            elif job.state is JobState.CANCELLED:
                self.adopt(job_id, lease, running=True)
                cancelled.append((job_id, lease))
            elif job.state in (JobState.ASSIGNED, JobState.RUNNING):
                self.adopt(job_id, lease, running=True)
                with contextlib.suppress(StaleLease, InvalidTransition):
                    await self._store.jobs.start(job_id, lease)
                self._log.info("job_adopted", job_id=job_id, lease=lease)
        for job in await self._store.jobs.live(self.slave):
            if job.id not in listed:
                await self._scheduler.requeue_lost(job, "slave came back without it")
        return Reconciliation(stale, cancelled)
