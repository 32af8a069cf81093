"""What SIGHUP (``systemctl reload``) changes in a running master (``pyti.reloader`` runs it).

A reload reads the configuration again exactly as at start (``--config`` and
flags, every file they name) and applies the settings that can change live:

- ``tokens`` (``--token-file``): the HTTP API accepts the new set from the next request;
- the slave secrets (``--secret-file``/``secret_file`` and ``secret_files``): the next
  handshake accepts any of them; connected slaves stay connected;
- ``log_level``.

Any other setting that differs is named in a ``config_reload_needs_restart`` warning
and left as it was. A configuration that cannot be used (a missing or short secret,
an unreadable token file, bad TOML) is refused as a whole: the old settings stay and
``config_reload_failed`` says why.
"""

from __future__ import annotations

import dataclasses

from master.config import MasterConfig

#: ``MasterConfig`` fields a reload applies.
LIVE_FIELDS = ("secret", "other_secrets", "secret_file", "tokens", "token_file", "log_level")


def reloaded(running: MasterConfig, new: MasterConfig) -> tuple[MasterConfig, list[str]]:
    """``running`` with ``new``'s live settings, and the names of other settings that differ."""
    changed = [
        f.name
        for f in dataclasses.fields(MasterConfig)
        if f.name not in LIVE_FIELDS and getattr(running, f.name) != getattr(new, f.name)
    ]
    live = {name: getattr(new, name) for name in LIVE_FIELDS}
    return dataclasses.replace(running, **live), changed
