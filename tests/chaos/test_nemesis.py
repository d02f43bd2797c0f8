"""compat.chaos.nemesis: the seeded plan, what apply/heal do, and process faults on real ensembles."""

from __future__ import annotations

import json
import os
import random
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from kazoo.client import KazooClient

from compat.chaos.nemesis import (
    FAULT_KINDS,
    GAP_RANGE_S,
    HOLD_RANGE_S,
    LEADER_KINDS,
    Fault,
    Nemesis,
    expiring_hold_min,
    member_mode,
    member_ports,
    plan,
)
from testkit import apache_zk
from testkit.apache_zk import ApacheEnsemble
from testkit.trizab_ensemble import TrizabEnsemble

# -- plan -------------------------------------------------------------------------------------


def test_same_seed_same_plan_and_seeds_differ() -> None:
    first = plan(7, 600, FAULT_KINDS, 5, 6.0)
    assert first == plan(7, 600, FAULT_KINDS, 5, 6.0)
    assert first != plan(8, 600, FAULT_KINDS, 5, 6.0)
    assert len({tuple(plan(seed, 120, FAULT_KINDS, 3, 6.0)) for seed in range(20)}) == 20


def test_every_kind_appears_over_enough_seeds() -> None:
    seen = {f.kind for seed in range(30) for f in plan(seed, 300, FAULT_KINDS, 3, 6.0)}
    assert seen == set(FAULT_KINDS)
    assert {f.kind for f in plan(1, 300, ("kill", "wipe"), 3, 6.0)} == {"kill", "wipe"}


@pytest.mark.parametrize("n_members", [3, 5])
@pytest.mark.parametrize("session_timeout", [4.0, 6.0, 12.0])
def test_plan_shape(n_members: int, session_timeout: float) -> None:
    duration = 900.0
    for seed in range(10):
        faults = plan(seed, duration, FAULT_KINDS, n_members, session_timeout)
        assert faults
        end = 0.0
        for f in faults:
            # One at a time, with a quiet gap between a heal and the next fault.
            assert GAP_RANGE_S[0] - 1e-3 <= f.at - end <= GAP_RANGE_S[1] + 1e-3
            end = f.at + f.hold
            assert end <= duration
            if f.kind in ("pause", "pause_leader", "client_cut"):
                # Long enough for sessions to expire, even across a leader change.
                assert f.hold >= expiring_hold_min(session_timeout) - 1e-3
                assert f.hold > session_timeout + 5
            else:
                assert HOLD_RANGE_S[0] - 1e-3 <= f.hold <= HOLD_RANGE_S[1] + 1e-3
            sids = set(range(1, n_members + 1))
            if f.kind in LEADER_KINDS:
                assert f.target is None and f.peers == ()  # resolved when applied
            elif f.kind == "partition_majority":
                assert f.target is None
                assert len(f.peers) == n_members // 2 and set(f.peers) <= sids
            elif f.kind in ("cut_link", "one_way"):
                assert f.target in sids and len(f.peers) == 1
                assert f.peers[0] in sids and f.peers[0] != f.target
            else:
                assert f.target in sids and f.peers == ()
        # A shorter run is the start of a longer one, and its faults are healed before it ends.
        short = plan(seed, 60, FAULT_KINDS, n_members, session_timeout)
        assert short == faults[: len(short)]
        assert all(f.at + f.hold <= 60 for f in short)


def test_plan_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="unknown fault kinds"):
        plan(1, 60, ("kill", "meteor"), 3, 6.0)
    with pytest.raises(ValueError, match="no fault kinds"):
        plan(1, 60, (), 3, 6.0)
    with pytest.raises(ValueError, match="at least 3"):
        plan(1, 60, FAULT_KINDS, 2, 6.0)


def test_fault_to_dict_is_json() -> None:
    fault = Fault(1.5, "one_way", 1, (2,), 4.0)
    assert json.loads(json.dumps(fault.to_dict())) == {
        "at": 1.5,
        "kind": "one_way",
        "target": 1,
        "peers": [2],
        "hold": 4.0,
    }


# -- Nemesis on fake members --------------------------------------------------------------------


class SrvrServer:
    """Answers ``srvr`` on a loopback port with the mode it is told (or nothing at all)."""

    def __init__(self) -> None:
        self.mode: str | None = "follower"
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with conn:
                conn.recv(4)
                if self.mode is not None:
                    conn.sendall(f"Zookeeper version: test\nMode: {self.mode}\n".encode())

    def close(self) -> None:
        self.listener.close()


@dataclass
class FakeMember:
    sid: int
    srvr: SrvrServer
    gid: int | None = None
    running: bool = True
    calls: list[str] = field(default_factory=list)

    @property
    def client_port(self) -> int:
        return self.srvr.port

    @property
    def quorum_port(self) -> int:
        return 30000 + self.sid

    @property
    def election_port(self) -> int:
        return 31000 + self.sid

    def start(self) -> None:
        self.calls.append("start")
        self.running = True

    def kill(self) -> None:
        self.calls.append("kill")
        self.running = False

    def pause(self) -> None:
        self.calls.append("pause")

    def resume(self) -> None:
        self.calls.append("resume")

    def wipe_data(self) -> None:
        assert not self.running, "wiped while running"
        self.calls.append("wipe")

    def wait_ready(self, timeout: float) -> None:
        self.calls.append("ready")


class FakeFirewall:
    installed = True

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    @property
    def faults(self) -> list[str]:
        return [repr(c) for c in self.calls]

    def isolate(self, sid: int) -> None:
        self.calls.append(("isolate", sid))

    def partition(self, groups: list[set[int]]) -> None:
        self.calls.append(("partition", groups))

    def cut(self, a: int, b: int, *, one_way: bool = False) -> None:
        self.calls.append(("cut", a, b, one_way))

    def cut_clients(self, sid: int) -> None:
        self.calls.append(("cut_clients", sid))

    def heal(self) -> None:
        self.calls.append(("heal",))


@pytest.fixture
def fakes() -> Iterator[tuple[list[FakeMember], FakeFirewall, Nemesis]]:
    members = [FakeMember(sid, SrvrServer(), gid=61000 + sid) for sid in (1, 2, 3)]
    members[1].srvr.mode = "leader"
    firewall = FakeFirewall()
    nemesis = Nemesis(members, firewall, random.Random(3), leader_wait=0.5)  # type: ignore[arg-type]
    yield members, firewall, nemesis
    for m in members:
        m.srvr.close()


def test_member_mode_and_ports(fakes: tuple[list[FakeMember], FakeFirewall, Nemesis]) -> None:
    members, _, nemesis = fakes
    assert [member_mode(m) for m in members] == ["follower", "leader", "follower"]
    assert nemesis.leader() == 2
    members[0].srvr.mode = None  # answers without a Mode line
    assert member_mode(members[0]) is None
    assert [p.sid for p in member_ports(members)] == [1, 2, 3]
    assert member_ports(members)[2].quorum_port == 30003
    members[0].gid = None
    with pytest.raises(ValueError, match="no group id"):
        member_ports(members)


def test_process_faults(fakes: tuple[list[FakeMember], FakeFirewall, Nemesis]) -> None:
    members, firewall, nemesis = fakes
    kill_leader = Fault(1.0, "kill_leader", None, (), 5.0)
    entry = nemesis.apply(kill_leader)
    assert entry["target"] == 2 and entry["leader_found"] is True
    assert members[1].calls == ["kill"]
    healed = nemesis.heal(kill_leader)
    assert healed["ready"] is True and members[1].calls == ["kill", "start", "ready"]

    wipe = Fault(2.0, "wipe", 3, (), 5.0)
    nemesis.apply(wipe)
    assert members[2].calls == ["kill", "wipe"]
    nemesis.heal(wipe)
    assert members[2].calls == ["kill", "wipe", "start", "ready"]

    pause = Fault(3.0, "pause_leader", None, (), 20.0)
    nemesis.apply(pause)
    nemesis.heal(pause)
    assert members[1].calls[-2:] == ["pause", "resume"]
    assert firewall.calls == []

    log = nemesis.log
    assert [(e["action"], e["kind"], e["target"]) for e in log] == [
        ("apply", "kill_leader", 2),
        ("heal", "kill_leader", 2),
        ("apply", "wipe", 3),
        ("heal", "wipe", 3),
        ("apply", "pause_leader", 2),
        ("heal", "pause_leader", 2),
    ]
    assert all({"wall", "monotonic", "elapsed"} <= set(e) for e in log)
    json.dumps(log)


def test_network_faults(fakes: tuple[list[FakeMember], FakeFirewall, Nemesis]) -> None:
    _, firewall, nemesis = fakes
    faults = [
        Fault(1, "isolate_leader", None, (), 3),
        Fault(2, "partition_majority", None, (3,), 3),
        Fault(3, "cut_link", 1, (3,), 3),
        Fault(4, "one_way", 3, (1,), 3),
        Fault(5, "client_cut", 1, (), 20),
    ]
    for fault in faults:
        nemesis.apply(fault)
        nemesis.heal(fault)
    assert firewall.calls == [
        ("isolate", 2),
        ("heal",),
        ("partition", [{3}]),
        ("heal",),
        ("cut", 1, 3, False),
        ("heal",),
        ("cut", 3, 1, True),
        ("heal",),
        ("cut_clients", 1),
        ("heal",),
    ]
    assert nemesis.log[0]["firewall"] == ["('isolate', 2)"]


def test_no_leader_falls_back_to_a_live_member(fakes: tuple[list[FakeMember], FakeFirewall, Nemesis]) -> None:
    members, _, nemesis = fakes
    members[1].srvr.mode = "looking"
    entry = nemesis.apply(Fault(1, "pause_leader", None, (), 20))
    assert entry["leader_found"] is False and entry["target"] in (1, 2, 3)


def test_heal_all_and_heal_of_an_unapplied_fault(
    fakes: tuple[list[FakeMember], FakeFirewall, Nemesis],
) -> None:
    members, firewall, nemesis = fakes
    nemesis.apply(Fault(1, "kill", 1, (), 3))
    entry = nemesis.heal(Fault(9, "kill", 3, (), 3))  # never applied: heal everything
    assert "never applied" in entry["note"] and entry["restarted"] == [1]
    assert members[0].running and members[0].calls[-2:] == ["start", "ready"]
    assert all("resume" in m.calls for m in members)
    assert firewall.calls == [("heal",)]
    with pytest.raises(ValueError, match="needs a firewall"):
        Nemesis(members, None, random.Random(1)).apply(Fault(1, "cut_link", 1, (2,), 3))  # type: ignore[arg-type]


# -- process faults on real ensembles -----------------------------------------------------------


def _count(address: str) -> int:
    zk = KazooClient(hosts=address, timeout=10.0)
    zk.start(timeout=30)
    try:
        zk.sync("/")
        return len([c for c in zk.get_children("/") if c.startswith("n")])
    finally:
        zk.stop()
        zk.close()


def _group_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Gid:"):
            return int(line.split()[1])
    raise AssertionError("no Gid line")


@pytest.mark.slow
@pytest.mark.parametrize("system", ["trizab", pytest.param("apache", marks=pytest.mark.apache)])
def test_process_faults_on_a_real_ensemble(system: str, tmp_path: Path) -> None:
    """kill_leader, pause_leader and wipe on real members started under their own group ids."""
    assert os.geteuid() == 0, "members under their own group id (the chaos harness) need root"
    gids = {sid: 61100 + sid for sid in (1, 2, 3)}
    common: dict[str, Any] = {"tick_time": 500, "init_limit": 10, "sync_limit": 4, "gids": gids}
    if system == "trizab":
        ensemble: Any = TrizabEnsemble(3, workdir=tmp_path, **common)
    else:
        apache_zk.require_available()
        ensemble = ApacheEnsemble(3, workdir=tmp_path, **common)
    with ensemble:
        for m in ensemble:
            assert _group_of(m.pid) == gids[m.sid]
            assert m.quorum_port and m.election_port and m.quorum_port != m.election_port
        zk = KazooClient(hosts=ensemble.address, timeout=10.0)
        zk.start(timeout=30)
        try:
            for i in range(20):
                zk.create(f"/n{i}", b"x")
        finally:
            zk.stop()
            zk.close()
        nemesis = Nemesis(ensemble, None, random.Random(1), ready_timeout=60.0)

        kill = Fault(0, "kill_leader", None, (), 1)
        leader = nemesis.apply(kill)["target"]
        assert not ensemble[leader - 1].running
        assert nemesis.heal(kill)["ready"] is True

        pause = Fault(0, "pause_leader", None, (), 1)
        paused = ensemble[nemesis.apply(pause)["target"] - 1]
        assert member_mode(paused) is None  # stopped: accepts, never answers
        nemesis.heal(pause)
        deadline = time.monotonic() + 60
        while member_mode(paused) is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert member_mode(paused) in ("leader", "follower")

        target = next(m for m in ensemble if ensemble.leader() is not m)
        wipe = Fault(0, "wipe", target.sid, (), 1)
        nemesis.apply(wipe)
        assert not target.running
        assert [p.name for p in target.data_dir.iterdir()] == ["myid"]
        assert nemesis.heal(wipe)["ready"] is True
        # It started with nothing but its id, so everything it has came from the leader.
        assert _count(target.address) == 20
        assert _group_of(target.pid) == gids[target.sid]
        assert all(e.get("error") is None for e in nemesis.log), nemesis.log
