"""Test doubles that ship with trizab, for its tests and yours.

:mod:`trizab.testing.sim` (a deterministic simulated ensemble of ZAB peers with
faults and the Zab property checker; ``python -m trizab.testing.sim`` soaks it),
:mod:`trizab.testing.zabnet` (a hand-driven network of ZAB peers for unit tests)
and :mod:`trizab.testing.memnet` (in-memory listeners, so a server runs under
trio's ``MockClock``).  Launchers of real server processes are not here: they live
in the repository's ``testkit/`` and are not installed.
"""
