"""The job's phases, one module each: ``install``, ``imports``, ``tests``, ``quality``.

Each exposes ``run(ws, budget) -> Outcome``; :mod:`guest_runner.runner` calls them
in the job's order and reports each one.
"""
