"""A replicated ensemble in one process on loopback: election, replication, fail-over, sessions.

Stock kazoo clients (in threads) talk to the members; each test checks what a
client of Apache ZooKeeper would see.  Every wait is bounded (``fail_after``).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import trio
from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError
from kazoo.retry import KazooRetry

from trizab.zab.ready import Role

WAIT = 20.0


async def in_thread(fn: Callable[[], Any]) -> Any:
    return await trio.to_thread.run_sync(fn)


def client(hosts: str, **kw: Any) -> KazooClient:
    kw.setdefault("connection_retry", KazooRetry(max_tries=-1, delay=0.05, backoff=1.5, max_delay=0.3))
    kw.setdefault("timeout", 10.0)
    c = KazooClient(hosts=hosts, randomize_hosts=False, **kw)
    c.start(timeout=WAIT)
    return c


def read_all(hosts: list[str], path: str) -> list[tuple[bytes, int]]:
    """Read ``path`` from each member alone (no failover): what that member has applied."""
    out = []
    for h in hosts:
        c = client(h)
        try:
            data, stat = c.get(path)
            out.append((data, stat.mzxid))
        finally:
            c.stop()
            c.close()
    return out


async def test_three_members_elect_one_leader_and_replicate(make_cluster: Any) -> None:
    async with trio.open_nursery() as nursery:
        cl = make_cluster(nursery)
        await cl.start_all()
        leader = await cl.wait_serving()
        roles = [m.role for m in cl.members.values()]
        assert roles.count(Role.LEADING) == 1 and roles.count(Role.FOLLOWING) == 2
        path = f"/rep-{uuid.uuid4().hex}"

        def scenario() -> list[tuple[bytes, int]]:
            # Write through a follower: it forwards to the leader and replies after applying.
            follower = next(sid for sid, m in cl.members.items() if m is not leader)
            c = client(cl.address(follower))
            try:
                c.create(path, b"v0")
                stat = c.set(path, b"v1")
                # Read-your-writes on the member the client talks to.
                assert c.get(path)[0] == b"v1"
                assert stat.version == 1
                c.sync(path)
            finally:
                c.stop()
                c.close()
            return read_all([cl.address(s) for s in sorted(cl.members)], path)

        with trio.fail_after(WAIT):
            seen = await in_thread(scenario)
        # sync on each member's own connection is not needed: the member replied after
        # applying, and the others apply the same commit; they may lag, so retry briefly.
        assert all(data in (b"v0", b"v1") for data, _ in seen)
        with trio.fail_after(WAIT):
            while {d for d, _ in seen} != {b"v1"}:
                await trio.sleep(0.02)
                seen = await in_thread(lambda: read_all([cl.address(s) for s in sorted(cl.members)], path))
        assert len({z for _, z in seen}) == 1  # the same zxid everywhere
        nursery.cancel_scope.cancel()


async def test_leader_crash_elects_new_leader_and_keeps_acknowledged_writes(make_cluster: Any) -> None:
    async with trio.open_nursery() as nursery:
        cl = make_cluster(nursery)
        await cl.start_all()
        old = await cl.wait_serving()
        base = f"/fo-{uuid.uuid4().hex}"
        c = await in_thread(lambda: client(cl.hosts))
        try:
            await in_thread(lambda: c.create(base))
            acked = []
            for i in range(20):
                acked.append(await in_thread(lambda i=i: c.create(f"{base}/a{i}", b"x")))
            cl.crash(old.my_id)
            new = await cl.wait_serving()
            assert new is not old and new.epoch > old.epoch
            # The client fails over and writes again.
            with trio.fail_after(WAIT):
                acked.append(await in_thread(lambda: c.retry(c.create, f"{base}/after", b"y")))
        finally:
            await in_thread(c.stop)
            c.close()
        hosts = [cl.address(s) for s in sorted(cl.members)]

        def children() -> list[set[str]]:
            out = []
            for h in hosts:
                k = client(h)
                try:
                    k.sync(base)
                    out.append({f"{base}/{n}" for n in k.get_children(base)})
                finally:
                    k.stop()
                    k.close()
            return out

        with trio.fail_after(WAIT):
            for have in await in_thread(children):
                assert set(acked) <= have
        # The crashed member comes back as a follower and catches up.
        await cl.start(old.my_id)
        await cl.wait_serving()
        with trio.fail_after(WAIT):
            while True:
                try:
                    got = await in_thread(lambda: read_all([cl.address(old.my_id)], f"{base}/after"))
                    break
                except NoNodeError:
                    await trio.sleep(0.02)
        assert got[0][0] == b"y"
        nursery.cancel_scope.cancel()


async def test_session_moves_to_another_member_and_keeps_its_ephemeral(make_cluster: Any) -> None:
    async with trio.open_nursery() as nursery:
        cl = make_cluster(nursery)
        await cl.start_all()
        await cl.wait_serving()
        sids = sorted(cl.members)
        path = f"/eph-{uuid.uuid4().hex}"

        def scenario() -> tuple[int, bool, bool]:
            # (a waits long before reconnecting, so that it does not take the session back.)
            a = client(cl.address(sids[0]), connection_retry=KazooRetry(max_tries=-1, delay=30, max_delay=30))
            a.create(path, b"mine", ephemeral=True)
            session = a.client_id
            # The same session resumes on another member with its id and password; the
            # member that served it before closes its old connection (a is told so).
            lost = threading.Event()
            a.add_listener(lambda state: lost.set() if state != "CONNECTED" else None)
            b = client(cl.address(sids[1]), client_id=session)
            try:
                assert lost.wait(WAIT)
                same = b.client_id[0] == session[0]
                owner = b.exists(path).ephemeralOwner
                b.set(path, b"still mine")
            finally:
                b.stop()  # closeSession: the ephemeral goes, everywhere
                b.close()
                a.stop()
                a.close()
            c = client(cl.address(sids[2]))
            try:
                c.sync(path)
                gone = c.exists(path) is None
            finally:
                c.stop()
                c.close()
            return owner, same, gone

        with trio.fail_after(WAIT):
            owner, same, gone = await in_thread(scenario)
        assert same and gone
        assert owner != 0
        nursery.cancel_scope.cancel()


async def test_only_the_leader_expires_a_session_reported_by_followers(make_cluster: Any) -> None:
    async with trio.open_nursery() as nursery:
        cl = make_cluster(nursery, tick_time=200)
        await cl.start_all()
        leader = await cl.wait_serving()
        follower = next(sid for sid in sorted(cl.members) if sid != leader.my_id)
        path = f"/exp-{uuid.uuid4().hex}"

        def connect() -> KazooClient:
            c = client(cl.address(follower), timeout=1.0)
            c.create(path, ephemeral=True)
            return c

        c = await in_thread(connect)
        # Alive for well beyond its timeout while it pings the follower only.
        await trio.sleep(0.1)
        with trio.move_on_after(2.5):
            while True:
                assert await in_thread(lambda: c.exists(path)) is not None
                await trio.sleep(0.05)
        sid = c.client_id[0]
        assert sid in leader.core.tracker.sessions
        # Its member crashes and the client cannot reach another: the leader expires the session.
        cl.crash(follower)

        def gone() -> bool:
            return all(path not in m.core.tree.nodes for m in cl.members.values())

        await cl.wait_for(gone)
        assert all(sid not in m.core.tracker.sessions for m in cl.members.values())
        await in_thread(c.stop)
        c.close()
        nursery.cancel_scope.cancel()


async def test_minority_member_stops_serving(make_cluster: Any) -> None:
    async with trio.open_nursery() as nursery:
        cl = make_cluster(nursery)
        await cl.start_all()
        leader = await cl.wait_serving()
        others = [sid for sid in sorted(cl.members) if sid != leader.my_id]
        cl.crash(others[0])
        cl.crash(others[1])
        # The leader loses its quorum within syncLimit and steps down; it refuses clients.
        await cl.wait_for(lambda: leader.role == Role.LOOKING)

        def refused() -> bool:
            c = KazooClient(hosts=cl.address(leader.my_id), timeout=1.0)
            try:
                c.start(timeout=1.0)
            except Exception:
                return True
            finally:
                c.stop()
                c.close()
            return False

        assert await in_thread(refused)
        nursery.cancel_scope.cancel()


async def test_observer_serves_but_never_votes(make_cluster: Any) -> None:
    async with trio.open_nursery() as nursery:
        cl = make_cluster(nursery, size=3, observers=1)
        await cl.start_all()
        await cl.wait_serving()
        observer = cl.members[4]
        assert observer.role == Role.OBSERVING
        assert 4 not in observer.peer_config.voters
        path = f"/obs-{uuid.uuid4().hex}"

        def scenario() -> bytes:
            c = client(cl.address(4))
            try:
                c.create(path, b"via observer")
                return c.get(path)[0]
            finally:
                c.stop()
                c.close()

        with trio.fail_after(WAIT):
            assert await in_thread(scenario) == b"via observer"
        # Two voters down: the observer cannot make a quorum with the last voter.
        voters = sorted(sid for sid in cl.members if sid != 4)
        leader = cl.leader()
        assert leader is not None
        for sid in voters:
            if sid != leader.my_id:
                cl.crash(sid)
                break
        await cl.wait_serving()  # two voters of three still make a quorum
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize("member_index", [0, 2])
async def test_sync_then_read_sees_writes_made_elsewhere(make_cluster: Any, member_index: int) -> None:
    async with trio.open_nursery() as nursery:
        cl = make_cluster(nursery)
        await cl.start_all()
        await cl.wait_serving()
        sids = sorted(cl.members)
        path = f"/sync-{uuid.uuid4().hex}"

        def scenario() -> bytes:
            w = client(cl.address(sids[1]))
            r = client(cl.address(sids[member_index]))
            try:
                for i in range(20):
                    w.create(f"{path}-{i}", str(i).encode())
                r.sync("/")
                return r.get(f"{path}-19")[0]
            finally:
                for c in (w, r):
                    c.stop()
                    c.close()

        with trio.fail_after(WAIT):
            assert await in_thread(scenario) == b"19"
        nursery.cancel_scope.cancel()


async def test_member_cut_off_from_quorum_serves_read_only_clients(make_cluster: Any) -> None:
    from kazoo.exceptions import NotReadOnlyCallError

    from trizab.runtime.launcher import four_letter
    from trizab.server.replica import Mode

    async with trio.open_nursery() as nursery:
        cl = make_cluster(nursery, extra=["readonlymode.enabled=true"])
        await cl.start_all()
        await cl.wait_serving()
        path = f"/ro-{uuid.uuid4().hex}"
        c = await in_thread(lambda: client(cl.hosts))
        await in_thread(lambda: c.create(path, b"before"))
        await in_thread(c.stop)
        c.close()
        survivor = sorted(cl.members)[0]
        port = cl.ports[survivor]
        for sid in sorted(cl.members)[1:]:
            cl.crash(sid)
        # No quorum: after max(2 s, tickTime) the survivor serves read-only clients.
        member = cl.members[survivor]
        await cl.wait_for(lambda: member.core.mode == Mode.READ_ONLY)
        assert await in_thread(lambda: four_letter(port, "isro")) == "ro"

        def scenario() -> tuple[bytes, bool]:
            ro = client(cl.address(survivor), read_only=True)
            try:
                data = ro.get(path)[0]
                try:
                    ro.create(path + "-w", b"no")
                    refused = False
                except NotReadOnlyCallError:
                    refused = True
                return data, refused
            finally:
                ro.stop()
                ro.close()

        with trio.fail_after(WAIT):
            data, refused = await in_thread(scenario)
        assert data == b"before" and refused
        # The quorum comes back: the member leaves read-only mode and serves writes again.
        for sid in sorted(cl.ports)[1:]:
            await cl.start(sid)
        await cl.wait_serving()
        assert await in_thread(lambda: four_letter(port, "isro")) == "rw"
        nursery.cancel_scope.cancel()


SUPER_DIGEST = "super:D/InIHSb7yEEbrWz8b9l71RjZJU="  # super:test


async def test_reconfig_adds_and_removes_an_observer_through_a_follower(make_cluster: Any) -> None:
    from kazoo.exceptions import BadArgumentsError, BadVersionError, NoAuthError

    async with trio.open_nursery() as nursery:
        cl = make_cluster(
            nursery,
            extra=["reconfigEnabled=true", f"DigestAuthenticationProvider.superDigest={SUPER_DIGEST}"],
        )
        await cl.start_all()
        leader = await cl.wait_serving()
        follower = next(sid for sid in sorted(cl.members) if sid != leader.my_id)
        joining = "server.100=127.0.0.1:20001:20002:observer;0.0.0.0:20003"

        def scenario() -> tuple[bytes, bytes, list[bytes]]:
            plain = client(cl.address(follower))
            admin = client(cl.address(follower), auth_data=[("digest", "super:test")])
            try:
                with pytest.raises(NoAuthError):
                    plain.reconfig(joining=joining, leaving=None, new_members=None)
                with pytest.raises(BadArgumentsError):
                    plain.reconfig(joining="some thing", leaving=None, new_members=None)
                added, _ = admin.reconfig(joining=joining, leaving=None, new_members=None)
                removed, _ = admin.reconfig(joining=None, leaving="100", new_members=None)
                version = int(removed.decode().split("\n")[-1].split("=")[1], 16)
                with pytest.raises(BadVersionError):
                    admin.reconfig(joining=joining, leaving=None, new_members=None, from_config=version + 1)
                plain.sync("/zookeeper/config")
                everywhere = [c.get("/zookeeper/config")[0] for c in (plain,)]
                return added, removed, everywhere
            finally:
                for c in (plain, admin):
                    c.stop()
                    c.close()

        with trio.fail_after(WAIT):
            added, removed, seen = await in_thread(scenario)
        assert joining.encode() in added and joining.encode() not in removed
        assert seen == [removed]
        # Every member applied the same configuration.
        await cl.wait_for(
            lambda: all(m.core.tree.nodes["/zookeeper/config"].data == removed for m in cl.members.values())
        )
        assert all(100 not in m.core.ensemble for m in cl.members.values())
        nursery.cancel_scope.cancel()
