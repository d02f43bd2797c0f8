"""The AdminServer answers with Apache ZooKeeper 3.8's JSON shapes, standalone and in an ensemble.

Each command is fetched from a real ZooKeeper and from trizab after the same workload, and
compared by keys and value types (compat/differential/adminserver.py says what is
normalised and why).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from compat.differential.adminserver import compare_servers, fetch, workload
from testkit import apache_zk
from testkit.apache_zk import ApacheEnsemble, ApacheZooKeeper, free_ports
from testkit.process import TrizabProcess
from testkit.trizab_ensemble import TrizabEnsemble

pytestmark = [pytest.mark.apache, pytest.mark.slow, pytest.mark.timeout(300)]


def _admin_lines(port: int) -> list[str]:
    return ["admin.enableServer=true", "admin.serverAddress=127.0.0.1", f"admin.serverPort={port}"]


def _wait_admin(port: int, deadline_s: float = 30.0) -> None:
    """Poll ruok until the AdminServer answers (Jetty starts after the client port)."""
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            if fetch(port, "ruok", timeout=2.0)[0] == 200:
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"no AdminServer on port {port}")
        time.sleep(0.2)


def _report(diffs: list[str], notes: list[str]) -> None:
    for note in notes:
        print(note)
    assert not diffs, "\n".join(diffs)


@pytest.fixture(scope="module")
def standalone_pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, int, Any, Any]]:
    apache_zk.require_available()  # fail, never skip: a skipped comparison proves nothing
    zk_admin, tz_admin = free_ports(2)
    workdir = tmp_path_factory.mktemp("trizab-admin")
    with (
        ApacheZooKeeper(extra_config=_admin_lines(zk_admin)) as zk,
        TrizabProcess(Path(workdir), extra_config=_admin_lines(tz_admin), storage="txnlog") as tz,
    ):
        zk.start()
        _wait_admin(zk_admin)
        _wait_admin(tz_admin)
        zk_client = workload(zk.address)
        tz_client = workload(tz.address)
        try:
            yield zk_admin, tz_admin, zk_client, tz_client
        finally:
            zk_client.stop()
            tz_client.stop()


def test_standalone_commands_match_zookeeper(standalone_pair: tuple[int, int, Any, Any]) -> None:
    zk_admin, tz_admin, _, _ = standalone_pair
    _report(*compare_servers(zk_admin, tz_admin))


def test_standalone_comparison_sees_the_workload(standalone_pair: tuple[int, int, Any, Any]) -> None:
    # The shapes compared above are only meaningful if both show the session's state.
    zk_admin, tz_admin, zk_client, tz_client = standalone_pair
    for port, client in ((zk_admin, zk_client), (tz_admin, tz_client)):
        dump = fetch(port, "dump")[1]
        assert dump["session_id_to_ephemeral_paths"] == {str(client.client_id[0]): ["/admin-diff"]}
        summary = fetch(port, "watch_summary")[1]
        # Data watches only (ZooKeeper's DataTree.getWatchesSummary): the child watch is not counted.
        assert (summary["num_connections"], summary["num_paths"], summary["num_total_watches"]) == (1, 2, 2)
        unknown = fetch(port, "no_such_command")
        assert unknown == (200, {"command": "no_such_command", "error": "Unknown command: no_such_command"})


def _with_admin_ports(members: list[Any], ports: list[int], *, apache: bool) -> None:
    for member, port in zip(members, ports, strict=True):
        if apache:
            member.config_lines += _admin_lines(port)
        else:
            with member.config.open("a") as f:
                f.write("\n".join(_admin_lines(port)) + "\n")


@pytest.fixture(scope="module")
def ensemble_pair() -> Iterator[tuple[dict[str, int], dict[str, int], Any, Any]]:
    apache_zk.require_available()
    ports = free_ports(6)
    zk_ens = ApacheEnsemble(3)
    tz_ens = TrizabEnsemble(3, storage="txnlog")
    _with_admin_ports(zk_ens.members, ports[:3], apache=True)
    _with_admin_ports(tz_ens.members, ports[3:], apache=False)
    with zk_ens, tz_ens:
        zk_ens.start()
        tz_ens.start()
        for port in ports:
            _wait_admin(port)
        zk_roles, zk_follower = _roles(zk_ens, ports[:3])
        tz_roles, tz_follower = _roles(tz_ens, ports[3:])
        # The session lives on a follower on both sides: connections and watches are per member.
        zk_client = workload(zk_follower)
        tz_client = workload(tz_follower)
        try:
            yield zk_roles, tz_roles, zk_client, tz_client
        finally:
            zk_client.stop()
            tz_client.stop()


def _roles(ensemble: Any, ports: list[int]) -> tuple[dict[str, int], str]:
    """({'leader': admin port, 'follower': admin port}, that follower's client address)."""
    roles: dict[str, int] = {}
    follower = ""
    deadline = time.monotonic() + 30
    while len(roles) < 2 and time.monotonic() < deadline:
        for member, port in zip(ensemble.members, ports, strict=True):
            state = fetch(port, "monitor")[1].get("server_state")
            if state in ("leader", "follower") and state not in roles:
                roles[state] = port
                if state == "follower":
                    follower = member.address
        if len(roles) < 2:
            time.sleep(0.2)
    assert set(roles) == {"leader", "follower"}, roles
    return roles, follower


@pytest.mark.parametrize("role", ["leader", "follower"])
def test_member_commands_match_zookeeper(
    ensemble_pair: tuple[dict[str, int], dict[str, int], Any, Any], role: str
) -> None:
    zk_roles, tz_roles, _, _ = ensemble_pair
    _report(*compare_servers(zk_roles[role], tz_roles[role], leader=role == "leader"))


def test_member_views_agree_on_the_ensemble(
    ensemble_pair: tuple[dict[str, int], dict[str, int], Any, Any],
) -> None:
    _zk_roles, tz_roles, _, _ = ensemble_pair
    leader = fetch(tz_roles["leader"], "leader")[1]
    follower = fetch(tz_roles["follower"], "leader")[1]
    assert leader["is_leader"] is True and follower["is_leader"] is False
    assert leader["leader_id"] == follower["leader_id"] > 0
    assert sorted(fetch(tz_roles["follower"], "voting_view")[1]["current_config"]) == ["1", "2", "3"]
    for port in tz_roles.values():
        zab = fetch(port, "zabstate")[1]
        assert zab["zabstate"] == "broadcast" and zab["voting"] is True


def test_member_snapshot_command(ensemble_pair: tuple[dict[str, int], dict[str, int], Any, Any]) -> None:
    # ZooKeeper 3.9's command (3.8 has none to compare with): a member takes a snapshot now.
    _zk_roles, tz_roles, _, tz_client = ensemble_pair
    status, answer = fetch(tz_roles["follower"], "snapshot?streaming=false")
    assert status == 200, answer
    zxid = int(answer["last_zxid"], 16)
    assert zxid >= tz_client.exists("/admin-diff").czxid  # it holds the workload's writes
    assert fetch(tz_roles["follower"], "last_snapshot")[1]["zxid"] == f"{zxid:x}"
