"""``pyti jobs``: list jobs, newest first (filters: project, state, outcome, verdict).

The RESULT column is the outcome with the behaviour verdict beside it when the verdict
is not clean (``failed · suspicious``): a failed install that did something suspicious
never reads as a plain ``failed``.
"""

from __future__ import annotations

import argparse

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
from protocol.vocabulary import Outcome, Verdict, shown, values


def configure(parser: argparse.ArgumentParser) -> None:
    """Flags of ``pyti jobs``."""
    parser.add_argument("--project", help="only this project")
    parser.add_argument("--state", help="queued, assigned, running, finished or cancelled")
    parser.add_argument("--outcome", help=", ".join(values(Outcome)))
    parser.add_argument("--verdict", help=", ".join(values(Verdict)))
    parser.add_argument("--limit", type=int, default=50, help="at most this many (max 200)")
    parser.add_argument("--before", type=int, metavar="ID", help="only jobs older than this id")
    add_common_args(parser)


def run(args: argparse.Namespace) -> int:
    """Print the jobs as a table (or JSON)."""
    params = {
        k: str(v)
        for k, v in {
            "project": args.project,
            "state": args.state,
            "outcome": args.outcome,
            "verdict": args.verdict,
            "limit": args.limit,
            "before": args.before,
        }.items()
        if v is not None
    }

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
        return EXIT_OK

    return run_command(main)
