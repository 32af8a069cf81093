"""``pyti jobs``: list jobs, newest first, with the API's filters (``GET /api/v1/jobs``).

The flags are the API's query parameters (``master.store.filters``): project,
state, outcome, verdict, source, slave, since/until (Unix seconds, ISO 8601, or
here also a duration back from now: ``90m``, ``24h``, ``7d``) and ``--search``
(the API's ``q``). Paging is keyset: ``--before ID`` continues an older page; the
next page's id is printed to stderr when there is one.

The RESULT column is the outcome with the behaviour verdict beside it when the verdict
is not clean (``failed · suspicious``): a failed install that did something suspicious
never reads as a plain ``failed``.
"""

from __future__ import annotations

import argparse
import re
import sys
import time

from master.client.api import (
    EXIT_OK,
    Api,
    add_common_args,
    fmt_time,
    print_json,
    run_command,
    safe,
    table,
)
from master.jobs import SOURCES
from protocol.vocabulary import Outcome, Verdict, shown, values


def configure(parser: argparse.ArgumentParser) -> None:
    """Flags of ``pyti jobs``."""
    parser.add_argument("--project", help="only this project")
    parser.add_argument("--state", help="queued, assigned, running, finished or cancelled")
    parser.add_argument("--outcome", help=", ".join(values(Outcome)))
    parser.add_argument("--verdict", help=", ".join(values(Verdict)))
    parser.add_argument("--source", choices=SOURCES, help="how the job came: feed, api, upload")
    parser.add_argument("--slave", help="only jobs run (last) by this slave")
    parser.add_argument(
        "--since", metavar="WHEN", help="submitted at or after: Unix seconds, ISO 8601, or 24h/7d"
    )
    parser.add_argument("--until", metavar="WHEN", help="submitted before (as --since)")
    parser.add_argument(
        "--search", metavar="TEXT", help="text in the project name (any spelling) or version"
    )
    parser.add_argument("--limit", type=int, default=50, help="at most this many (max 200)")
    parser.add_argument("--before", type=int, metavar="ID", help="only jobs older than this id")
    add_common_args(parser)


_DURATION = re.compile(r"(\d{1,6})([mhd])")
_UNIT = {"m": 60, "h": 3600, "d": 86400}


def when(text: str | None, now: float) -> str | None:
    """A time flag as the API takes it: a duration (``24h``) becomes Unix seconds before now."""
    if text is None:
        return None
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        return text  # Unix seconds or ISO 8601: the API checks it
    return str(int(now - int(match[1]) * _UNIT[match[2]]))


def query(args: argparse.Namespace, now: float) -> dict[str, str]:
    """The API query of these flags (only those given)."""
    params = {
        "project": args.project,
        "state": args.state,
        "outcome": args.outcome,
        "verdict": args.verdict,
        "source": args.source,
        "slave": args.slave,
        "since": when(args.since, now),
        "until": when(args.until, now),
        "q": args.search,
        "limit": args.limit,
        "before": args.before,
    }
    return {k: str(v) for k, v in params.items() if v is not None}


def run(args: argparse.Namespace) -> int:
    """Print the jobs as a table (or JSON)."""
    params = query(args, time.time())

    async def main() -> int:
        async with Api(args.master, args.token) as api:
            body = await api.get("/jobs", params)
        if args.json:
            print_json(body)
            return EXIT_OK
        rows = [
            [
                str(j["id"]),
                safe(j["project"]),
                safe(j["version"]),
                safe(j["state"]),
                safe(shown(j.get("outcome"), j.get("verdict"))),
                safe(j.get("slave") or "-"),
                fmt_time(j.get("created_at")),
            ]
            for j in body["jobs"]
        ]
        print(table(rows, ["ID", "PROJECT", "VERSION", "STATE", "RESULT", "SLAVE", "CREATED"]))
        if body.get("next") and body["jobs"]:
            print(f"more: --before {int(body['jobs'][-1]['id'])}", file=sys.stderr)
        return EXIT_OK

    return run_command(main)
