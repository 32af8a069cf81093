"""The store's errors: one root, ``StoreError``, under the master's ``MasterError``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from master.errors import MasterError

if TYPE_CHECKING:
    from master.jobs import JobState


class StoreError(MasterError):
    """Root of the store's errors (also: the database failed or is closed)."""


class SchemaTooNew(StoreError):
    """The database was written by a newer pyti."""

    def __init__(self, found: int, known: int) -> None:
        super().__init__(f"database schema version {found} is newer than this pyti's ({known})")
        self.found = found
        self.known = known


class JobNotFound(StoreError):
    """No job with this id."""

    def __init__(self, job_id: int) -> None:
        super().__init__(f"job {job_id} not found")
        self.job_id = job_id


class InvalidTransition(StoreError):
    """A state change the transition table does not allow."""

    def __init__(self, job_id: int, current: JobState, wanted: JobState) -> None:
        super().__init__(f"job {job_id}: cannot go from {current.value} to {wanted.value}")
        self.job_id = job_id
        self.current = current
        self.wanted = wanted


class StaleLease(StoreError):
    """A lease that is no longer the job's current one (fencing)."""

    def __init__(self, job_id: int, lease: int, current: int | None) -> None:
        now = "unknown job" if current is None else f"current lease is {current}"
        super().__init__(f"job {job_id}: lease {lease} is stale ({now})")
        self.job_id = job_id
        self.lease = lease
        self.current = current
