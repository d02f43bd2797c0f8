"""Process launchers for the tests, ``compat/`` and ``bench/``: not part of the installed package.

Real ``trizab serve`` processes (:mod:`testkit.process`, which re-exports the launcher that
ships in :mod:`trizab.testing.process`), local trizab ensembles
(:mod:`testkit.trizab_ensemble`) and real Apache ZooKeeper 3.8 servers from the
Debian package (:mod:`testkit.apache_zk`), with what they share: stopping a child
by pid (:mod:`testkit.procs`) and an ensemble's lifecycle
(:mod:`testkit.ensemble_base`).  They are imported from a checkout of the
repository (pytest's ``pythonpath``, ``python -m compat``, ``python -m bench...``
run from its root); nothing in ``trizab`` may import them
(``tests/test_layering.py`` checks).  What users of the package need for their
own tests is in :mod:`trizab.testing`: the pytest fixtures and their launchers,
kazoo's harness adapter, the simulated ZAB network and ensemble and the in-memory
listener.
"""
