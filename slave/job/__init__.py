"""The job side: what the slave does with one job it holds, from acceptance to result.

- ``active.py``: :class:`ActiveJob`, a job the daemon holds (state, spool, uploads).
- ``context.py``: :class:`JobContext` and the :class:`Executor` contract the daemon calls.
- ``executor.py``: :class:`VMExecutor`, the real executor (prepare, boot, run, verdict).
- ``phases.py``: the executor's steps that talk to the guest (upload, runner stream).
- ``record.py``: :class:`RunRecord`, runner events -> phases, findings, outcome.
"""
