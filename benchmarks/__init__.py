"""Benchmarks: each script prints its figures and writes them with ``--json PATH``."""
