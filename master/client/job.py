"""``pyti job ID``: one job — state, outcome, phases, findings, attempts, timings, and what
changed since the previous release of the project (quality trend, new and gone behaviours)."""

from __future__ import annotations

import argparse
from typing import Any

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
from protocol.vocabulary import shown


def configure(parser: argparse.ArgumentParser) -> None:
    """Flags of ``pyti job``."""
    parser.add_argument("job_id", type=int, metavar="ID")
    add_common_args(parser)


def render(body: dict[str, Any]) -> str:
    """The job for a human (every value from the guest escaped)."""
    job = body["job"]
    lines = [
        f"job {job['id']}: {safe(job['project'])} {safe(job['version'])} on {safe(job['image'])}",
        f"  state     {safe(job['state'])}   outcome "
        f"{safe(shown(job.get('outcome'), job.get('verdict')))}"
        f"   attempt {job.get('attempt')}   isolation {safe(job.get('isolation') or '-')}",
        f"  created   {fmt_time(job.get('created_at'))}   started {fmt_time(job.get('started_at'))}"
        f"   finished {fmt_time(job.get('finished_at'))}",
    ]
    if job.get("error"):
        lines.append(f"  error     {safe(job['error'])}")
    reason = (job.get("summary") or {}).get("reason")
    if isinstance(reason, str) and reason:
        lines.append(f"  reason    {safe(reason)}")
    quality = (job.get("summary") or {}).get("quality")
    if isinstance(quality, dict) and "score" in quality:
        groups = quality.get("groups") or {}
        detail = (
            "  ".join(f"{safe(g)} {v}" for g, v in groups.items())
            if isinstance(groups, dict)
            else ""
        )
        lines.append(f"  quality   {safe(quality['score'])}/100   {detail}".rstrip())
    lines += _trend_lines(job.get("quality_trend"))
    lines += _diff_lines(job.get("behaviour_diff"))
    phases = job.get("phases") or {}
    if phases:
        rows = []
        for name, raw in phases.items():
            info = raw if isinstance(raw, dict) else {"status": raw}
            duration = info.get("duration_s")
            detail = info.get("signal_name") or (
                f"exit {info['exit_code']}" if info.get("exit_code") is not None else ""
            )
            rows.append(
                [
                    safe(name),
                    safe(info.get("status", "-")),
                    f"{duration:.1f}s" if isinstance(duration, int | float) else "-",
                    safe(detail),
                ]
            )
        lines += ["", table(rows, ["PHASE", "STATUS", "TIME", "DETAIL"])]
    findings = job.get("findings") or []
    if findings:
        rows = [
            [
                safe(f.get("severity", "")),
                safe(f.get("rule", "")),
                safe(f.get("phase", "")),
                safe(str(f.get("evidence", ""))[:120]),
            ]
            for f in findings
            if isinstance(f, dict)
        ]
        lines += ["", table(rows, ["SEVERITY", "RULE", "PHASE", "EVIDENCE"])]
    attempts = body.get("attempts") or []
    if attempts:
        rows = [
            [
                str(a.get("attempt")),
                safe(a.get("slave", "")),
                safe(a.get("status", "")),
                safe(a.get("outcome") or "-"),
                safe(a.get("reason") or ""),
            ]
            for a in attempts
        ]
        lines += ["", table(rows, ["ATTEMPT", "SLAVE", "STATUS", "OUTCOME", "REASON"])]
    return "\n".join(lines)


def _previous(previous: object) -> str:
    if not isinstance(previous, dict):
        return "-"
    return f"{safe(previous.get('version'))} (job {safe(previous.get('job_id'))})"


def _trend_lines(trend: object) -> list[str]:
    """The quality trend against the previous release (absent until the job finished)."""
    if not isinstance(trend, dict):
        return []
    previous = trend.get("previous")
    if not isinstance(previous, dict):
        return ["  trend     no earlier release of this project tested"]
    change = trend.get("score_change")
    delta = f"{change:+d}" if isinstance(change, int) else "n/a"
    before, after = (
        safe("-" if v is None else v) for v in (previous.get("score"), trend.get("score"))
    )
    lines = [f"  trend     {delta} since {_previous(previous)}: {before} → {after}"]
    changes = trend.get("changes")
    for item in changes if isinstance(changes, list) else ():
        if isinstance(item, dict):
            lines.append(f"            {safe(item.get('text', ''))}")
    return lines


def _diff_lines(diff: object) -> list[str]:
    """New and gone behaviours against the previous release, one sentence each."""
    if not isinstance(diff, dict):
        return []
    previous = diff.get("previous")
    if not isinstance(previous, dict):
        return ["  behaviour no earlier release of this project tested"]
    entries: list[tuple[str, dict[str, Any]]] = []
    for label in ("new", "gone"):
        items = diff.get(label)
        if isinstance(items, list):
            entries += [(label, item) for item in items if isinstance(item, dict)]
    if not entries:
        return [f"  behaviour same as {_previous(previous)}"]
    lines = [f"  behaviour compared with {_previous(previous)}:"]
    lines += [f"            {label:<4} {safe(item.get('text', ''))}" for label, item in entries]
    return lines


def run(args: argparse.Namespace) -> int:
    """Print the job."""

    async def main() -> int:
        async with Api(args.master, args.token) as api:
            body = await api.get(f"/jobs/{args.job_id}")
        if args.json:
            print_json(body)
        else:
            print(render(body))
        return EXIT_OK

    return run_command(main)
