"""The stock Java client over TLS (Netty socket, client certificate): equal transcripts.

``python -m compat`` runs this as one of its extra suites; its pytest form is
``tests/differential/test_diff_javaclient.py``.
"""

from __future__ import annotations

from compat.differential.result import SuiteResult
from compat.javaclient import variants

__all__ = ["run"]


def run(target_trizab: bool = True) -> SuiteResult:
    return variants.compare(variants.tls, target_trizab=target_trizab)
