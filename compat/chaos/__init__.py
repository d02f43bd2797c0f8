"""Fault injection on real processes: a harness runs a small ensemble of ZooKeeper-protocol servers
(trizab or Apache ZooKeeper), drives kazoo clients pinned to its members while it kills, pauses and
partitions them, records every operation (:mod:`compat.chaos.history`), and afterwards judges the
record with I/O-free checkers (:mod:`compat.chaos.checkers`, linearizability by
:mod:`compat.chaos.wgl`).
"""
