"""Four-letter words and the connection handshake have ZooKeeper's shape on trizab."""

from __future__ import annotations

import pytest

from compat.differential.fourlw import compare_handshakes, compare_words, handshake_outcomes

pytestmark = pytest.mark.apache


def test_handshake_matches_zookeeper(
    apache_address: tuple[str, int], trizab_address: tuple[str, int]
) -> None:
    diffs = compare_handshakes(apache_address, trizab_address)
    assert not diffs, "\n".join(diffs)


def test_handshake_cases_are_distinguished(apache_address: tuple[str, int]) -> None:
    # The comparison above is only meaningful if the cases produce different outcomes.
    outcomes = dict(handshake_outcomes(apache_address))
    assert outcomes["timeout below min"]["timeOut"] == 4000
    assert outcomes["resume with wrong password"]["timeOut"] == 0
    assert outcomes["lastZxidSeen ahead of server"] == "Closed"


def test_four_letter_words_match_zookeeper(
    apache_address: tuple[str, int], trizab_address: tuple[str, int]
) -> None:
    diffs, notes = compare_words(apache_address, trizab_address)
    for note in notes:
        print(note)
    assert not diffs, "\n".join(diffs)
