"""The stock Java client (ZooKeeperMain) prints the same transcript against trizab as against ZooKeeper."""

from __future__ import annotations

import pytest

from compat.javaclient import compare, normalize, run_script

pytestmark = pytest.mark.apache


@pytest.fixture(scope="module")
def zookeeper_transcript(apache_address: tuple[str, int]) -> list[str]:
    return normalize(run_script(apache_address))


def test_script_exercises_the_server(zookeeper_transcript: list[str]) -> None:
    # Guard against a transcript that is equal because nothing ran (no connection, no commands).
    text = "\n".join(zookeeper_transcript)
    assert "Created /jc/seq-0000000002" in text
    assert "Node already exists: /jc/a" in text
    assert "Insufficient permission : /jc/a" in text
    assert "ephemeralOwner = <session>" in text


def test_java_client_transcript_matches_zookeeper(
    zookeeper_transcript: list[str], trizab_address: tuple[str, int]
) -> None:
    diff = compare(zookeeper_transcript, normalize(run_script(trizab_address)))
    assert diff is None, diff
