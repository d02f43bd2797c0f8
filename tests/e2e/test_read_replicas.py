"""``readReplicas=N``: a standalone server whose reads are served by sibling processes.

Real ``trizab serve`` processes.  Which process a connection lands on is the kernel's choice
(``SO_REUSEPORT``), so the tests find out rather than choose: ``cons`` answers list one
process's connections, and two clients whose local ports never appear in the same answer are
on different processes.  New clients are made until both processes hold one.
"""

from __future__ import annotations

import os
import random
import re
import signal
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import UnimplementedError
from kazoo.protocol.states import KazooState

from testkit.process import TrizabProcess
from trizab import cli
from trizab import config as cfg
from trizab.runtime import replicas
from trizab.runtime.free_ports import free_ports

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="readReplicas needs Linux")

DEADLINE_S = 30.0


def _wait(predicate: object, what: str, timeout: float = DEADLINE_S) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _local_port(client: KazooClient) -> int:
    return int(client._connection._socket.getsockname()[1])


def _process_of(server: TrizabProcess, clients: list[KazooClient]) -> list[frozenset[int]]:
    """For each client, the local ports of every client on the same process (from ``cons``)."""
    ports = {_local_port(c) for c in clients}
    found: dict[int, frozenset[int]] = {}
    deadline = time.monotonic() + DEADLINE_S
    while len(found) < len(ports):
        if time.monotonic() > deadline:
            raise AssertionError(f"cons never listed ports {ports - set(found)}")
        answer = server.command("cons")
        here = frozenset(int(p) for p in re.findall(r":(\d+)\[", answer)) & ports
        for port in here:
            found[port] = here
    return [found[_local_port(c)] for c in clients]


def _reconnect(client: KazooClient) -> None:
    """Break the client's connection and wait until it has a new one (from another local port)."""
    old = _local_port(client)
    client._connection._socket.shutdown(socket.SHUT_RDWR)

    def moved() -> bool:
        try:
            return client.connected and _local_port(client) != old
        except (OSError, AttributeError):
            return False

    _wait(moved, "the reconnection")


def _connect(server: TrizabProcess) -> KazooClient:
    client = KazooClient(server.address, timeout=10)
    client.start(10)
    return client


@pytest.fixture
def server(tmp_path: Path) -> Iterator[TrizabProcess]:
    with TrizabProcess(tmp_path, extra_config=["readReplicas=1"], storage="txnlog") as process:
        yield process


@pytest.fixture
def spread(server: TrizabProcess) -> Iterator[tuple[KazooClient, KazooClient, list[KazooClient]]]:
    """Two clients on different processes (and every client made on the way)."""
    clients: list[KazooClient] = []
    try:
        for _ in range(24):
            clients.append(_connect(server))
            groups = _process_of(server, clients)
            if len(set(groups)) == 2:
                first = clients[0]
                other = next(c for c, g in zip(clients, groups, strict=True) if g != groups[0])
                yield first, other, clients
                return
        raise AssertionError("24 connections all landed on one process")
    finally:
        for c in clients:
            c.stop()
            c.close()


def test_both_processes_serve_and_look_standalone(
    server: TrizabProcess, spread: tuple[KazooClient, KazooClient, list[KazooClient]]
) -> None:
    a, b, _ = spread
    assert len(server.replica_pids()) == 1
    for client in (a, b):
        assert client.get("/zookeeper/config")[0] == b""
        with pytest.raises(Exception) as raised:
            client.reconfig(joining="server.9=127.0.0.1:1:2", leaving=None, new_members=None)
        assert type(raised.value).__name__ == "ReconfigDisabledError"
    for _ in range(10):
        assert "Mode: standalone" in server.command("srvr")
    # The differences docs/architecture.md lists: an epoch in zxids, the creating process's id
    # in session ids, and conf's membership, every port of it on the loopback address.
    assert a.create("/z") and a.exists("/z").czxid >> 32 >= 1
    assert {a.client_id[0] >> 56, b.client_id[0] >> 56} == {1, 2}  # made on different processes
    members = re.findall(r"^server\.\d+=([^:]+):", server.command("conf"), re.MULTILINE)
    assert members == ["127.0.0.1", "127.0.0.1"]


def test_writes_seen_across_processes_after_sync(
    spread: tuple[KazooClient, KazooClient, list[KazooClient]],
) -> None:
    a, b, _ = spread
    for i in range(20):
        writer, reader = (a, b) if i % 2 else (b, a)
        writer.create(f"/w{i}", str(i).encode())
        reader.sync(f"/w{i}")
        assert reader.get(f"/w{i}")[0] == str(i).encode()


def test_watch_fires_across_processes(spread: tuple[KazooClient, KazooClient, list[KazooClient]]) -> None:
    a, b, _ = spread
    a.create("/watched", b"0")
    seen: list[str] = []
    a.get("/watched", watch=lambda event: seen.append(event.type))
    b.set("/watched", b"1")
    _wait(lambda: seen, "the data watch")
    assert seen == ["CHANGED"]
    children: list[str] = []
    b.get_children("/watched", watch=lambda event: children.append(event.type))
    a.create("/watched/child")
    _wait(lambda: children, "the child watch")
    assert children == ["CHILD"]


def test_session_moves_between_processes_with_its_ephemerals(
    server: TrizabProcess, spread: tuple[KazooClient, KazooClient, list[KazooClient]]
) -> None:
    a, b, _ = spread
    session = a.client_id[0]
    a.create("/eph", b"mine", ephemeral=True)
    # Reconnect a (a new local port: the kernel picks its process again) until it shares b's.
    for _ in range(40):
        _reconnect(a)
        if len(set(_process_of(server, [a, b]))) == 1:
            break
    else:
        raise AssertionError("a never reconnected to b's process")
    assert a.client_id[0] == session
    data, stat = b.get("/eph")
    assert (data, stat.ephemeralOwner) == (b"mine", session)
    a.set("/eph", b"still mine")
    b.sync("/eph")
    assert b.get("/eph")[0] == b"still mine"


def test_killed_replica_restarted_and_its_clients_keep_acknowledged_writes(
    server: TrizabProcess, spread: tuple[KazooClient, KazooClient, list[KazooClient]]
) -> None:
    _, _, clients = spread
    suspended: list[int] = []
    for i, c in enumerate(clients):
        c.add_listener(lambda state, i=i: suspended.append(i) if state == KazooState.SUSPENDED else None)
        c.create(f"/acked{i}", str(i).encode())
    [old] = server.replica_pids()
    os.kill(old, signal.SIGKILL)
    _wait(lambda: server.replica_pids() not in ([], [old]), "the replica's restart")
    _wait(lambda: "read replica 2 exited with status -9; restarting it" in server.log_tail(200), "log line")
    for c in clients:
        _wait(lambda c=c: c.connected, "reconnection")
        for i in range(len(clients)):
            c.sync(f"/acked{i}")
            assert c.get(f"/acked{i}")[0] == str(i).encode()
    assert suspended, "no client was on the killed replica"
    # The new replica serves: a fresh client lands on it sooner or later and reads everything.
    server.wait_ready()


def test_replicas_end_with_the_main_process(server: TrizabProcess) -> None:
    [replica] = server.replica_pids()
    server.kill()  # SIGKILL: no chance to stop its replicas itself
    _wait(lambda: not _alive(replica), "the replica's exit")


def test_replicas_stop_with_the_main_process(server: TrizabProcess) -> None:
    [replica] = server.replica_pids()
    assert server.stop() == 0
    _wait(lambda: not _alive(replica), "the replica's exit", timeout=5)


def test_data_written_with_replicas_survives_a_restart_without_them(tmp_path: Path) -> None:
    with TrizabProcess(tmp_path, extra_config=["readReplicas=1"]) as process:
        client = _connect(process)
        client.create("/kept", b"1")
        client.stop()
    process.extra_config = []
    with process:
        client = _connect(process)
        assert client.get("/kept")[0] == b"1"
        client.create("/more", b"2")
        client.stop()
    process.extra_config = ["readReplicas=2"]
    with process:
        assert len(process.replica_pids()) == 2
        client = _connect(process)
        assert client.get("/kept")[0] == b"1" and client.get("/more")[0] == b"2"
        client.stop()


def test_reconfig_enabled_is_answered_as_standalone(tmp_path: Path) -> None:
    with TrizabProcess(tmp_path, extra_config=["readReplicas=1", "reconfigEnabled=true"]) as process:
        client = _connect(process)
        try:
            with pytest.raises(UnimplementedError):
                client.reconfig(joining="server.9=127.0.0.1:1:2", leaving=None, new_members=None)
        finally:
            client.stop()


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_refused_for_an_ensemble_member(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "zoo.cfg"
    config.write_text(
        f"dataDir={tmp_path}\nreadReplicas=1\nserver.1=127.0.0.1:2888:3888\nserver.2=127.0.0.1:2889:3889\n"
    )
    assert cli.main(["serve", "--config", str(config)]) == cli.EXIT_USAGE
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("trizab: readReplicas=1 is for a standalone server; an ensemble member")


def test_refused_off_linux() -> None:
    message = replicas.refusal(cfg.ServerConfig(read_replicas=2), platform="darwin")
    assert message is not None and "needs Linux" in message
    assert replicas.refusal(cfg.ServerConfig(read_replicas=0), platform="darwin") is None


def test_plan_and_replica_config() -> None:
    config = cfg.ServerConfig(data_dir=Path("d"), read_replicas=2, server_id=2)
    plan = replicas.plan_replicas(config, ports=[1, 2, 3, 4, 5, 6])
    assert plan.leader_id == 2 and plan.replica_ids == (1, 3)
    assert {s.sid: (s.host, s.role) for s in plan.servers.values()} == {
        2: ("127.0.0.1", "participant"),
        1: ("127.0.0.1", "observer"),
        3: ("127.0.0.1", "observer"),
    }
    spec = replicas.ReplicaSpec(3, 2, ((2, 1, 2), (1, 3, 4), (3, 5, 6)), 2181, None, 7)
    assert replicas.ReplicaSpec.from_json(spec.to_json()) == spec
    replica = replicas.replica_config(config, spec)
    assert (replica.server_id, replica.storage_name, replica.data_dir) == (3, "memory", None)
    assert replica.is_read_replica and not replica.admin_enable_server
    assert replica.servers == plan.servers


def test_loopback_ports_are_free_and_below_the_ephemeral_range() -> None:
    ports = free_ports(6, "127.0.0.1", random.Random(7))
    assert len(set(ports)) == 6
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    assert all(10_000 <= p < max(low, 10_001) for p in ports)
