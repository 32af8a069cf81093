"""``pyti project NAME``: a project's tested releases, newest first (``GET /api/v1/projects/NAME``).

One row per finished job: version, job id, result (outcome · verdict), tests
(passed/failed/errors/skipped), quality score, duration, findings, and the change
against the previous release. The worst release is marked ``*`` and named last.
The same numbers as the project page (``/projects/NAME``).
"""

from __future__ import annotations

import argparse
from typing import Any
from urllib.parse import quote

from master.client.api import EXIT_OK, Api, add_common_args, print_json, run_command, safe, table
from protocol.vocabulary import shown


def configure(parser: argparse.ArgumentParser) -> None:
    """Flags of ``pyti project``."""
    parser.add_argument("name", help="the project (any spelling: Foo_Bar = foo-bar)")
    add_common_args(parser)


def _tests(tests: Any) -> str:
    if not isinstance(tests, dict):
        return "-"
    return "/".join(str(tests.get(k, "-")) for k in ("passed", "failed", "errors", "skipped"))


def _number(value: Any, fmt: str) -> str:
    return fmt.format(value) if isinstance(value, int | float) else "-"


def _previous(release: dict[str, Any]) -> str:
    previous = release.get("previous")
    if not isinstance(previous, dict):
        return "first tested" if release.get("behaviour_changes") is not None else "-"
    changes = release.get("behaviour_changes") or 0
    text = f"vs {safe(previous.get('version'))}: {changes} behaviour change(s)"
    change = release.get("score_change")
    if isinstance(change, int):
        text += f", quality {change:+d}"
    return text


def rows(history: dict[str, Any]) -> list[list[str]]:
    """The table's rows (cells already safe)."""
    return [
        [
            "*" if r["job_id"] == history.get("worst") else "",
            safe(r["version"]),
            str(int(r["job_id"])),
            safe(shown(r.get("outcome"), r.get("verdict"))),
            _tests(r.get("tests")),
            _number(r.get("score"), "{}"),
            _number(r.get("duration_s"), "{:.1f} s"),
            str(int(r.get("findings") or 0)),
            _previous(r),
        ]
        for r in history["releases"]
    ]


def run(args: argparse.Namespace) -> int:
    """Print the project's releases as a table (or JSON)."""

    async def main() -> int:
        async with Api(args.master, args.token) as api:
            body = await api.get(f"/projects/{quote(args.name, safe='')}")
        if args.json:
            print_json(body)
            return EXIT_OK
        header = ["", "VERSION", "JOB", "RESULT", "TESTS P/F/E/S", "QUALITY", "DURATION",
                  "FINDINGS", "SINCE PREVIOUS"]  # fmt: skip
        print(table(rows(body), header))
        worst = next((r for r in body["releases"] if r["job_id"] == body.get("worst")), None)
        if worst is not None:
            print(f"worst: {safe(worst['version'])} (job {int(worst['job_id'])})")
        return EXIT_OK

    return run_command(main)
