"""The ``trizab serve`` launcher, which now ships in the package (:mod:`trizab.testing.process`).

Re-exported here so the repository's tests, ``compat`` and ``bench`` keep importing it from
``testkit``.
"""

from trizab.testing.process import (
    START_TIMEOUT_S,
    ServerStartError,
    TrizabProcess,
    four_letter_word,
    free_port,
    kill_process,
    terminate_process,
)

__all__ = [
    "START_TIMEOUT_S",
    "ServerStartError",
    "TrizabProcess",
    "four_letter_word",
    "free_port",
    "kill_process",
    "terminate_process",
]
