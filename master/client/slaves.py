"""``pyti slaves``: the slaves connected to the master."""

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
    """Flags of ``pyti slaves``."""
    add_common_args(parser)


def run(args: argparse.Namespace) -> int:
    """Print the slaves as a table (or JSON)."""

    async def main() -> int:
        async with Api(args.master, args.token) as api:
            body = await api.get("/slaves")
        if args.json:
            print_json(body)
            return EXIT_OK
        rows = [
            [
                safe(s["name"]),
                safe(s["address"]),
                f"{s['busy']}/{s['slots']}",
                safe(s.get("accel", "")),
                safe(",".join(s.get("images", []))),
                fmt_time(s.get("last_heartbeat")),
                "draining" if s.get("draining") else "",
            ]
            for s in body["slaves"]
        ]
        print(table(rows, ["NAME", "ADDRESS", "BUSY", "ACCEL", "IMAGES", "HEARTBEAT", ""]))
        return EXIT_OK

    return run_command(main)
