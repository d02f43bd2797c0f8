"""Interpreter-wide settings for a server process, applied once by ``trizab serve``.

The cycle collector's thresholds, ``gc.freeze`` and the GIL switch interval belong to
the whole interpreter, not to one server: changed from inside :class:`Server` they
would also change every test, benchmark or program that embeds a server (and, for
the switch interval, every other thread it runs).  So the library leaves them
alone and the command line's entry point (:func:`trizab.cli.main`, for ``trizab
serve`` and so for every member ``trizab ensemble`` starts) calls
:func:`tune_process` before it runs a server, and hands :func:`freeze_big_tree` to
the server as its ``on_tree_settled`` hook.  Whoever embeds a server runs with the
interpreter's defaults unless it calls these itself (``bench/pipeline.py`` does,
to measure what the server costs as it runs).
"""

from __future__ import annotations

import gc
import sys

__all__ = ["GC_FREEZE_NODES", "GC_GEN0_THRESHOLD", "SWITCH_INTERVAL_S", "freeze_big_tree", "tune_process"]

# Every request allocates a handful of small tracked objects (records, pending entries)
# that die young; with the default gen-0 threshold of 700 the collector ran every few
# dozen requests and cost ~3 us per write in the benchmark.
GC_GEN0_THRESHOLD = 50_000
# Trees at least this big are frozen (see freeze_big_tree).
GC_FREEZE_NODES = 100_000
# How long a thread may hold the GIL while another waits for it (CPython's default is 5 ms).
# A member's storage worker returns from its fsync into Python code; while the peer task is
# busy (at load it always is) the default made every storage barrier last at least 5 ms
# more, and the next Ready waited behind it.
SWITCH_INTERVAL_S = 0.0005


def tune_process(*, replicated: bool) -> None:
    """Keep CPython's cycle collector off the request path; for an ensemble member
    (``replicated``) also shorten the GIL switch interval (never lengthen it)."""
    gen0, gen1, gen2 = gc.get_threshold()
    if gen0 and gen0 < GC_GEN0_THRESHOLD:  # gen0 == 0: the collector is off, leave it so
        gc.set_threshold(GC_GEN0_THRESHOLD, gen1, gen2)
    if replicated and sys.getswitchinterval() > SWITCH_INTERVAL_S:
        sys.setswitchinterval(SWITCH_INTERVAL_S)


def freeze_big_tree(node_count: int) -> None:
    """Move a big tree out of the collector's way (the server calls this after recovery and
    after each snapshot, with the tree's size).

    Freezing moves every object alive now to the permanent generation: the tree has no
    reference cycles to find, and a full collection would otherwise walk every znode, a
    pause of seconds for millions of them.  Small trees are not frozen: freezing also pins
    whatever cyclic garbage the process holds at that moment.
    """
    if node_count >= GC_FREEZE_NODES:
        gc.freeze()
