"""The master's system of record: one SQLite database (WAL) behind ``Store``.

``Store`` (``store.py``) is composed of parts, each owning its tables: ``jobs``
(with the job state machine, ``transitions.py``), ``events``, ``callbacks``,
``feed``, ``slaves``. Errors: ``errors.py``.
"""

from master.store.errors import (
    InvalidTransition,
    JobNotFound,
    SchemaTooNew,
    StaleLease,
    StoreError,
)
from master.store.schema import SCHEMA_VERSION
from master.store.store import Store

__all__ = [
    "SCHEMA_VERSION",
    "InvalidTransition",
    "JobNotFound",
    "SchemaTooNew",
    "StaleLease",
    "Store",
    "StoreError",
]
