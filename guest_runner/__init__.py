"""pyti guest runner: install, import, test and lint one release, traced, as user ``tester``.

Runs inside the throw-away guest as root, stdlib only (the guest's Python), from
one file the image builder makes of this package (:func:`guest_runner.bundle.build_pyz`)::

    python3 -I -S /opt/pyti/runner.pyz --job /var/lib/pyti/job/job.json

Every line on stdout is one JSON object (``event``, ``phase``, free-form fields),
flushed as it happens; nothing else is written to stdout. The contract is the
"Guest runner" section of ``docs/contracts.md``; the job document it reads is
:class:`guest_runner.jobdoc.JobDocument`, which the slave builds too.

Nothing here may import ``slave``, ``master`` or ``protocol``, nor anything
outside the standard library.
"""
