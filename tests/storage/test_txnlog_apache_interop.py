"""``storage=txnlog`` files are Apache ZooKeeper's: each side reads the other's transaction log.

* ZooKeeper's own ``TxnLogToolkit`` dumps a log that trizab wrote, record for record.
* trizab's reader parses a log that a real ZooKeeper 3.8 server wrote (which carries
  3.6+'s TxnDigest after each body), and finds the zxids the server reported to kazoo.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from storage_helpers import make_txns, new_storage
from trizab.plugins.storage.txnlog import scan_log

from testkit import apache_zk
from trizab.wire.codes import OpCode

pytestmark = [pytest.mark.apache, pytest.mark.timeout(120)]

if not apache_zk.available():
    pytest.skip("Apache ZooKeeper (Debian package zookeeper) is not installed", allow_module_level=True)


def test_apache_txnlogtoolkit_reads_a_trizab_log(tmp_path: Path) -> None:
    s = new_storage("txnlog", tmp_path, prealloc="1M")
    s.open()
    txns = make_txns(range(1, 41))
    s.append(txns[:25])
    s.sync()
    s.append(txns[25:])
    s.sync()
    s.close()
    (segment,) = (tmp_path / "log" / "version-2").glob("log.*")
    java = apache_zk.java_executable()
    assert java is not None
    out = subprocess.run(
        [
            java,
            "-cp",
            apache_zk.classpath(),
            "org.apache.zookeeper.server.persistence.TxnLogToolkit",
            "-d",
            str(segment),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert "ZooKeeper Transactional Log File with dbid 0 txnlog format version 2" in out
    assert f"EOF reached after {len(txns)} txns." in out
    dumped = [int(z, 16) for z in re.findall(r" zxid (0x[0-9a-f]+) ", out)]
    assert dumped == [t.zxid for t in txns]
    # Spot-check that bodies decode on the Java side to what we wrote.
    assert re.search(r"zxid 0x1 setData /n1,", out)
    assert "createSession 30000" in out


def test_trizab_reads_an_apache_log(tmp_path: Path) -> None:
    kazoo_client = pytest.importorskip("kazoo.client")
    zk = apache_zk.ApacheZooKeeper(workdir=tmp_path)
    zk.start()
    zxids = []
    try:
        c = kazoo_client.KazooClient(zk.address, timeout=10)
        c.start(timeout=15)
        try:
            for i in range(30):
                _, stat = c.create(f"/interop{i}", b"d%d" % i, include_data=True)
                zxids.append(stat.czxid)
            zxids.append(c.set("/interop0", b"again").mzxid)
            c.delete("/interop1")
        finally:
            c.stop()
            c.close()
    finally:
        zk.stop()
    logs = sorted((zk.data_dir / "version-2").glob("log.*"))
    assert logs, "ZooKeeper wrote no transaction log"
    found = []
    for path in logs:
        scan = scan_log(path.read_bytes())
        assert scan.problem is None, scan.problem
        found += scan.txns
    by_zxid = {t.zxid: t for t in found}
    for z in zxids:
        assert z in by_zxid
    creates = [t for t in found if t.header.type in (OpCode.CREATE, OpCode.CREATE2)]
    assert [t.body.path for t in creates if t.body.path.startswith("/interop")] == [
        f"/interop{i}" for i in range(30)
    ]
    assert any(t.header.type == OpCode.DELETE and t.body.path == "/interop1" for t in found)
