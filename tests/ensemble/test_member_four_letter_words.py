"""mntr and conf on ensemble members show what ZooKeeper 3.8's do (keys seen on a real one)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import trio

from trizab.runtime.launcher import four_letter
from trizab.zab.ready import Role


async def in_thread(fn: Callable[[], Any]) -> Any:
    return await trio.to_thread.run_sync(fn)


def _mntr(port: int) -> dict[str, str]:
    text = four_letter(port, "mntr")
    return dict(line.split("\t", 1) for line in text.splitlines() if "\t" in line)


async def test_leader_only_mntr_keys_and_membership_in_conf(make_cluster: Any) -> None:
    async with trio.open_nursery() as nursery:
        cl = make_cluster(nursery)
        await cl.start_all()
        leader = await cl.wait_serving()
        follower = next(sid for sid in sorted(cl.members) if sid != leader.my_id)
        on_leader = await in_thread(lambda: _mntr(cl.ports[leader.my_id]))
        on_follower = await in_thread(lambda: _mntr(cl.ports[follower]))
        assert on_leader["zk_server_state"] == "leader"
        assert on_leader["zk_synced_followers"] == "2"
        assert on_leader["zk_learners"] == "2"
        assert on_leader["zk_synced_observers"] == "0"
        assert on_leader["zk_pending_syncs"] == "0"
        assert on_leader["zk_quorum_size"] == on_follower["zk_quorum_size"] == "3"
        assert "zk_synced_followers" not in on_follower and "zk_learners" not in on_follower
        conf = await in_thread(lambda: four_letter(cl.ports[follower], "conf"))
        lines = conf.splitlines()
        assert "electionAlg=3" in lines and "peerType=0" in lines
        members = lines[lines.index("membership: ") + 1 :]
        assert [line.split("=")[0] for line in members] == ["server.1", "server.2", "server.3", "version"]
        assert all(line.split(":")[3].split(";")[0] == "participant" for line in members[:3])
        assert leader.role == Role.LEADING
        nursery.cancel_scope.cancel()


async def test_a_follower_refuses_quorum_connections(make_cluster: Any) -> None:
    """Only a leader takes learners: a connection to a follower's quorum port that says it is
    a learner (here: claiming the leader's own id) is closed, and the follower keeps following."""
    from trizab.runtime.quorum import encode_packet
    from trizab.wire import records as r
    from trizab.wire.codes import QuorumPacketType as T
    from trizab.wire.jute import encode

    async with trio.open_nursery() as nursery:
        cl = make_cluster(nursery)
        await cl.start_all()
        leader = await cl.wait_serving()
        follower = cl.members[next(sid for sid in sorted(cl.members) if sid != leader.my_id)]
        host, port = follower.quorum.listen_address
        stranger = await trio.open_tcp_stream(host, port)
        info = encode(r.LearnerInfo(leader.my_id, 0x10000, 0))
        await stranger.send_all(encode_packet(r.QuorumPacket(int(T.FOLLOWERINFO), 1 << 32, info, None)))
        with trio.fail_after(5):
            while await stranger.receive_some(4096):
                pass  # closed by the follower
        await trio.sleep(1.0)  # a displaced link to the leader would show within a heartbeat
        assert follower.role == Role.FOLLOWING and follower.established
        assert follower.quorum.links[leader.my_id].outgoing
        nursery.cancel_scope.cancel()
