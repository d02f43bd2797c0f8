"""Data directories move both ways between trizab and Apache ZooKeeper 3.8, without flags.

trizab writes a snapshot when it starts on a directory that has none, as ZooKeeper does, so
ZooKeeper opens a directory that only trizab ever wrote (rolling back); and trizab opens
ZooKeeper's (migrating).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from kazoo.client import KazooClient

from testkit import apache_zk
from testkit.process import TrizabProcess

pytestmark = [pytest.mark.apache, pytest.mark.timeout(180)]

if not apache_zk.available():
    pytest.skip("Apache ZooKeeper (Debian package zookeeper) is not installed", allow_module_level=True)


def _client(address: str) -> KazooClient:
    c = KazooClient(hosts=address, timeout=10.0)
    c.start(timeout=30)
    return c


def test_zookeeper_opens_a_directory_trizab_wrote_and_back(tmp_path: Path) -> None:
    trizab = TrizabProcess(tmp_path / "trizab")
    with trizab:
        c = _client(trizab.address)
        try:
            c.create("/moved", b"by trizab")
            for i in range(50):
                c.create("/moved/seq-", str(i).encode(), sequence=True)
            c.set("/moved", b"by trizab, twice")
        finally:
            c.stop()
            c.close()
    # ZooKeeper on the very same files (its dataDir is <workdir>/data, as trizab's is).
    zk = apache_zk.ApacheZooKeeper(workdir=tmp_path / "trizab")
    with zk:
        c = _client(zk.address)
        try:
            assert c.get("/moved")[0] == b"by trizab, twice"
            assert len(c.get_children("/moved")) == 50
            c.create("/moved/by-zookeeper", b"zk")
        finally:
            c.stop()
            c.close()
    # And back to trizab, with ZooKeeper's write.
    with TrizabProcess(tmp_path / "trizab", port=trizab.port) as again:
        c = _client(again.address)
        try:
            assert c.get("/moved/by-zookeeper")[0] == b"zk"
            seqs = sorted(ch for ch in c.get_children("/moved") if ch.startswith("seq-"))
            assert len(seqs) == 50
            # The parent's sequence counter survived both moves.
            created = c.create("/moved/seq-", b"next", sequence=True)
            assert created > "/moved/" + seqs[-1]
        finally:
            c.stop()
            c.close()
