"""The stock Java client with SASL DIGEST-MD5 (a JAAS ``Client`` section): equal transcripts.

``python -m compat`` runs this as one of its extra suites; its pytest form is
``tests/differential/test_diff_javaclient.py``.
"""

from __future__ import annotations

from compat.differential.result import SuiteResult
from compat.javaclient import variants

__all__ = ["run"]


def run(target_trizab: bool = True) -> SuiteResult:
    return variants.compare(variants.sasl_digest, target_trizab=target_trizab)
