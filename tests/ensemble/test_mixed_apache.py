"""Mixed ensembles: trizab and Apache ZooKeeper 3.8 members in one ensemble, as real processes.

One zoo.cfg body (the same ``server.N`` lines) for every member; each member is either a
``trizab serve`` or a ZooKeeper ``QuorumPeerMain``.  With empty data directories the fast
election picks the highest server id, so the kinds' order decides which implementation leads.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kazoo.client import KazooClient

from testkit.mixed_ensemble import TRIZAB, ZOOKEEPER, MixedEnsemble
from testkit.rolling_ensemble import RollingEnsemble
from testkit.rolling_migration import RECONFIG_CONFIG, SUPER_PASSWORD, SUPER_USER

pytestmark = [pytest.mark.apache, pytest.mark.slow]

START_S = 90.0
CONVERGE_S = 60.0


def wait_until(pred: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = pred()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.2)


def client(member: Any, timeout: float = 10.0) -> KazooClient:
    """A connected client of ``member`` (tries again until a deadline: the machine may be busy)."""
    deadline = time.monotonic() + 60
    while True:
        c = KazooClient(member.address, timeout=timeout)
        try:
            c.start(timeout=20)
            return c
        except Exception:
            c.close()
            if time.monotonic() > deadline:
                raise


def one_leader(ens: MixedEnsemble) -> int:
    """Wait until every running member serves and exactly one leads; its server id."""

    def ready() -> int | None:
        modes = {sid: mode for sid, mode in ens.modes().items() if ens[sid - 1].running}
        if not all(modes.values()):
            return None
        leaders = [sid for sid, mode in modes.items() if mode == "leader"]
        assert len(leaders) <= 1, f"two leaders: {modes}"
        return leaders[0] if leaders else None

    return int(wait_until(ready, START_S, f"one leader among {ens.kinds}"))


def lead_with(ens: MixedEnsemble, sid: int) -> None:
    """Make member ``sid`` (the highest id) the leader: a slow member (a JVM's start under load)
    may find the others already formed without it; stopping whoever leads then re-elects among
    equal histories, where the highest id wins, and the stopped member comes back as a follower."""
    for _ in range(len(ens.kinds)):
        leader = one_leader(ens)
        if leader == sid:
            return
        ens[leader - 1].stop()
        one_leader(ens)
        ens[leader - 1].start()
    assert one_leader(ens) == sid


def zxid_of(member: Any) -> int:
    for line in member.four_letter_word("srvr").splitlines():
        if line.startswith("Zxid:"):
            return int(line.split()[1], 16)
    raise AssertionError(f"no Zxid in srvr of {member.address}")


def tree(member: Any, root: str = "/t") -> dict[str, bytes]:
    c = client(member)
    try:
        c.sync("/")
        out: dict[str, bytes] = {}
        stack = [root]
        while stack:
            path = stack.pop()
            data, _ = c.get(path)
            out[path] = data
            stack += [f"{path}/{child}" for child in c.get_children(path)]
        return out
    finally:
        c.stop()
        c.close()


def converged(ens: MixedEnsemble) -> dict[str, bytes]:
    """Every running member holds the same data under /t and reports the same zxid."""
    members = [m for m in ens.members if m.running]
    trees = [tree(m) for m in members]
    for m, t in zip(members, trees, strict=True):
        assert t == trees[0], f"{m.address} differs: {sorted(set(t) ^ set(trees[0]))[:10]}"
    # Reading closed sessions (closeSession txns); wait for their commits to reach everyone.
    wait_until(lambda: len({zxid_of(m) for m in members}) == 1, CONVERGE_S, "one zxid on every member")
    return trees[0]


def write_through_each(ens: MixedEnsemble, tag: str) -> None:
    for k, m in enumerate(ens.members):
        if not m.running:
            continue
        c = client(m)
        try:
            c.ensure_path("/t")
            c.create(f"/t/{tag}-{k + 1}", f"{tag} via {ens.kinds[k]} {k + 1}".encode())
        finally:
            c.stop()
            c.close()


def bulk_write(member: Any, prefix: str, count: int) -> None:
    c = client(member)
    try:
        c.ensure_path("/t")
        futures = [c.create_async(f"/t/{prefix}{i:05d}", b"x" * 32) for i in range(count)]
        for f in futures:
            f.get(timeout=60)
    finally:
        c.stop()
        c.close()


def log_text(member: Any, since: int = 0) -> str:
    """The member's log, from character ``since`` on (``len(log_text(m))`` marks a point)."""
    return "".join(member.get_logs(1_000_000))[since:]


@pytest.fixture
def mixed(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Callable[..., MixedEnsemble]]:
    made: list[MixedEnsemble] = []

    def make(*kinds: str, observers: tuple[int, ...] = ()) -> MixedEnsemble:
        ens = MixedEnsemble(
            list(kinds),  # type: ignore[arg-type]
            observers=observers,
            tick_time=500,
            init_limit=20,
            sync_limit=10,
            workdir=tmp_path / f"ens{len(made)}",
            start_timeout=START_S,
        )
        made.append(ens)
        for m in ens.members:
            m.start()
        return ens

    yield make
    for ens in made:
        ens.stop()


def test_trizab_leader_with_a_zookeeper_follower(mixed: Callable[..., MixedEnsemble]) -> None:
    ens = mixed(ZOOKEEPER, TRIZAB, TRIZAB)
    lead_with(ens, 3)  # trizab, by an election both implementations ran
    zk = ens[0]
    write_through_each(ens, "a")
    data = converged(ens)
    assert {p for p in data if p.startswith("/t/a-")} == {"/t/a-1", "/t/a-2", "/t/a-3"}

    # Restarted with its log: the trizab leader sends DIFF.
    zk.stop()
    mark = len(log_text(zk))
    bulk_write(ens[1], "d", 50)
    zk.start()
    assert one_leader(ens) == 3
    wait_until(lambda: "Getting a diff from the leader" in log_text(zk, mark), CONVERGE_S, "a DIFF")
    write_through_each(ens, "b")
    data = converged(ens)
    assert "/t/d00049" in data and "/t/b-1" in data

    # Restarted with an empty data directory, behind the leader's committed log: SNAP.
    zk.stop()
    zk.wipe_data()
    mark, leader_mark = len(log_text(zk)), len(log_text(ens[2]))
    bulk_write(ens[2], "s", 1200)  # more than the 500 + slack the leader keeps in memory
    zk.start()
    assert one_leader(ens) == 3
    wait_until(lambda: "Getting a snapshot from leader" in log_text(zk, mark), CONVERGE_S, "a SNAP")
    write_through_each(ens, "c")
    data = converged(ens)
    assert "/t/s01199" in data and "/t/c-1" in data and "/t/d00000" in data
    assert "sending SNAP" in log_text(ens[2], leader_mark)


def test_trizab_follower_of_a_zookeeper_leader(mixed: Callable[..., MixedEnsemble]) -> None:
    ens = mixed(TRIZAB, ZOOKEEPER, ZOOKEEPER)
    assert ens.kinds[one_leader(ens) - 1] == ZOOKEEPER
    tz = ens[0]
    write_through_each(ens, "a")
    converged(ens)

    tz.stop()
    mark = len(log_text(tz))
    bulk_write(ens[1], "d", 50)
    tz.start()
    one_leader(ens)
    wait_until(lambda: "received DIFF at" in log_text(tz, mark), CONVERGE_S, "a DIFF")
    write_through_each(ens, "b")
    data = converged(ens)
    assert "/t/d00049" in data and "/t/b-1" in data

    tz.stop()
    tz.wipe_data()
    mark = len(log_text(tz))
    bulk_write(ens[2], "s", 1200)  # past ZooKeeper's committedLog of 500
    tz.start()
    one_leader(ens)
    wait_until(lambda: "received SNAP at" in log_text(tz, mark), CONVERGE_S, "a SNAP")
    write_through_each(ens, "c")
    data = converged(ens)
    assert "/t/s01199" in data and "/t/c-1" in data


_HOLDER = """
import sys, time
from kazoo.client import KazooClient
c = KazooClient(sys.argv[1], timeout=float(sys.argv[3]))
c.start(timeout=20)
c.create(sys.argv[2], b"held", ephemeral=True, makepath=True)
print("created", flush=True)
time.sleep(3600)
"""


def hold_ephemeral(member: Any, path: str, timeout_s: float) -> subprocess.Popen[str]:
    """A client process that creates an ephemeral through ``member`` and then only pings."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, member.address, path, str(timeout_s)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "created"
    return proc


def exists_everywhere(ens: MixedEnsemble, path: str) -> list[bool]:
    out = []
    for m in ens.members:
        c = client(m)
        try:
            c.sync("/")
            out.append(c.exists(path) is not None)
        finally:
            c.stop()
            c.close()
    return out


def _connected_to(c: KazooClient, port: int) -> bool:
    """Whether ``c`` is connected to the member on ``port`` (kazoo's socket may be closing under us)."""
    sock = c._connection._socket
    if not c.connected or sock is None:
        return False
    try:
        return bool(sock.getpeername()[1] == port)
    except OSError:  # not connected (any more): the kazoo thread is between two connections
        return False


def _recorder(seen: list[bytes]) -> Callable[[bytes, Any], None]:
    def record(data: bytes, _stat: Any) -> None:  # two arguments: kazoo passes data and stat
        seen.append(data)

    return record


@pytest.mark.parametrize("kinds", [(ZOOKEEPER, TRIZAB, TRIZAB), (TRIZAB, ZOOKEEPER, ZOOKEEPER)])
def test_sessions_cross_implementations(mixed: Callable[..., MixedEnsemble], kinds: tuple[str, ...]) -> None:
    ens = mixed(*kinds)
    one_leader(ens)
    zk_member = next(m for m, k in zip(ens.members, ens.kinds, strict=True) if k == ZOOKEEPER)
    tz_member = next(m for m, k in zip(ens.members, ens.kinds, strict=True) if k == TRIZAB)

    # A session made through a ZooKeeper member moves to a trizab member and back.
    c = client(zk_member, timeout=6.0)
    try:
        c.create("/t/eph", b"mine", ephemeral=True, makepath=True)
        session = c.client_id
        for target in (tz_member, zk_member):
            # A watch set before the move fires after it: kazoo's DataWatch sets it again on
            # the new member (a plain one-shot watch gets the disconnection instead, with
            # ZooKeeper members alike).
            c.ensure_path("/t/watched")
            seen: list[bytes] = []
            c.DataWatch("/t/watched", _recorder(seen))
            c.set_hosts(target.address)
            sock = c._connection._socket  # drop the connection: kazoo resumes the session
            if sock is not None:
                sock.shutdown(2)
            wait_until(
                lambda target=target: _connected_to(c, target.client_port),
                30,
                f"the client reconnected to {target.address}",
            )
            assert c.client_id == session
            c.set("/t/eph", f"via {target.client_port}".encode())
            assert c.get("/t/eph")[0] == f"via {target.client_port}".encode()
            assert all(exists_everywhere(ens, "/t/eph"))
            other = client(ens[1])  # a member of either kind, not the one the session is on
            try:
                other.set("/t/watched", f"changed for {target.client_port}".encode())
            finally:
                other.stop()
                other.close()
            changed = f"changed for {target.client_port}".encode()
            wait_until(
                lambda seen=seen, changed=changed: changed in seen, 30, "the watch fired after the move"
            )
    finally:
        c.stop()
        c.close()
    # Closed: the ephemeral goes everywhere.
    wait_until(lambda: not any(exists_everywhere(ens, "/t/eph")), CONVERGE_S, "the ephemeral gone")

    # Sessions that only ping, through either kind of member, outlive their timeout ...
    holders = {
        m.client_port: hold_ephemeral(m, f"/t/held{m.client_port}", 4.0) for m in (zk_member, tz_member)
    }
    try:
        time.sleep(10)
        for port in holders:
            assert all(exists_everywhere(ens, f"/t/held{port}")), f"a pinging session through {port} expired"
        # ... and expire, by the leader's decision, once their clients are gone.
        for proc in holders.values():
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
        for port in holders:
            wait_until(
                lambda port=port: not any(exists_everywhere(ens, f"/t/held{port}")),
                CONVERGE_S,
                f"the session through {port} expired",
            )
    finally:
        for proc in holders.values():
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(10)
    converged(ens)


@pytest.mark.parametrize("kinds", [(ZOOKEEPER, ZOOKEEPER, TRIZAB), (TRIZAB, TRIZAB, ZOOKEEPER)])
def test_a_deposed_leaders_unacknowledged_proposal_is_truncated_by_the_other_kind(
    mixed: Callable[..., MixedEnsemble], kinds: tuple[str, ...]
) -> None:
    """A leader logs a proposal its followers never see, crashes; the other kind's new leader
    sends it TRUNC when it comes back, and the proposal is gone everywhere."""
    ens = mixed(*kinds)
    lead_with(ens, 3)
    old = ens[2]
    write_through_each(ens, "a")
    converged(ens)
    c = client(old, timeout=30.0)  # a session needs a quorum: made before the pause
    # The followers stop reading; what the leader sends them dies with them (SIGKILL), so the
    # proposal the leader logs meanwhile is in its log alone.
    for m in ens.members[:2]:
        m.pause()
    try:
        c.create_async("/t/lost", b"never acknowledged")
        time.sleep(1.5)
    finally:
        for m in ens.members[:2]:
            m.kill()
        old.kill()
        c.stop()
        c.close()
    for m in ens.members[:2]:
        m.start()
    new_leader = one_leader(ens)
    assert new_leader in (1, 2)
    # Nothing is written meanwhile: the lost proposal is then past the new leader's last zxid,
    # which ZooKeeper's LearnerHandler.syncFollower answers with TRUNC (with newer writes in
    # its committed log it would send SNAP instead).
    mark = len(log_text(old))
    old.start()
    one_leader(ens)
    truncated = "received TRUNC at" if ens.kinds[2] == TRIZAB else "Truncating log to get in sync"
    wait_until(lambda: truncated in log_text(old, mark), CONVERGE_S, "a TRUNC")
    assert "/t/lost" not in converged(ens)
    write_through_each(ens, "b")
    data = converged(ens)
    assert "/t/lost" not in data and {"/t/b-1", "/t/b-2", "/t/b-3"} <= set(data)


@pytest.mark.parametrize(
    "kinds", [(ZOOKEEPER, TRIZAB, TRIZAB, ZOOKEEPER), (TRIZAB, ZOOKEEPER, ZOOKEEPER, TRIZAB)]
)
def test_an_observer_of_the_other_kind(mixed: Callable[..., MixedEnsemble], kinds: tuple[str, ...]) -> None:
    """Server 4 observes a leader of the other implementation (OBSERVERINFO, INFORM), also after
    a restart with its data and one with an empty data directory."""
    ens = mixed(*kinds, observers=(4,))
    lead_with(ens, 3)
    assert ens.kinds[2] != ens.kinds[3]
    assert ens.modes()[4] == "observer"
    observer = ens[3]
    write_through_each(ens, "a")
    data = converged(ens)
    assert {"/t/a-1", "/t/a-2", "/t/a-3", "/t/a-4"} <= set(data)
    observer.stop()
    bulk_write(ens[1], "d", 50)
    observer.start()
    one_leader(ens)
    write_through_each(ens, "b")
    assert {"/t/d00049", "/t/b-4"} <= set(converged(ens))
    observer.stop()
    observer.wipe_data()
    bulk_write(ens[2], "s", 1200)
    observer.start()
    one_leader(ens)
    write_through_each(ens, "c")
    assert {"/t/s01199", "/t/c-4", "/t/a-1"} <= set(converged(ens))


def _membership(conf: str) -> list[str]:
    """The ``server.N=`` and ``version=`` lines of ``conf``'s ``membership:`` section."""
    _, sep, rest = conf.partition("membership:")
    if not sep:
        return []
    return [line.strip() for line in rest.splitlines() if line.strip().startswith(("server.", "version="))]


def test_a_zookeeper_follower_learns_a_trizab_leaders_reconfig_when_it_syncs(tmp_path: Any) -> None:
    """A ZooKeeper follower that was down during a reconfig gets it in a DIFF with a plain
    COMMIT, which ZooKeeper's learner applies to its tree only: its configuration
    (``QuorumPeer.getQuorumVerifier``, what ``conf`` shows) comes from NEWLEADER's quorum
    verifier text at UPTODATE, and from the election notifications' configuration before."""
    with RollingEnsemble(3, observers=1, workdir=tmp_path, extra_config=RECONFIG_CONFIG) as ens:
        ens.start(["zookeeper", "trizab", "trizab", "trizab"], timeout=START_S)
        leader = ens.leader()
        assert leader is not None and leader.kind == "trizab", ens.kinds()
        ens[1].stop()
        admin = KazooClient(hosts=leader.address, auth_data=[("digest", f"{SUPER_USER}:{SUPER_PASSWORD}")])
        admin.start(timeout=30)
        try:
            admin.reconfig(joining=None, leaving="4", new_members=None)
            text, _ = admin.get("/zookeeper/config")
        finally:
            admin.stop()
            admin.close()
        ens[4].stop()
        want = [line for line in text.decode().splitlines() if line.startswith(("server.", "version="))]
        assert not any(line.startswith("server.4=") for line in want), want
        assert want[-1] != "version=0", want
        ens[1].start("zookeeper")
        ens.wait_one_ensemble(CONVERGE_S)
        wait_until(
            lambda: _membership(ens[1].four_letter_word("conf")) == want,
            CONVERGE_S,
            f"the ZooKeeper follower's conf membership to be {want}",
        )
        follower = client(ens[1])
        try:
            got, _ = follower.get("/zookeeper/config")
        finally:
            follower.stop()
            follower.close()
        assert got == text
        log = ens[1].program_log("zookeeper")
        assert "Something went wrong while processing config" not in log
        assert "ConfigException" not in log  # NEWLEADER's text parsed (Learner prints the trace)
