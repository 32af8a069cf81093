"""Behaviour findings: strace lines and runner facts in, findings and a verdict out.

```python
analyser = Analyser(Context(bait_token=manifest_bait["token"]))
for event in runner_events:                  # dicts, as the runner emits them
    new = analyser.feed_event(event)         # -> list[Finding], as they happen
verdict(analyser.findings)                   # "clean" | "suspicious" | "malicious"
profile(analyser.findings)                   # frozenset of (phase, class, target)
diff(profile_before, profile_now)            # -> [BehaviourChange], str() reads well
```
The rule table is `slave.findings.rules.RULES` (+ `EVENT_RULES`).
"""

from slave.findings.engine import (
    Analyser,
    BehaviourChange,
    ProfileEntry,
    Verdict,
    analyse,
    classify,
    diff,
    profile,
    verdict,
)
from slave.findings.model import Context, Finding, Severity

__all__ = [
    "Analyser",
    "BehaviourChange",
    "Context",
    "Finding",
    "ProfileEntry",
    "Severity",
    "Verdict",
    "analyse",
    "classify",
    "diff",
    "profile",
    "verdict",
]
