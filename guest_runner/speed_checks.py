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
  (pytest-timeout's "Timeout (>20.0s) from pytest-timeout": filelock);
- or the test lives in a benchmark / performance module or is named for speed
  (``test_benchmark.py``, ``tests/perf/``, ``test_speed``, ``test_performance``), and
  its failure is an assertion on a number (``assert 1.65 >= 2.5``).
"""

from __future__ import annotations

import re

SPEED_TEXT = re.compile(
    r"\b(?:took|elapsed)\b[^\n]{0,40}?\d+(?:\.\d+)?\s*(?:s|ms|sec|secs|seconds)\b|"
    r"sub-second|not fast enough|too slow|slower than|faster than|DeadlineExceeded|"
    r"Timeout \(>\d+(?:\.\d+)?s\) from pytest-timeout",
    re.IGNORECASE,
)
SPEED_TEST = re.compile(r"bench|perf|speed|timing", re.IGNORECASE)
NUMBER_ASSERTION = re.compile(r"assert -?\d+(?:\.\d+)?(?:e-?\d+)? *(?:[<>]=?) *-?\d")


def is_speed_failure(node_id: str, text: str) -> bool:
    """True when the failure is a speed check (see the module docstring)."""
    if SPEED_TEXT.search(text):
        return True
    return bool(SPEED_TEST.search(node_id) and NUMBER_ASSERTION.search(text))
