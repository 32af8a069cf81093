"""Is a test failure only a speed check? Read from the failure's text and the test's id.

Under TCG the guest runs about ten times slower than the machines a suite's speed
checks were written for: "parse took 1.99s, expected sub-second" (sqlparse),
"UTF-16 not fast enough vs statistical: 1.7x (need 2.5x)" (chardet's
``test_benchmark.py``) fail there and nowhere else. The runner reports such failures
apart (``speed_failures``); the slave, which knows whether its guest was emulated,
decides whether they count (:mod:`slave.job.record`). What counts as a speed check:

- the failure text says so: a time taken or elapsed with its unit ("took 1.99s",
  "elapsed: 350 ms"), "sub-second", "not fast enough", "too slow", "slower than",
  "faster than", Hypothesis's ``DeadlineExceeded``, the project's own per-test limit
  (pytest-timeout's "Timeout (>20.0s) from pytest-timeout": filelock) or pyti's own
  (``Timeout (>450s) from pyti``, `guest_runner.pytest_plugin`), a child process
  given a fixed time (``subprocess.TimeoutExpired: Command '[python, -O, ...]' timed out
  after 15 seconds``: portalocker starts an interpreter, which under TCG and the tracer
  takes seconds);
- or the test lives in a benchmark / performance module or is named for speed
  (``test_benchmark.py``, ``tests/perf/``, ``test_speed``, ``test_performance``), and
  its failure is an assertion on a number (``assert 1.65 >= 2.5``);
- or the failure is a number over its upper bound (``assert 8.2 < 1.1``, unittest's
  ``8 not less than 1.1``) and the code pytest shows for it reads a clock
  (``time.monotonic()``, ``perf_counter()``, ``current_time_ms()``): tenacity's
  ``t = current_time_ms() - start; self.assertLess(t, 1.1)``;
- or the failure is a number under its lower bound (``assert 23 > 30``, unittest's
  ``23 not greater than 30``) in code that sleeps (``time.sleep``, ``asyncio.sleep``)
  and reads no clock: work counted within a time window, which a slower guest does
  less of (aiofiles' ``test_slow_file`` counts the round trips a client completes
  while a file opens in one second). A number under a lower bound in code that reads
  a clock is a time that came out *short* (``assert 0.2 >= 1.0``: a retry that did
  not wait), never a slow guest's doing;
- or the failing line asserts what a bounded wait returned, and it came back false
  (``assert _wait_for(lambda: len(outcomes) >= 2)`` → ``assert False``; a call named
  ``wait…``, ``…_wait_for``, ``…wait_until``, ``eventually``): the condition did not
  come true in the time the suite gave it (portalocker's Redis self-check tests,
  whose own comment says "a loaded CI runner can miss a tight one").
"""

from __future__ import annotations

import re

SPEED_TEXT = re.compile(
    r"\b(?:took|elapsed)\b[^\n]{0,40}?\d+(?:\.\d+)?\s*(?:s|ms|sec|secs|seconds)\b|"
    r"sub-second|not fast enough|too slow|slower than|faster than|DeadlineExceeded|"
    r"Timeout \(>\d+(?:\.\d+)?s\) from (?:pytest-timeout|pyti)|"
    r"TimeoutExpired: Command .{1,400}? timed out after \d+(?:\.\d+)? seconds",
    re.IGNORECASE,
)
SPEED_TEST = re.compile(r"bench|perf|speed|timing", re.IGNORECASE)
NUMBER_ASSERTION = re.compile(r"assert -?\d+(?:\.\d+)?(?:e-?\d+)? *(?:[<>]=?) *-?\d")
_NUMBER = r"-?\d+(?:\.\d+)?(?:e-?\d+)?"


def _failed_bound(operator: str, word: str) -> re.Pattern[str]:
    """A failed comparison of numbers as pytest (``assert 8 < 1.1``, ``<=``, a difference
    in parentheses) or unittest (``8 not less than 1.1``, ``or equal to``) words it."""
    return re.compile(
        rf"assert \(?{_NUMBER}(?: *[-+*/] *{_NUMBER})?\)? *{operator}=? *{_NUMBER}\b|"
        rf"{_NUMBER} not {word} than (?:or equal to )?{_NUMBER}"
    )


#: a number that was to stay under a bound (``assert 8 < 1.1``, ``8 not less than 1.1``)
OVER_BOUND = _failed_bound("<", "less")
#: a number that was to reach a bound (``assert 23 > 30``, ``23 not greater than 30``)
UNDER_BOUND = _failed_bound(">", "greater")
#: a sleep in the code pytest shows: ``time.sleep(1)``, ``await asyncio.sleep(0.01)``
SLEEP = re.compile(r"\bsleep\(")
#: a clock read in the code pytest shows: ``time.time()``, ``time.monotonic()``,
#: ``perf_counter()``, ``loop.time()``, ``current_time_ms()``, ``default_timer()``
CLOCK = re.compile(r"\b\w*(?:time|monotonic|perf_counter|clock|timer)\w*\(\)")


#: pytest's failing line asserting a bounded wait's result (``>  assert _wait_for(...)``)
WAITED = re.compile(
    r"^>\s+assert\s+(?:await\s+)?[\w.]*?(?:\bwait\w*|_wait_for|wait_until|eventually)\(",
    re.MULTILINE,
)
#: what pytest says when that assertion failed: the wait returned false
WAIT_FALSE = re.compile(r"^E\s+assert (?:False|None|0)\b", re.MULTILINE)


def is_speed_failure(node_id: str, text: str) -> bool:
    """True when the failure is a speed check (see the module docstring)."""
    if SPEED_TEXT.search(text):
        return True
    if WAITED.search(text) and WAIT_FALSE.search(text):
        return True
    if OVER_BOUND.search(text) and CLOCK.search(text):
        return True
    if UNDER_BOUND.search(text) and SLEEP.search(text) and not CLOCK.search(text):
        return True
    return bool(SPEED_TEST.search(node_id) and NUMBER_ASSERTION.search(text))
