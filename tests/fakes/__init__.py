"""Fakes for tests: hand-built distributions (`dists`) and a loopback PyPI (`pypi`).

Fakes stand in for things that cannot fail on cue (PyPI) or that we must never run
(a package's build backend). They are real enough for pip to consume.
"""
