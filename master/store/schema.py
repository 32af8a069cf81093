"""The database schema as a list of forward migrations.

``PRAGMA user_version`` is the schema version. ``MIGRATIONS[n]`` takes a
database from version ``n`` to ``n + 1``; each runs in its own transaction
together with the version bump, so a crash mid-migration leaves the previous
version intact. A database newer than this code is refused, never downgraded.
"""

from __future__ import annotations

from collections.abc import Sequence

from packaging.utils import canonicalize_name


def project_key(name: str) -> str:
    """The PEP 503 normalised project name (``Foo.Bar_baz`` -> ``foo-bar-baz``).

    Feed jobs keep PyPI's spelling and uploads the normalised one: filters, dedupe
    and the previous-release lookup go by this key so one project is never two.
    Registered on the writer connection as the SQL function ``pyti_project_key``.
    """
    return str(canonicalize_name(name))


_V1 = (
    """
    CREATE TABLE jobs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        project TEXT NOT NULL,
        version TEXT NOT NULL,
        image TEXT NOT NULL,
        files TEXT NOT NULL DEFAULT '[]',
        priority INTEGER NOT NULL DEFAULT 0,
        source TEXT NOT NULL DEFAULT 'api',
        callback_url TEXT,
        state TEXT NOT NULL DEFAULT 'queued',
        outcome TEXT,
        attempt INTEGER NOT NULL DEFAULT 1,
        lease INTEGER NOT NULL DEFAULT 0,
        slave TEXT,
        phases TEXT NOT NULL DEFAULT '{}',
        summary TEXT NOT NULL DEFAULT '{}',
        findings TEXT NOT NULL DEFAULT '[]',
        isolation TEXT,
        error TEXT,
        created_at REAL NOT NULL,
        assigned_at REAL,
        started_at REAL,
        finished_at REAL,
        quarantined INTEGER NOT NULL DEFAULT 0,
        slave_losses INTEGER NOT NULL DEFAULT 0,
        infra_retries INTEGER NOT NULL DEFAULT 0,
        event_seq INTEGER NOT NULL DEFAULT 0
    )
    """,
    # The dispatcher walks queued jobs in (priority desc, id) order.
    "CREATE INDEX jobs_queue ON jobs (state, priority DESC, id)",
    "CREATE INDEX jobs_release ON jobs (project, version, image)",
    """
    CREATE TABLE attempts (
        job_id INTEGER NOT NULL,
        lease INTEGER NOT NULL,
        attempt INTEGER NOT NULL,
        slave TEXT NOT NULL,
        status TEXT NOT NULL,
        assigned_at REAL NOT NULL,
        started_at REAL,
        ended_at REAL,
        outcome TEXT,
        reason TEXT,
        isolation TEXT,
        phases TEXT NOT NULL DEFAULT '{}',
        summary TEXT NOT NULL DEFAULT '{}',
        PRIMARY KEY (job_id, lease)
    ) WITHOUT ROWID
    """,
    """
    CREATE TABLE events (
        job_id INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        ts REAL NOT NULL,
        level TEXT NOT NULL,
        event TEXT NOT NULL,
        phase TEXT,
        fields TEXT NOT NULL DEFAULT '{}',
        PRIMARY KEY (job_id, seq)
    ) WITHOUT ROWID
    """,
    """
    CREATE TABLE slaves (
        name TEXT PRIMARY KEY,
        address TEXT NOT NULL,
        capabilities TEXT NOT NULL DEFAULT '{}',
        first_seen REAL NOT NULL,
        last_seen REAL NOT NULL,
        connected INTEGER NOT NULL DEFAULT 0
    )
    """,
    """
    CREATE TABLE releases (
        project TEXT NOT NULL,
        version TEXT NOT NULL,
        source TEXT NOT NULL,
        first_seen REAL NOT NULL,
        PRIMARY KEY (project, version)
    ) WITHOUT ROWID
    """,
    """
    CREATE TABLE feed_state (
        url TEXT PRIMARY KEY,
        cursor TEXT,
        etag TEXT,
        last_modified TEXT,
        updated_at REAL NOT NULL
    )
    """,
)

_V2 = (
    # Per-job phase timeouts and runner options, sent in the offer.
    "ALTER TABLE jobs ADD COLUMN timeouts TEXT NOT NULL DEFAULT '{}'",
    "ALTER TABLE jobs ADD COLUMN options TEXT NOT NULL DEFAULT '{}'",
    # Completion webhooks, written in the transaction that ends the job.
    """
    CREATE TABLE callbacks (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        job_id INTEGER NOT NULL,
        url TEXT NOT NULL,
        payload TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_at REAL NOT NULL,
        created_at REAL NOT NULL,
        done_at REAL
    )
    """,
    "CREATE INDEX callbacks_due ON callbacks (done_at, next_at)",
)

_V3 = (
    # The PEP 503 name (see ``project_key``), filled in for the jobs already stored.
    "ALTER TABLE jobs ADD COLUMN project_key TEXT NOT NULL DEFAULT ''",
    "UPDATE jobs SET project_key = pyti_project_key(project)",
    # Covering for the previous-release lookup: it never reads a row (whose summary can
    # be tens of KiB in overflow pages); its prefix serves the filter and dedupe.
    "CREATE INDEX jobs_project_key ON jobs"
    " (project_key, image, state, outcome, version, finished_at)",
    # Per release: its behaviour profile and its comparison with the previous release
    # (``master.store.comparisons``), written with the result.
    "ALTER TABLE jobs ADD COLUMN profile TEXT",
    "ALTER TABLE jobs ADD COLUMN comparison TEXT",
)

_V4 = (
    # The behaviour verdict beside the outcome (job lists, the verdict filter, metrics);
    # filled in from the stored summaries of the jobs already finished.
    "ALTER TABLE jobs ADD COLUMN verdict TEXT",
    "UPDATE jobs SET verdict = json_extract(summary, '$.verdict')"
    " WHERE outcome IS NOT NULL AND json_valid(summary)"
    " AND json_extract(summary, '$.verdict') IN ('clean', 'suspicious', 'malicious')",
)

_V5 = (
    # Job lists filter by these and walk newest first (``master.store.filters``): an index
    # ending in ``id`` serves both. Time columns serve the time range and the fleet's
    # per-hour figures (``master.store.stats``), which read only the last 24 hours.
    "CREATE INDEX jobs_outcome ON jobs (outcome, id)",
    "CREATE INDEX jobs_slave ON jobs (slave, id)",
    "CREATE INDEX jobs_created ON jobs (created_at)",
    "CREATE INDEX jobs_assigned ON jobs (assigned_at)",
    "CREATE INDEX jobs_finished ON jobs (finished_at)",
    "CREATE INDEX attempts_ended ON attempts (ended_at)",
)

_V6 = (
    # Late-arriving files (``master.feed.late``): per feed release, the sha256 of every
    # file the feed has already handed to a job (JSON list; NULL: never resolved), and
    # when to ask the JSON API again for files uploaded since (NULL: no more re-checks).
    "ALTER TABLE releases ADD COLUMN files TEXT",
    "ALTER TABLE releases ADD COLUMN recheck_at REAL",
    "ALTER TABLE releases ADD COLUMN rechecks INTEGER NOT NULL DEFAULT 0",
    "CREATE INDEX releases_recheck ON releases (recheck_at) WHERE recheck_at IS NOT NULL",
)

#: ``MIGRATIONS[n]`` upgrades version ``n`` to ``n + 1``.
MIGRATIONS: Sequence[Sequence[str]] = (_V1, _V2, _V3, _V4, _V5, _V6)
SCHEMA_VERSION = len(MIGRATIONS)
