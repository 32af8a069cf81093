"""What master and slave share without importing each other.

- ``pyti.cli``: the ``pyti`` console script; it loads the chosen subcommand's
  module (``master.daemon_cli``, ``slave.cli``, ``slave.image_builder.cli``,
  ``master.client.*``) by name, only when that subcommand runs.
- ``pyti.logging``: structlog set-up of both daemons.
- ``pyti.settings``: the one loader of settings files (master, slave, ``[feed]``,
  image recipes): declared fields, strict types, clear errors.
- ``pyti.tasks``: ``cancel_and_wait``, ending owned tasks without swallowing
  the caller's own cancellation (standard library only).

This package imports neither ``master`` nor ``slave`` (a unit test walks the
imports); they import it. ``protocol`` imports ``pyti.tasks``, so nothing here
imports ``protocol`` either.
"""
