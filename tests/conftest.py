"""Settings for the whole suite."""

from hypothesis import settings

# The machine is shared (TCG guests, other suites): a property test's wall time says
# nothing about its correctness, and Hypothesis' 200 ms deadline failed on load alone.
settings.register_profile("pyti", deadline=None)
settings.load_profile("pyti")
