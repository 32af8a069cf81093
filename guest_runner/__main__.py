"""``python -m guest_runner --job job.json`` (the guest runs the same code as ``runner.pyz``)."""

import sys

from guest_runner.runner import main

sys.exit(main())
