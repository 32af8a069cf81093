"""The ``pyti`` client commands (submit, jobs, job, tail, slaves) over the master's HTTP API."""
