"""``pyti jobs``: list jobs, newest first (filters: project, state, outcome)."""

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


def configure(parser: argparse.ArgumentParser) -> None:
    """Flags of ``pyti jobs``."""
    parser.add_argument("--project", help="only this project")
    parser.add_argument("--state", help="queued, assigned, running, finished or cancelled")
    parser.add_argument("--outcome", help="passed, failed, crashed, harmful, timed_out, ...")
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
                safe(j.get("outcome") or "-"),
                safe(j.get("slave") or "-"),
                fmt_time(j.get("created_at")),
            ]
            for j in body["jobs"]
        ]
        print(table(rows, ["ID", "PROJECT", "VERSION", "STATE", "OUTCOME", "SLAVE", "CREATED"]))
        return EXIT_OK

    return run_command(main)
