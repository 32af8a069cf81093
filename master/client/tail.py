"""``pyti tail ID``: follow a job's live log; the exit code reflects the outcome (a CI step).

Reconnects with ``Last-Event-ID`` after a dropped connection or after the master's
``closing`` marker (it is shutting down), with a backoff jittered so that the tails
of a restarted master do not all come back in the same instant, and gives up after
``MAX_FAILURES`` attempts in a row without progress. Prints each event once and in
order, coloured by level on a terminal, and exits with the outcome's code when the
``end`` event arrives (see ``master.client.api`` for the codes).
Everything printed that came from the guest has its control characters escaped.

``trace`` events (one per strace line: thousands a job) are not printed unless
``--trace`` is given; ``finding`` events, outputs and phases always are. Only the
printing is filtered: the stream from the master carries every event, and a
reconnect resumes after the last event received, shown or not.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
from collections.abc import Callable
from typing import Any, TextIO

import aiohttp

from master.client.api import (
    EXIT_CODES_HELP,
    EXIT_ERROR,
    Api,
    ClientError,
    add_common_args,
    fmt_time,
    outcome_exit,
    run_command,
    safe,
)
from protocol.vocabulary import shown

MAX_FAILURES = 8
#: Seconds before the next connection after 0, 1, 2... failures in a row, each ±50 %.
BACKOFF_S = (0.2, 0.5, 1.0, 2.0, 4.0, 8.0)

_COLOURS = {
    "debug": "\x1b[2m",
    "info": "",
    "warning": "\x1b[33m",
    "error": "\x1b[31m",
    "critical": "\x1b[1;31m",
}
_RESET = "\x1b[0m"


def configure(parser: argparse.ArgumentParser) -> None:
    """Flags of ``pyti tail``."""
    parser.epilog = EXIT_CODES_HELP
    parser.add_argument("job_id", type=int, metavar="ID", help="the job to follow")
    parser.add_argument(
        "--after",
        type=int,
        default=0,
        metavar="SEQ",
        help="start after this event seq (default: from the beginning)",
    )
    parser.add_argument("--no-color", action="store_true", help="never colour the output")
    parser.add_argument(
        "--trace",
        action="store_true",
        help="also print the syscall trace lines (hidden by default: thousands per job)",
    )
    add_common_args(parser)


def format_event(event: dict[str, Any], colour: bool) -> str:
    """One line for a human: time, level, phase, event, fields (escaped)."""
    level = safe(event.get("level", "info"))
    fields = event.get("fields") or {}
    line = fields.get("line") if isinstance(fields, dict) else None
    rest = {k: v for k, v in fields.items() if k != "line"} if isinstance(fields, dict) else {}
    text = " ".join(
        [
            fmt_time(event.get("ts"))[11:],
            f"{level:<8}",
            f"{safe(event.get('phase') or '-'):<9}",
            safe(event.get("event", "")),
        ]
    )
    if line is not None:
        text += " | " + safe(line)
    if rest:
        text += " " + safe(json.dumps(rest, sort_keys=True, ensure_ascii=False))
    if colour and _COLOURS.get(level):
        return _COLOURS[level] + text + _RESET
    return text


def retry_delay(failures: int, rng: random.Random) -> float:
    """Seconds before reconnecting after ``failures`` failures in a row (after progress: 0).

    Jittered ±50 % (the mean, and so the time before giving up, stays that of
    ``BACKOFF_S``): every client of a master that went down lost it at the same
    moment, and without jitter they would all reconnect in the same millisecond.
    """
    return BACKOFF_S[min(failures, len(BACKOFF_S) - 1)] * rng.uniform(0.5, 1.5)


class Tail:
    """Follows one job; ``last_seq`` is where a reconnect resumes."""

    def __init__(
        self,
        api: Api,
        job_id: int,
        after: int,
        emit: Callable[[dict[str, Any]], None],
        *,
        sleep: Callable[[float], Any] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.api = api
        self.job_id = job_id
        self.last_seq = after
        self.emit = emit
        self.reconnects = 0
        #: ``closing`` markers received: the master shut down (then restarted) cleanly
        self.closings = 0
        self._sleep = sleep
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not secrecy

    async def follow(self) -> dict[str, Any]:
        """Events until the end; returns the finished job.

        Raises ``ClientError`` on a refusal (4xx) or after ``MAX_FAILURES`` failed
        connections in a row; cancellation closes the connection.
        """
        failures = 0
        while True:
            before = self.last_seq
            try:
                async for message in self.api.stream(self.job_id, self.last_seq):
                    if message.event == "log":
                        event = json.loads(message.data)
                        seq = int(event["seq"])
                        if seq <= self.last_seq:
                            continue  # already shown before a reconnect
                        self.last_seq = seq
                        self.emit(event)
                    elif message.event == "end":
                        job: dict[str, Any] = json.loads(message.data)
                        return job
                    elif message.event == "closing":
                        self.closings += 1  # the stream ends next; resume once it is back
                reason = "the master closed the stream"
            except (aiohttp.ClientError, OSError, TimeoutError, ValueError, KeyError) as exc:
                reason = f"{type(exc).__name__}: {exc}"
            failures = 0 if self.last_seq > before else failures + 1
            if failures >= MAX_FAILURES:
                raise ClientError(f"lost the master ({reason}); giving up")
            self.reconnects += 1
            await self._sleep(retry_delay(failures, self._rng))


#: Events hidden unless ``--trace``: the raw syscall trace (findings carry what matters).
TRACE_EVENTS = frozenset({"trace"})


class Printer:
    """Prints events (human or JSON lines), skipping trace events unless asked to show them."""

    def __init__(self, out: TextIO, *, as_json: bool, colour: bool, traces: bool) -> None:
        self.out = out
        self.as_json = as_json
        self.colour = colour
        self.traces = traces
        self.hidden = 0  # trace events received but not printed

    def __call__(self, event: dict[str, Any]) -> None:
        if not self.traces and event.get("event") in TRACE_EVENTS:
            self.hidden += 1
            return
        if self.as_json:
            print(json.dumps({"type": "event", **event}), file=self.out, flush=True)
        else:
            print(format_event(event, self.colour), file=self.out, flush=True)


def _printer(args: argparse.Namespace, out: TextIO) -> Printer:
    colour = out.isatty() and not args.no_color and "NO_COLOR" not in os.environ
    # ``pyti submit --follow`` shares this code without a --trace flag: traces stay hidden.
    traces = bool(getattr(args, "trace", False))
    return Printer(out, as_json=args.json, colour=colour, traces=traces)


async def follow_job(api: Api, job_id: int, after: int, args: argparse.Namespace) -> int:
    """Tail ``job_id`` to its end and print the outcome; the outcome's exit code."""
    printer = _printer(args, sys.stdout)
    tail = Tail(api, job_id, after, printer)
    job = await tail.follow()
    outcome = job.get("outcome")
    if args.json:
        print(json.dumps({"type": "end", "job": job}), flush=True)
    else:
        if printer.hidden:
            print(f"({printer.hidden} trace lines not shown; --trace shows them)", file=sys.stderr)
        result = shown(outcome if isinstance(outcome, str) else None, job.get("verdict"))
        summary = job.get("summary")
        reason = summary.get("reason") if isinstance(summary, dict) else None
        why = f" — {safe(reason)}" if isinstance(reason, str) and reason else ""
        print(f"job {job_id} {safe(job.get('state'))}: {safe(result)}{why}", file=sys.stderr)
    code = outcome_exit(outcome if isinstance(outcome, str) else None)
    return code


def run(args: argparse.Namespace) -> int:
    """Follow the job; exit with its outcome's code."""
    if args.after < 0:
        print("pyti tail: --after must be ≥ 0", file=sys.stderr)
        return EXIT_ERROR

    async def main() -> int:
        async with Api(args.master, args.token) as api:
            return await follow_job(api, args.job_id, args.after, args)

    return run_command(main)
