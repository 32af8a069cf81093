"""``pyti master backup PATH``: an online, checked copy of the master's database.

The copy is taken with SQLite's backup API (``sqlite3.Connection.backup``) in one
step, inside one read transaction on the live database: in WAL mode that is a
consistent snapshot, and the running master keeps writing meanwhile (readers and
the writer do not block each other). The row counts of every table are read in the
same transaction, so they describe exactly the snapshot copied.

The copy is written next to ``PATH`` under a temporary name, then checked:
``PRAGMA integrity_check`` must say ``ok``, its schema version must be the
source's, and each table must hold the rows the source held in the snapshot. Only
a copy that passes is renamed to ``PATH``; a bad one is deleted. The report (one
JSON object) goes to stdout. Exit status: 0 for a good backup, 1 when the check
failed (or the copy could not be written), 2 when there is no database to back up.
The restore procedure is in docs/operations.md ("Backup and restore").
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sqlite3
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import quote

from master.config import DB_NAME, ConfigError, read_toml

EXIT_OK, EXIT_BAD, EXIT_CONFIG = 0, 1, 2


class BackupFailed(Exception):
    """The copy could not be made or failed its check; the message says why."""


@dataclass
class Report:
    """What a backup holds and whether it passed its check."""

    source: str
    path: str
    ok: bool = False
    integrity: str = ""
    schema_version: int = 0
    bytes: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def _tables(conn: sqlite3.Connection) -> list[str]:
    rows = conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        " ORDER BY name"
    ).fetchall()
    return [str(r[0]) for r in rows]


def _counts(conn: sqlite3.Connection) -> dict[str, int]:
    # Table names come from sqlite_master of our own database, quoted all the same.
    return {
        t: int(conn.execute(f'SELECT COUNT(*) FROM "{t}"').fetchone()[0])  # noqa: S608
        for t in _tables(conn)
    }


def check_copy(path: Path, expected: Report) -> None:
    """Fill ``expected``'s check fields from the copy at ``path``; ``problems`` lists failures."""
    conn = sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True)
    try:
        lines = [str(r[0]) for r in conn.execute("PRAGMA integrity_check").fetchall()]
        expected.integrity = "; ".join(lines)[:2000]
        if lines != ["ok"]:
            expected.problems.append(f"integrity_check: {expected.integrity}")
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if version != expected.schema_version:
            expected.problems.append(
                f"schema version {version}, the source's is {expected.schema_version}"
            )
        copied = _counts(conn)
    except sqlite3.Error as exc:
        expected.problems.append(f"cannot read the copy: {exc}")
        return
    finally:
        conn.close()
    for table, n in expected.rows.items():
        if copied.get(table) != n:
            expected.problems.append(f"table {table}: {copied.get(table)} rows, expected {n}")
    expected.ok = not expected.problems


def backup(source: Path, dest: Path) -> Report:
    """Copy ``source`` to ``dest`` online and check the copy (see the module docstring).

    Raises ``BackupFailed`` when the copy cannot be made; a copy that fails its
    check is deleted and reported with ``ok=False``.
    """
    report = Report(source=str(source), path=str(dest))
    if not source.is_file():
        raise BackupFailed(f"no database at {source}")
    tmp = dest.with_name(f".{dest.name}.partial")
    tmp.unlink(missing_ok=True)
    try:
        src = sqlite3.connect(f"file:{quote(str(source))}?mode=ro", uri=True, isolation_level=None)
        try:
            src.execute("PRAGMA busy_timeout = 5000")
            src.execute("BEGIN")  # one read snapshot for the counts and the copy
            report.schema_version = int(src.execute("PRAGMA user_version").fetchone()[0])
            report.rows = _counts(src)
            out = sqlite3.connect(tmp)
            try:
                src.backup(out)  # pages=-1: the whole database in one step, one snapshot
            finally:
                out.close()
            src.execute("COMMIT")
        finally:
            src.close()
    except (sqlite3.Error, OSError) as exc:
        tmp.unlink(missing_ok=True)
        raise BackupFailed(f"cannot back up {source} to {dest}: {exc}") from exc
    check_copy(tmp, report)
    if not report.ok:
        tmp.unlink(missing_ok=True)
        return report
    report.bytes = tmp.stat().st_size
    os.replace(tmp, dest)
    return report


def database_path(args: argparse.Namespace) -> Path:
    """The database the flags and ``--config`` name; ``ConfigError`` if they name none."""
    values = read_toml(Path(args.config)) if getattr(args, "config", None) else {}
    if getattr(args, "data_dir", None):
        values["data_dir"] = args.data_dir
    if values.get("database"):
        return Path(values["database"]).expanduser().resolve()
    if not values.get("data_dir"):
        raise ConfigError("--data-dir is required (flag or data_dir in the config file)")
    return Path(values["data_dir"]).expanduser().resolve() / DB_NAME


def run(args: argparse.Namespace) -> int:
    """``pyti master backup PATH``: the exit status (see the module docstring)."""
    if not args.path:
        print("pyti master backup: PATH is required", file=sys.stderr)
        return EXIT_CONFIG
    try:
        source = database_path(args)
    except ConfigError as exc:
        print(f"pyti master backup: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if not source.is_file():
        print(f"pyti master backup: no database at {source}", file=sys.stderr)
        return EXIT_CONFIG
    dest = Path(args.path).expanduser().resolve()
    if dest == source:
        print("pyti master backup: PATH is the database itself", file=sys.stderr)
        return EXIT_CONFIG
    try:
        report = backup(source, dest)
    except BackupFailed as exc:
        print(f"pyti master backup: {exc}", file=sys.stderr)
        return EXIT_BAD
    print(json.dumps(asdict(report), sort_keys=True))
    if not report.ok:
        for problem in report.problems:
            print(f"pyti master backup: bad copy: {problem}", file=sys.stderr)
        return EXIT_BAD
    with contextlib.suppress(OSError):
        dest.chmod(0o600)
    return EXIT_OK
