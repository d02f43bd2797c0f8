"""The stock Java client (ZooKeeperMain) against trizab and Apache ZooKeeper: equal transcripts.

:func:`run` is the plain-text transcript; :mod:`compat.javaclient.tls` runs it over TLS, and
:mod:`compat.javaclient.variants` holds the client and server settings of each variant.
"""

from __future__ import annotations

from compat.differential.result import SuiteResult
from compat.javaclient.transcript import SCRIPT, compare, normalize, run_script

__all__ = ["SCRIPT", "compare", "normalize", "run", "run_script"]


def run(target_trizab: bool = True) -> SuiteResult:
    """Run the script against Apache ZooKeeper and against trizab (or a second ZooKeeper).

    Passed/failed count one comparison; ``details`` holds the diff when they differ.
    """
    from compat.javaclient import variants

    return variants.compare(variants.plain, target_trizab=target_trizab)
