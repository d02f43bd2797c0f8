"""Dynamic reconfiguration of the voters on real sockets, driven by kazoo's ``reconfig``.

Members run in this process (txnlog storage in ``tmp_path``), each on loopback
ports; new servers start with a zoo.cfg listing the current ensemble plus
themselves, as ZooKeeper's documentation prescribes, and join by reconfig.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

import pytest
import trio
from kazoo.client import KazooClient
from kazoo.retry import KazooRetry

from trizab.zab.ready import Role

WAIT = 30.0
SUPER_DIGEST = "super:D/InIHSb7yEEbrWz8b9l71RjZJU="  # super:test
EXTRA = ["reconfigEnabled=true", f"DigestAuthenticationProvider.superDigest={SUPER_DIGEST}"]


async def in_thread(fn: Any) -> Any:
    return await trio.to_thread.run_sync(fn)


def client(hosts: str, **kw: Any) -> KazooClient:
    kw.setdefault("connection_retry", KazooRetry(max_tries=-1, delay=0.05, backoff=1.5, max_delay=0.3))
    kw.setdefault("timeout", 10.0)
    c = KazooClient(hosts=hosts, randomize_hosts=False, **kw)
    c.start(timeout=WAIT)
    return c


def staged_cluster(make_cluster: Any, nursery: trio.Nursery, originals: int, joiners: int) -> Any:
    """A cluster whose first ``originals`` members list only themselves, and whose joiners
    list the originals plus themselves."""
    cl = make_cluster(nursery, size=originals + joiners, extra=EXTRA)
    original = set(range(1, originals + 1))
    for sid, path, _ in cl.configs:
        keep = original | {sid}
        lines = [
            line
            for line in path.read_text().splitlines()
            if not (m := re.match(r"server\.(\d+)=", line)) or int(m.group(1)) in keep
        ]
        path.write_text("\n".join(lines) + "\n")
    return cl


def server_line(cl: Any, sid: int) -> str:
    path = next(p for s, p, _ in cl.configs if s == sid)
    line = next(ln for ln in path.read_text().splitlines() if ln.startswith(f"server.{sid}="))
    return f"{line}:participant;127.0.0.1:{cl.ports[sid]}"


def config_of(member: Any) -> bytes:
    return member.core.tree.nodes["/zookeeper/config"].data


def config_stat(member: Any) -> tuple[int, ...]:
    """``/zookeeper/config``'s Stat on ``member``, in ZnodeStat's field order."""
    st = member.core.tree.nodes["/zookeeper/config"].stat()
    return (
        st.czxid,
        st.mzxid,
        st.ctime,
        st.mtime,
        st.version,
        st.cversion,
        st.aversion,
        st.ephemeral_owner,
        st.data_length,
        st.num_children,
        st.pzxid,
    )


def voters_in(text: bytes) -> set[int]:
    return {int(m.group(1)) for m in re.finditer(rb"server\.(\d+)=[^\n]*:participant", text)}


async def test_add_two_voters_then_lose_two_originals(make_cluster: Any) -> None:
    async with trio.open_nursery() as nursery:
        cl = staged_cluster(make_cluster, nursery, 3, 2)
        for sid in (1, 2, 3):
            await cl.start(sid)
        leader = await cl.wait_serving()
        for sid in (4, 5):
            await cl.start(sid)
        # The new servers find the leader by election notifications and follow without a vote.
        await cl.wait_for(lambda: all(cl.members[s].established for s in (4, 5)), WAIT)
        assert cl.members[4].role == Role.FOLLOWING and 4 not in leader.peer.voters
        joining = ",".join(server_line(cl, s) for s in (4, 5))
        path = f"/rc-{uuid.uuid4().hex}"

        def reconfigure() -> tuple[bytes, float]:
            admin = client(cl.address(1), auth_data=[("digest", "super:test")])
            try:
                admin.create(path, b"before")
                t0 = time.monotonic()
                new, _ = admin.reconfig(joining=joining, leaving=None, new_members=None)
                return new, time.monotonic() - t0
            finally:
                admin.stop()
                admin.close()

        with trio.fail_after(WAIT):
            new, took = await in_thread(reconfigure)
        print(f"reconfig adding 2 voters committed in {took * 1000:.1f} ms")
        assert voters_in(new) == {1, 2, 3, 4, 5}
        await cl.wait_for(lambda: all(config_of(m) == new for m in cl.members.values()), WAIT)
        await cl.wait_for(lambda: all(m.peer.voters == {1, 2, 3, 4, 5} for m in cl.members.values()))
        # Two of the original three stop: 3 of the 5 voters remain, a quorum.
        lead = cl.leader()
        assert lead is not None
        gone = [s for s in (1, 2, 3) if s != lead.my_id][:2]
        for sid in gone:
            cl.crash(sid)
        await cl.wait_serving()
        live = sorted(cl.members)

        def write_and_read() -> list[bytes]:
            c = client(",".join(cl.address(s) for s in live))
            try:
                c.set(path, b"after")
            finally:
                c.stop()
                c.close()
            out = []
            for s in live:
                r = client(cl.address(s))
                try:
                    r.sync(path)
                    out.append(r.get(path)[0])
                finally:
                    r.stop()
                    r.close()
            return out

        with trio.fail_after(WAIT):
            assert await in_thread(write_and_read) == [b"after"] * 3
        nursery.cancel_scope.cancel()


async def test_removing_the_leader_elects_a_new_one_and_data_survives(make_cluster: Any) -> None:
    async with trio.open_nursery() as nursery:
        cl = staged_cluster(make_cluster, nursery, 3, 1)
        for sid in (1, 2, 3, 4):
            await cl.start(sid)
        old = await cl.wait_serving([1, 2, 3])
        await cl.wait_for(lambda: cl.members[4].established, WAIT)
        paths = [f"/keep-{k}" for k in range(20)]

        def add_then_remove_leader() -> tuple[bytes, float]:
            admin = client(cl.address(4), auth_data=[("digest", "super:test")])
            try:
                for p in [*paths, "/after-removal"]:
                    admin.create(p, p.encode())
                admin.reconfig(joining=server_line(cl, 4), leaving=None, new_members=None)
                t0 = time.monotonic()
                new, _ = admin.reconfig(joining=None, leaving=str(old.my_id), new_members=None)
                # The session survives the leader change; a request in flight when the
                # connection drops gets ConnectionLoss (as with ZooKeeper): retry it.
                admin.retry(admin.set, "/after-removal", b"x")
                return new, time.monotonic() - t0
            finally:
                admin.stop()
                admin.close()

        with trio.fail_after(WAIT):
            new, took = await in_thread(add_then_remove_leader)
        rest = {1, 2, 3, 4} - {old.my_id}
        assert voters_in(new) == rest
        print(f"leader removed; next write committed {took * 1000:.1f} ms after the reconfig was sent")
        leader = await cl.wait_serving(sorted(rest))
        assert leader.my_id in rest and leader.peer.voters == rest
        # The removed server is no longer listed: it serves nobody.
        await cl.wait_for(lambda: not cl.members[old.my_id].established, WAIT)
        assert cl.members[old.my_id].role == Role.LOOKING

        def read_back() -> list[bytes]:
            c = client(",".join(cl.address(s) for s in sorted(rest)))
            try:
                return [c.get(p)[0] for p in [*paths, "/after-removal"]]
            finally:
                c.stop()
                c.close()

        with trio.fail_after(WAIT):
            assert await in_thread(read_back) == [p.encode() for p in paths] + [b"x"]
        nursery.cancel_scope.cancel()


async def test_a_config_without_a_synced_quorum_is_refused(make_cluster: Any) -> None:
    from kazoo.exceptions import NewConfigNoQuorumError

    async with trio.open_nursery() as nursery:
        cl = staged_cluster(make_cluster, nursery, 3, 2)
        for sid in (1, 2, 3):
            await cl.start(sid)
        await cl.wait_serving()
        # Servers 4 and 5 are not running: {1,2,3,4,5} has a quorum among the synced
        # (1,2,3), {1,4,5} has not.
        ghost = ",".join(server_line(cl, s) for s in (4, 5))

        def scenario() -> bytes:
            admin = client(cl.address(2), auth_data=[("digest", "super:test")])
            try:
                with pytest.raises(NewConfigNoQuorumError):
                    admin.reconfig(joining=ghost, leaving="2,3", new_members=None)
                admin.create("/still-writable", b"ok")
                return admin.get("/zookeeper/config")[0]
            finally:
                admin.stop()
                admin.close()

        with trio.fail_after(WAIT):
            text = await in_thread(scenario)
        assert voters_in(text) == {1, 2, 3}
        nursery.cancel_scope.cancel()


async def test_a_restarted_member_comes_back_with_the_new_membership(make_cluster: Any) -> None:
    async with trio.open_nursery() as nursery:
        cl = staged_cluster(make_cluster, nursery, 3, 1)
        for sid in (1, 2, 3, 4):
            await cl.start(sid)
        await cl.wait_serving([1, 2, 3])
        await cl.wait_for(lambda: cl.members[4].established, WAIT)
        # Installed as ZKDatabase.initConfigInZKDatabase does: version -1, the configuration's
        # version (0) as mzxid, the wall time of the install as mtime.
        for m in cl.members.values():
            czxid, mzxid, ctime, mtime, version, *rest = config_stat(m)
            assert (czxid, mzxid, ctime, version) == (0, 0, 0, -1) and mtime > 0, config_stat(m)
            assert rest == [0, -1, 0, len(config_of(m)), 0, 0], config_stat(m)

        def add() -> tuple[bytes, tuple[int, ...]]:
            admin = client(cl.address(1), auth_data=[("digest", "super:test")])
            try:
                text, stat = admin.reconfig(joining=server_line(cl, 4), leaving=None, new_members=None)
                return text, tuple(stat)
            finally:
                admin.stop()
                admin.close()

        with trio.fail_after(WAIT):
            new, stat = await in_thread(add)
        # PrepRequestProcessor's setData of version -1: the reconfig's zxid and time everywhere.
        assert stat[4] == -1 and stat[1] == int(new.rsplit(b"version=", 1)[1], 16), stat
        await cl.wait_for(lambda: all(config_of(m) == new for m in cl.members.values()), WAIT)
        await cl.wait_for(lambda: all(config_stat(m) == stat for m in cl.members.values()), WAIT)
        # Restart every member (its zoo.cfg still lists the old ensemble, or itself plus it).
        for sid in (1, 2, 3, 4):
            cl.crash(sid)
        for sid in (1, 2, 3, 4):
            member = await cl.start(sid)
            assert member.peer.voters == {1, 2, 3, 4}, sid
        await cl.wait_serving([1, 2, 3, 4])
        assert all(config_of(m) == new for m in cl.members.values())
        assert all(config_stat(m) == stat for m in cl.members.values())
        nursery.cancel_scope.cancel()
