"""The Zab properties the simulation checks, and what a failed one raises.

See the package docstring (:mod:`trizab.testing.sim`) for the list of properties.
"""

from __future__ import annotations

# Once faults stop (everything healed and restarted), this much simulated time is
# allowed for a leader to be established and every pending write to be applied
# everywhere.  Derivation for the defaults (tickTime 2 s, initLimit 10, syncLimit 5):
# stale followers notice a silent leader within syncLimit (10 s); an election
# then needs a notification round (a LOOKING peer re-sends after at most the
# 60 s maxNotificationInterval in ZooKeeper, capped here by the backoff reached
# during the fault phase) and finalizeWait; a failed discovery costs initLimit
# (20 s) before the next try; the slowest path measured in soaks is well under
# this bound.
LIVENESS_BOUND_MS = 120_000


class InvariantViolation(AssertionError):
    """A Zab property failed; the message says which and where."""
