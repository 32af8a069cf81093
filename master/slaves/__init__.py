"""The slaves as the master sees them: one module per part, each with one owner.

- ``listener``: the slave port (``SlaveListener``): TCP or TLS, the handshake,
  one session per slave, the staged shutdown (drain, hand back, close).
- ``session``: one slave's connection (``SlaveSession``): its reader,
  processor and sender tasks, offers and uploaded files out.
- ``handlers``: what each message from the slave does (``SlaveHandlers``),
  one at a time in arrival order, and what its heartbeats say
  (``SlaveStatus``).
- ``holdings``: the claims one slave holds (``Holdings``): adopt, forget,
  reconcile, surrender; the one place that hands a slave's jobs back.
- ``registry``: the connected slaves by name (``SlaveRegistry``), read by
  the scheduler and the HTTP API.

Imports run one way (listener → session → handlers → holdings); the
registry, which the scheduler reads, imports none of them.
"""
