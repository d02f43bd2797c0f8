"""Test doubles that ship with trizab, for its tests and yours.

For tests of code that uses ZooKeeper: :mod:`trizab.testing.pytest_plugin` (the pytest
fixtures, installed as the ``trizab`` pytest plugin), the real-server launchers behind them
(:mod:`trizab.testing.process` for one ``trizab serve`` process,
:mod:`trizab.testing.ensemble` for an ensemble whose members a test can kill, pause and
partition through :mod:`trizab.testing.proxy`) and :mod:`trizab.testing.kazoo_harness`
(kazoo's own ``KazooTestHarness`` on trizab).  For tests of the ZAB core:
:mod:`trizab.testing.sim` (a deterministic simulated ensemble of ZAB peers with faults and
the Zab property checker; ``python -m trizab.testing.sim`` soaks it),
:mod:`trizab.testing.zabnet` (a hand-driven network of ZAB peers for unit tests) and
:mod:`trizab.testing.memnet` (in-memory listeners, so a server runs under trio's
``MockClock``).
"""
