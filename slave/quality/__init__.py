"""Quality indicators of a release (pyti issue 9), and a summary score.

Each indicator has a stable id (`group.name`), a plain-data value, a level
(`pass | warn | fail`) and a one-line reason. The full list is in `docs/quality.md`.

- `static_indicators(files)` runs on the host, reading the release's files as data
  through `slave.archive.SafeArchive` (never importing or running the package). It is
  synchronous and CPU-bound: call it with `asyncio.to_thread`. Hostile archives give
  `fail` indicators, never exceptions.
- `runtime_indicators(events)` reads the guest runner's events (`tests_summary`,
  `quality`, `phase_finished`, install `output`), treating them as untrusted.
- `build_report(static, runtime)` scores them into a `QualityReport`;
  `trend(previous, current)` lists what regressed and improved since the previous
  release of the same project.

Score (0-100): pass = 1, warn = 0.5, fail = 0; the mean per group, then the weighted
mean of the groups present, times 100, rounded::

    score = round(100 * sum(w[g] * mean(points in g)) / sum(w[g] for groups present))
    w = metadata 25, distribution 20, tests 25, code 15, install 15
"""

from slave.quality.indicator import Group, Indicator, IndicatorFormatError, Level
from slave.quality.report import (
    POINTS,
    WEIGHTS,
    QualityReport,
    build_report,
    group_scores,
    score,
    trend,
)
from slave.quality.runtime import runtime_indicators
from slave.quality.static import static_indicators

__all__ = [
    "POINTS",
    "WEIGHTS",
    "Group",
    "Indicator",
    "IndicatorFormatError",
    "Level",
    "QualityReport",
    "build_report",
    "group_scores",
    "runtime_indicators",
    "score",
    "static_indicators",
    "trend",
]
