"""The master's system of record: one SQLite database (WAL) behind ``Store``."""

from master.jobs import (
    InvalidTransition,
    JobNotFound,
    StaleLease,
    StoreError,
)
from master.store.db import SchemaTooNew
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
