"""trizab status against real ensembles: trizab's, and Apache ZooKeeper 3.8's."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from kazoo.client import KazooClient

from testkit.apache_zk import ApacheEnsemble, ApacheZooKeeper
from testkit.process import TrizabProcess
from testkit.trizab_ensemble import TrizabEnsemble
from trizab.ops.status import MemberStatus, format_table, healthy, members_from_config, parse_address


def status(*args: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    run = subprocess.run(
        [sys.executable, "-m", "trizab", "status", "--json", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.stderr == "", run.stderr
    return run.returncode, json.loads(run.stdout)


def servers(addresses: Sequence[str]) -> list[str]:
    return [flag for a in addresses for flag in ("--server", a)]


def wait_for_leader(addresses: Sequence[str], timeout: float = 60.0) -> tuple[int, dict]:  # type: ignore[type-arg]
    deadline = time.monotonic() + timeout
    while True:
        rc, out = status(*servers(addresses))
        if rc == 0 or time.monotonic() > deadline:
            return rc, out
        time.sleep(0.2)


def write_some(connect: str, count: int) -> None:
    client = KazooClient(hosts=connect, timeout=5.0)
    client.start(timeout=30)
    try:
        for i in range(count):
            client.create(f"/status-{i}", b"x")
    finally:
        client.stop()
        client.close()


def check_ensemble(addresses: Sequence[str], connect: str) -> None:
    rc, out = wait_for_leader(addresses)
    assert rc == 0, out
    write_some(connect, 5)
    rc, out = wait_for_leader(addresses)
    members = out["members"]
    assert [m["address"] for m in members] == list(addresses)
    roles = sorted(m["role"] for m in members)
    assert roles == ["follower", "follower", "leader"], members
    leader = next(m for m in members if m["role"] == "leader")
    assert out["leader"] == leader["address"] and out["healthy"] is True
    top = int(leader["zxid"], 16)
    assert top & 0xFFFFFFFF >= 5 and leader["epoch"] == top >> 32 >= 1
    for m in members:
        assert m["lag"] == top - int(m["zxid"], 16) and 0 <= m["lag"] <= 5
        assert m["connections"] >= 1 and m["outstanding"] == 0  # the status query's own connection


def test_a_trizab_ensemble(tmp_path: Path) -> None:
    with TrizabEnsemble(3, tick_time=200, storage="memory", workdir=tmp_path / "ens") as ens:
        addresses = [m.address for m in ens.members]
        check_ensemble(addresses, ens.address)
        # The same members from a zoo.cfg: each server.N line's host, with its client port (on one
        # machine each member has its own, given in ZooKeeper 3.5's ";clientPort" form).
        cfg = tmp_path / "zoo.cfg"
        cfg.write_text(
            f"dataDir={tmp_path}\n"
            + "".join(
                f"server.{m.sid}=127.0.0.1:{m.quorum_port}:{m.election_port};{m.client_port}\n"
                for m in ens.members
            )
        )
        rc, out = status("--config", str(cfg))
        assert rc == 0 and out["leader"] is not None
        # A member down: reported unreachable, and the command fails; text output names it.
        down = ens.members[0]
        down.stop()
        rc, out = status(*servers(addresses))
        assert rc == 1
        assert out["members"][0]["role"] == "unreachable" and out["members"][0]["error"]
        text = subprocess.run(
            [sys.executable, "-m", "trizab", "status", *servers(addresses)], capture_output=True, text=True
        )
        assert text.returncode == 1 and f"{down.address}  unreachable" in text.stdout.replace("   ", "  ")


def test_a_standalone_server_needs_no_leader(tmp_path: Path) -> None:
    with TrizabProcess(tmp_path) as server:
        rc, out = status("--server", server.address)
    assert rc == 0 and out["members"][0]["role"] == "standalone" and out["leader"] is None


def test_bad_addresses_are_one_line_and_status_2(tmp_path: Path) -> None:
    for args in (
        ["--server", "host:notaport"],
        ["--config", str(tmp_path / "missing.cfg")],
        ["--timeout", "-1"],
    ):
        run = subprocess.run(
            [sys.executable, "-m", "trizab", "status", *args], capture_output=True, text=True
        )
        assert run.returncode == 2 and len(run.stderr.splitlines()) == 1, run.stderr


def test_parsing_and_health_rules(tmp_path: Path) -> None:
    assert parse_address("zk1:2182") == ("zk1", 2182)
    assert parse_address("zk1") == ("zk1", 2181)
    assert parse_address("[::1]:2181") == ("::1", 2181)
    cfg = tmp_path / "zoo.cfg"
    cfg.write_text(
        f"dataDir={tmp_path}\nclientPort=2191\nserver.1=a:1:2\nserver.2=b:1:2;c:2999\nserver.3=d:1:2\n"
    )
    assert members_from_config(str(cfg)) == [("a", 2191), ("c", 2999), ("d", 2191)]
    follower = MemberStatus("a:1", "follower", 0x100000003, 1, 0, 2)
    leader = MemberStatus("b:1", "leader", 0x100000005, 1, 0, 0)
    assert healthy([follower, leader])
    assert not healthy([follower, MemberStatus("c:1", "follower", 1, 1, 0)])  # no leader
    assert not healthy([leader, MemberStatus("c:1", "read-only", 1, 1, 0)])
    table = format_table([leader, MemberStatus("c:1", "not serving", error="not currently serving")])
    assert "leader: b:1" in table and "c:1: not currently serving" in table


@pytest.mark.apache
def test_an_apache_zookeeper_ensemble(tmp_path: Path) -> None:
    with ApacheEnsemble(3, workdir=tmp_path / "zk") as ens:
        check_ensemble([m.address for m in ens.members], ens.address)


@pytest.mark.apache
def test_an_apache_zookeeper_with_its_default_whitelist(tmp_path: Path) -> None:
    # ZooKeeper enables only srvr by default: that is all status needs.
    with ApacheZooKeeper(extra_config=["4lw.commands.whitelist=srvr"], workdir=tmp_path / "zk") as zk:
        rc, out = status("--server", zk.address)
    assert rc == 0 and out["members"][0]["role"] == "standalone"
