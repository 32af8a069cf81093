"""``pyti submit PROJECT[==VERSION] | FILE``: queue a test of a PyPI release or a local sdist/wheel.

A FILE (an existing path ending in ``.whl``, ``.tar.gz`` or ``.zip``) is uploaded
and tested before it is published; anything else names a PyPI release (newest
when no version is given). Prints the job id and its page; ``--follow`` then
tails the job and exits with its outcome's code, which makes
``pyti submit dist/*.whl --follow`` a CI step.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from master.client.api import (
    EXIT_CODES_HELP,
    EXIT_ERROR,
    EXIT_OK,
    Api,
    add_common_args,
    print_json,
    run_command,
    safe,
)
from master.client.tail import follow_job

DIST_SUFFIXES = (".whl", ".tar.gz", ".zip")


def configure(parser: argparse.ArgumentParser) -> None:
    """Flags of ``pyti submit``."""
    parser.epilog = "with --follow, " + EXIT_CODES_HELP
    parser.add_argument("target", metavar="PROJECT[==VERSION] | FILE")
    parser.add_argument("--priority", type=int, help="higher runs sooner (default: API priority)")
    parser.add_argument("--callback-url", metavar="URL", help="POSTed the summary when done")
    parser.add_argument(
        "--image", help="guest image (default: the master's choice by Requires-Python)"
    )
    parser.add_argument("--rerun", action="store_true", help="test again even if already tested")
    parser.add_argument(
        "--follow", action="store_true", help="tail the job and exit with its outcome's code"
    )
    parser.add_argument("--no-color", action="store_true", help="never colour --follow output")
    add_common_args(parser)


def parse_target(target: str) -> tuple[str, str | None] | Path:
    """A local distribution ``Path``, or ``(project, version or None)``."""
    path = Path(target)
    if target.endswith(DIST_SUFFIXES) and path.is_file():
        return path
    project, sep, version = target.partition("==")
    if not project or (sep and not version):
        raise ValueError(f"not PROJECT[==VERSION] nor an existing sdist/wheel: {target!r}")
    return project.strip(), version.strip() if sep else None


def _options(args: argparse.Namespace) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if args.priority is not None:
        options["priority"] = args.priority
    if args.callback_url:
        options["callback_url"] = args.callback_url
    if args.image:
        options["image"] = args.image
    if args.rerun:
        options["rerun"] = True
    return options


async def submit(api: Api, args: argparse.Namespace) -> dict[str, Any]:
    """POST the submission; the API's answer (job, created, urls)."""
    target = parse_target(args.target)
    options = _options(args)
    if isinstance(target, Path):
        fields = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in options.items()}
        _status, body = await api.post_file("/jobs", target, fields)
    else:
        project, version = target
        request: dict[str, Any] = {"project": project, **options}
        if version is not None:
            request["version"] = version
        _status, body = await api.post_json("/jobs", request)
    result: dict[str, Any] = body
    return result


def run(args: argparse.Namespace) -> int:
    """Submit; print the job (and follow it with ``--follow``)."""
    try:
        parse_target(args.target)
    except ValueError as exc:
        print(f"pyti submit: {exc}", file=sys.stderr)
        return EXIT_ERROR

    async def main() -> int:
        async with Api(args.master, args.token) as api:
            body = await submit(api, args)
            job = body["job"]
            if args.json and not args.follow:
                print_json(body)
            elif not args.json:
                what = "queued" if body.get("created") else "already known"
                print(
                    f"job {job['id']} {what}: {safe(job['project'])} {safe(job['version'])}"
                    f" [{safe(job['state'])}] {api.base_url}/jobs/{job['id']}"
                )
            if args.follow:
                return await follow_job(api, int(job["id"]), 0, args)
            return EXIT_OK

    return run_command(main)
