"""trizab and Apache ZooKeeper 3.8 members elect one leader together (the election port only).

Each side's decision is read from its log, as an operator would: trizab logs ``member N:
leading`` / ``member N: following (leader L, ...)``; ZooKeeper logs ``LEADING - LEADER ELECTION
TOOK`` or ``FOLLOWING - LEADER ELECTION TOOK`` followed by ``Successfully connected to leader,
using address: /host:port`` (the leader's quorum port, which names it), and an observer
``Observing new leader sid=L``.  Only the first decision
counts: what happens on the quorum port afterwards (the sync with the leader) is tested by
``tests/e2e/test_rolling_migration.py``.
"""

from __future__ import annotations

import re
import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from testkit import apache_zk
from testkit.rolling_ensemble import RollingEnsemble, Slot
from trizab.config import parse as parse_zoo_cfg
from trizab.plugin import load_plugin
from trizab.runtime.election import ElectionTransport
from trizab.runtime.zab_commit import peer_config
from trizab.server.replica import config_membership, render_config
from trizab.zab.membership import Membership, render_membership
from trizab.zab.messages import PeerState, decode_notification
from trizab.zab.peer import Peer

pytestmark = [pytest.mark.apache, pytest.mark.slow, pytest.mark.timeout(180)]

if not apache_zk.available():
    pytest.skip("Apache ZooKeeper (Debian package zookeeper) is not installed", allow_module_level=True)

_TRIZAB = re.compile(r"member (\d+): (leading|following|observing) \(leader (\d+)")
_ZK_TOOK = re.compile(r"(LEADING|FOLLOWING|OBSERVING) - LEADER ELECTION TOOK")
_ZK_LEADER = re.compile(r"Successfully connected to leader, using address: [^:]*:(\d+)")
_ZK_OBSERVING = re.compile(r"Observing new leader sid=(\d+)")
# FastLeaderElection.WorkerReceiver's line for a configuration in a notification it cannot parse.
_ZK_BAD_CONFIG = "Something went wrong while processing config received from"


def _first_decision(ens: RollingEnsemble, slot: Slot) -> int | None:
    """The leader ``slot``'s program first decided on, from its log; None if none yet."""
    assert slot.kind is not None
    text = slot.program_log(slot.kind)
    if slot.kind == "trizab":
        m = _TRIZAB.search(text)
        return int(m.group(3)) if m else None
    observing = _ZK_OBSERVING.search(text)
    if observing is not None:  # an observer logs no "LEADER ELECTION TOOK"
        return int(observing.group(1))
    took = _ZK_TOOK.search(text)
    if took is None:
        return None
    if took.group(1) == "LEADING":
        return slot.sid
    m = _ZK_LEADER.search(text, took.end())
    if m is None:
        return None
    by_port = {s.quorum_port: s.sid for s in ens.slots}
    return by_port.get(int(m.group(1)), -1)


def _decisions(ens: RollingEnsemble, sids: list[int], timeout: float = 40) -> dict[int, int]:
    """Each member's first decision (its program's log starts empty in these tests)."""
    deadline = time.monotonic() + timeout
    found: dict[int, int] = {}
    while time.monotonic() < deadline:
        for sid in sids:
            if sid not in found:
                decision = _first_decision(ens, ens[sid])
                if decision is not None:
                    found[sid] = decision
        if len(found) == len(sids):
            return found
        time.sleep(0.2)
    tails = "\n".join(f"--- member {sid}\n{ens[sid].tail(15)}" for sid in sids if sid not in found)
    missing = sorted(set(sids) - set(found))
    raise AssertionError(f"no election decision from {missing} in {timeout} s:\n{tails}")


def _wait_log(slot: Slot, needle: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while needle not in slot.log_text():
        assert time.monotonic() < deadline, f"member {slot.sid} never logged {needle!r}:\n{slot.tail()}"
        time.sleep(0.1)


@pytest.fixture
def ensemble(tmp_path: Path) -> Iterator[RollingEnsemble]:
    with RollingEnsemble(3, workdir=tmp_path) as ens:
        yield ens


def test_zookeeper_members_and_a_trizab_member_elect_the_trizab_member(ensemble: RollingEnsemble) -> None:
    # Equal histories: the highest id wins (totalOrderPredicate), here the trizab member.  It
    # starts first, so that it is on the election port when the ZooKeeper members vote.
    ensemble[3].start("trizab")
    _wait_log(ensemble[3], "serving clients")
    ensemble[1].start("zookeeper")
    ensemble[2].start("zookeeper")
    assert _decisions(ensemble, [1, 2, 3]) == {1: 3, 2: 3, 3: 3}


def test_trizab_members_and_a_zookeeper_member_elect_the_zookeeper_member(ensemble: RollingEnsemble) -> None:
    ensemble[3].start("zookeeper")
    _wait_log(ensemble[3], "LOOKING")
    ensemble[1].start("trizab")
    ensemble[2].start("trizab")
    assert _decisions(ensemble, [1, 2, 3]) == {1: 3, 2: 3, 3: 3}


@pytest.mark.parametrize(("running", "joining"), [("zookeeper", "trizab"), ("trizab", "zookeeper")])
def test_a_member_switched_to_the_other_program_follows_the_running_leader(
    ensemble: RollingEnsemble, running: str, joining: str
) -> None:
    ensemble.start([running] * 3)  # type: ignore[list-item]
    leader = ensemble.leader()
    assert leader is not None
    follower = next(s for s in ensemble.slots if s.sid != leader.sid)
    follower.stop()
    follower.start(joining)  # type: ignore[arg-type]
    assert _decisions(ensemble, [follower.sid]) == {follower.sid: leader.sid}
    # Its election did not disturb the running ensemble: the same leader, still leading.
    assert ensemble.leader() is leader
    if joining == "zookeeper":
        # The established trizab members answered its notifications with their configuration,
        # in ZooKeeper's text: it parsed every one.
        assert _ZK_BAD_CONFIG not in follower.program_log("zookeeper"), follower.tail()


def _read_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        assert chunk, "the ZooKeeper member closed the election connection"
        data += chunk
    return data


def _trizab_first_notification(cfg_text: str, sid: int, to: int) -> bytes:
    """The framed bytes a freshly started trizab member ``sid`` with this zoo.cfg (and an
    empty data directory) queues for ``to`` on its election port: its Peer built as the
    runtime builds it, its first notification encoded by the election transport."""
    config = parse_zoo_cfg(cfg_text, read_myid=False).evolve(server_id=sid)
    pc = peer_config(config)
    static = config_membership(render_config(config.servers, 0))
    assert static is not None
    plugin = load_plugin("trizab.election", "fast", {})
    peer = Peer(
        pc,
        plugin.elector(pc.my_id, pc.voters, pc.observers, pc.election_timing()),
        membership=Membership(pc.voters, pc.observers, servers=static.servers),
    )
    notes = [n for dest, n in peer.ready().notifications if dest == to]
    addresses = {s.sid: ("127.0.0.1", s.election_port) for s in config.servers.values()}
    transport = ElectionTransport(sid, addresses, _ignore, policy="fast")
    transport.send(to, notes[0])
    return transport.peers[to].queue[0]


async def _ignore(_: object) -> None:
    return None


def test_a_zookeeper_notification_is_byte_for_byte_what_trizab_sends(tmp_path: Path) -> None:
    """A real ZooKeeper 3.8 member's first notification, read off the wire (frame and all),
    is byte for byte what a trizab member in the same state sends: LOOKING, voting for itself
    at zxid 0, round 1, epoch 0, with its configuration as ``QuorumVerifier.toString()``
    renders it, and nothing after it.  Server 2 runs ZooKeeper; this test listens on server
    1's election port (ZooKeeper keeps only connections from the higher id, so server 2
    connects here) and reads what it sends."""
    with RollingEnsemble(2, workdir=tmp_path) as ens:
        with socket.create_server(("127.0.0.1", ens[1].election_port)) as listener:
            listener.settimeout(40)
            ens[2].start("zookeeper")
            conn, _ = listener.accept()
            with conn:
                conn.settimeout(20)
                # QuorumCnxManager's header: long protocol version, long sid, int length, address.
                _version, sid, length = struct.unpack(">qqi", _read_exact(conn, 20))
                _read_exact(conn, length)
                assert sid == 2
                size_bytes = _read_exact(conn, 4)
                (size,) = struct.unpack(">i", size_bytes)
                message = _read_exact(conn, size)
        cfg_text = ens[2].config.read_text()
    note = decode_notification(message, sid)
    assert note.state == PeerState.LOOKING and not note.policy_marker
    assert (note.leader, note.zxid, note.election_epoch, note.peer_epoch) == (2, 0, 1, 0)
    servers = parse_zoo_cfg(cfg_text, read_myid=False).servers
    static = config_membership(render_config(servers, 0))
    assert static is not None
    assert note.config == render_membership(static), (note.config, render_membership(static))
    trizab = _trizab_first_notification(cfg_text, 2, 1)
    assert trizab == size_bytes + message, (trizab, size_bytes + message)


def test_priority_says_once_per_zookeeper_member_that_they_ignore_it(tmp_path: Path) -> None:
    with RollingEnsemble(3, workdir=tmp_path, extra_config=["election=priority", "election.prefer=1"]) as ens:
        ens[3].start("zookeeper")
        _wait_log(ens[3], "LOOKING")
        ens[1].start("trizab")
        ens[2].start("trizab")
        _decisions(ens, [1, 2, 3])
        # More notifications from the ZooKeeper member: restarted, it is LOOKING and sends its
        # vote to both trizab members; it decides again only once they have answered, so once
        # its log shows a second decision both have read its new notifications.
        ens[3].stop()
        ens[3].start("zookeeper")
        deadline = time.monotonic() + 40
        while len(_ZK_TOOK.findall(ens[3].program_log("zookeeper"))) < 2:
            assert time.monotonic() < deadline, f"member 3 did not decide again:\n{ens[3].tail()}"
            time.sleep(0.2)
        for sid in (1, 2):
            lines = [line for line in ens[sid].log_text().splitlines() if "Apache ZooKeeper member" in line]
            assert len(lines) == 1, lines
            assert "server 3 sends Apache ZooKeeper's election notifications" in lines[0]
            assert "but election=priority" in lines[0]
            assert "use election=fast" in lines[0]


@pytest.mark.parametrize(("running", "joining"), [("zookeeper", "trizab"), ("trizab", "zookeeper")])
def test_an_observer_switched_to_the_other_program_finds_the_running_leader(
    tmp_path: Path, running: str, joining: str
) -> None:
    with RollingEnsemble(3, observers=1, workdir=tmp_path) as ens:
        ens.start([running] * 4)  # type: ignore[list-item]
        leader = ens.leader()
        assert leader is not None
        observer = ens[4]
        observer.stop()
        observer.start(joining)  # type: ignore[arg-type]
        assert _decisions(ens, [4]) == {4: leader.sid}
        assert ens.leader() is leader
