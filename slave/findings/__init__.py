"""Behaviour findings: strace lines and runner facts in, findings and a verdict out.

```python
analyser = Analyser(Context(bait_token=manifest_bait["token"]))
for event in runner_events:                  # dicts, as the runner emits them
    new = analyser.feed_event(event)         # -> list[Finding], as they happen
verdict(analyser.findings)                   # "clean" | "suspicious" | "malicious"
profile(analyser.findings)                   # frozenset of (phase, class, target)
profile_to_json(p) / profile_from_json(data) # what the result summary carries, and back
diff(profile_before, profile_now)            # -> [BehaviourChange], str() reads well
analyser.add(static_findings(release_files)) # the host's static read, same list and verdict
```
The rule table is `slave.findings.rules.RULES` (+ `EVENT_RULES`); the static one is
`slave.findings.static_rules.STATIC_RULES` (``static_scan.static_findings`` applies it).
The verdict table: `engine` module docstring and docs/verdicts.md.
"""

from slave.findings.engine import Analyser, Verdict, analyse, classify, verdict
from slave.findings.model import Context, Finding, Severity
from slave.findings.profile import (
    BehaviourChange,
    ProfileEntry,
    diff,
    profile,
    profile_from_json,
    profile_to_json,
)

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
    "profile_from_json",
    "profile_to_json",
    "verdict",
]
