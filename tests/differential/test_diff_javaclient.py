"""The stock Java client (ZooKeeperMain) prints the same transcript against trizab as against ZooKeeper:
in plain text, over TLS (Netty socket, client certificate) and with SASL DIGEST-MD5."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from compat.javaclient import compare, normalize, run_script, variants

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


def _variant_transcripts(
    factory: Callable[[Path], variants.Variant], directory: Path
) -> tuple[list[str], list[str]]:
    """(ZooKeeper's, trizab's) transcripts with the same material (certificates, JAAS files)."""
    variant = factory(directory)
    return variants.transcript(variant, apache=True), variants.transcript(variant, apache=False)


def test_java_client_over_tls_matches_zookeeper(tmp_path: Path) -> None:
    zookeeper, trizab = _variant_transcripts(variants.tls, tmp_path)
    text = "\n".join(zookeeper)
    # The controls: the script ran, over TLS with the client's certificate (whoami shows its x509 id).
    assert "Created /jc/seq-0000000002" in text
    assert "x509: CN=client" in text
    diff = compare(zookeeper, trizab)
    assert diff is None, diff


@pytest.fixture(scope="module")
def sasl_digest(tmp_path_factory: pytest.TempPathFactory) -> tuple[variants.Variant, list[str]]:
    """The SASL variant (its JAAS files) and ZooKeeper's transcript with it."""
    variant = variants.sasl_digest(tmp_path_factory.mktemp("sasl"))
    return variant, variants.transcript(variant, apache=True)


def test_the_sasl_variant_authenticates_against_zookeeper(
    sasl_digest: tuple[variants.Variant, list[str]],
) -> None:
    # The controls, outside the expected failure below: the script ran, authenticated by SASL
    # DIGEST-MD5 (the client saw SaslAuthenticated, and whoami shows the sasl id).
    text = "\n".join(sasl_digest[1])
    assert "Created /jc/seq-0000000002" in text
    assert "WatchedEvent state:SaslAuthenticated" in text
    assert f"sasl: {variants.SASL_USER}" in text


def test_java_client_with_sasl_digest_matches_zookeeper(
    sasl_digest: tuple[variants.Variant, list[str]],
) -> None:
    variant, zookeeper = sasl_digest
    diff = compare(zookeeper, variants.transcript(variant, apache=False))
    assert diff is None, diff
