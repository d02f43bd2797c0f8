"""ServerCore driven directly with a fake clock: handshake, ordering, watches, multi, ACLs, reaping.

Expected values are ZooKeeper 3.8 behaviour (observed on Apache ZooKeeper or read from its source),
not read back from our implementation.
"""

from __future__ import annotations

import base64
import hashlib

from core_harness import Harness

from trizab.server.api import Connected, Notification, Reply
from trizab.server.core import CoreConfig
from trizab.tree.acl import OPEN_ACL_UNSAFE
from trizab.wire import records as r
from trizab.wire.codes import CreateMode, Err, EventType, OpCode
from trizab.wire.requests import MultiOp, MultiResponse, encode_multi

ANYONE_ALL = list(OPEN_ACL_UNSAFE)


def multi(h: Harness, c: int, ops: list[MultiOp]) -> Reply:
    return h.call(c, OpCode.MULTI, encode_multi(ops))


# -- handshake and sessions ---------------------------------------------------------


def test_new_session_connected_only_after_commit(h: Harness) -> None:
    h.auto_commit = False
    c = h.connect(timeout=1)
    assert h.take(c) == []
    assert [t.header.type for t in h.uncommitted] == [OpCode.CREATE_SESSION]
    h.commit()
    (out,) = h.take(c)
    assert isinstance(out, Connected)
    # Timeout clamped to [2, 20] * tickTime.
    assert out.response.time_out == 4000
    assert out.response.session_id >> 56 == 1  # standalone ZooKeeper seeds ids with server id 1
    assert len(out.response.passwd) == 16


def test_timeout_clamped_to_max(h: Harness) -> None:
    _, resp = h.session(timeout=10**6)
    assert resp.time_out == 40_000


def test_resume_with_password_and_reject_wrong_one(h: Harness) -> None:
    c, resp = h.session()
    h.create(c, "/e", flags=CreateMode.EPHEMERAL)
    h.core.connection_lost(c, h.now)
    c2 = h.connect(resp.session_id, resp.passwd, last_zxid=h.core.last_zxid)
    (out,) = h.take(c2)
    assert out.response.session_id == resp.session_id and out.response.time_out == 10_000
    assert h.stat(c2, "/e") is not None
    bad = h.connect(resp.session_id, bytes(16))
    (out,) = h.take(bad)
    assert out.response == r.ConnectResponse(0, 0, 0, bytes(16), False)
    assert bad in h.closed


def test_client_ahead_of_server_is_refused(h: Harness) -> None:
    c = h.connect(last_zxid=99)
    assert h.take(c) == [] and c in h.closed


def test_expiry_deletes_ephemerals_and_fires_watches(h: Harness) -> None:
    a, _ = h.session(timeout=4000)
    b, _ = h.session(timeout=40_000)
    h.create(a, "/eph", flags=CreateMode.EPHEMERAL)
    assert h.stat(b, "/eph", watch=True) is not None
    for _ in range(4):
        h.advance(1000)
        h.send(b, OpCode.PING, xid=-2)
    assert h.stat(b, "/eph") is not None
    h.advance(2000)  # a has been silent for 6 s > 4 s (rounded to ticks)
    assert (EventType.NODE_DELETED, "/eph") in h.events(b)
    assert h.stat(b, "/eph") is None
    assert a in h.closed
    assert h.log[-1].header.type == OpCode.CLOSE_SESSION


def test_expired_session_cannot_resume(h: Harness) -> None:
    a, resp = h.session(timeout=4000)
    h.core.connection_lost(a, h.now)
    h.advance(10_000)
    c = h.connect(resp.session_id, resp.passwd, last_zxid=0)
    (out,) = h.take(c)
    assert out.response.time_out == 0 and c in h.closed


def test_close_session_replies_then_closes(h: Harness) -> None:
    c, _ = h.session()
    h.create(c, "/e", flags=CreateMode.EPHEMERAL_SEQUENTIAL)
    rep = h.call(c, OpCode.CLOSE_SESSION)
    assert rep.header.err == 0 and c in h.closed
    d, _ = h.session()
    assert h.call(d, OpCode.GET_CHILDREN, r.GetChildrenRequest("/", False)).body.children == ["zookeeper"]


# -- data operations and stats --------------------------------------------------------


def test_special_nodes_match_zookeeper(h: Harness) -> None:
    c, _ = h.session()
    root = h.stat(c, "/")
    assert root is not None and (root.cversion, root.num_children) == (-1, 1)
    zk = h.stat(c, "/zookeeper")
    assert zk is not None and (zk.cversion, zk.num_children) == (-2, 2)
    rep = h.call(c, OpCode.GET_ACL, r.GetACLRequest("/zookeeper/config"))
    assert rep.body.acl == [r.ACL(1, r.Id("world", "anyone"))] and rep.body.stat.aversion == -1
    assert h.call(c, OpCode.GET_DATA, r.GetDataRequest("/zookeeper/config", False)).body.data == b""
    rep = h.call(c, OpCode.DELETE, r.DeleteRequest("/zookeeper", -1))
    assert rep.header.err == Err.BAD_ARGUMENTS


def test_cversion_and_sequence_numbers_as_zookeeper(h: Harness) -> None:
    # Observed on ZooKeeper 3.8.0: create /a, /a/b, delete /a/b -> cversion 2; the next sequential
    # child is numbered 1 (creates only); a failed create still spends a zxid.
    c, _ = h.session()
    h.create(c, "/a")
    h.create(c, "/a/b")
    h.call(c, OpCode.DELETE, r.DeleteRequest("/a/b", -1))
    st = h.stat(c, "/a")
    assert st is not None and (st.cversion, st.num_children) == (2, 0)
    assert h.create(c, "/a/s", flags=CreateMode.PERSISTENT_SEQUENTIAL).body.path == "/a/s0000000001"
    before = h.core.last_zxid
    rep = h.create(c, "/a/b/c/d")
    assert rep.header.err == Err.NO_NODE and rep.header.zxid == before + 1
    st = h.stat(c, "/a")
    assert st is not None and st.cversion == 3


def test_create_errors(h: Harness) -> None:
    c, _ = h.session()
    # Java checks the parent before validating the full path: "/x/" is NoNode, "/zookeeper/" bad.
    assert h.create(c, "/x/").header.err == Err.NO_NODE
    assert h.create(c, "/zookeeper/").header.err == Err.BAD_ARGUMENTS
    assert h.create(c, "relative").header.err == Err.BAD_ARGUMENTS
    assert h.create(c, "/x", flags=99).header.err == Err.BAD_ARGUMENTS
    assert h.create(c, "/x", acl=[]).header.err == Err.INVALID_ACL
    assert h.create(c, "/x", flags=CreateMode.PERSISTENT_WITH_TTL).header.err == Err.UNIMPLEMENTED
    h.create(c, "/e", flags=CreateMode.EPHEMERAL)
    assert h.create(c, "/e/c").header.err == Err.NO_CHILDREN_FOR_EPHEMERALS
    assert h.create(c, "/e").header.err == Err.NODE_EXISTS
    st = h.stat(c, "/e")
    assert st is not None and st.ephemeral_owner == h.core.conns[c].session_id


def test_set_data_versions_and_stat(h: Harness) -> None:
    c, _ = h.session()
    h.create(c, "/v", b"1")
    rep = h.call(c, OpCode.SET_DATA, r.SetDataRequest("/v", b"22", 0))
    st = rep.body.stat
    assert (st.version, st.data_length, st.mzxid) == (1, 2, rep.header.zxid)
    assert h.call(c, OpCode.SET_DATA, r.SetDataRequest("/v", b"3", 0)).header.err == Err.BAD_VERSION
    assert h.call(c, OpCode.DELETE, r.DeleteRequest("/v", 0)).header.err == Err.BAD_VERSION
    assert h.call(c, OpCode.DELETE, r.DeleteRequest("/v", 1)).header.err == 0


def test_create2_and_container_stat(h: Harness) -> None:
    c, _ = h.session()
    req = r.CreateRequest("/k", b"ab", ANYONE_ALL, CreateMode.CONTAINER)
    rep = h.call(c, OpCode.CREATE_CONTAINER, req)
    assert rep.body.path == "/k" and rep.body.stat.ephemeral_owner == 0 and rep.body.stat.data_length == 2
    rep = h.call(c, OpCode.CREATE2, r.CreateRequest("/k/c", b"", ANYONE_ALL, 0))
    assert rep.body.stat.czxid == rep.header.zxid


def test_read_queued_behind_write_sees_it(h: Harness) -> None:
    c, _ = h.session()
    h.create(c, "/q", b"old")
    h.auto_commit = False
    wx = h.send(c, OpCode.SET_DATA, r.SetDataRequest("/q", b"new", -1))
    rx = h.send(c, OpCode.GET_DATA, r.GetDataRequest("/q", False))
    assert h.take(c) == []  # the read waits for the write
    h.commit()
    outs = h.take(c)
    assert [o.header.xid for o in outs] == [wx, rx]
    assert outs[1].body.data == b"new"


def test_other_connection_reads_are_not_blocked(h: Harness) -> None:
    a, _ = h.session()
    b, _ = h.session()
    h.create(a, "/q", b"old")
    h.auto_commit = False
    h.send(a, OpCode.SET_DATA, r.SetDataRequest("/q", b"new", -1))
    rep = h.call(b, OpCode.GET_DATA, r.GetDataRequest("/q", False))
    assert rep.body.data == b"old"


def test_event_before_reply(h: Harness) -> None:
    a, _ = h.session()
    b, _ = h.session()
    h.create(a, "/w", b"0")
    h.call(b, OpCode.GET_DATA, r.GetDataRequest("/w", True))
    h.auto_commit = False
    h.send(a, OpCode.SET_DATA, r.SetDataRequest("/w", b"1", -1))
    h.send(b, OpCode.SET_DATA, r.SetDataRequest("/w", b"2", -1))
    h.commit()
    outs = h.take(b)
    assert isinstance(outs[0], Notification) and outs[0].event.type == EventType.NODE_DATA_CHANGED
    assert outs[0].zxid == -1 and outs[0].event.state == 3
    assert isinstance(outs[1], Reply)


# -- watches --------------------------------------------------------------------------


def test_one_shot_watches_fire_once_and_dedupe(h: Harness) -> None:
    c, _ = h.session()
    h.create(c, "/p")
    h.call(c, OpCode.GET_DATA, r.GetDataRequest("/p", True))
    h.stat(c, "/p", watch=True)
    h.call(c, OpCode.GET_CHILDREN, r.GetChildrenRequest("/p", True))
    h.create(c, "/p/c")
    assert h.events(c) == [(EventType.NODE_CHILDREN_CHANGED, "/p")]
    h.call(c, OpCode.SET_DATA, r.SetDataRequest("/p", b"x", -1))
    assert h.events(c) == [(EventType.NODE_DATA_CHANGED, "/p")]
    h.call(c, OpCode.SET_DATA, r.SetDataRequest("/p", b"y", -1))
    assert h.events(c) == []


def test_exists_watch_on_missing_node(h: Harness) -> None:
    c, _ = h.session()
    assert h.stat(c, "/later", watch=True) is None
    h.create(c, "/later")
    assert h.events(c) == [(EventType.NODE_CREATED, "/later")]


def test_delete_fires_data_and_child_watchers_once(h: Harness) -> None:
    c, _ = h.session()
    h.create(c, "/d")
    h.stat(c, "/d", watch=True)
    h.call(c, OpCode.GET_CHILDREN, r.GetChildrenRequest("/d", True))
    h.call(c, OpCode.GET_CHILDREN, r.GetChildrenRequest("/", True))
    h.call(c, OpCode.DELETE, r.DeleteRequest("/d", -1))
    assert h.events(c) == [(EventType.NODE_DELETED, "/d"), (EventType.NODE_CHILDREN_CHANGED, "/")]


def test_watches_survive_reconnect_and_queue_events(h: Harness) -> None:
    a, resp = h.session()
    b, _ = h.session()
    h.create(b, "/s")
    h.stat(a, "/s", watch=True)
    h.core.connection_lost(a, h.now)
    h.call(b, OpCode.SET_DATA, r.SetDataRequest("/s", b"x", -1))
    a2 = h.connect(resp.session_id, resp.passwd, last_zxid=h.core.last_zxid)
    outs = h.take(a2)
    assert isinstance(outs[0], Connected)
    assert [(o.event.type, o.event.path) for o in outs[1:]] == [(EventType.NODE_DATA_CHANGED, "/s")]


def test_set_watches_catch_up(h: Harness) -> None:
    c, _ = h.session()
    h.create(c, "/m")
    h.create(c, "/n")
    seen = h.core.last_zxid
    h.call(c, OpCode.SET_DATA, r.SetDataRequest("/m", b"x", -1))
    h.create(c, "/n/kid")
    sw = r.SetWatches(seen, ["/m", "/gone", "/n"], ["/n", "/absent"], ["/n", "/m"])
    xid = h.send(c, OpCode.SET_WATCHES, sw, xid=-8)
    outs = h.take(c)
    events = [(o.event.type, o.event.path) for o in outs if isinstance(o, Notification)]
    assert events == [
        (EventType.NODE_DATA_CHANGED, "/m"),
        (EventType.NODE_DELETED, "/gone"),
        (EventType.NODE_CREATED, "/n"),
        (EventType.NODE_CHILDREN_CHANGED, "/n"),
    ]
    assert isinstance(outs[-1], Reply) and outs[-1].header.xid == xid == -8
    # Re-registered: /n data watch (mzxid <= seen), /absent exist watch, /m child watch.
    h.create(c, "/absent")
    h.create(c, "/m/kid")
    h.call(c, OpCode.SET_DATA, r.SetDataRequest("/n", b"x", -1))
    assert h.events(c) == [
        (EventType.NODE_CREATED, "/absent"),
        (EventType.NODE_CHILDREN_CHANGED, "/m"),
        (EventType.NODE_DATA_CHANGED, "/n"),
    ]


def test_persistent_and_recursive_watches(h: Harness) -> None:
    c, _ = h.session()
    h.create(c, "/r")
    assert h.call(c, OpCode.ADD_WATCH, r.AddWatchRequest("/r", 1)).body == r.ErrorResponse(0)
    h.call(c, OpCode.ADD_WATCH, r.AddWatchRequest("/", 0))
    h.create(c, "/r/a")
    h.call(c, OpCode.SET_DATA, r.SetDataRequest("/r/a", b"1", -1))
    h.call(c, OpCode.SET_DATA, r.SetDataRequest("/r/a", b"2", -1))
    assert h.events(c) == [
        (EventType.NODE_CREATED, "/r/a"),
        (EventType.NODE_DATA_CHANGED, "/r/a"),
        (EventType.NODE_DATA_CHANGED, "/r/a"),
    ]
    h.create(c, "/top")
    assert h.events(c) == [(EventType.NODE_CHILDREN_CHANGED, "/")]
    # ZooKeeper 3.8 knows watcher types 1-3 only (4 and 5 are MarshallingError, see
    # test_zk_divergences.py); a recursive watch sits in the data table, so type 2 removes it.
    check = r.CheckWatchesRequest("/r", 3)
    assert h.call(c, OpCode.CHECK_WATCHES, check).header.err == 0
    assert h.call(c, OpCode.REMOVE_WATCHES, r.RemoveWatchesRequest("/r", 2)).header.err == 0
    assert h.call(c, OpCode.CHECK_WATCHES, check).header.err == Err.NO_WATCHER
    assert h.call(c, OpCode.REMOVE_WATCHES, r.RemoveWatchesRequest("/r", 2)).header.err == Err.NO_WATCHER


# -- multi ----------------------------------------------------------------------------


def test_multi_success_and_failure_results(h: Harness) -> None:
    c, _ = h.session()
    ok = multi(
        h,
        c,
        [
            MultiOp(OpCode.CREATE, r.CreateRequest("/t", b"", ANYONE_ALL, 0)),
            MultiOp(OpCode.CREATE, r.CreateRequest("/t/s", b"", ANYONE_ALL, 2)),
            MultiOp(OpCode.SET_DATA, r.SetDataRequest("/t", b"x", 0)),
            MultiOp(OpCode.CHECK, r.CheckVersionRequest("/t", 1)),
        ],
    )
    assert ok.header.err == 0
    res = ok.body.results
    assert [x.type for x in res] == [OpCode.CREATE, OpCode.CREATE, OpCode.SET_DATA, OpCode.CHECK]
    assert res[1].body.path == "/t/s0000000000" and res[2].body.stat.version == 1
    before = h.stat(c, "/t")
    bad = multi(
        h,
        c,
        [
            MultiOp(OpCode.CREATE, r.CreateRequest("/t/x", b"", ANYONE_ALL, 0)),
            MultiOp(OpCode.DELETE, r.DeleteRequest("/nonexist", -1)),
            MultiOp(OpCode.CREATE, r.CreateRequest("/t/y", b"", ANYONE_ALL, 0)),
        ],
    )
    assert bad.header.err == 0
    assert [(x.type, x.err) for x in bad.body.results] == [
        (OpCode.ERROR, 0),
        (OpCode.ERROR, Err.NO_NODE),
        (OpCode.ERROR, Err.RUNTIME_INCONSISTENCY),
    ]
    assert h.stat(c, "/t/x") is None
    after = h.stat(c, "/t")
    assert after is not None and before is not None and after.cversion == before.cversion
    # The failed multi's pending changes were rolled back: the same create now works.
    assert h.create(c, "/t/x").header.err == 0


def test_multi_sequential_after_failed_multi_uses_rolled_back_cversion(h: Harness) -> None:
    c, _ = h.session()
    h.create(c, "/u")
    h.auto_commit = False
    h.send(
        c,
        OpCode.MULTI,
        encode_multi(
            [
                MultiOp(OpCode.CREATE, r.CreateRequest("/u/s", b"", ANYONE_ALL, 2)),
                MultiOp(OpCode.CHECK, r.CheckVersionRequest("/u", 7)),
            ]
        ),
    )
    h.send(c, OpCode.CREATE, r.CreateRequest("/u/s", b"", ANYONE_ALL, 2))
    h.commit()
    outs = h.take(c)
    assert outs[1].body.path == "/u/s0000000000"


def test_multi_read(h: Harness) -> None:
    c, _ = h.session()
    h.create(c, "/mr", b"d")
    raw = encode_multi(
        [
            MultiOp(OpCode.GET_DATA, r.GetDataRequest("/mr", False)),
            MultiOp(OpCode.GET_CHILDREN, r.GetChildrenRequest("/nope", False)),
            MultiOp(OpCode.GET_CHILDREN, r.GetChildrenRequest("/", False)),
        ]
    )
    rep = h.call(c, OpCode.MULTI_READ, raw)
    res = rep.body.results
    assert res[0].body.data == b"d" and (res[1].type, res[1].err) == (OpCode.ERROR, Err.NO_NODE)
    assert set(res[2].body.children) == {"zookeeper", "mr"}
    out = bytearray()
    rep.body.jute_encode(out)
    assert MultiResponse.decode(bytes(out)) == rep.body


# -- malformed and unknown requests ----------------------------------------------------


def test_garbage_bodies_and_unknown_opcodes(h: Harness) -> None:
    c, _ = h.session()
    assert h.call(c, OpCode.GET_DATA, b"\x00\x00").header.err == Err.MARSHALLING_ERROR
    before = h.core.last_zxid
    assert h.call(c, OpCode.CREATE, b"\xff\xff\xff\x00").header.err == Err.MARSHALLING_ERROR
    assert h.core.last_zxid == before + 1  # ZooKeeper logs an ErrorTxn for it
    assert h.call(c, 999, b"").header.err == Err.UNIMPLEMENTED
    assert (
        h.call(c, OpCode.RECONFIG, r.ReconfigRequest(None, None, None, -1)).header.err
        == Err.RECONFIG_DISABLED
    )
    assert c not in h.closed
    assert h.stat(c, "/") is not None


# -- ACLs and auth ---------------------------------------------------------------------


def digest(user: str, pw: str) -> str:
    return user + ":" + base64.b64encode(hashlib.sha1(f"{user}:{pw}".encode()).digest()).decode()


def test_digest_acl_and_auth() -> None:
    h = Harness(CoreConfig(super_digest=digest("super", "s3cret")))
    a, _ = h.session()
    b, _ = h.session()
    assert h.call(a, OpCode.AUTH, r.AuthPacket(0, "digest", b"alice:pw")).header.err == 0
    acl = [r.ACL(31, r.Id("auth", ""))]
    assert h.create(a, "/sec", b"s", acl=acl).header.err == 0
    rep = h.call(a, OpCode.GET_ACL, r.GetACLRequest("/sec"))
    assert rep.body.acl == [r.ACL(31, r.Id("digest", digest("alice", "pw")))]
    assert h.call(b, OpCode.GET_DATA, r.GetDataRequest("/sec", False)).header.err == Err.NO_AUTH
    assert h.call(b, OpCode.SET_DATA, r.SetDataRequest("/sec", b"", -1)).header.err == Err.NO_AUTH
    assert h.stat(b, "/sec") is not None  # exists checks no ACL
    assert h.create(b, "/x", acl=acl).header.err == Err.INVALID_ACL  # no authenticated id to expand
    h.call(b, OpCode.AUTH, r.AuthPacket(0, "digest", b"super:s3cret"))
    assert h.call(b, OpCode.GET_DATA, r.GetDataRequest("/sec", False)).body.data == b"s"
    who = h.call(b, OpCode.WHO_AM_I).body.client_info
    assert r.ClientInfo("ip", "127.0.0.1") in who and r.ClientInfo("digest", "super") in who


def test_ip_acl(h: Harness) -> None:
    a, _ = h.session()
    acl = [r.ACL(31, r.Id("ip", "10.0.0.0/8")), r.ACL(1, r.Id("ip", "127.0.0.1"))]
    assert h.create(a, "/ip", acl=acl).header.err == 0
    assert h.call(a, OpCode.GET_DATA, r.GetDataRequest("/ip", False)).header.err == 0
    assert h.call(a, OpCode.SET_DATA, r.SetDataRequest("/ip", b"", -1)).header.err == Err.NO_AUTH
    c = h.connect(addr="10.1.2.3:5555")
    h.take(c)
    assert h.call(c, OpCode.SET_DATA, r.SetDataRequest("/ip", b"", -1)).header.err == 0
    assert h.create(a, "/bad", acl=[r.ACL(31, r.Id("ip", "10.0.0.0/33"))]).header.err == Err.INVALID_ACL


def test_unknown_auth_scheme_fails_and_closes(h: Harness) -> None:
    c, _ = h.session()
    xid = h.send(c, OpCode.AUTH, r.AuthPacket(0, "kerberos", b"x"), xid=-4)
    (out,) = h.take(c)
    assert out.header == r.ReplyHeader(xid, 0, Err.AUTH_FAILED) and c in h.closed


def test_set_acl_uses_aversion(h: Harness) -> None:
    c, _ = h.session()
    h.create(c, "/acl")
    rep = h.call(c, OpCode.SET_ACL, r.SetACLRequest("/acl", [r.ACL(1, r.Id("world", "anyone"))], 0))
    assert rep.body.stat.aversion == 1
    rep = h.call(c, OpCode.SET_ACL, r.SetACLRequest("/acl", ANYONE_ALL, 0))
    assert rep.header.err == Err.NO_AUTH  # READ only now: no ADMIN


# -- containers, TTL, misc ---------------------------------------------------------------


def test_container_reaped_after_last_child_goes() -> None:
    h = Harness(CoreConfig(max_session_timeout_ms=10**6))
    c, _ = h.session(timeout=10**6)
    h.call(c, OpCode.CREATE_CONTAINER, r.CreateRequest("/box", b"", ANYONE_ALL, CreateMode.CONTAINER))
    h.create(c, "/box/item")
    h.call(c, OpCode.DELETE, r.DeleteRequest("/box/item", -1))
    assert h.stat(c, "/box") is None
    assert h.log[-1].header.type == OpCode.DELETE_CONTAINER
    # A container that never had children survives the periodic check.
    h.call(c, OpCode.CREATE_CONTAINER, r.CreateRequest("/empty", b"", ANYONE_ALL, CreateMode.CONTAINER))
    h.advance(61_000)
    assert h.stat(c, "/empty") is not None


def test_ttl_nodes_expire() -> None:
    h = Harness(CoreConfig(extended_types_enabled=True, max_session_timeout_ms=10**6))
    c, _ = h.session(timeout=10**6)
    req = r.CreateTTLRequest("/ttl", b"", ANYONE_ALL, CreateMode.PERSISTENT_WITH_TTL, 5000)
    rep = h.call(c, OpCode.CREATE_TTL, req)
    assert rep.header.err == 0 and rep.body.stat.ephemeral_owner == 0
    bad = r.CreateTTLRequest("/ttl2", b"", ANYONE_ALL, CreateMode.PERSISTENT_WITH_TTL, 0)
    assert h.call(c, OpCode.CREATE_TTL, bad).header.err == Err.BAD_ARGUMENTS
    h.advance(61_000)
    assert h.stat(c, "/ttl") is None


def test_get_ephemerals_and_all_children_number(h: Harness) -> None:
    c, _ = h.session()
    h.create(c, "/g")
    h.create(c, "/g/e1", flags=CreateMode.EPHEMERAL)
    h.create(c, "/g/p")
    h.create(c, "/g/p/e2", flags=CreateMode.EPHEMERAL)
    rep = h.call(c, OpCode.GET_EPHEMERALS, r.GetEphemeralsRequest("/g/p"))
    assert rep.body.ephemerals == ["/g/p/e2"]
    rep = h.call(c, OpCode.GET_EPHEMERALS, r.GetEphemeralsRequest("/"))
    assert sorted(rep.body.ephemerals) == ["/g/e1", "/g/p/e2"]
    assert (
        h.call(c, OpCode.GET_ALL_CHILDREN_NUMBER, r.GetAllChildrenNumberRequest("/g")).body.total_number == 3
    )


def test_snapshot_and_load_restore_state(h: Harness) -> None:
    from trizab.storage import Recovered

    c, resp = h.session()
    h.create(c, "/keep", b"v")
    h.create(c, "/keep/e", flags=CreateMode.EPHEMERAL)
    h.call(c, OpCode.SET_ACL, r.SetACLRequest("/keep", [r.ACL(1, r.Id("world", "anyone"))], -1))
    snap_zxid = h.core.last_zxid
    snap = h.core.snapshot()
    h.call(c, OpCode.SET_DATA, r.SetDataRequest("/keep/e", b"after", -1))
    tail = [t for t in h.log if t.zxid > snap_zxid]
    h2 = Harness(now=h.now)
    h2.core.load(Recovered(snap, snap_zxid, tail, 0, 0))
    assert h2.core.last_zxid == h.core.last_zxid
    c2 = h2.connect(resp.session_id, resp.passwd, last_zxid=h.core.last_zxid)
    assert isinstance(h2.take(c2)[0], Connected)
    for path in ("/keep", "/keep/e", "/", "/zookeeper/config"):
        assert (
            h2.call(c2, OpCode.GET_DATA, r.GetDataRequest(path, False)).body
            == h.call(c, OpCode.GET_DATA, r.GetDataRequest(path, False)).body
        )
    assert h2.core.snapshot() == h.core.snapshot()
    # New zxids continue after the recovered ones.
    assert h2.create(c2, "/next").header.zxid == h.core.last_zxid + 1


def test_close_session_covers_ephemerals_still_in_flight(h: Harness) -> None:
    c, _ = h.session()
    d, _ = h.session()
    h.auto_commit = False
    h.send(c, OpCode.CREATE, r.CreateRequest("/inflight", b"", ANYONE_ALL, CreateMode.EPHEMERAL))
    h.send(c, OpCode.CLOSE_SESSION)
    h.commit()
    close_txn = h.log[-1]
    assert close_txn.header.type == OpCode.CLOSE_SESSION and close_txn.body.paths2_delete == ["/inflight"]
    h.auto_commit = True
    assert h.stat(d, "/inflight") is None


def test_lost_connection_with_pending_write(h: Harness) -> None:
    c, resp = h.session()
    h.auto_commit = False
    h.send(c, OpCode.CREATE, r.CreateRequest("/pending", b"", ANYONE_ALL, 0))
    h.core.connection_lost(c, h.now)
    h.commit()
    assert h.take(c) == []
    h.auto_commit = True
    c2 = h.connect(resp.session_id, resp.passwd, last_zxid=h.core.last_zxid)
    h.take(c2)
    assert h.stat(c2, "/pending") is not None


def test_unknown_opcode_and_auth_ordering(h: Harness) -> None:
    c, _ = h.session()
    h.auto_commit = False
    wx = h.send(c, OpCode.CREATE, r.CreateRequest("/o", b"", ANYONE_ALL, 0))
    ux = h.send(c, 77, b"")
    ax = h.send(c, OpCode.AUTH, r.AuthPacket(0, "digest", b"u:p"), xid=-4)
    # The auth reply (xid -4, matched specially by clients) does not wait behind the write.
    assert [o.header.xid for o in h.take(c)] == [ax]
    h.commit()
    outs = h.take(c)
    assert [(o.header.xid, o.header.err) for o in outs] == [(wx, 0), (ux, Err.UNIMPLEMENTED)]


def test_read_only_server() -> None:
    h = Harness(CoreConfig(read_only=True))
    c = h.connect()
    assert c in h.closed  # a client that does not accept read-only is refused
    req = r.ConnectRequest(0, 0, 10_000, 0, bytes(16), True)
    h.core.connect(9, req, has_read_only_flag=True, client_addr="127.0.0.1:1", now_ms=h.now)
    h.pump()
    (out,) = h.take(9)
    assert out.response.read_only and out.response.time_out == 10_000
    assert h.create(9, "/w").header.err == Err.NOT_READONLY
    assert h.stat(9, "/zookeeper") is not None
    assert h.log == []


def test_ttl_needs_extended_types(h: Harness) -> None:
    c, _ = h.session()
    req = r.CreateTTLRequest("/t", b"", ANYONE_ALL, CreateMode.PERSISTENT_WITH_TTL, 100)
    assert h.call(c, OpCode.CREATE_TTL, req).header.err == Err.UNIMPLEMENTED


def test_follower_applying_foreign_log_reaches_same_state(h: Harness) -> None:
    a, _ = h.session()
    b, resp = h.session()
    h.create(a, "/f", b"1")
    h.create(b, "/f/e", flags=CreateMode.EPHEMERAL_SEQUENTIAL)
    h.call(a, OpCode.SET_DATA, r.SetDataRequest("/f", b"2", -1))
    h.call(b, OpCode.CLOSE_SESSION)
    follower = Harness()
    follower.core.committed(list(h.log), h.now)
    assert follower.core.ready().outputs == []
    assert follower.core.snapshot() == h.core.snapshot()
    assert follower.core.last_zxid == h.core.last_zxid
    assert resp.session_id not in {s for s, _, _ in follower.core.sessions()}
